"""Which sweeps the batched engine serves, and taking its results off the queue in lists (without
importing numpy: a sparse sweep never pays for it)."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator
from typing import Final

from hilos.results import HostResult
from hilos.targets import TargetSpace
from hilos.wire.sockets import can_raw

__all__ = ["dense_ranges", "gather", "queued", "streamed"]

_LOOPBACK: Final = (0x7F000000, 0x7FFFFFFF)


def dense_ranges(space: object) -> list[tuple[int, int]] | None:
    """The sorted, disjoint IPv4 ranges of `space` if the batched sweep serves it: a
    TargetSpace inside 127.0.0.0/8 only, and raw sockets allowed; else None."""
    if not isinstance(space, TargetSpace) or space.size_v6 or not space.size_v4:
        return None
    ranges = sorted((int(a), int(b)) for a, b in space.iter_ranges())
    for k, (a, b) in enumerate(ranges):
        if a < _LOOPBACK[0] or b > _LOOPBACK[1] or (k and a <= ranges[k - 1][1]):
            return None
    return ranges if can_raw() else None


def gather(
    results: queue.SimpleQueue[object], item: object, done: object
) -> tuple[list[HostResult], bool]:
    """`item` and the results queued behind it (HostResults or lists of them; up to 4096) as
    one list, and whether `done` (the end marker) came."""
    batch: list[HostResult] = []
    while item is not None:
        if item is done:
            return batch, True
        if isinstance(item, HostResult):
            batch.append(item)
        elif isinstance(item, list):
            batch.extend(item)
        if len(batch) >= 4096:
            break
        try:
            item = results.get_nowait()
        except queue.Empty:
            item = None
    return batch, False


def queued(results: queue.SimpleQueue[object]) -> list[HostResult]:
    """Every result waiting in `results` now (HostResults or lists of them), as one list."""
    found: list[HostResult] = []
    while True:
        try:
            item = results.get_nowait()
        except queue.Empty:
            return found
        if isinstance(item, HostResult):
            found.append(item)
        elif isinstance(item, list):
            found.extend(item)


def streamed(
    results: queue.SimpleQueue[object], done: object, progress: Callable[[], None] | None
) -> Iterator[list[HostResult]]:
    """The results as they come (what is queued at once as one list) until `done` comes;
    `progress()` between them, at most every 0.1 s."""
    next_progress = 0.0
    while True:
        try:
            item = results.get(timeout=0.1)
        except queue.Empty:
            item = None
        batch, end = gather(results, item, done)
        if batch:
            yield batch
        if end:
            return
        if progress is not None:
            now = time.monotonic()
            if now >= next_progress:
                next_progress = now + 0.1
                progress()
