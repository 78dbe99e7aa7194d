"""The worker-pool engine: run a function over a lazy iterable on N threads, stream results back.

The tutorial's shape, made safe: a worker takes an item from a queue, does the work, reports back,
and N named daemon threads share the queue. CPython's ``concurrent.futures.thread`` is the model
(a stop sentinel each worker passes on; a task's ``BaseException`` is stored, never kills a worker).

What it adds:

* **Lazy, bounded input.** A feeder thread pulls from your iterable only while fewer than
  ``threads + queue_size`` items are in flight (queued, running, or finished and not yet handed
  to you), so an iterator of 10**7 addresses is never materialised.
* **Streaming results.** :meth:`Pool.imap_unordered` yields each :class:`TaskResult` as it
  completes; :meth:`Pool.imap` yields them in input order through a reorder buffer that is bounded
  by the same window.
* **Cancellation that keeps results.** After :meth:`Pool.cancel` (any thread) the feeder stops,
  queued items are dropped without running, running tasks get ``grace`` seconds to finish, and the
  iterator *keeps yielding every result already finished*, then stops. So a caller gets everything
  by simply continuing the ``for`` loop.
* **Ctrl-C.** While a run is being iterated from the main thread, the first SIGINT does not raise
  in your loop: it cancels the run, the iterator yields every finished result, then raises
  ``KeyboardInterrupt``. A plain ``for`` loop that writes each result therefore writes all of
  them before the interrupt reaches the caller. A second SIGINT raises at once. (Installed only
  when the SIGINT handler is Python's default; a custom handler of yours is left alone.)

A task that outlives ``grace`` after a cancel cannot be killed (Python threads cannot be); the
iterator stops waiting for it and its daemon worker exits as soon as the task returns. Give
blocking tasks their own timeouts (sockets: ``settimeout``) shorter than ``grace``.
"""

from __future__ import annotations

import math
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, Generic, TypeVar, cast

from hilos.errors import UsageError

__all__ = ["MAX_THREADS", "Pool", "PoolStats", "TaskResult", "run_all"]

T = TypeVar("T")
R = TypeVar("R")

MAX_THREADS = 4096
"""Upper bound on ``threads``: beyond this, stacks and scheduling cost more than they buy."""

# How often a waiting consumer wakes up even without a message. A SIGINT delivered to another
# thread only runs the Python handler when the main thread executes bytecode again, so this tick
# bounds how late a Ctrl-C can be noticed.
_TICK = 0.1


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


class _Stop:
    """The sentinel that tells a worker to exit; each worker puts it back for the next one."""


_STOP = _Stop()


class _Skipped:
    """Reorder-buffer placeholder for an item dropped (not run) because of a cancel."""


_SKIPPED = _Skipped()

# Control messages on the result queue, next to TaskResult objects.
_SKIP = "skip"  # (_SKIP, index): a worker dropped a queued item after a cancel
_FED = "fed"  # (_FED, count, error): the feeder has stopped after `count` items
_WAKE = "wake"  # (_WAKE,): cancel() was called, re-read the grace deadline
_SIGINT = "sigint"  # (_SIGINT,): the first Ctrl-C arrived during the run

_Message = Any  # TaskResult | tuple[str, ...]; kept loose because the queue is heterogenous


