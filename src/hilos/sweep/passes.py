"""One pass of a sweep over its targets, and the loss probes that decide whether to retry."""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Iterator

from hilos.probes.echo_engine import EchoEngine
from hilos.sweep.base import Engine, Range
from hilos.sweep.engines import IcmpDiscovery
from hilos.sweep.frames import FrameSender
from hilos.sweep.targets import Targets
from hilos.wire.link import LinkTx

__all__ = ["LossCheck", "run_pass"]

_LOSS_HOSTS = 512  # hosts that get loss probes, at most
_LOSS_MIN_HOSTS = 8  # fewer answering hosts than this: no measurement, retry
_LOSS_PROBES = 256  # loss probes in all, at least (in up to 8 rounds)
_MISS = 1e-4  # the chance of missing a live host that the passes aim under, on a lossy path
MAX_LOSS_PASSES = 8


def run_pass(
    targets: Targets,
    engines: list[Engine],
    frames: FrameSender | None,
    link: LinkTx | None,
    skip: dict[int, object],
    stop: threading.Event,
    at: tuple[int, int] = (0, 0),
) -> int:
    """Send one pass over `targets` (addresses in `skip` answered already): the frame sender
    takes the IPv4 ranges its link covers, each engine the rest, each in its own thread. `at`:
    (pass number, the frame sender's chunks of it sent before, by a resumed sweep). Returns
    the packets sent."""
    jobs: list[Callable[[], object]] = []
    if frames is not None and link is not None:

        def l2() -> Iterator[Range]:
            for r in targets.ranges():
                if r[0] == 4 and link.covers_range(r[1], r[2]):
                    yield r

        def rest() -> Iterator[Range]:
            for r in targets.ranges():
                if not (r[0] == 4 and link.covers_range(r[1], r[2])):
                    yield r

        jobs.append(
            functools.partial(
                frames.run_pass, l2, skip, stop, targets.size, targets.block_count(), at
            )
        )
        for e in engines:
            # What the frames cover is theirs; the engine gets the rest (IPv6, on-link).
            covered = e is frames.icmp or e is frames.tcpe
            ranges = rest() if covered else targets.ranges()
            jobs.append(functools.partial(e.run_pass, ranges, skip, stop))
    else:
        for e in engines:
            jobs.append(functools.partial(e.run_pass, targets.ranges(), skip, stop))
    if len(jobs) == 1:
        return _count(jobs[0]())
    return _run_jobs(jobs, stop)


def _count(sent: object) -> int:
    return sent if isinstance(sent, int) else 0


def _run_jobs(jobs: list[Callable[[], object]], stop: threading.Event) -> int:
    """Run the jobs in threads of their own; the first failure stops the others, is raised.
    Returns the sum of their counts."""
    errors: list[BaseException] = []
    counts: list[int] = []

    def run(job: Callable[[], object]) -> None:
        try:
            counts.append(_count(job()))
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [
        threading.Thread(target=run, args=(job,), name=f"hilos-send-{i}", daemon=True)
        for i, job in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts)


class LossCheck:
    """After the first pass of a default-retries sweep, measure the path's loss.

    A retry pass costs as much as the first pass, and on a path that loses nothing it cannot
    find anything: every live host already had its probes (three per address when privileged).
    So, as nmap adapts its retransmissions to the drops it observes, extra echo requests go to
    hosts that answered one (at least 256 in all, several rounds for few hosts); the retry pass
    runs unless every one of them is answered. Their answers arrive within the wait the first
    pass needs anyway, so measuring costs no time; with fewer than 8 hosts answering echo there
    is nothing to measure with and the retry always runs.
    """

    def __init__(self) -> None:
        #: True/False once decided; None while the loss probes' answers are awaited
        self.decision: bool | None = True
        self._engine: EchoEngine | None = None
        #: (loss probes sent, lost) once measured
        self.measured: tuple[int, int] | None = None
        self._again: tuple[list[Engine], set[int], threading.Lock] | None = None

    def probe(self, engines: list[Engine], echoed: set[int], lock: threading.Lock) -> None:
        """Send the loss probes to hosts that answered echo (`echoed`, even where another
        probe's answer came first), or decide at once to retry when there is nothing to
        measure."""
        self.decision = True  # default: retry
        icmp = next((e for e in engines if isinstance(e, IcmpDiscovery)), None)
        if icmp is None:
            return
        with lock:
            hosts = sorted(echoed)[:_LOSS_HOSTS]
        if len(hosts) < _LOSS_MIN_HOSTS:
            self._again = (engines, echoed, lock)  # the answers may not be in yet
            return
        rounds = max(1, min(8, -(-_LOSS_PROBES // len(hosts))))
        icmp.engine.send_loss_probes(hosts, rounds)
        self._engine = icmp.engine
        self.decision = None  # decided when the answers are in (retry_needed)

    def passes(self, default: int) -> int:
        """Passes for the loss measured: enough that a host answering only one probe kind is
        missed with a chance under 1e-4 (0.19 lost a round trip, 10% each way: 6 passes), at
        least `default`, at most MAX_LOSS_PASSES. A retry pass goes only to the silent."""
        if self.measured is None or not self.measured[1]:
            return default
        sent, lost = self.measured
        f = min(lost / sent, 0.9)
        need = math.ceil(math.log(_MISS) / math.log(f)) if f > 0 else default
        return max(default, min(MAX_LOSS_PASSES, need))

    def probe_again(self) -> bool:
        """When too few hosts had answered for `probe` as the first pass ended (their answers
        still in a queue: a busy machine, a scan beside the sweep), probe once more, now that
        the first wait is over; True if loss probes went out (their answers: one wait more).
        Without it such a sweep kept its default passes on a lossy path, too few to find a
        host that answers one probe kind only (2 passes at 19% lost: 1 such host in 28)."""
        again, self._again = self._again, None
        if again is None:
            return False
        self.probe(*again)
        self._again = None
        return self.decision is None

    def retry_needed(self, wait: float, stop: threading.Event) -> bool:
        """Whether a loss probe went unanswered (waiting up to `wait` more for stragglers)."""
        if self.decision is not None:
            return self.decision
        eng = self._engine
        assert eng is not None
        # An answer still in a queue (a receiver thread starved by a busy machine) is not a
        # loss: give the stragglers one more wait before calling them lost. Costs time only
        # when something is missing, i.e. when the retry pass is likely anyway.
        deadline = time.monotonic() + wait
        while (
            eng.loss_sent > eng.loss_replies and time.monotonic() < deadline and not stop.is_set()
        ):
            stop.wait(0.01)
        lost = eng.loss_sent - eng.loss_replies
        self.measured = (eng.loss_sent, lost)
        return lost > 0
