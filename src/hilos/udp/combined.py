"""Two port scans of the same hosts at once (nmap -sS -sU): one result per host, TCP ports first."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from hilos.results import ScanHostResult, ScanStats

__all__ = ["Combined"]


def merge(a: ScanHostResult, b: ScanHostResult) -> ScanHostResult:
    """`a` with `b`'s ports after its own; up when either is, with that one's reason."""
    up = a if a.status == "up" else b
    rtts = [r for r in (a.rtt_ms, b.rtt_ms) if r is not None]
    return replace(
        a,
        status=up.status,
        reason=up.reason,
        ports=a.ports + b.ports,
        rtt_ms=min(rtts) if rtts else None,
    )


class Combined:
    """Runs `first` and `second` (scanners with results/cancel/partial/stats, over the same
    hosts) side by side; a host is yielded once both have it, merged. Hosts only one of them
    reports (a shard holds none of the other's probes for it) come at the end."""

    def __init__(self, first: Any, second: Any) -> None:
        self.scanners = (first, second)
        self._queue: queue.SimpleQueue[tuple[int, ScanHostResult | BaseException | None]] = (
            queue.SimpleQueue()
        )
        self._held: list[dict[str, ScanHostResult]] = [{}, {}]

    def _pump(self, side: int) -> None:
        try:
            for host in self.scanners[side].results():
                self._queue.put((side, host))
        except BaseException as exc:  # handed to results()
            self._queue.put((side, exc))
        finally:
            self._queue.put((side, None))

    def results(self) -> Iterator[ScanHostResult]:
        threads = [
            threading.Thread(target=self._pump, args=(i,), daemon=True, name=f"hilos-combined-{i}")
            for i in (0, 1)
        ]
        for t in threads:
            t.start()
        running = 2
        held = self._held
        try:
            while running:
                side, item = self._queue.get()
                if item is None:
                    running -= 1
                    continue
                if isinstance(item, BaseException):
                    raise item
                other = held[1 - side].pop(item.host, None)
                if other is None:
                    held[side][item.host] = item
                    continue
                yield merge(item, other) if side == 0 else merge(other, item)
            for side in (0, 1):
                while held[side]:
                    yield held[side].popitem()[1]
        finally:
            self.cancel()

    def cancel(self) -> None:
        for s in self.scanners:
            s.cancel()

    def snapshot(self, written: Any) -> dict[str, Any] | None:
        """Both scans' states (a host one has reported and this holds for the other is not
        written: that scan probes it again on resume); None unless both keep one."""
        states = [getattr(s, "snapshot", lambda _w: None)(written) for s in self.scanners]
        if any(state is None for state in states):
            return None
        return {"tcp": states[0], "udp": states[1]}

    def partial(self) -> list[ScanHostResult]:
        found: dict[str, ScanHostResult] = {}
        for side, scanner in enumerate(self.scanners):
            for host in [*self._held[side].values(), *scanner.partial()]:
                old = found.get(host.host)
                found[host.host] = host if old is None else merge(old, host)
        self._held = [{}, {}]
        return list(found.values())

    @property
    def stats(self) -> ScanStats:
        a, b = (s.stats for s in self.scanners)
        return ScanStats(
            done=a.done + b.done,
            total=a.total + b.total,
            hosts_done=min(a.hosts_done, b.hosts_done),
            hosts_total=max(a.hosts_total, b.hosts_total),
            elapsed=max(a.elapsed, b.elapsed),
            window=a.window + b.window,
            sent=a.sent + b.sent,
        )
