"""Tests of hilos.bench.runner: thread counts, rows, medians, speed-ups and the knee."""

from __future__ import annotations

import pytest

from hilos import bench
from hilos.bench import BenchRow
from hilos.errors import UsageError

pytestmark = pytest.mark.timeout(120)


def test_parse_thread_counts() -> None:
    assert bench.parse_thread_counts("8,2,4") == (1, 2, 4, 8)
    assert bench.parse_thread_counts(" 1, 1 ,16") == (1, 16)
    for bad, message in [
        ("0", "out of range"),
        ("4097", "out of range"),
        ("x", "not an integer"),
        ("1,,2", "empty entry"),
        ("", "empty entry"),
    ]:
        with pytest.raises(UsageError, match=message):
            bench.parse_thread_counts(bad)


def _row(threads: int, speedup: float) -> BenchRow:
    return BenchRow(threads, 1 / speedup, (1 / speedup,), speedup, speedup, speedup / threads, 0)


@pytest.mark.parametrize(
    ("speedups", "knee"),
    [
        ({1: 1.0, 2: 2.0, 4: 3.9, 8: 7.7}, None),  # still climbing: no knee in range
        ({1: 1.0, 2: 0.95, 4: 1.02, 8: 0.98}, 1),  # the GIL: flat from the start
        ({1: 1.0, 2: 1.9, 4: 3.4, 8: 3.9, 16: 3.95}, 8),  # saturates
        ({1: 1.0, 2: 1.8, 4: 3.0, 8: 2.5}, 4),  # more threads even hurt
        ({1: 1.0, 2: 1.9, 4: 3.7, 8: 4.0}, 4),  # the last doubling bought < 30 %
        ({1: 1.0}, 1),
    ],
)
def test_find_knee(speedups: dict[int, float], knee: int | None) -> None:
    rows = [_row(t, s) for t, s in speedups.items()]
    assert bench.find_knee(rows) == knee
    assert bench.find_knee(list(reversed(rows))) == knee


def test_sleep_bound_speedup_is_near_linear() -> None:
    workload = bench.demo_workload(tasks=32, sleep=0.02)
    result = bench.run_bench(workload, (8, 2), repeat=1)
    assert [r.threads for r in result.rows] == [1, 2, 8]  # 1 added: it is the baseline
    base = result.row(1)
    assert base.speedup == 1.0 and base.efficiency == 1.0
    assert 32 * 0.02 <= base.wall < 32 * 0.02 * 2
    assert result.row(8).speedup >= 5
    assert result.row(2).speedup >= 1.6
    for row in result.rows:
        assert row.efficiency == pytest.approx(row.speedup / row.threads)
        assert row.tasks_per_s == pytest.approx(32 / row.wall)
        assert row.errors == 0
    assert result.outcomes == ()  # sleep tasks return no state worth counting


def test_median_of_repetitions() -> None:
    result = bench.run_bench(bench.demo_workload(tasks=4, sleep=0.01), (1, 2), repeat=3)
    for row in result.rows:
        assert len(row.walls) == 3
        assert row.wall == sorted(row.walls)[1]


def test_cpu_bound_speedup_stays_flat() -> None:
    result = bench.run_bench(bench.cpu_workload(tasks=100), (1, 4), repeat=3)
    # Only one thread runs Python bytecode at a time: four threads cannot be twice as fast.
    assert result.row(4).speedup < 2.0
    assert all(row.errors == 0 for row in result.rows)
