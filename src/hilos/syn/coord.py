"""How a SYN sender learns the scan's state and reports back (syn.send.Sender's side of it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from hilos.probes.tcp_transport import TcpTransport
from hilos.syn.control import Control
from hilos.syn.state import ScanState

__all__ = ["Coordination", "LocalCoordination"]


class Coordination(Protocol):
    """How a sender learns the scan's state and reports back: directly in the scanning process
    (LocalCoordination), or through shared memory and a pipe in a sender process (fork.py)."""

    def status(self) -> tuple[float, float] | None:
        """(receiver's idle_at, probe timeout) now; None: stop sending."""
        ...

    def pace(self) -> float:
        """This sender's congestion pace in packets/s (0: none)."""
        ...

    def sent(self, n: int) -> None: ...

    def give_up(self, indices: list[int]) -> None:
        """These probes' last deadline passed unanswered: final, filtered."""
        ...

    def all_final(self) -> bool: ...

    def tick(self, now: float) -> None:
        """Called once per scheduling round (progress reports)."""
        ...

    def finish(self) -> None:
        """Called once when `run` returns."""
        ...


class LocalCoordination:
    """Coordination for sender threads in the scanning process itself."""

    def __init__(
        self,
        engine: TcpTransport,
        control: Control,
        state: ScanState,
        report: Callable[[], None],
    ) -> None:
        self.engine = engine
        self.control = control
        self.state = state
        self.report = report
        self._next_progress = 0.0

    def status(self) -> tuple[float, float] | None:
        self.engine.check()
        self.control.control(time.monotonic(), self.state.sent)
        return self.engine.idle_at, self.control.timeout

    def pace(self) -> float:
        return self.control.pace

    def sent(self, n: int) -> None:
        self.state.add_sent(n)

    def give_up(self, indices: list[int]) -> None:
        self.state.finalize(indices)

    def all_final(self) -> bool:
        return self.state.final_count >= self.state.goal

    def tick(self, now: float) -> None:
        if now >= self._next_progress:
            self._next_progress = now + 0.25
            self.report()

    def finish(self) -> None:
        self.report()
