"""One map of a Pool: its queues, feeder and worker threads, counters, and Ctrl-C handler.

The messages on the result queue are TaskResults and the control tuples below; Pool's
iterator reads them (`next_message`) and hands results back.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, Generic, TypeVar

from hilos.pool.task import PoolStats, TaskResult

__all__ = [
    "CTRL_C",
    "FED",
    "SKIP",
    "SKIPPED",
    "STOP",
    "TICK",
    "WAKE",
    "Message",
    "Run",
    "Skipped",
    "Stop",
]

T = TypeVar("T")
R = TypeVar("R")

# How often a waiting consumer wakes up even without a message. A SIGINT delivered to another
# thread only runs the Python handler when the main thread executes bytecode again, so this tick
# bounds how late a Ctrl-C can be noticed.
TICK = 0.1


class Stop:
    """The sentinel that tells a worker to exit; each worker puts it back for the next one."""


STOP = Stop()


class Skipped:
    """Reorder-buffer placeholder for an item dropped (not run) because of a cancel."""


SKIPPED = Skipped()

# Control messages on the result queue, next to TaskResult objects.
SKIP = "skip"  # (SKIP, index): a worker dropped a queued item after a cancel
FED = "fed"  # (FED, count, error): the feeder has stopped after `count` items
WAKE = "wake"  # (WAKE,): cancel() was called, re-read the grace deadline
CTRL_C = "sigint"  # (CTRL_C,): the first Ctrl-C arrived during the run

Message = Any  # TaskResult | tuple[str, ...]; kept loose because the queue is heterogenous


class Run(Generic[T, R]):
    """The state of one map: queues, threads and counters. Lives from first next() to the end."""

    def __init__(
        self,
        fn: Callable[[T], R],
        iterator: Iterator[T],
        total: int | None,
        *,
        threads: int,
        queue_size: int,
        name: str,
        grace: float,
    ) -> None:
        self.fn = fn
        self.threads = threads
        self.name = name
        self.grace = grace
        self.window = threads + queue_size
        self.iterator = iterator
        self.total = total
        # in_q is unbounded as a data structure but never holds more than `window` items: the
        # feeder only puts an item after taking a slot of the window under `cond`.
        self.in_q: queue.SimpleQueue[tuple[int, T] | Stop] = queue.SimpleQueue()
        # SimpleQueue.put is reentrant, so the SIGINT handler may post on it.
        self.out_q: queue.SimpleQueue[Message] = queue.SimpleQueue()
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
            put(STOP)
            self.out_q.put((FED, count, error))

    def _work(self) -> None:
        """The tutorial's worker loop: get, run, report; never dies of a task's exception."""
        get = self.in_q.get
        report = self.out_q.put
        fn = self.fn
        clock = time.perf_counter
        while True:
            work = get()
            if isinstance(work, Stop):
                self.in_q.put(work)  # pass the sentinel on to the next worker
                return
            index, item = work
            del work
            if self.cancelled:
                report((SKIP, index))
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
        self.in_q.put(STOP)  # idle workers exit; busy ones drop the queue, then exit
        self.out_q.put((WAKE,))

    def release(self) -> None:
        """One item has been handed back: its window slot may be refilled."""
        with self.cond:
            self.in_flight -= 1
            self.cond.notify()

    def next_message(self) -> Message | None:
        """The next message, or None when the tick (or the grace period) passed without one."""
        timeout = TICK
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

    def count_unfinished(self) -> None:
        """Items taken from the input that gave no result: dropped, or abandoned after grace."""
        with self.stats_lock:
            self.unfinished = self.submitted - self.done

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
        self.out_q.put((CTRL_C,))  # reentrant put: safe inside a signal handler

    # -- end -------------------------------------------------------------------------------

    def finish(self, wait: bool, complete: bool = False) -> None:
        """Stop feeding, stop the workers, join them within the grace period (if `wait`).

        `complete`: every item was run, so nothing is cancelled; the workers only need the
        sentinel (the feeder already queued one; another costs nothing).
        """
        if complete:
            self.in_q.put(STOP)
        else:
            self.cancel()
        deadline = (self.cancel_at or time.monotonic()) + (self.grace if wait else 0.0)
        # The feeder first: it starts the workers, so the list is whole only once it has ended.
        if self.feeder is not None:
            self.feeder.join(max(0.0, deadline - time.monotonic()))
        for thread in list(self.workers):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if thread.ident is not None:  # started (always, by construction; cheap to be sure)
                thread.join(remaining)
        if self.ended is None:
            self.ended = time.monotonic()
        self.restore_sigint()
