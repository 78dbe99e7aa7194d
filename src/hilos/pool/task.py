"""What a pool hands back: one task's outcome (TaskResult) and a run's progress (PoolStats)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar, cast

__all__ = ["MAX_THREADS", "PoolStats", "TaskResult"]

T = TypeVar("T")
R = TypeVar("R")


MAX_THREADS = 4096
"""Upper bound on ``threads``: beyond this, stacks and scheduling cost more than they buy."""


@dataclass(frozen=True, slots=True)
class TaskResult(Generic[T, R]):
    """The outcome of one task: the input item, its value or the exception it raised, its time.

    ``index`` is the item's position in the input (0-based), or -1 when built outside a pool.
    """

    item: T
    value: R | None
    error: BaseException | None
    duration: float
    index: int = -1

    @property
    def ok(self) -> bool:
        """True when the task returned (``value`` holds its return value)."""
        return self.error is None

    def result(self) -> R:
        """The task's return value, or raise the exception the task raised."""
        if self.error is not None:
            raise self.error
        return cast(R, self.value)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """A snapshot of a run's progress.

    ``done`` counts finished tasks (with a value or an error), ``errors`` those that raised,
    ``total`` the input's size when known (``Pool(total=...)`` or ``len(items)``), ``elapsed`` the
    seconds since the run started (frozen when it ends), ``rate`` finished tasks per second.
    ``unfinished`` counts items taken from the input that gave no result because the run was
    cancelled: dropped before they started, or still running when the grace period ran out.
    """

    done: int
    errors: int
    total: int | None
    elapsed: float
    rate: float
    cancelled: bool = False
    unfinished: int = 0
