"""SYN sender processes: the kernel half of each send on its own core, no GIL shared with receiving.

The parent keeps the receiver and the scan's state; each child (fork) walks a disjoint part of
the shard. They share a small control block (the receiver's idle_at, the timeout, the pace, the
cancel and done flags, one sent counter per child) and the state's shared bitsets; a child
reports the probes it gives up on, its sent count and its errors as framed messages on a pipe.
This differs from hilos.wire.senders.run_forked (whose children report once, at the end): a SYN
child must hand its give-ups to the parent while the scan runs, as hosts complete.
"""

from __future__ import annotations

import array
import contextlib
import mmap
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable

from hilos.errors import NetworkError
from hilos.probes.tcp_transport import TcpTransport
from hilos.syn.control import Control
from hilos.syn.state import ScanState

__all__ = ["FORK_MIN_PROBES", "ChildCoordination", "ForkedSenders", "SharedControl"]

FORK_MIN_PROBES = 20_000  # smaller jobs stay in one process (a fork costs milliseconds)

_CTL = struct.Struct("=ddd")  # receiver idle_at, current timeout, pace (packets/s, 0: none)
_CANCEL = _CTL.size  # one byte after the doubles: set when the scan is cancelled
_DONE = _CTL.size + 1  # set when every probe is final: the senders stop waiting
_SENT = _CTL.size + 8  # then one 8-byte counter of packets sent per sender process
_COUNT = struct.Struct("=Q")
_MSG = struct.Struct("=BQ")  # kind, payload length
_MSG_FINAL, _MSG_SENT, _MSG_ERROR = 1, 2, 3


class SharedControl:
    """The control block shared (mmap) by the parent and its sender processes."""

    def __init__(self, processes: int) -> None:
        self.mem = mmap.mmap(-1, _SENT + 8 * processes)

    def publish(self, idle: float, timeout: float, pace: float) -> None:
        _CTL.pack_into(self.mem, 0, idle, timeout, pace)

    def read(self) -> tuple[float, float, float]:
        idle, timeout, pace = _CTL.unpack_from(self.mem, 0)
        return idle, timeout, pace

    def cancel(self) -> None:
        self.mem[_CANCEL] = 1

    @property
    def cancelled(self) -> bool:
        return bool(self.mem[_CANCEL])

    def set_done(self) -> None:
        self.mem[_DONE] = 1

    @property
    def done(self) -> bool:
        return bool(self.mem[_DONE])

    def set_sent(self, slot: int, total: int) -> None:
        _COUNT.pack_into(self.mem, _SENT + 8 * slot, total)

    def sent(self, slots: int) -> int:
        return sum(_COUNT.unpack_from(self.mem, _SENT + 8 * i)[0] for i in range(slots))


class ChildCoordination:
    """Coordination (see coord.py) of a sender process: reads the control block, reports
    through its pipe."""

    def __init__(self, ctl: SharedControl, fd: int, slot: int, share: int, parent: int) -> None:
        self.ctl = ctl
        self.fd = fd
        self.slot = slot
        self.share = share  # how many sender processes split the pace
        self.parent = parent
        self._unreported = 0  # sent since the last report through the pipe
        self._total = 0

    def status(self) -> tuple[float, float] | None:
        # Stop if the parent is gone: never keep sending for a dead scan.
        if self.ctl.cancelled or os.getppid() != self.parent:
            return None
        idle, timeout, _pace = self.ctl.read()
        return idle, timeout

    def pace(self) -> float:
        return self.ctl.read()[2] / self.share

    def sent(self, n: int) -> None:
        self._unreported += n
        self._total += n
        self.ctl.set_sent(self.slot, self._total)

    def give_up(self, indices: list[int]) -> None:
        self.write(_MSG_FINAL, array.array("Q", indices).tobytes())
        self.finish()

    def all_final(self) -> bool:
        return self.ctl.done

    def tick(self, now: float) -> None:
        pass

    def finish(self) -> None:
        self.write(_MSG_SENT, struct.pack("!Q", self._unreported))
        self._unreported = 0

    def write(self, kind: int, payload: bytes) -> None:
        data = _MSG.pack(kind, len(payload)) + payload
        while data:
            data = data[os.write(self.fd, data) :]


