"""hilos.wire.rtt: the one RFC 6298 estimator, its clamps, fixed timeouts and the peak floor."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hilos.wire.rtt import RttEstimator


def est(**kw: float | None) -> RttEstimator:
    args: dict[str, float | None] = {"initial": 1.0, "minimum": 0.1, "maximum": 2.0, **kw}
    return RttEstimator(**args)  # type: ignore[arg-type]


def rfc6298(samples: list[float]) -> tuple[float, float]:
    """RFC 6298 section 2 written out: the first sample sets srtt = R, rttvar = R/2; then
    rttvar = 3/4 rttvar + 1/4 |srtt - R| (with the old srtt), srtt = 7/8 srtt + 1/8 R."""
    srtt, rttvar = samples[0], samples[0] / 2
    for r in samples[1:]:
        rttvar = 0.75 * rttvar + 0.25 * abs(srtt - r)
        srtt = 0.875 * srtt + 0.125 * r
    return srtt, rttvar


def test_initial_until_the_first_sample() -> None:
    e = est(initial=0.7)
    assert e.timeout == 0.7 and not e.measured
    assert e.at_least(1.5) == 0.7  # no estimate yet: the peak floor does not apply either
    e.sample(0.2)
    assert e.measured
    assert e.srtt == 0.2 and e.rttvar == 0.1
    assert e.timeout == pytest.approx(0.2 + 4 * 0.1)


def test_smoothing_follows_rfc_6298() -> None:
    samples = [0.05, 0.08, 0.02, 0.3, 0.04, 0.04, 0.06]
    e = est(maximum=10.0, minimum=0.0)
    for r in samples:
        e.sample(r)
    srtt, rttvar = rfc6298(samples)
    assert e.srtt == pytest.approx(srtt) and e.rttvar == pytest.approx(rttvar)
    assert e.timeout == pytest.approx(srtt + 4 * rttvar)


def test_clamped_to_the_bounds() -> None:
    low = est(minimum=0.15, maximum=1.25)
    low.sample(0.001)
    assert low.timeout == 0.15
    high = est(minimum=0.15, maximum=1.25)
    high.sample(3.0)
    assert high.timeout == 1.25


def test_fixed_timeout_ignores_samples() -> None:
    e = est(fixed=0.3)
    assert e.timeout == 0.3
    e.sample(5.0)
    assert e.timeout == 0.3 and not e.measured
    assert e.at_least(1.0) == 0.3


def test_srtt_multiple_and_margin() -> None:
    # A steady RTT has rttvar shrinking towards 0: srtt + 4 rttvar falls to srtt, and the
    # multiple keeps the wait at least 2 x srtt (the sweep's rule).
    e = est(minimum=0.0, maximum=10.0, srtt_multiple=2.0)
    for _ in range(60):
        e.sample(0.1)
    assert e.timeout == pytest.approx(0.2, rel=1e-3)
    m = est(minimum=0.0, maximum=10.0, margin=0.002)
    m.sample(0.1)
    assert m.timeout == pytest.approx(0.1 + 0.2 + 0.002)


def test_at_least_covers_a_peak_within_the_bounds() -> None:
    e = est(minimum=0.1, maximum=1.0, margin=0.002)
    e.sample(0.01)
    assert e.timeout == 0.1  # 0.01 + 0.02 + 0.002 is under the minimum
    assert e.at_least(0.5) == 0.5
    assert e.at_least(0.05) == 0.1
    assert e.at_least(3.0) == 1.0


def test_bad_bounds() -> None:
    with pytest.raises(ValueError):
        est(minimum=2.0, maximum=1.0)
    with pytest.raises(ValueError):
        est(minimum=-1.0)


@given(
    st.lists(st.floats(min_value=0.0, max_value=30.0), min_size=1, max_size=40),
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=1.0, max_value=5.0),
)
def test_timeout_always_within_bounds(samples: list[float], lo: float, hi: float) -> None:
    e = RttEstimator(initial=lo, minimum=lo, maximum=hi, srtt_multiple=2.0)
    for r in samples:
        e.sample(r)
        assert lo <= e.timeout <= hi
        assert math.isfinite(e.srtt) and e.rttvar >= 0
