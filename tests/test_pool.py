"""Tests of hilos.pool: every result exactly once, bounded lazy input, cancel, Ctrl-C, no leaks."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator

import pytest

from hilos.errors import UsageError
from hilos.pool import MAX_THREADS, Pool, PoolStats, TaskResult, run_all

pytestmark = pytest.mark.timeout(60)


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hilos-worker")]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Every test must leave no worker or feeder thread behind (checked after a short grace)."""
    yield
    deadline = time.monotonic() + 2.0
    while _pool_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _pool_threads() == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class _Recorder:
    """A task function that remembers which items finished and in which threads."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep
        self.lock = threading.Lock()
        self.finished: list[int] = []
        self.thread_names: set[str] = set()

    def __call__(self, item: int) -> int:
        if self.sleep:
            time.sleep(self.sleep)
        with self.lock:
            self.finished.append(item)
            self.thread_names.add(threading.current_thread().name)
        return item * 3


def _counting(n: int, pulled: list[int]) -> Iterator[int]:
    """A lazy input that counts how many items were pulled from it."""
    for i in range(n):
        pulled[0] += 1
        yield i


def _kill_soon(delay: float, times: int = 1, gap: float = 0.2) -> threading.Thread:
    def send() -> None:
        time.sleep(delay)
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(gap)

    thread = threading.Thread(target=send, name="test-sigint", daemon=True)
    thread.start()
    return thread


# -- correctness ----------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2, 64])
def test_every_result_exactly_once(threads: int) -> None:
    fn = _Recorder()
    pool: Pool[int, int] = Pool(fn, threads=threads)
    with pool:
        results = list(pool.imap_unordered(range(10_000)))
    assert len(results) == 10_000
    assert Counter(r.item for r in results) == Counter(range(10_000))
    assert all(r.ok and r.value == r.item * 3 and r.index == r.item for r in results)
    assert sorted(fn.finished) == list(range(10_000))
    assert len(fn.thread_names) <= threads
    assert fn.thread_names <= {f"hilos-worker-{i}" for i in range(1, threads + 1)}
    stats = pool.stats
    assert (stats.done, stats.errors, stats.total, stats.cancelled) == (10_000, 0, 10_000, False)
    assert stats.unfinished == 0


def test_many_threads_really_run_concurrently() -> None:
    fn = _Recorder(sleep=0.05)
    start = time.perf_counter()
    results = run_all(fn, range(64), threads=64)
    elapsed = time.perf_counter() - start
    assert [r.value for r in results] == [i * 3 for i in range(64)]
    assert len(fn.thread_names) > 32
    assert elapsed < 64 * 0.05 / 4  # serial would take 3.2 s


def test_imap_preserves_input_order() -> None:
    rng = random.Random(7)
    delays = [rng.random() * 0.004 for _ in range(600)]

    def jittery(i: int) -> int:
        time.sleep(delays[i])
        return -i

    pool: Pool[int, int] = Pool(jittery, threads=16)
    with pool:
        results = list(pool.imap(iter(range(600))))
    assert [r.item for r in results] == list(range(600))
    assert [r.value for r in results] == [-i for i in range(600)]


def test_run_all_returns_input_order() -> None:
    assert [r.result() for r in run_all(lambda x: x + 1, range(500), threads=7)] == list(
        range(1, 501)
    )


def test_unordered_streams_before_the_slow_item_finishes() -> None:
    release = threading.Event()

    def fn(i: int) -> int:
        if i == 0:
            release.wait(10)
        return i

    pool: Pool[int, int] = Pool(fn, threads=4)
    with pool:
        it = pool.imap_unordered(range(20))
        first = [next(it).item for _ in range(19)]
        assert 0 not in first  # item 0 is still blocked, the rest streamed past it
        release.set()
        assert next(it).item == 0
        assert list(it) == []


class _Custom(BaseException):
    pass


def test_exceptions_are_captured_and_workers_survive() -> None:
    def fn(i: int) -> int:
        if i % 3 == 0:
            raise ValueError(f"bad {i}")
        if i % 3 == 1:
            raise _Custom(i)
        return i

    # One thread: if any exception killed the worker, the run could not finish.
    pool: Pool[int, int] = Pool(fn, threads=1)
    with pool:
        results = list(pool.imap(range(300)))
    assert len(results) == 300
    for r in results:
        if r.item % 3 == 0:
            assert isinstance(r.error, ValueError) and not r.ok and r.value is None
            with pytest.raises(ValueError, match=f"bad {r.item}"):
                r.result()
        elif r.item % 3 == 1:
            assert isinstance(r.error, _Custom)
            with pytest.raises(_Custom):
                r.result()
        else:
            assert r.ok and r.result() == r.item
        assert r.duration >= 0
    assert pool.stats.errors == 200
    assert pool.stats.done == 300


def test_task_result_is_frozen() -> None:
    r: TaskResult[str, int] = TaskResult("a", 1, None, 0.5)
    assert r.ok and r.result() == 1 and r.index == -1
    with pytest.raises(AttributeError):
        r.value = 2  # type: ignore[misc]


def test_duration_measures_the_task() -> None:
    results = run_all(lambda s: time.sleep(s), [0.05, 0.0], threads=2)
    assert 0.04 < results[0].duration < 1.0
    assert results[1].duration < 0.04


def test_input_error_is_raised_after_the_finished_results() -> None:
    def items() -> Iterator[int]:
        yield from range(50)
        raise OSError("target file vanished")

    got: list[int] = []
    pool: Pool[int, int] = Pool(lambda x: x, threads=4)
    with pool, pytest.raises(OSError, match="vanished"):
        for r in pool.imap_unordered(items()):
            got.append(r.item)
    assert sorted(got) == list(range(50))


def test_progress_hook_and_stats() -> None:
    seen: list[PoolStats] = []
    pool: Pool[int, int] = Pool(
        lambda x: 1 // (x % 10), threads=3, on_progress=seen.append, total=None
    )
    with pool:
        list(pool.imap_unordered(x for x in range(100)))  # a generator: total unknown
    assert len(seen) == 100
    assert [s.done for s in seen] == list(range(1, 101))
    assert seen[-1].errors == 10 and seen[-1].total is None
    assert seen[-1].elapsed > 0 and seen[-1].rate > 0
    assert pool.stats.done == 100 and pool.stats.elapsed >= seen[-1].elapsed

    seen.clear()
    pool2: Pool[int, int] = Pool(lambda x: x, threads=2, on_progress=seen.append, total=1234)
    with pool2:
        list(pool2.imap(range(10)))
    assert seen[-1].total == 1234


def test_pool_runs_maps_one_after_another_but_not_at_once() -> None:
    pool: Pool[int, int] = Pool(lambda x: x, threads=2)
    assert [r.value for r in pool.imap(range(5))] == list(range(5))
    assert [r.value for r in pool.imap(range(3))] == list(range(3))
    first = pool.imap_unordered(range(100))
    next(first)
    with pytest.raises(UsageError, match="one map at a time"):
        next(pool.imap_unordered(range(3)))
    assert len(list(first)) == 99
    pool.cancel()


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": 0}, "threads must be at least 1, not 0"),
        ({"threads": -4}, "threads must be at least 1"),
        ({"threads": MAX_THREADS + 1}, f"threads must be at most {MAX_THREADS}"),
        ({"threads": True}, "threads must be an integer"),
        ({"threads": "8"}, "threads must be an integer"),
        ({"threads": 2.5}, "threads must be an integer"),
        ({"queue_size": 0}, "queue_size must be at least 1"),
        ({"total": -1}, "total must be at least 0"),
        ({"grace": -1.0}, "grace must be a finite number"),
        ({"grace": float("nan")}, "grace must be a finite number"),
        ({"grace": float("inf")}, "grace must be a finite number"),
        ({"grace": "2"}, "grace must be a number"),
        ({"name": ""}, "name must be a non-empty string"),
        ({"on_progress": 3}, "on_progress is not callable"),
    ],
)
def test_bad_arguments_raise_usage_error(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Pool(lambda x: x, **kwargs)  # type: ignore[arg-type]


def test_not_callable() -> None:
    with pytest.raises(UsageError, match="not callable"):
        Pool(42)  # type: ignore[arg-type]


def test_thread_names_follow_name() -> None:
    names: set[str] = set()

    def fn(_: int) -> None:
        time.sleep(0.01)
        names.add(threading.current_thread().name)

    run_all(fn, range(12), threads=3, name="hilos-worker")
    assert names == {"hilos-worker-1", "hilos-worker-2", "hilos-worker-3"}


# -- laziness and memory ---------------------------------------------------------------------


def test_lazy_input_is_pulled_only_as_space_frees() -> None:
    pulled = [0]
    consumed = 0
    pool: Pool[int, int] = Pool(lambda x: x, threads=4, queue_size=6)
    window = 4 + 6
    with pool:
        for _ in pool.imap_unordered(_counting(10_000, pulled)):
            consumed += 1
            # A slow consumer: the feeder may run at most `window` items ahead of us.
            assert pulled[0] - consumed <= window
            if consumed % 1000 == 0:
                time.sleep(0.02)
    assert consumed == 10_000


def test_ten_million_lazy_items_cancelled_early_stay_bounded() -> None:
    pulled = [0]
    tracemalloc.start()
    try:
        pool: Pool[int, int] = Pool(lambda x: x, threads=8)
        with pool:
            got = 0
            for _ in pool.imap_unordered(_counting(10**7, pulled)):
                got += 1
                if got == 2000:
                    pool.cancel()
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    window = 8 + 16
    assert 2000 <= got <= 2000 + window
    assert pulled[0] <= got + window + 1
    # A list of 10**7 ints would need ~400 MB; the whole run must fit in a small, fixed amount.
    assert peak < 2_000_000, peak


def test_in_order_buffer_is_bounded_by_the_window() -> None:
    pulled = [0]
    release = threading.Event()

    def fn(i: int) -> int:
        if i == 0:
            release.wait(10)
        return i

    pool: Pool[int, int] = Pool(fn, threads=4, queue_size=4)
    with pool:
        it = pool.imap(_counting(100_000, pulled))
        timer = threading.Timer(0.3, release.set)
        timer.start()
        first = next(it)  # blocks until item 0 is released
        assert first.item == 0
        # While item 0 was stuck, the window (8) stopped the feeder: nothing ran away.
        assert pulled[0] <= 8 + 1
        assert sum(1 for _ in it) == 99_999
        timer.join()


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_in_the_middle_loses_no_finished_result() -> None:
    fn = _Recorder(sleep=0.002)
    pool: Pool[int, int] = Pool(fn, threads=8)
    yielded: list[int] = []
    with pool:
        for r in pool.imap_unordered(range(100_000)):
            yielded.append(r.item)
            if len(yielded) == 300:
                pool.cancel()
    # Every task that ran to the end was handed back, exactly once; nothing else ran.
    assert sorted(yielded) == sorted(fn.finished)
    assert len(set(yielded)) == len(yielded)
    assert 300 <= len(yielded) <= 300 + 8 + 16
    stats = pool.stats
    assert stats.cancelled and stats.done == len(yielded)
    # Afterwards the pool is closed for good: a new run yields nothing.
    assert list(pool.imap(range(5))) == []


def test_cancel_from_another_thread_keeps_finished_results_in_order() -> None:
    fn = _Recorder(sleep=0.003)
    pool: Pool[int, int] = Pool(fn, threads=6)
    threading.Timer(0.2, pool.cancel).start()
    with pool:
        items = [r.item for r in pool.imap(range(100_000))]
    assert items == sorted(items)
    assert sorted(items) == sorted(fn.finished)
    assert 0 < len(items) < 100_000


def test_cancel_returns_within_grace_even_if_a_task_hangs() -> None:
    stuck = threading.Event()
    try:

        def fn(i: int) -> int:
            if i == 3:
                stuck.wait(30)
            return i

        pool: Pool[int, int] = Pool(fn, threads=2, grace=0.3)
        got: list[int] = []
        start = time.monotonic()
        with pool:
            for r in pool.imap_unordered(range(1000)):
                got.append(r.item)
                if len(got) == 50:
                    pool.cancel()
        elapsed = time.monotonic() - start
        assert elapsed < 2.0
        assert 3 not in got and len(got) >= 50
        assert pool.stats.unfinished >= 1
    finally:
        stuck.set()  # let the abandoned daemon worker return, so it exits


def test_breaking_out_of_the_loop_stops_the_workers() -> None:
    fn = _Recorder(sleep=0.001)
    pool: Pool[int, int] = Pool(fn, threads=8)
    for r in pool.imap_unordered(range(1_000_000)):
        if r.item >= 0:
            break
    assert _pool_threads() == []  # the generator was closed: threads joined already
    assert len(fn.finished) < 1000


def test_with_block_exit_joins_a_suspended_run() -> None:
    fn = _Recorder(sleep=0.001)
    with Pool(fn, threads=8) as pool:
        it = pool.imap_unordered(range(1_000_000))
        next(it)
    assert _pool_threads() == []
    assert pool.cancelled
    del it


def test_cancel_before_the_run_yields_nothing() -> None:
    fn = _Recorder()
    pool: Pool[int, int] = Pool(fn, threads=2)
    pool.cancel()
    assert list(pool.imap_unordered(range(10))) == []
    assert fn.finished == []


def test_exception_in_the_loop_body_tears_down() -> None:
    fn = _Recorder(sleep=0.001)
    with pytest.raises(RuntimeError), Pool(fn, threads=4) as pool:
        for _ in pool.imap_unordered(range(100_000)):
            raise RuntimeError("caller bug")
    assert _pool_threads() == []


# -- Ctrl-C ----------------------------------------------------------------------------------


def test_ctrl_c_yields_finished_results_then_raises() -> None:
    fn = _Recorder(sleep=0.02)
    got: list[int] = []
    pool: Pool[int, int] = Pool(fn, threads=4)
    sender = _kill_soon(0.3)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), pool:
        for r in pool.imap_unordered(range(100_000)):
            got.append(r.item)
    elapsed = time.monotonic() - start
    sender.join()
    assert elapsed < 2.0
    assert got and sorted(got) == sorted(fn.finished)
    assert pool.stats.cancelled


def test_ctrl_c_while_the_loop_body_runs_is_deferred_to_the_end() -> None:
    fn = _Recorder(sleep=0.001)
    got: list[int] = []
    pool: Pool[int, int] = Pool(fn, threads=2)
    sender = _kill_soon(0.2)
    with pytest.raises(KeyboardInterrupt), pool:
        for r in pool.imap(range(100_000)):
            time.sleep(0.01)  # the signal lands here, in the caller's code, most likely
            got.append(r.item)
    sender.join()
    assert got == sorted(fn.finished)


def test_second_ctrl_c_raises_at_once() -> None:
    hang = threading.Event()
    try:

        def fn(i: int) -> int:
            hang.wait(30)
            return i

        pool: Pool[int, int] = Pool(fn, threads=2, grace=20.0)
        sender = _kill_soon(0.2, times=2, gap=0.3)
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt), pool:
            list(pool.imap_unordered(range(10)))
        assert time.monotonic() - start < 3.0
        sender.join()
    finally:
        hang.set()


def test_task_raising_keyboard_interrupt_stops_the_run_after_draining() -> None:
    def fn(i: int) -> int:
        if i == 40:
            raise KeyboardInterrupt
        time.sleep(0.001)
        return i

    got: list[TaskResult[int, int]] = []
    pool: Pool[int, int] = Pool(fn, threads=4)
    with pytest.raises(KeyboardInterrupt), pool:
        for r in pool.imap_unordered(range(100_000)):
            got.append(r)
    assert any(isinstance(r.error, KeyboardInterrupt) and r.item == 40 for r in got)
    assert len(got) < 1000


def test_task_raising_system_exit_is_reraised() -> None:
    def fn(i: int) -> int:
        if i == 5:
            raise SystemExit(3)
        return i

    with pytest.raises(SystemExit):
        run_all(fn, range(50), threads=2)


def test_sigint_handler_left_alone_when_the_caller_has_one() -> None:
    calls: list[int] = []

    def mine(signum: int, frame: object) -> None:
        calls.append(signum)

    def slow(x: int) -> int:
        time.sleep(0.002)
        return x

    old = signal.signal(signal.SIGINT, mine)
    try:
        sender = _kill_soon(0.1)
        results = run_all(slow, range(200), threads=2)
        sender.join()
        assert len(results) == 200 and calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, old)


def test_cancel_from_a_signal_handler() -> None:
    fn = _Recorder(sleep=0.0005)
    pool: Pool[int, int] = Pool(fn, threads=4)

    def on_usr1(signum: int, frame: object) -> None:
        pool.cancel()  # runs in the main thread, possibly while it holds the pool's locks

    old = signal.signal(signal.SIGUSR1, on_usr1)
    try:

        def send() -> None:
            time.sleep(0.2)
            for _ in range(20):
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.005)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        with pool:
            got = [r.item for r in pool.imap_unordered(range(10**6))]
        sender.join()
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert pool.stats.cancelled
    assert sorted(got) == sorted(fn.finished) and 0 < len(got) < 10**6


def test_listed_workers_are_always_started(monkeypatch: pytest.MonkeyPatch) -> None:
    # `hilos scan --banners | head -1` closed the results generator while the feeder was
    # between listing a new worker and starting it: finish() joined a thread not yet started
    # ("RuntimeError: cannot join thread before it is started", Exception ignored in _drive).
    real_start = threading.Thread.start

    def slow_start(self: threading.Thread) -> None:
        if self.name.startswith("hilos-worker-") and self.name != "hilos-worker-1":
            time.sleep(0.3)  # widen the window between listing the worker and starting it
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", slow_start)
    pool: Pool[int, int] = Pool(lambda x: x, threads=4, grace=0.1)
    it = pool.imap_unordered(range(100))
    assert next(it).ok
    time.sleep(0.05)  # the feeder is now inside the slow start of worker 2
    run = pool._active
    assert run is not None
    assert all(t.ident is not None for t in [run.feeder, *run.workers] if t is not None)
    it.close()  # must not raise
