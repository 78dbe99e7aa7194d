"""A port scan that starts before host discovery ends (nmap scans a group while pinging the next).

Discovery's last wait (nmap -T4's 100 ms at least) is for answers that may never come; the hosts
that did answer the first pass are known well before it ends. So the hosts found once the first
pass's answers are in (`Sweeper.first_answers_due`) are scanned at once, while discovery finishes
its wait, loss check and retries beside it; the hosts it finds later (loss, a slow path) get a
scan of their own after it. Which host lands in which scan changes when it is reported, never
what is reported about it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from hilos.results import HostResult, ScanHostResult, ScanStats

__all__ = ["Discovery", "Staged", "start"]


class Discovery:
    """Discovery's up hosts, read in a thread of their own (`found`, in the order found)."""

    def __init__(self, live: Iterator[HostResult]) -> None:
        self._live = live
        self.found: list[str] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="hilos-discovery", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for h in self._live:
                self.found.append(h.host)
        except BaseException as exc:  # raised again in the scan's thread
            self._error = exc

    def early(self, due: Callable[[], float | None], stop: threading.Event) -> list[str]:
        """The hosts found by the time `due()` (a monotonic time; None: not known yet) has
        passed, or all of them when discovery ended first."""
        while self._thread.is_alive() and not stop.is_set():
            when, now = due(), time.monotonic()
            if when is not None and now >= when:
                break
            self._thread.join(0.002 if when is None else min(max(when - now, 0.001), 0.02))
        if self._error is not None:
            raise self._error
        return list(self.found)

    def rest(self, skip: int) -> list[str]:
        """Every host found after the first `skip`, once discovery ended."""
        while self._thread.is_alive():
            self._thread.join(0.1)  # not one long join: a signal handler gets to run
        if self._error is not None:
            raise self._error
        return self.found[skip:]


class Staged:
    """One scan of the `early` hosts, then one of the `late()` ones (if any), behind the interface
    of one scanner (results, cancel, partial, stats, drops, ready). `make(hosts)` builds a scan;
    `late()` blocks until discovery ended."""

    def __init__(
        self, make: Callable[[list[str]], Any], early: list[str], late: Callable[[], list[str]]
    ) -> None:
        self._make = make
        self._late = late
        self._lock = threading.Lock()
        self._cancelled = False
        self.scanners: list[Any] = [make(early)]
        self.early = early

    def results(self) -> Iterator[ScanHostResult]:
        yield from self.scanners[0].results()
        if self._cancelled:
            return
        hosts = self._late()
        if not hosts:
            return
        with self._lock:
            if self._cancelled:
                return
            second = self._make(hosts)
            self.scanners.append(second)
        yield from second.results()

    def stages(self) -> list[tuple[list[str], Any]]:
        """(hosts, scanner or None while not made) per stage, once discovery has ended."""
        late = self._late()
        second = self.scanners[1] if len(self.scanners) > 1 else None
        return [(self.early, self.scanners[0])] + ([(late, second)] if late else [])

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            scanners = list(self.scanners)
        for s in scanners:
            s.cancel()

    def partial(self) -> list[ScanHostResult]:
        return [h for s in list(self.scanners) for h in s.partial()]

    @property
    def stats(self) -> ScanStats:
        all_ = [s.stats for s in list(self.scanners)]
        return ScanStats(
            done=sum(s.done for s in all_),
            total=sum(s.total for s in all_),
            hosts_done=sum(s.hosts_done for s in all_),
            hosts_total=sum(s.hosts_total for s in all_),
            elapsed=sum(s.elapsed for s in all_),
            window=all_[-1].window,
            sent=sum(s.sent for s in all_),
        )

    @property
    def drops(self) -> int | None:
        counts = [d for s in list(self.scanners) if (d := getattr(s, "drops", None)) is not None]
        return sum(counts) if counts else None

    def ready(self) -> bool:
        current = self.scanners[-1]
        return hasattr(current, "ready") and bool(current.ready())


def start(
    live: Iterator[HostResult],
    due: Callable[[], float | None],
    cancel: threading.Event,
    make: Callable[[list[str]], Any],
) -> Staged | None:
    """The scan of discovery's `live` hosts: a Staged one from the hosts found by `due()`, or
    None when none were (or on `cancel`): discovery has ended by then, and the caller scans
    every host it found."""
    disc = Discovery(live)
    early = disc.early(due, cancel)
    if early and not cancel.is_set():
        return Staged(make, early, functools.partial(disc.rest, len(early)))
    disc.rest(0)
    return None
