"""What every engine does when a send fails, and sender processes that share one walk.

The send-error policy (one for every engine; zmap's send-linux.c does the same):

- QUEUE_FULL (ENOBUFS, EAGAIN, ENOMEM): the device or socket queue is full. Wait a little and
  send again, along BACKOFF (about 10 ms in all); still full, the probe stays unanswered (a retry
  pass, or the scan's own retransmission, gets it later).
- NO_ROUTE (EHOSTUNREACH, ENETUNREACH): our own routing table has no way there: the host is
  unreachable, said at once (sweep: host-unreach) or left unanswered.
- NOT_SENDABLE (EPERM, EACCES, EADDRNOTAVAIL, EINVAL): a local firewall rule, a broadcast or an
  address this socket cannot reach: that probe stays unanswered, the run goes on.
- anything else is a real failure: raised as the matching HilosError (errors.from_oserror).

Sender processes (`run_forked`): the kernel half of a send (most of a raw probe's cost) runs on
every core, without the GIL, when N processes share one walk. The walk is cut into numbered
items (e.g. /24 blocks); `Claims` deals chunks of them out first come first served, so a busier
process simply takes fewer.
"""

from __future__ import annotations

import contextlib
import errno
import mmap
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable
from typing import Literal

from hilos.errors import NetworkError, from_oserror

__all__ = [
    "BACKOFF",
    "NOT_SENDABLE",
    "NO_ROUTE",
    "QUEUE_FULL",
    "Claims",
    "SendOutcome",
    "run_forked",
    "send_failed",
]

QUEUE_FULL = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.ENOMEM})
NO_ROUTE = frozenset({errno.EHOSTUNREACH, errno.ENETUNREACH})
NOT_SENDABLE = frozenset({errno.EPERM, errno.EACCES, errno.EADDRNOTAVAIL, errno.EINVAL})
#: Waits (seconds) before each new attempt while the queue stays full: 10 ms in all, long enough
#: for a gigabit device queue to drain, short enough not to stall a sweep.
BACKOFF = (0.0005,) * 20

SendOutcome = Literal["sent", "unanswered", "unreachable"]


def send_failed(exc: OSError, resend: Callable[[], object] | None, what: str) -> SendOutcome:
    """Apply the send-error policy to a failed send (see the module docstring).

    `resend` sends the same packet again (None: do not resend, e.g. inside a hot loop whose
    retry pass resends). Returns "sent" when a resend went out, "unreachable" for no route,
    "unanswered" when the probe is given up; raises a HilosError for any other error.
    """
    code = exc.errno
    if code in NO_ROUTE:
        return "unreachable"
    if code in NOT_SENDABLE:
        return "unanswered"
    if code not in QUEUE_FULL:
        raise from_oserror(exc, what) from exc
    if resend is None:
        time.sleep(BACKOFF[0])  # let the queue drain a little before the next probe
        return "unanswered"
    for delay in BACKOFF:
        time.sleep(delay)
        try:
            resend()
        except OSError as again:
            if again.errno not in QUEUE_FULL:
                return send_failed(again, None, what)
            continue
        return "sent"
    return "unanswered"


