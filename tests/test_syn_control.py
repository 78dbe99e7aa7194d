"""Tests for hilos.syn.control: the adaptive probe timeout and the delay-based pace."""

from __future__ import annotations

import pytest

from hilos.syn.control import MIN_PACE, Control


def _answer(ctl: Control, rtt: float) -> None:
    """What ScanState.on_reply does with one answer's RTT (seconds)."""
    if ctl.rtt_min is None or rtt < ctl.rtt_min:
        ctl.rtt_min = rtt
    ctl.rtt_max = max(ctl.rtt_max, rtt)
    ctl.rtt_sum += rtt
    ctl.rtt_count += 1
    ctl.est.sample(rtt)


def test_timeout_initial_then_srtt_4_rttvar_then_recent_peak() -> None:
    ctl = Control(None)
    assert ctl.timeout == 1.0  # nothing measured yet
    _answer(ctl, 0.1)
    assert ctl.timeout == pytest.approx(0.1 + 4 * 0.05 + 0.002)
    ctl.peak = 0.5  # the smoothed estimate lags a queue building up
    assert ctl.timeout == pytest.approx(1.5 * 0.5 + 0.002)
    ctl.peak = 10.0
    assert ctl.timeout == 2.5
    fast = Control(None)
    for _ in range(50):
        _answer(fast, 0.0001)
    assert fast.timeout == 0.03


def test_fixed_timeout_still_measures() -> None:
    ctl = Control(0.2)
    _answer(ctl, 0.05)
    assert ctl.timeout == 0.2 and ctl.est.measured  # the control interval follows the RTT


def test_rising_rtts_halve_the_pace_then_it_grows_back() -> None:
    ctl = Control(None)
    _answer(ctl, 0.01)
    ctl.control(100.0, 0)  # first interval: sets the baseline
    for _ in range(10):
        _answer(ctl, 0.2)  # queueing: far above the smallest RTT
    ctl.control(101.0, 10_000)  # 10,000 packets in 1 s
    assert ctl.pace == pytest.approx(5_000)
    for _ in range(10):
        _answer(ctl, 0.011)
    ctl.control(200.0, 20_000)  # the queue drained, the hold is over: grow by 15%
    assert ctl.pace == pytest.approx(5_000 * 1.15)
    slow = Control(None)
    _answer(slow, 0.01)
    slow.control(100.0, 0)
    _answer(slow, 0.5)
    slow.control(101.0, 10)
    assert slow.pace == MIN_PACE  # never below
