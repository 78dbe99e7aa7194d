"""Batched sending: frames packed into fixed slots of one buffer, sent by one sendmmsg(2) call.

One system call (and one GIL release) per batch instead of per frame: what lets a Python
sender reach hundreds of thousands of frames a second (zmap's --batch, send-linux.c). Failed
sends follow the one policy of hilos.wire.senders.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from hilos.errors import from_oserror
from hilos.wire.senders import BACKOFF, NO_ROUTE, NOT_SENDABLE, QUEUE_FULL, send_failed

__all__ = ["Batch", "MmsgVector"]


class Batch:
    """A buffer of fixed-size slots and the sendmmsg(2) vector that sends them at once.

    Slot k holds frame k, `lens[k]` bytes long, at offset k * `slot`: callers pack frames
    straight into `buf` (struct.pack_into, no bytes object per frame) and `flush(n)` sends the
    first n slots. Without ctypes or sendmmsg (not Linux/glibc) the frames go one send() each.

        batch = Batch(sock, [60] * 64, slot=64)
        FRAME.pack_into(batch.buf, 0, ...)
        sent = batch.flush(1)
    """

    def __init__(self, sock: socket.socket, lens: Sequence[int], slot: int) -> None:
        if any(n > slot for n in lens):
            raise ValueError(f"a frame longer than its {slot}-byte slot")
        self.count = len(lens)
        self.lens = list(lens)
        self.slot = slot
        self.size = self.count * slot
        self.sock = sock
        self.buf = bytearray(self.size)
        self._mmsg: MmsgVector | None
        try:
            self._mmsg = MmsgVector(sock.fileno(), self.buf, self.lens, slot)
        except (OSError, AttributeError, TypeError, ValueError):
            self._mmsg = None

    def flush(self, frames: int) -> int:
        """Send the first `frames` slots; returns how many frames left."""
        if self._mmsg is not None:
            return self._mmsg.send(frames)
        view = memoryview(self.buf)
        send = self.sock.send
        slot = self.slot
        sent = 0
        for k in range(frames):
            frame = view[k * slot : k * slot + self.lens[k]]
            try:
                send(frame)
            except OSError as exc:
                if send_failed(exc, functools.partial(send, frame), "sending frames") != "sent":
                    continue
            sent += 1
        return sent


class MmsgVector:
    """ctypes glue for sendmmsg(2) over a fixed bytearray: one mmsghdr/iovec per slot; with
    `names`, message k goes to the `namelen`-byte socket address at names[k * namelen] (an
    unconnected raw IP socket needs one destination per packet)."""

    def __init__(
        self,
        fd: int,
        buf: bytearray,
        lens: Sequence[int],
        slot: int,
        names: bytearray | None = None,
        namelen: int = 0,
    ) -> None:
        import ctypes

        from hilos.wire.mmsg import Iovec, Mmsghdr

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sendmmsg
        fn.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
        fn.restype = ctypes.c_int
        n = len(lens)
        self._raw = (ctypes.c_char * len(buf)).from_buffer(buf)  # shares the bytearray
        base = ctypes.addressof(self._raw)
        if names is not None:
            self._names_raw = (ctypes.c_char * len(names)).from_buffer(names)
            self._names = ctypes.addressof(self._names_raw)
        self._iov = (Iovec * n)()
        self._msgs = (Mmsghdr * n)()
        for k, length in enumerate(lens):
            self._iov[k].base = base + k * slot
            self._iov[k].len = length
            self._msgs[k].hdr.iov = ctypes.addressof(self._iov[k])
            self._msgs[k].hdr.iovlen = 1
            if names is not None:
                self._msgs[k].hdr.name = self._names + k * namelen
                self._msgs[k].hdr.namelen = namelen
        self._fn: Any = fn
        self._fd = fd
        self._addr = ctypes.addressof(self._msgs)
        self._size = ctypes.sizeof(Mmsghdr)
        self._errno = ctypes.get_errno

    def send(self, frames: int) -> int:
        """Send the first `frames` messages; returns how many left (the send-error policy:
        a full queue is waited out along BACKOFF, then the rest of the batch is given up; a
        frame that cannot be sent is skipped)."""
        done = sent = tries = 0
        while done < frames:
            n = self._fn(self._fd, self._addr + done * self._size, frames - done, 0)
            if n > 0:
                done += n
                sent += n
                continue
            err = self._errno()
            if err == errno.EINTR:
                continue
            if err in QUEUE_FULL:
                if tries == len(BACKOFF):
                    return sent  # the rest of this batch waits for a retry pass
                time.sleep(BACKOFF[tries])  # the device queue is full: give it a moment
                tries += 1
                continue
            if err in NO_ROUTE or err in NOT_SENDABLE:
                done += 1  # this frame stays unanswered; the rest still go
                continue
            exc = OSError(err, os.strerror(err))
            raise from_oserror(exc, "sending frames") from exc
        return sent
