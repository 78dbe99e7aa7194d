"""Tests for hilos.sweep.passes: jobs of a pass, and the loss probes that decide a retry."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest

from hilos.sweep.base import Range
from hilos.sweep.engines import IcmpDiscovery
from hilos.sweep.passes import LossCheck, run_pass
from hilos.sweep.targets import Targets


class _FakeEcho:
    """What LossCheck uses of an EchoEngine: loss probes sent and their replies."""

    def __init__(self, replies_per_probe: float) -> None:
        self.loss_sent = 0
        self.loss_replies = 0
        self.ratio = replies_per_probe
        self.hosts: list[int] = []

    def send_loss_probes(self, hosts: list[int], rounds: int) -> int:
        self.hosts = hosts
        self.loss_sent += len(hosts) * rounds
        self.loss_replies += int(len(hosts) * rounds * self.ratio)
        return len(hosts) * rounds


def _icmp(engine: _FakeEcho) -> Any:
    icmp = IcmpDiscovery.__new__(IcmpDiscovery)
    icmp.engine = engine  # type: ignore[assignment]
    return icmp


def test_too_few_echo_answers_mean_a_retry_without_measuring() -> None:
    eng = _FakeEcho(1.0)
    check = LossCheck()
    check.probe([_icmp(eng)], set(range(7)), threading.Lock())
    assert check.decision is True and eng.loss_sent == 0
    assert check.retry_needed(0.01, threading.Event())


def test_answers_not_in_yet_are_measured_once_the_first_wait_is_over() -> None:
    """Too few echo answers as the first pass ended (still queued: a busy machine, a scan
    beside the sweep): the loss is measured after the first wait, not left unknown (which kept
    a lossy sweep at its default passes); a small network probes once more, then retries."""
    eng = _FakeEcho(0.8)
    check = LossCheck()
    echoed = set(range(3))
    check.probe([_icmp(eng)], echoed, threading.Lock())
    assert check.decision is True and eng.loss_sent == 0
    echoed.update(range(3, 40))  # the rest are in by now
    assert check.probe_again() is True and eng.loss_sent > 0
    assert check.retry_needed(0.01, threading.Event()) and check.measured is not None
    assert check.passes(2) > 2  # 20% lost: more passes
    assert check.probe_again() is False  # once
    small = LossCheck()
    small.probe([_icmp(eng)], {1}, threading.Lock())
    assert small.probe_again() is False and small.decision is True  # still too few: retry


@pytest.mark.parametrize(("ratio", "retry"), [(1.0, False), (0.5, True)])
def test_loss_probes_to_answering_hosts_decide(ratio: float, retry: bool) -> None:
    eng = _FakeEcho(ratio)
    check = LossCheck()
    check.probe([_icmp(eng)], set(range(10)), threading.Lock())
    assert check.decision is None and eng.hosts == list(range(10))
    assert eng.loss_sent == 10 * 8  # 256 probes wanted, in at most 8 rounds
    assert check.retry_needed(0.01, threading.Event()) is retry
    assert check.measured == (eng.loss_sent, eng.loss_sent - eng.loss_replies)


class _Job:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.seen: list[Range] = []
        self.thread = ""

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        self.thread = threading.current_thread().name
        self.seen = list(ranges)
        if self.fail:
            raise RuntimeError("engine failed")
        return len(self.seen)


def test_each_engine_gets_the_whole_pass_in_its_own_thread() -> None:
    targets = Targets(["127.0.0.1", "127.0.0.2"], randomize=False, seed=None)
    a, b = _Job(), _Job()
    run_pass(targets, [a, b], None, None, {}, threading.Event())  # type: ignore[list-item]
    assert a.seen == b.seen == list(targets.ranges())
    assert a.thread.startswith("hilos-send-") and a.thread != b.thread


def test_a_failing_engine_stops_the_pass_and_is_raised() -> None:
    targets = Targets(["127.0.0.1"], randomize=False, seed=None)
    stop = threading.Event()
    with pytest.raises(RuntimeError, match="engine failed"):
        run_pass(targets, [_Job(), _Job(fail=True)], None, None, {}, stop)  # type: ignore[list-item]
    assert stop.is_set()


def test_passes_grow_with_the_loss_measured() -> None:
    """A lossy path asks for more passes (a host answering one probe kind is missed with a
    chance under 1e-4); a clean one keeps the default; never more than MAX_LOSS_PASSES."""
    from hilos.sweep.passes import MAX_LOSS_PASSES, LossCheck

    check = LossCheck()
    assert check.passes(2) == 2  # nothing measured
    check.measured = (256, 0)
    assert check.passes(2) == 2
    check.measured = (256, 49)  # 19% a round trip: 10% each way
    assert check.passes(2) == 6 and 0.19**6 < 1e-4 < 0.19**5
    check.measured = (256, 1)
    assert check.passes(2) == 2
    check.measured = (256, 200)
    assert check.passes(2) == MAX_LOSS_PASSES
