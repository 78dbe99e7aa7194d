"""Tests for hilos.wire.ratelimit.TokenBucket: pacing, bursts, sharing between threads."""

from __future__ import annotations

import threading
import time

import pytest

from hilos.wire.ratelimit import TokenBucket


class FakeClock:
    """A clock that only moves when the bucket sleeps: exact, instant tests."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_unlimited_never_sleeps() -> None:
    fake = FakeClock()
    bucket = TokenBucket(None, burst=1, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10_000):
        assert bucket.take(64) == 0.0
    assert fake.slept == []
    assert bucket.unlimited
    assert TokenBucket(float("inf")).unlimited


def test_burst_goes_at_once_then_paced() -> None:
    fake = FakeClock()
    bucket = TokenBucket(1000, burst=10, clock=fake.clock, sleep=fake.sleep)
    assert bucket.take(10) == 0.0  # a full bucket
    assert fake.slept == []
    waited = bucket.take(10)  # 10 more tokens at 1000/s: 10 ms
    assert waited == pytest.approx(0.010)
    assert fake.now == pytest.approx(100.010)


def test_long_run_rate_is_exact_with_batches() -> None:
    fake = FakeClock()
    bucket = TokenBucket(50_000, burst=64, clock=fake.clock, sleep=fake.sleep)
    for _ in range(5000):
        bucket.take(32)  # 160,000 tokens
    elapsed = fake.now - 100.0
    assert elapsed == pytest.approx(160_000 / 50_000 - 64 / 50_000, rel=1e-3)
    # Batches mean few sleeps: small debts are paid together, not one sleep per packet.
    assert len(fake.slept) < 5000


def test_idle_time_does_not_bank_more_than_burst() -> None:
    fake = FakeClock()
    bucket = TokenBucket(100, burst=5, clock=fake.clock, sleep=fake.sleep)
    fake.now += 60.0  # a minute idle
    assert bucket.take(5) == 0.0
    assert bucket.take(5) == pytest.approx(0.05)


def test_try_take() -> None:
    fake = FakeClock()
    bucket = TokenBucket(10, burst=2, clock=fake.clock, sleep=fake.sleep)
    assert bucket.try_take(2)
    assert not bucket.try_take(1)
    fake.now += 0.1
    assert bucket.try_take(1)
    assert TokenBucket(None).try_take(1000)


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-5, 1), (10, 0)])
def test_bad_arguments(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


@pytest.mark.timeout(10)
def test_real_clock_rate_and_threads_share_one_bucket() -> None:
    bucket = TokenBucket(20_000, burst=32)
    taken = [0, 0, 0, 0]

    def work(i: int) -> None:
        for _ in range(125):
            bucket.take(8)
            taken[i] += 8

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    assert sum(taken) == 4000
    # 4000 tokens at 20k/s = 0.2 s (minus the burst); generous upper bound for a busy machine.
    assert 0.15 <= elapsed < 3.0