class ForkedSenders:
    """Forks the sender processes and, in the parent, coordinates them (`coordinate`)."""

    def __init__(self, ctl: SharedControl, state: ScanState, cancel: threading.Event) -> None:
        self.ctl = ctl
        self.state = state
        self.cancel = cancel
        self.children: list[tuple[int, int]] = []  # (pid, read end of its pipe)
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fork(
        self,
        parts: list[tuple[int, int]],
        run: Callable[[tuple[int, int], ChildCoordination], None],
    ) -> None:
        """One child per part; each calls run(part, coordination) and exits. Call before any
        thread of ours runs (a child inherits no half-held lock of ours)."""
        parent = os.getpid()
        for slot, part in enumerate(parts):
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: send this part, report through the pipe, never return
                code = 1
                coord = ChildCoordination(self.ctl, wfd, slot, len(parts), parent)
                try:
                    os.close(rfd)
                    for _pid, other in self.children:
                        os.close(other)
                    run(part, coord)
                    code = 0
                except BaseException as exc:
                    with contextlib.suppress(BaseException):
                        coord.write(_MSG_ERROR, repr(exc).encode()[:4000])
                finally:
                    os._exit(code)
            os.close(wfd)
            self.children.append((pid, rfd))

    def coordinate(
        self, engine: TcpTransport, control: Control, report: Callable[[], None]
    ) -> None:
        """Parent side: publish the receiver's progress, the timeout and the pace to the
        children, finalize the probes they give up on, collect their errors (in `error`)."""
        bufs = {fd: b"" for _pid, fd in self.children}
        poller = select.poll()
        for fd in bufs:
            poller.register(fd, select.POLLIN | select.POLLHUP)
        open_fds = set(bufs)
        ctl, state = self.ctl, self.state
        slots = len(self.children)
        next_progress = 0.0
        try:
            while open_fds:
                control.control(time.monotonic(), ctl.sent(slots))
                ctl.publish(engine.idle_at, control.timeout, control.pace)
                engine.check()
                for fd, _ev in poller.poll(1):
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        poller.unregister(fd)
                        open_fds.discard(fd)
                        continue
                    bufs[fd] = self._handle_messages(bufs[fd] + chunk)
                now = time.monotonic()
                if now >= next_progress:
                    next_progress = now + 0.25
                    report()
                if state.final_count >= state.goal:
                    ctl.set_done()  # every probe answered: the senders may stop
            self._wait()
        except BaseException as exc:
            if self.error is None:
                self.error = exc
        finally:
            report()

    def _wait(self) -> None:
        with self._lock:
            children, self.children = self.children, []
        for pid, fd in children:
            os.close(fd)
            _pid, status = os.waitpid(pid, 0)
            if status != 0 and self.error is None and not self.cancel.is_set():
                self.error = NetworkError(f"SYN sender process failed (status {status})")

    def _handle_messages(self, buf: bytes) -> bytes:
        while len(buf) >= _MSG.size:
            kind, size = _MSG.unpack_from(buf)
            if len(buf) < _MSG.size + size:
                break
            payload = buf[_MSG.size : _MSG.size + size]
            buf = buf[_MSG.size + size :]
            if kind == _MSG_FINAL:
                idx = array.array("Q")
                idx.frombytes(payload)
                self.state.finalize(idx)
            elif kind == _MSG_SENT:
                self.state.add_sent(struct.unpack("!Q", payload)[0])
            elif kind == _MSG_ERROR and self.error is None:
                self.error = NetworkError(f"SYN sender process: {payload.decode(errors='replace')}")
                self.cancel.set()
                self.ctl.cancel()
        return buf

    def reap(self) -> None:
        """Close the pipes and reap the children (SIGKILL after 1 s)."""
        with self._lock:
            children, self.children = self.children, []
        deadline = time.monotonic() + 1.0
        for pid, fd in children:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        break
                    time.sleep(0.005)
