"""Pool and run_all: run a function over a lazy iterable on N threads, results streamed back."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from hilos.errors import UsageError
from hilos.pool.run import CTRL_C, FED, SKIP, SKIPPED, Message, Run, Skipped
from hilos.pool.task import MAX_THREADS, PoolStats, TaskResult

__all__ = ["Pool", "run_all"]

T = TypeVar("T")
R = TypeVar("R")


class Pool(Generic[T, R]):
    """Run ``fn`` over items on ``threads`` worker threads; results stream back as they finish.

    Example::

        with Pool(probe, threads=64, on_progress=show) as pool:
            for res in pool.imap_unordered(addresses):  # lazy: any iterable, even 10**7 items
                if res.ok:
                    write(res.item, res.value)
                else:
                    warn(res.item, res.error)

    ``queue_size`` (default ``2 * threads``) is how many items may wait for a worker; at most
    ``threads + queue_size`` items are in flight. ``total`` is reported in :class:`PoolStats`
    (else ``len(items)`` when the iterable has a length). ``on_progress`` is called with a
    :class:`PoolStats` after every finished task, in the thread that iterates. ``grace`` is how
    long running tasks may take to finish after a cancel.

    A pool runs one map at a time; it may run several maps one after another. :meth:`cancel` is
    final: it stops the current run, and later runs yield nothing. Leaving the ``with`` block
    cancels and joins the workers.
    """

    def __init__(
        self,
        fn: Callable[[T], R],
        threads: int = 8,
        *,
        queue_size: int | None = None,
        name: str = "hilos-worker",
        on_progress: Callable[[PoolStats], None] | None = None,
        total: int | None = None,
        grace: float = 2.0,
    ) -> None:
        if not callable(fn):
            raise UsageError(f"pool: the task function is not callable: {fn!r}")
        _check_int("threads", threads, 1, MAX_THREADS)
        if queue_size is None:
            queue_size = 2 * threads
        _check_int("queue_size", queue_size, 1, None)
        if total is not None:
            _check_int("total", total, 0, None)
        if isinstance(grace, bool) or not isinstance(grace, (int, float)):
            raise UsageError(f"pool: grace must be a number of seconds, not {grace!r}")
        if not (0 <= grace < math.inf):
            raise UsageError(f"pool: grace must be a finite number of seconds >= 0, not {grace!r}")
        if not isinstance(name, str) or not name:
            raise UsageError(f"pool: name must be a non-empty string, not {name!r}")
        if on_progress is not None and not callable(on_progress):
            raise UsageError(f"pool: on_progress is not callable: {on_progress!r}")
        self._fn = fn
        self._threads = threads
        self._queue_size = queue_size
        self._name = name
        self._on_progress = on_progress
        self._total = total
        self._grace = float(grace)
        self._lock = threading.RLock()  # reentrant for the same reason as Run.cond
        self._cancelled = False
        self._active: Run[T, R] | None = None
        self._last: Run[T, R] | None = None

    @property
    def threads(self) -> int:
        """The most worker threads a run uses."""
        return self._threads

    @property
    def stats(self) -> PoolStats:
        """Progress of the current run, or of the last one (all zero before the first)."""
        run = self._active or self._last
        if run is None:
            return PoolStats(0, 0, self._total, 0.0, 0.0, self._cancelled, 0)
        return run.stats()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called (or the ``with`` block was left)."""
        return self._cancelled

    def cancel(self) -> None:
        """Stop feeding and drop queued items; finished results are still yielded.

        Safe from any thread and from a signal handler (a SIGTERM handler may call it).
        """
        with self._lock:
            self._cancelled = True
            run = self._active
        if run is not None:
            run.cancel()

    def imap_unordered(self, items: Iterable[T]) -> Iterator[TaskResult[T, R]]:
        """Yield a :class:`TaskResult` for every item, in the order the tasks finish."""
        return self._drive(iter(items), self._total_of(items), ordered=False)

    def imap(self, items: Iterable[T]) -> Iterator[TaskResult[T, R]]:
        """Yield a :class:`TaskResult` for every item, in input order.

        A slow item holds back later results (never more than the window), not the workers.
        After a cancel, the finished results left in the reorder buffer are yielded in order,
        skipping the items that never ran.
        """
        return self._drive(iter(items), self._total_of(items), ordered=True)

    def __enter__(self) -> Pool[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()
        run = self._active
        if run is not None:
            run.finish(wait=not isinstance(exc_info[1], KeyboardInterrupt))

    def _total_of(self, items: Iterable[T]) -> int | None:
        if self._total is not None:
            return self._total
        try:
            return len(items)  # type: ignore[arg-type]
        except TypeError:
            return None

    def _drive(
        self, iterator: Iterator[T], total: int | None, *, ordered: bool
    ) -> Iterator[TaskResult[T, R]]:
        # A generator: nothing starts before the first next(), and a generator that is never
        # started needs no cleanup. Everything after start is inside try/finally.
        run: Run[T, R] = Run(
            self._fn,
            iterator,
            total,
            threads=self._threads,
            queue_size=self._queue_size,
            name=self._name,
            grace=self._grace,
        )
        with self._lock:
            if self._active is not None:
                raise UsageError("pool: a Pool runs one map at a time; this one is still running")
            self._active = run
            if self._cancelled:
                run.cancel()
        inbox: _Inbox[T, R] = _Inbox(run, ordered, self._on_progress)
        wait_at_end = True
        complete = False
        try:
            run.install_sigint()
            if not run.cancelled:
                run.start()
            else:
                inbox.expected = 0
            while inbox.waiting:
                msg = run.next_message()
                if msg is not None:
                    yield from inbox.take(msg)
                elif run.grace_over():
                    break  # tasks still running are abandoned to their daemon threads
            # Cancelled: hand back what finished, in input order, across the gaps.
            yield from inbox.leftovers()
            run.count_unfinished()
            if inbox.reraise is not None:
                wait_at_end = False
                raise inbox.reraise
            if inbox.feed_error is not None:
                raise inbox.feed_error
            complete = not run.cancelled
        except KeyboardInterrupt:
            wait_at_end = False  # a second Ctrl-C (or our re-raise): do not linger
            raise
        finally:
            run.finish(wait=wait_at_end, complete=complete)
            run.count_unfinished()
            with self._lock:
                self._active = None
                self._last = run


class _Inbox(Generic[T, R]):
    """The consumer's side of a run: counts the messages, reorders results for imap, and notes
    what ends the run (the feeder's count or failure, a Ctrl-C, a task that asked to stop)."""

    def __init__(
        self, run: Run[T, R], ordered: bool, on_progress: Callable[[PoolStats], None] | None
    ) -> None:
        self.run = run
        self.ordered = ordered
        self.on_progress = on_progress
        self.pending: dict[int, TaskResult[T, R] | Skipped] = {}
        self.next_index = 0
        self.received = 0
        self.expected: int | None = None  # known once the feeder has stopped
        self.feed_error: BaseException | None = None
        self.reraise: BaseException | None = None

    @property
    def waiting(self) -> bool:
        """Whether results may still come (the feeder runs, or items are not all answered)."""
        return self.expected is None or self.received < self.expected

    def take(self, msg: Message) -> Iterable[TaskResult[T, R]]:
        """The results `msg` makes ready to hand back (none, it, or a run of buffered ones)."""
        run = self.run
        if isinstance(msg, TaskResult):
            self.received += 1
            run.record(msg)
            if isinstance(msg.error, (KeyboardInterrupt, SystemExit)) and self.reraise is None:
                # A task asked to stop the program: behave as for Ctrl-C.
                self.reraise = msg.error
                run.cancel()
            if self.on_progress is not None:
                self.on_progress(run.stats())
            if not self.ordered:
                run.release()
                return (msg,)
            self.pending[msg.index] = msg
        elif msg[0] == SKIP:
            self.received += 1
            run.release()
            if not self.ordered:
                return ()
            self.pending[msg[1]] = SKIPPED
        else:
            self._control(msg)
            return ()
        return self._in_order()

    def _control(self, msg: tuple[Any, ...]) -> None:
        if msg[0] == FED:
            self.expected, self.feed_error = msg[1], msg[2]
        elif msg[0] == CTRL_C:
            if self.reraise is None:
                self.reraise = KeyboardInterrupt()
            self.run.cancel()
        # WAKE: nothing to do; the next wait re-reads the grace deadline.

    def _in_order(self) -> Iterator[TaskResult[T, R]]:
        # Lazily, so each result's window slot is released only as it is handed back.
        pending = self.pending
        while self.next_index in pending:
            ready = pending.pop(self.next_index)
            self.next_index += 1
            if isinstance(ready, TaskResult):
                self.run.release()
                yield ready

    def leftovers(self) -> Iterator[TaskResult[T, R]]:
        """After a cancel: the finished results still buffered, in input order."""
        pending = self.pending
        for index in sorted(pending):
            ready = pending.pop(index)
            if isinstance(ready, TaskResult):
                self.run.release()
                yield ready


def run_all(
    fn: Callable[[T], R],
    items: Iterable[T],
    threads: int = 8,
    *,
    queue_size: int | None = None,
    name: str = "hilos-worker",
    on_progress: Callable[[PoolStats], None] | None = None,
    total: int | None = None,
    grace: float = 2.0,
) -> list[TaskResult[T, R]]:
    """Run ``fn`` over every item and return all results, in input order.

    Example::

        results = run_all(check_port, [("127.0.0.1", p) for p in range(1, 1025)], threads=32)
        open_ports = [r.item for r in results if r.ok and r.value]

    Ctrl-C (or a task raising KeyboardInterrupt/SystemExit) raises once the running tasks finish;
    use :meth:`Pool.imap` directly to keep partial results.
    """
    pool: Pool[T, R] = Pool(
        fn,
        threads,
        queue_size=queue_size,
        name=name,
        on_progress=on_progress,
        total=total,
        grace=grace,
    )
    with pool:
        return list(pool.imap(items))


def _check_int(what: str, value: object, low: int, high: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"pool: {what} must be an integer, not {value!r}")
    if value < low:
        raise UsageError(f"pool: {what} must be at least {low}, not {value}")
    if high is not None and value > high:
        raise UsageError(f"pool: {what} must be at most {high}, not {value}")
