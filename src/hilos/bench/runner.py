"""Measuring: a workload at several thread counts on hilos.pool, the median, speed-up and knee."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hilos.bench.workloads import Workload
from hilos.errors import UsageError
from hilos.pool import MAX_THREADS, Pool

__all__ = [
    "KNEE_FRACTION",
    "BenchResult",
    "BenchRow",
    "find_knee",
    "parse_thread_counts",
    "run_bench",
]

KNEE_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class BenchRow:
    """One thread count: the median wall time of the repetitions and what follows from it.

    ``speedup`` is the 1-thread median over this one; ``efficiency`` is speed-up per thread
    (1.0 = every added thread pulled its full weight).
    """

    threads: int
    wall: float
    walls: tuple[float, ...]
    tasks_per_s: float
    speedup: float
    efficiency: float
    errors: int


@dataclass(frozen=True, slots=True)
class BenchResult:
    """A whole benchmark: one row per thread count (ascending), the knee, the task outcomes.

    ``knee`` is the fewest threads that reach 90 % of the best speed-up measured, or None when
    the curve is still climbing steeply at the largest count (no knee in the range).
    ``outcomes`` counts what the tasks returned (sweep/scan: host or port states) in the last
    repetition at the largest thread count, and the first error message if any task failed.
    """

    workload: str
    description: str
    tasks: int
    repeat: int
    rows: tuple[BenchRow, ...]
    knee: int | None
    outcomes: tuple[tuple[str, int], ...]
    first_error: str | None = None

    def row(self, threads: int) -> BenchRow:
        """The row of one thread count."""
        for row in self.rows:
            if row.threads == threads:
                return row
        raise KeyError(threads)


def parse_thread_counts(text: str) -> tuple[int, ...]:
    """Parse ``--threads 1,2,4,8`` into ascending unique counts; 1 is always added (baseline).

    >>> parse_thread_counts("8,2,4")
    (1, 2, 4, 8)
    """
    counts = {1}
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise UsageError(f"--threads: empty entry in {text!r} (expected e.g. 1,2,4,8)")
        try:
            value = int(part)
        except ValueError:
            raise UsageError(f"--threads: not an integer: {part!r}") from None
        if not 1 <= value <= MAX_THREADS:
            raise UsageError(f"--threads: {value} is out of range 1-{MAX_THREADS}")
        counts.add(value)
    return tuple(sorted(counts))


def run_bench(
    workload: Workload,
    thread_counts: Sequence[int],
    repeat: int = 3,
    *,
    on_step: Callable[[int, int, int], None] | None = None,
) -> BenchResult:
    """Run ``workload`` at every thread count, ``repeat`` times, and keep the median wall time.

    Repetitions are interleaved (1, 2, 4, ... then again) so a burst of load on the machine
    hits every thread count alike. ``on_step(threads, repetition, of)`` is called before each
    run (a progress line). The 1-thread run is the baseline and is always measured.
    """
    counts = tuple(sorted(set(thread_counts) | {1}))
    if repeat < 1:
        raise UsageError(f"bench: --repeat must be at least 1, not {repeat}")
    walls: dict[int, list[float]] = {t: [] for t in counts}
    errors: dict[int, int] = dict.fromkeys(counts, 0)
    outcomes: Counter[str] = Counter()
    first_error: str | None = None
    for rep in range(1, repeat + 1):
        for threads in counts:
            if on_step is not None:
                on_step(threads, rep, repeat)
            last = rep == repeat and threads == counts[-1]
            pool: Pool[Any, object] = Pool(workload.fn, threads=threads)
            start = time.perf_counter()
            with pool:
                for res in pool.imap_unordered(workload.items()):
                    if res.error is not None:
                        errors[threads] += 1
                        if first_error is None:
                            first_error = f"{type(res.error).__name__}: {res.error}"
                    if last and workload.tally:
                        outcomes[str(res.value) if res.error is None else "error"] += 1
            walls[threads].append(time.perf_counter() - start)
    base = statistics.median(walls[1])
    rows = []
    for threads in counts:
        wall = statistics.median(walls[threads])
        speedup = base / wall if wall > 0 else float("inf")
        rows.append(
            BenchRow(
                threads=threads,
                wall=wall,
                walls=tuple(walls[threads]),
                tasks_per_s=workload.tasks / wall if wall > 0 else float("inf"),
                speedup=speedup,
                efficiency=speedup / threads,
                errors=errors[threads],
            )
        )
    return BenchResult(
        workload=workload.name,
        description=workload.description,
        tasks=workload.tasks,
        repeat=repeat,
        rows=tuple(rows),
        knee=find_knee(rows),
        outcomes=tuple(sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
        first_error=first_error,
    )


def find_knee(rows: Sequence[BenchRow], fraction: float = KNEE_FRACTION) -> int | None:
    """The fewest threads reaching ``fraction`` of the best speed-up: past it, more threads
    buy less than 10 %. None when the best is at the largest count and the last step still
    gained 30 % or more (the curve is climbing: no knee within the measured range).
    """
    if not rows:
        return None
    ordered = sorted(rows, key=lambda r: r.threads)
    best = max(r.speedup for r in ordered)
    knee = next(r for r in ordered if r.speedup >= fraction * best)
    if len(ordered) > 1 and knee is ordered[-1] and knee.speedup >= 1.3 * ordered[-2].speedup:
        return None
    return knee.threads
