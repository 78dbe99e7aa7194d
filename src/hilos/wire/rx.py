"""Batched receiving: recvmmsg(2) into the rows of one numpy buffer (one system call, GIL
released, per batch), receive buffers as large as the kernel allows, drops counted."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import socket
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from hilos.errors import from_oserror
from hilos.wire.mmsg import Iovec, Mmsghdr, Msghdr
from hilos.wire.sockets import raw_drops

__all__ = ["RxBatch", "grow_rcvbuf", "raw_drops"]

SO_RCVBUFFORCE: Final = 33
_MSG_DONTWAIT: Final = 0x40
_SO_TIMESTAMPNS: Final = 35
_CMSG: Final = 32  # CMSG_SPACE(sizeof(struct timespec)): len (8), level, type (4 + 4), data
_CMSG_DTYPE: Final = np.dtype(
    [("len", np.uint64), ("level", np.int32), ("type", np.int32), ("sec", np.int64),
     ("nsec", np.int64)]
)  # fmt: skip


def grow_rcvbuf(sock: socket.socket, want: int = 64 << 20) -> int:
    """Make `sock`'s receive buffer `want` bytes: SO_RCVBUFFORCE as root (past rmem_max),
    else as much as SO_RCVBUF allows; returns what the kernel granted."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, want)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, want)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


class RxBatch:
    """Up to `count` packets of at most `snap` bytes per call, into `pkts` (count x snap uint8).

    rx = RxBatch(sock, 1024, 128)
    n = rx.recv(0.05)          # waits up to 50 ms for the first packet
    pkts, lens = rx.pkts[:n], rx.lens(n)
    """

    def __init__(
        self, sock: socket.socket, count: int = 1024, snap: int = 128, *, stamps: bool = False
    ) -> None:
        self.sock = sock
        self.count = count
        self.snap = snap
        self._buf = bytearray(count * snap)
        self.pkts = np.frombuffer(self._buf, dtype=np.uint8).reshape(count, snap)
        raw = (ctypes.c_char * len(self._buf)).from_buffer(self._buf)
        base = ctypes.addressof(raw)
        self._raw = raw
        self._iov = (Iovec * count)()
        self._msgs = (Mmsghdr * count)()
        for k in range(count):
            self._iov[k].base = base + k * snap
            self._iov[k].len = snap
            self._msgs[k].hdr.iov = ctypes.addressof(self._iov[k])
            self._msgs[k].hdr.iovlen = 1
        size = ctypes.sizeof(Mmsghdr)
        raw_msgs = memoryview(self._msgs).cast("B")
        words = np.frombuffer(raw_msgs, dtype=np.uint32).reshape(count, size // 4)
        self._lens = words[:, Mmsghdr.len.offset // 4]
        # stamps: the kernel's receive time of each packet (SO_TIMESTAMPNS control messages).
        self._ctl: npt.NDArray[np.void] | None = None
        if stamps:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            self._ctl_buf = bytearray(count * _CMSG)
            ctl = (ctypes.c_char * len(self._ctl_buf)).from_buffer(self._ctl_buf)
            self._ctl_raw = ctl
            for k in range(count):
                self._msgs[k].hdr.control = ctypes.addressof(ctl) + k * _CMSG
            qwords = np.frombuffer(raw_msgs, dtype=np.uint64).reshape(count, size // 8)
            self._ctl_len = qwords[:, Msghdr.controllen.offset // 8]  # reset before each call
            self._ctl = np.frombuffer(self._ctl_buf, dtype=_CMSG_DTYPE)
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.recvmmsg
        fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p)
        fn.restype = ctypes.c_int
        self._fn: Any = fn
        self._fd = sock.fileno()
        self._addr = ctypes.addressof(self._msgs)

    def recv(self, timeout: float) -> int:
        """Wait up to `timeout` s for packets, then take as many as are queued (up to
        `count`) without blocking; returns how many (0 on timeout)."""
        return self.take() if self.wait(timeout) else 0

    def wait(self, timeout: float) -> bool:
        """Whether packets are queued, waiting up to `timeout` s for the first."""
        ready, _, _ = select.select([self._fd], [], [], timeout)
        return bool(ready)

    def take(self) -> int:
        """Take as many packets as are queued (up to `count`) without blocking; how many."""
        if self._ctl is not None:
            self._ctl_len[:] = _CMSG  # the kernel writes back what it used
        n = self._fn(self._fd, self._addr, self.count, _MSG_DONTWAIT, None)
        if n >= 0:
            return int(n)
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):
            return 0
        exc = OSError(err, os.strerror(err))
        raise from_oserror(exc, "receiving replies") from exc

    def lens(self, n: int) -> npt.NDArray[np.int64]:
        """The byte counts of the first `n` packets of the last `recv` (at most `snap`)."""
        out: npt.NDArray[np.int64] = self._lens[:n].astype(np.int64)
        return out

    def stamps_ns(self, n: int) -> npt.NDArray[np.int64]:
        """The kernel's receive times (wall clock, ns) of the first `n` packets of the last
        `take`; 0 where there is none (made without `stamps`, or not stamped)."""
        if self._ctl is None:
            return np.zeros(n, dtype=np.int64)
        ctl = self._ctl[:n]
        ok = (self._ctl_len[:n] >= _CMSG) & (ctl["level"] == socket.SOL_SOCKET)
        ok &= ctl["type"] == _SO_TIMESTAMPNS
        out: npt.NDArray[np.int64] = np.where(ok, ctl["sec"] * 1_000_000_000 + ctl["nsec"], 0)
        return out
