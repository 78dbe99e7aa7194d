"""The sweep itself: Sweeper runs the passes and waits, streaming HostResults; sweep() checks."""

from __future__ import annotations

import contextlib
import functools
import itertools
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from hilos.results import HostResult, HostStatus, Written, nothing_written
from hilos.sweep import resume as sweep_resume
from hilos.sweep.base import (
    DEFAULT_RATE,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MIN_WAIT,
    UP_REASONS,
    Address,
    Engine,
    Method,
    SweepProgress,
    check_arguments,
    check_space_size,
    host_str,
    up_results,
)
from hilos.sweep.choose import attach_link, choose_engines
from hilos.sweep.dense_ranges import dense_ranges, queued, streamed
from hilos.sweep.engines import IcmpDiscovery
from hilos.sweep.frames import FrameSender
from hilos.sweep.passes import LossCheck, run_pass
from hilos.sweep.targets import Targets
from hilos.targets import TargetSpace
from hilos.wire.cookie import Cookie
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.rtt import RttEstimator
from hilos.wire.sockets import can_raw

if TYPE_CHECKING:
    from hilos.sweep.dense import DenseSweep

__all__ = ["Sweeper"]

_DEFAULT_THREADS = 16
_DONE = object()


class Sweeper:
    """A ping sweep over `targets`; iterate it to get HostResults as hosts are found.

    Up hosts are yielded as soon as they answer (each once, with its first answer's reason and
    RTT). With `all_hosts=True` the down hosts follow at the end (reason host-unreach,
    time-exceeded or no-response). `method`: "auto" uses every probe this process may send,
    "icmp" or "tcp" one kind; `notice` (also to `on_notice`) says which.

    Timing: `timeout` is the longest wait for an answer after a probe (default 1.0 s). Without
    an explicit `timeout` the wait adapts as nmap's does: smoothed RTT + 4 x its variation (at
    least twice the smoothed RTT), within [MIN_WAIT, DEFAULT_TIMEOUT]. The sweep waits once
    after its last send, not per host. `retries` (default 1) more passes go only to addresses
    that have not answered; a late answer to an earlier pass still counts. With the default,
    the retry pass is skipped when loss probes show the path lost nothing (see LossCheck);
    an explicit `retries` always runs. `rate` caps packets (or connects) per second overall.

        sweeper = Sweeper(parse_targets(["127.0.0.1"]), method="icmp")
        up = [r.host for r in sweeper]
    """

    def __init__(
        self,
        targets: TargetSpace | Iterable[Address],
        *,
        method: Method = "auto",
        rate: float | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        threads: int | None = None,
        randomize: bool = False,
        seed: int | None = None,
        all_hosts: bool = False,
        on_progress: Callable[[SweepProgress], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        resume: Mapping[str, Any] | None = None,
    ) -> None:
        check_arguments(method, timeout, retries, rate, threads)
        self.method = method
        self.rate = DEFAULT_RATE if rate is None else rate
        self.timeout = timeout
        self.retries = DEFAULT_RETRIES if retries is None else retries
        self.threads = threads or _DEFAULT_THREADS
        self.all_hosts = all_hosts
        self.on_progress = on_progress
        self.on_notice = on_notice
        # Targets given as names keep them in the results (looked up per answer, when any was).
        self._space: TargetSpace | None = None
        if isinstance(targets, TargetSpace):
            check_space_size(targets)
            if targets.names:
                self._space = targets
        self._targets = Targets(targets, randomize, seed)
        self._given = targets
        self.dense: DenseSweep | None = None  # the batched sweep of 127/8 (sweep.dense)
        self.size = self._targets.size
        self.notice = ""
        self.engines: list[Engine] = []
        self._cookie = Cookie()  # the sweep's one key: echo, SYN and ACK cookies
        self._bucket = TokenBucket(self.rate, burst=64)
        # key -> reason: up hosts and hosts reported unreachable; and the hosts that answered
        # echo, whatever came first (LossCheck's). The only per-host state.
        self._answered: dict[int, object] = {}
        self._echoed: set[int] = set()
        self._up = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stop = threading.Event()
        # nmap's adaptive wait: srtt + 4 x rttvar (and at least 2 x srtt), within bounds.
        self._rtt = RttEstimator(initial=DEFAULT_TIMEOUT, minimum=MIN_WAIT, maximum=DEFAULT_TIMEOUT,
                                 fixed=timeout, srtt_multiple=2.0)  # fmt: skip
        self._pass = 0
        self._error: BaseException | None = None
        self.started = self.elapsed = 0.0
        self._used = self.cancelled = False
        self._link: LinkTx | None = None
        self._frames: FrameSender | None = None
        self._adaptive, self._loss = retries is None, LossCheck()
        #: how long each pass took to send (seconds); when the first ended (time.monotonic())
        self.pass_seconds: list[float] = []
        self.first_pass_sent: float | None = None
        # Passes planned (the loss measured may add some); where to start: (pass, chunks of it
        # sent before), a resumed sweep's (sweep.resume).
        self.planned, self.start_at, self.sent = self.retries + 1, (0, 0), 0  # sent: packets
        if resume is not None:
            sweep_resume.restore(self, resume)

    def snapshot(self, written: Written = nothing_written) -> dict[str, Any] | None:
        """Where the sweep stands, for a checkpoint (sweep.resume); None: it keeps none."""
        return sweep_resume.snapshot(self, written)

    @property
    def loss_measured(self) -> tuple[int, int] | None:
        """(loss probes sent, lost) when the default adaptive retry measured the path."""
        return self._loss.measured

    def _build_engines(self) -> None:
        if (ranges := dense_ranges(self._given)) is not None:
            from hilos.sweep.dense import DenseSweep  # numpy: only for the sweeps it serves

            self.dense = DenseSweep(
                ranges, self.method, self._cookie, self._bucket,
                functools.partial(up_results, hostname=self._hostname()),
                self._queue.put, self._rtt.sample,
                self._targets.seed if self._targets.randomize else None,
            )  # fmt: skip
        fams = self._targets.families or {4}
        raw = can_raw()
        self.engines, missing = choose_engines(
            self.method,
            fams,
            raw,
            self._cookie,
            self._bucket,
            self._record,
            self.threads,
            self._wait,
        )
        if raw and 4 in fams and self.dense is None:
            self._link, self._frames = attach_link(self._targets, self.engines, self.rate)
        note = "sweep: using " + " + ".join(e.name for e in self.engines)
        note += " (batched)" if self.dense is not None else ""
        if missing:
            note += "; not privileged, so without " + ", ".join(missing)
        self.notice = note
        if self.on_notice is not None:
            self.on_notice(note)

    # -- results ------------------------------------------------------------------------------

    def _record(self, key: int, reason: str, rtt_ms: float | None) -> None:
        """Called from receiver threads for every validated answer."""
        up = reason in UP_REASONS
        with self._lock:
            if reason == "echo-reply":
                self._echoed.add(key)  # what LossCheck probes, whatever answered first
            prev = self._answered.get(key)
            if prev is not None and (prev in UP_REASONS or not up):
                return
            self._answered[key] = reason
            if not up:
                return  # reported with the other down hosts at the end (if asked for)
            self._up += 1
            if rtt_ms is not None:
                # Smoothed RTT and variation, as TCP (RFC 6298) and nmap estimate timeouts:
                # robust to the odd sample delayed by our own busy threads.
                self._rtt.sample(rtt_ms / 1000.0)
        self._queue.put(self._result(key, "up", reason, rtt_ms))

    def _hostname(self) -> Callable[[str], str | None] | None:
        return self._space.hostname if self._space is not None and self._space.names else None

    def _result(
        self, key: int, status: HostStatus, reason: str, rtt_ms: float | None
    ) -> HostResult:
        host = host_str(key)
        rtt = None if rtt_ms is None else round(rtt_ms, 3)
        name = self._space.hostname(host) if self._space is not None else None
        return HostResult(host, status, reason, rtt, name)

    def _wait(self) -> float:
        """How long to wait for answers after a probe (seconds), adapting to what came back:
        nmap's srtt + 4 x rttvar (and at least 2 x srtt), within [MIN_WAIT, DEFAULT_TIMEOUT]."""
        return self._rtt.timeout

    def first_answers_due(self) -> float | None:
        """When most answers to the first pass are in: twice the smoothed RTT after its last
        send (20 ms at least, the full wait at most); None while it is being sent."""
        sent, est = self.first_pass_sent, self._rtt
        if sent is None:
            return None
        return sent + (min(est.timeout, max(0.02, 2 * est.srtt)) if est.measured else est.timeout)

    # -- running ------------------------------------------------------------------------------

    def _all_answered(self) -> bool:
        return (self.dense.up if self.dense else len(self._answered)) >= self.size

    def _run(self) -> None:
        try:
            if self.dense is not None:
                self.dense.start()
            else:
                for e in self.engines:
                    e.start()
            self._run_passes()
        except BaseException as exc:
            self._error = exc
        finally:
            self._stop.set()
            # The results are complete: let the iterator finish now, and close the engines
            # (their receiver threads take up to one poll interval to stop) after that.
            self._queue.put(_DONE)
            for e in self.engines:
                with contextlib.suppress(Exception):  # nothing is left to report it to
                    e.close()
            if self._link is not None:
                self._link.close()
            if self.dense is not None:
                self.dense.close()

    def _run_passes(self) -> None:
        passes = self.planned
        last_send = last_pass_start = time.monotonic()
        p, first_chunk = self.start_at
        while p < passes:
            if self._stop.is_set() or self._all_answered():
                break
            if p > 0:
                passes = self._before_retry(p, passes, last_pass_start, last_send)
                if not passes:
                    break
            self._pass = p + 1
            last_pass_start = time.monotonic()
            if self.dense is not None:
                self.dense.send_pass(p > 0, p == passes - 1, self._stop)
            else:
                self.sent += run_pass(self._targets, self.engines, self._frames, self._link,
                                      self._answered, self._stop, (p, first_chunk))  # fmt: skip
                first_chunk = 0  # only a resumed sweep's first pass starts later
            last_send = time.monotonic()
            self.pass_seconds.append(last_send - last_pass_start)
            self.first_pass_sent = self.first_pass_sent or last_send
            if p == 0 and passes > 1 and self._adaptive and self.dense is None:
                self._loss.probe(self.engines, self._echoed, self._lock)
            p += 1
        # One wait after the last send, ending early once every target has answered.
        self._sleep_until(functools.partial(self._deadline, last_send))
        if self.dense is not None:  # replies the kernel queued still count; failures raise
            self.dense.settle(self._stop)

    def _before_retry(self, p: int, passes: int, started: float, last_send: float) -> int:
        """Wait for retry pass `p`; after the first pass, measure the loss and decide: the
        passes to run (0: no more). A retry goes no sooner than one wait after the previous
        pass began, so answers still on their way are not asked for twice."""
        self._sleep_until(functools.partial(self._deadline, started))
        if p != 1:
            return passes
        if self._loss.probe_again():  # too few answers were in when the first pass ended
            last_send = time.monotonic()
        if self._loss.decision is None:  # the loss probes' answers: within one wait
            self._sleep_until(functools.partial(self._deadline, last_send))
        if not self._adaptive:
            return passes
        if self.dense is None and not self._loss.retry_needed(self._wait(), self._stop):
            return 0
        passes = self.planned = self._loss.passes(passes)  # as many as the loss measured asks
        return passes

    def _deadline(self, since: float) -> float:
        return since + self._wait()

    def _sleep_until(self, when: Callable[[], float]) -> None:
        while not self._stop.is_set() and not self._all_answered():
            left = when() - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(left, 0.02))

    def cancel(self) -> None:
        """Stop sending and waiting; the iterator ends after what was found (no down hosts)."""
        self.cancelled = True
        self._stop.set()

    def drain(self) -> list[HostResult]:
        """Results found but not yet yielded (after `cancel`, e.g. on Ctrl-C)."""
        return queued(self._queue)

    @property
    def up(self) -> int:
        return self._up if self.dense is None else self.dense.up

    @property
    def probed(self) -> int:
        """Addresses probed so far (at least once): the whole space once the first pass ended,
        less when cancelled during it. For summaries; never the size of an unfinished space."""
        if self._pass > 1 or (self._stop.is_set() and not self.cancelled and self._error is None):
            return self.size
        return self._progress_now().done

    def __iter__(self) -> Generator[HostResult, None, None]:
        batches = self.batches()
        try:
            for batch in batches:
                yield from batch
        finally:
            batches.close()

    def batches(self) -> Generator[list[HostResult], None, None]:
        """The results as lists, as they come (a batched sweep finds hundreds at once): for
        outputs that write a list with one flush (OutputSet.write_many)."""
        if self._used:
            raise RuntimeError("a Sweeper runs once; make a new one")
        self._used = True
        self.started = time.monotonic()
        self._build_engines()
        runner = threading.Thread(target=self._run, name="hilos-sweep", daemon=True)
        runner.start()
        finished = False
        try:
            yield from self._results()
            finished = True
            if self._error is not None:
                raise self._error
            if self.all_hosts and not self.cancelled:
                down = self._down_hosts()
                while chunk := list(itertools.islice(down, 4096)):
                    yield chunk
        finally:
            self._stop.set()
            if not finished:
                # Cancelled or failed mid-pass: wait for the senders (a forked one is stopped
                # there) before handing control back.
                runner.join(timeout=5.0)
            self.elapsed = time.monotonic() - self.started

    def _results(self) -> Iterator[list[HostResult]]:
        """The up hosts as they answer (what is queued at once as one list), with progress."""
        report = self.on_progress
        tick = (lambda: report(self._progress_now())) if report is not None else None
        return streamed(self._queue, _DONE, tick)

    def _down_hosts(self) -> Iterator[HostResult]:
        if self.dense is not None:
            for a in self.dense.down():
                yield self._result(a, "down", "no-response", None)
            return
        answered = self._answered
        for key in self._targets.iter_keys():
            reason = answered.get(key)
            if reason in UP_REASONS:
                continue
            yield self._result(key, "down", str(reason) if reason else "no-response", None)

    def _progress_now(self) -> SweepProgress:
        done = len(self._answered) if self.dense is None else self.dense.progress
        if self._frames is not None:
            done = max(done, self._frames.progress)
        for e in self.engines:
            if isinstance(e, IcmpDiscovery):
                done = max(done, e.engine.progress)
        return SweepProgress(
            done=min(done, self.size),
            total=self.size,
            up=self._up,
            pass_no=self._pass,
            passes=self.retries + 1,
            elapsed=time.monotonic() - self.started,
        )