class _Run(Generic[T, R]):
    """The state of one map: queues, threads and counters. Lives from first next() to the end."""

    def __init__(self, pool: Pool[T, R], iterator: Iterator[T], total: int | None) -> None:
        self.fn = pool._fn
        self.threads = pool._threads
        self.name = pool._name
        self.grace = pool._grace
        self.window = pool._threads + pool._queue_size
        self.iterator = iterator
        self.total = total
        # in_q is unbounded as a data structure but never holds more than `window` items: the
        # feeder only puts an item after taking a slot of the window under `cond`.
        self.in_q: queue.SimpleQueue[tuple[int, T] | _Stop] = queue.SimpleQueue()
        # SimpleQueue.put is reentrant, so the SIGINT handler may post on it.
        self.out_q: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        # Reentrant: Pool.cancel() may run in a signal handler that interrupted this very thread
        # while it held the lock (release() takes it for every result).
        self.cond = threading.Condition(threading.RLock())
        self.in_flight = 0
        self.submitted = 0
        self.cancelled = False
        self.cancel_at: float | None = None
        self.interrupted = False
        self.workers: list[threading.Thread] = []
        self.feeder: threading.Thread | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.stats_lock = threading.Lock()
        self.done = 0
        self.errors = 0
        self.unfinished = 0
        self.previous_sigint: Any = None
        self.sigint_installed = False

    # -- threads ---------------------------------------------------------------------------

    def start(self) -> None:
        self.started = time.monotonic()
        feeder = threading.Thread(target=self._feed, name=f"{self.name}-feeder", daemon=True)
        feeder.start()
        self.feeder = feeder

    def _start_worker(self) -> None:
        number = len(self.workers) + 1
        worker = threading.Thread(target=self._work, name=f"{self.name}-{number}", daemon=True)
        # Listed only once started: finish() may run meanwhile on the consumer's thread (a
        # generator closed early, `| head -1`, or finalised at exit while this daemon thread
        # is frozen) and join() refuses a thread not yet started.
        worker.start()
        self.workers.append(worker)

    def _feed(self) -> None:
        """Pull items from the input only while the window has room; hand them to the workers."""
        cond = self.cond
        put = self.in_q.put
        count = 0
        error: BaseException | None = None
        try:
            while True:
                with cond:
                    while self.in_flight >= self.window and not self.cancelled:
                        cond.wait()
                    if self.cancelled:
                        break
                try:
                    item = next(self.iterator)
                except StopIteration:
                    break
                with cond:
                    # Checked under the lock that cancel() takes, so no item is queued behind the
                    # stop sentinel that cancel() puts: every queued item is run or reported.
                    if self.cancelled:
                        break
                    self.in_flight += 1
                    put((count, item))
                    count += 1
                    self.submitted = count
                del item
                # Start workers lazily, like ThreadPoolExecutor: 10 items never need 64 threads.
                if len(self.workers) < self.threads and len(self.workers) < count:
                    self._start_worker()
        except BaseException as exc:  # the caller's iterable failed: the consumer re-raises it
            error = exc
        finally:
            put(_STOP)
            self.out_q.put((_FED, count, error))

    def _work(self) -> None:
        """The tutorial's worker loop: get, run, report; never dies of a task's exception."""
        get = self.in_q.get
        report = self.out_q.put
        fn = self.fn
        clock = time.perf_counter
        while True:
            work = get()
            if isinstance(work, _Stop):
                self.in_q.put(work)  # pass the sentinel on to the next worker
                return
            index, item = work
            del work
            if self.cancelled:
                report((_SKIP, index))
                del item
                continue
            start = clock()
            try:
                value = fn(item)
            except BaseException as exc:  # stored, like concurrent.futures: the worker lives on
                report(TaskResult(item, None, exc, clock() - start, index))
                del exc
            else:
                report(TaskResult(item, value, None, clock() - start, index))
                del value
            del item  # drop references while idle (CPython's worker does the same)

    # -- control ---------------------------------------------------------------------------

    def cancel(self) -> None:
        with self.cond:
            if self.cancelled:
                return
            self.cancelled = True
            self.cancel_at = time.monotonic()
            self.cond.notify_all()
        self.in_q.put(_STOP)  # idle workers exit; busy ones drop the queue, then exit
        self.out_q.put((_WAKE,))

    def release(self) -> None:
        """One item has been handed back: its window slot may be refilled."""
        with self.cond:
            self.in_flight -= 1
            self.cond.notify()

    def next_message(self) -> _Message | None:
        """The next message, or None when the tick (or the grace period) passed without one."""
        timeout = _TICK
        if self.cancel_at is not None:
            timeout = min(timeout, self.cancel_at + self.grace - time.monotonic())
            if timeout <= 0:
                return None
        try:
            return self.out_q.get(timeout=timeout)
        except queue.Empty:
            return None

    def grace_over(self) -> bool:
        return self.cancel_at is not None and time.monotonic() >= self.cancel_at + self.grace

    def record(self, result: TaskResult[T, R]) -> None:
        with self.stats_lock:
            self.done += 1
            if result.error is not None:
                self.errors += 1

    def stats(self) -> PoolStats:
        with self.stats_lock:
            done, errors, unfinished = self.done, self.errors, self.unfinished
        end = self.ended if self.ended is not None else time.monotonic()
        elapsed = max(0.0, end - self.started)
        rate = done / elapsed if elapsed > 0 else 0.0
        return PoolStats(done, errors, self.total, elapsed, rate, self.cancelled, unfinished)

    # -- SIGINT ----------------------------------------------------------------------------

    def install_sigint(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            current = signal.getsignal(signal.SIGINT)
        except ValueError:
            return
        if current is not signal.default_int_handler:
            return  # the caller has its own Ctrl-C policy: respect it
        self.previous_sigint = current
        signal.signal(signal.SIGINT, self._on_sigint)
        self.sigint_installed = True

    def restore_sigint(self) -> None:
        if not self.sigint_installed:
            return
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self.previous_sigint)
            self.sigint_installed = False
        # Otherwise (generator finalised on another thread) _on_sigint falls back by itself.

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted or self.ended is not None:
            raise KeyboardInterrupt  # second Ctrl-C, or a run that is over: the default action
        self.interrupted = True
        self.out_q.put((_SIGINT,))  # reentrant put: safe inside a signal handler

    # -- end -------------------------------------------------------------------------------

    def finish(self, wait: bool, complete: bool = False) -> None:
        """Stop feeding, stop the workers, join them within the grace period (if `wait`).

        `complete`: every item was run, so nothing is cancelled; the workers only need the
        sentinel (the feeder already queued one; another costs nothing).
        """
        if complete:
            self.in_q.put(_STOP)
        else:
            self.cancel()
        deadline = (self.cancel_at or time.monotonic()) + (self.grace if wait else 0.0)
        threads = [self.feeder] if self.feeder is not None else []
        threads += self.workers
        for thread in threads:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if thread.ident is not None:  # started (always, by construction; cheap to be sure)
                thread.join(remaining)
        if self.ended is None:
            self.ended = time.monotonic()
        self.restore_sigint()


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
        self._lock = threading.RLock()  # reentrant for the same reason as _Run.cond
        self._cancelled = False
        self._active: _Run[T, R] | None = None
        self._last: _Run[T, R] | None = None

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
        run: _Run[T, R] = _Run(self, iterator, total)
        with self._lock:
            if self._active is not None:
                raise UsageError("pool: a Pool runs one map at a time; this one is still running")
            self._active = run
            if self._cancelled:
                run.cancel()
        on_progress = self._on_progress
        pending: dict[int, TaskResult[T, R] | _Skipped] = {}
        next_index = 0
        received = 0
        expected: int | None = None
        feed_error: BaseException | None = None
        reraise: BaseException | None = None
        wait_at_end = True
        complete = False
        try:
            run.install_sigint()
            if not run.cancelled:
                run.start()
            else:
                expected = 0
            while expected is None or received < expected:
                msg = run.next_message()
                if msg is None:
                    if run.grace_over():
                        break  # tasks still running are abandoned to their daemon threads
                    continue
                if isinstance(msg, TaskResult):
                    received += 1
                    run.record(msg)
                    if isinstance(msg.error, (KeyboardInterrupt, SystemExit)) and reraise is None:
                        # A task asked to stop the program: behave as for Ctrl-C.
                        reraise = msg.error
                        run.cancel()
                    if on_progress is not None:
                        on_progress(run.stats())
                    if not ordered:
                        run.release()
                        yield msg
                        continue
                    pending[msg.index] = msg
                elif msg[0] == _SKIP:
                    received += 1
                    run.release()
                    if not ordered:
                        continue
                    pending[msg[1]] = _SKIPPED
                elif msg[0] == _FED:
                    expected, feed_error = msg[1], msg[2]
                    continue
                elif msg[0] == _SIGINT:
                    if reraise is None:
                        reraise = KeyboardInterrupt()
                    run.cancel()
                    continue
                else:  # _WAKE: the grace deadline may have changed
                    continue
                while next_index in pending:
                    ready = pending.pop(next_index)
                    next_index += 1
                    if isinstance(ready, TaskResult):
                        run.release()
                        yield ready
            # Cancelled: hand back what finished, in input order, across the gaps.
            for index in sorted(pending):
                ready = pending.pop(index)
                if isinstance(ready, TaskResult):
                    run.release()
                    yield ready
            with run.stats_lock:
                run.unfinished = run.submitted - run.done
            if reraise is not None:
                wait_at_end = False
                raise reraise
            if feed_error is not None:
                raise feed_error
            complete = not run.cancelled
        except KeyboardInterrupt:
            wait_at_end = False  # a second Ctrl-C (or our re-raise): do not linger
            raise
        finally:
            run.finish(wait=wait_at_end, complete=complete)
            with run.stats_lock:
                run.unfinished = run.submitted - run.done
            with self._lock:
                self._active = None
                self._last = run


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