class Claims:
    """Deals chunks of item numbers [0, items) out to processes, first come first served.

    A pipe holds one 4-byte token per chunk, in increasing order; a read of 4 bytes from a pipe
    is atomic (below PIPE_BUF), so each chunk goes to exactly one process. `next()` gives the
    claimed chunk as [lo, hi), or an empty range when none are left. Chunks are never more
    than CHUNKS (their tokens fit the pipe's buffer, so the constructor never blocks).
    """

    _TOKEN = struct.Struct("=I")
    _TIME = struct.Struct("=d")
    CHUNKS = 128

    def __init__(self, items: int, start: int = 0, tag: int = 0) -> None:
        self.size = max(1, -(-items // self.CHUNKS))
        self.count = -(-items // self.size)
        self.tag = tag  # the caller's (a sweep: which pass)
        # When each chunk was done (time.monotonic(); -1: not yet, 0: before `start`), in
        # shared memory: every process marks its own, the parent reads how far all got.
        self._done = mmap.mmap(-1, 8 * max(1, self.count))
        for i in range(self.count):
            self._TIME.pack_into(self._done, 8 * i, 0.0 if i < start else -1.0)
        self._r, w = os.pipe()
        try:
            tokens = range(min(start, self.count), self.count)
            os.write(w, b"".join(self._TOKEN.pack(i) for i in tokens))  # < 64 KiB
        finally:
            os.close(w)

    def finish(self, lo: int) -> None:
        """The chunk starting at item `lo` is sent (its last items may still be in a batch)."""
        self._TIME.pack_into(self._done, 8 * (lo // self.size), time.monotonic())

    def settled(self, before: float) -> int:
        """How many chunks from the first were all done by `before` (time.monotonic())."""
        for i in range(self.count):
            t = self._TIME.unpack_from(self._done, 8 * i)[0]
            if t < 0 or t > before:
                return i
        return self.count

    def next(self) -> tuple[int, int]:
        data = os.read(self._r, 4)
        if len(data) < 4:
            return (0, 0)
        i = self._TOKEN.unpack(data)[0]
        return (i * self.size, (i + 1) * self.size)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._r)


#: What a sender process does: its share of the claims, until none are left or `stop` is set;
#: returns a count (packets sent) that run_forked adds up.
Work = Callable[[Claims, threading.Event], int]

_RESULT = struct.Struct("!q")


def run_forked(work: Work, parts: int, claims: Claims, stop: threading.Event, name: str) -> int:
    """Run `work` in `parts` processes sharing `claims` (of numbered items): parts - 1 forked
    children and the caller itself; returns the sum of their counts.

    Each child reports its count, or its error, through a pipe. When `stop` is set the children
    are terminated (SIGTERM) and reaped; a child that failed otherwise raises NetworkError
    naming `name`. A fork copies only the calling thread: the work must not need the others.
    """
    children: list[tuple[int, int]] = []  # (pid, read end of its report pipe)
    done = False
    try:
        for _ in range(1, parts):
            children.append(_fork(work, claims, children))
        total = work(claims, stop)
        total += _collect(children, stop, name)
        done = True
        return total
    finally:
        claims.close()
        # Failed or stopped: the children's remaining work is not wanted.
        _reap(children, terminate=not done or stop.is_set())


def _fork(work: Work, claims: Claims, siblings: list[tuple[int, int]]) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the work, report, never return into the caller's code
        code = 1
        try:
            os.close(r)
            for _pid, fd in siblings:
                os.close(fd)
            # Ctrl-C and SIGTERM end a child at once (the parent reports; the child has
            # nothing to write): not the handlers the CLI installed in the parent.
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _write_all(w, b"R" + _RESULT.pack(work(claims, threading.Event())))
            code = 0
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                _write_all(w, b"E" + repr(exc).encode()[:4000])
        finally:
            os._exit(code)
    os.close(w)
    return pid, r


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _collect(children: list[tuple[int, int]], stop: threading.Event, name: str) -> int:
    """Read every child's report (until its pipe closes); terminate them all once `stop` is
    set. Returns the sum of the counts; raises NetworkError for a failed child."""
    reports = {fd: b"" for _pid, fd in children}
    poller = select.poll()
    for fd in reports:
        poller.register(fd, select.POLLIN | select.POLLHUP)
    open_fds = set(reports)
    killed = False
    while open_fds:
        if stop.is_set() and not killed:
            killed = True
            _terminate(children)
        for fd, _ev in poller.poll(50):
            chunk = os.read(fd, 4096)
            if chunk:
                reports[fd] += chunk
            else:
                poller.unregister(fd)
                open_fds.discard(fd)
    total = 0
    for data in reports.values():
        if data[:1] == b"R" and len(data) == 1 + _RESULT.size:
            total += _RESULT.unpack_from(data, 1)[0]
        elif not stop.is_set():
            why = data[1:].decode(errors="replace") if data[:1] == b"E" else "exited early"
            raise NetworkError(f"{name} process failed: {why}")
    return total


def _terminate(children: list[tuple[int, int]]) -> None:
    for pid, _fd in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _reap(children: list[tuple[int, int]], terminate: bool) -> None:
    if terminate:
        _terminate(children)
    for pid, fd in children:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
