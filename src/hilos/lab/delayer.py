"""The delayer: the lab's RTT in userspace (no sch_netem on the kernels we run on)."""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import signal
import struct
import sys
import time
from collections import deque
from collections.abc import Sequence

from hilos.lab.netns import NETNS_DIR

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_CLONE_NEWNET = 0x40000000
_READ_SIZE = 2048  # TUN MTU is 1500 and the device has no GSO: no packet is larger
_BATCH = 512  # packets read per readable event before looking at the other side
_QUEUE_LIMIT = 200_000  # packets held per direction; beyond that, drop like a full router queue


def _open_tun(name: str) -> int:
    """Create TUN device `name` in the current network namespace; return its non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    ifr = struct.pack("16sH22x", name.encode(), _IFF_TUN | _IFF_NO_PI)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, ifr)
    except OSError:
        os.close(fd)
        raise
    return fd


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        native = getattr(os, "setns", None)  # Python 3.12+
        if native is not None:
            native(fd, _CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def delay_loop(fd_a: int, fd_b: int, delay: float, stop: list[bool] | None = None) -> int:
    """Relay packets a->b and b->a, each held `delay` seconds, until `stop[0]`; return drops.

    A fixed delay keeps order, so a FIFO per direction suffices. Packets read in one wakeup share
    a deadline and travel as one queue entry: no per-packet tuple, one clock read per batch.
    One thread on purpose: most of the work is in the kernel (each write to a TUN device runs the
    receiving namespace's network stack: ~80% system time), and a thread or a process per
    direction measured slower on two shared cores. Measured at 20 ms each way: lossless to
    30-40k packets/s in each direction, ~90-110k packets/s in total at saturation.
    """
    ep = select.epoll()
    ep.register(fd_a, select.EPOLLIN)
    ep.register(fd_b, select.EPOLLIN)
    q_ab: deque[tuple[float, list[bytes]]] = deque()  # read from a, to be written to b
    q_ba: deque[tuple[float, list[bytes]]] = deque()
    held = {fd_a: 0, fd_b: 0}
    dropped = 0
    read, write, mono, poll = os.read, os.write, time.monotonic, ep.poll
    batch_range = range(_BATCH)
    # Only a caller that can set stop[0] needs the loop to wake up now and then to look at it.
    idle = 0.2 if stop is not None else -1.0
    stop = stop if stop is not None else [False]
    try:
        while not stop[0]:
            if q_ab or q_ba:
                head = min(q[0][0] for q in (q_ab, q_ba) if q)
                timeout = max(0.0, head - mono())
            else:
                timeout = idle
            events = poll(timeout)
            now = mono()
            for fd, _ev in events:
                batch: list[bytes] = []
                append = batch.append
                try:
                    for _ in batch_range:
                        append(read(fd, _READ_SIZE))
                except BlockingIOError:
                    pass
                if held[fd] >= _QUEUE_LIMIT:
                    dropped += len(batch)
                elif batch:
                    held[fd] += len(batch)
                    (q_ab if fd == fd_a else q_ba).append((now + delay, batch))
            for q, src, dst in ((q_ab, fd_a, fd_b), (q_ba, fd_b, fd_a)):
                while q and q[0][0] <= now:
                    batch = q.popleft()[1]
                    held[src] -= len(batch)
                    for pkt in batch:
                        try:
                            write(dst, pkt)
                        except OSError:
                            dropped += 1
    finally:
        ep.close()
    return dropped


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hilos.lab.delayer HOSTS_NS ROUTER_TUN HOSTS_TUN DELAY_S`, started in the router
    namespace: opens one TUN there, enters the hosts namespace, opens the other, and relays."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 4:
        os.write(2, b"usage: python -m hilos.lab.delayer HOSTS_NS ROUTER_TUN HOSTS_TUN DELAY_S\n")
        return 2
    hosts_ns, tun_router, tun_hosts, delay_text = argv
    delay = float(delay_text)
    # A TUN device belongs to the namespace the opener is in when it opens /dev/net/tun.
    fd_router = _open_tun(tun_router)
    _setns(str(NETNS_DIR / hosts_ns))
    fd_hosts = _open_tun(tun_hosts)
    os.chdir("/")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.write(1, b"ready\n")
    delay_loop(fd_router, fd_hosts, delay)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as exc:
        os.write(2, f"delayer: {exc}\n".encode())
        sys.exit(1)
