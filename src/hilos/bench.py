"""Measure what more threads buy: the same work on hilos.pool at several thread counts, as data.

Four workloads, each a plain blocking per-item function run through :class:`hilos.pool.Pool`:

* ``demo``: ``time.sleep(S)`` per task. Sleeping releases the GIL, so speed-up is near linear.
* ``cpu``: pure-Python arithmetic. Only one thread runs Python bytecode at a time (the GIL), so
  the speed-up stays flat near 1 however many threads there are.
* ``scan``: a blocking TCP ``connect()`` with a timeout per (host, port): the tutorial's scanner.
* ``sweep``: a blocking TCP connect to a few ports per host: "up" if any port answers.

Against loopback, connect() answers in microseconds and the Python around it dominates, so
scan/sweep behave like ``cpu``; against hosts that take a round trip or time out (the lab with
``--rtt``), waiting dominates and they behave like ``demo``. The :func:`find_knee` of the
speed-up curve says where more threads stop paying.
"""

from __future__ import annotations

import errno
import itertools
import socket
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from hilos.errors import HilosError, UsageError, from_oserror
from hilos.pool import MAX_THREADS, Pool

__all__ = [
    "CPU_STEPS",
    "DEFAULT_TASKS",
    "WORKLOADS",
    "BenchResult",
    "BenchRow",
    "Workload",
    "connect_workload",
    "cpu_workload",
    "demo_workload",
    "find_knee",
    "make_workload",
    "parse_thread_counts",
    "require_matplotlib",
    "run_bench",
    "write_plot",
]

WORKLOADS = ("demo", "cpu", "sweep", "scan")
DEFAULT_TASKS = {"demo": 64, "cpu": 200, "sweep": 256}
"""Tasks per run when --tasks is not given; scan defaults to every (target, port) pair."""
DEFAULT_PORTS = {"scan": "1-1024", "sweep": "80,443"}
CPU_STEPS = 5000
"""Iterations of the cpu task's loop: about a millisecond of pure Python."""
KNEE_FRACTION = 0.9


@dataclass(frozen=True, slots=True)
class Workload:
    """The work of one benchmark: a per-item function and a fresh iterable of items per run."""

    name: str
    description: str
    fn: Callable[[Any], object]
    items: Callable[[], Iterable[Any]]
    tasks: int
    tally: bool = False
    """Count the values the tasks return (port states, host states) into the outcomes."""


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


# -- workloads ---------------------------------------------------------------------------------


def demo_workload(tasks: int = DEFAULT_TASKS["demo"], sleep: float = 0.05) -> Workload:
    """Sleep-bound tasks, as in ``hilos demo`` but silent."""

    def sleeper(item: int) -> int:
        time.sleep(sleep)
        return item

    return Workload(
        "demo", f"{tasks} tasks, each sleep({sleep:g} s)", sleeper, lambda: range(tasks), tasks
    )


def _cpu_task(seed: int) -> int:
    # A linear congruential generator: pure bytecode, no call that could release the GIL.
    x = seed
    for _ in range(CPU_STEPS):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return x


def cpu_workload(tasks: int = DEFAULT_TASKS["cpu"]) -> Workload:
    """CPU-bound tasks in pure Python: the GIL lets one thread compute at a time."""
    return Workload(
        "cpu",
        f"{tasks} tasks, each {CPU_STEPS} steps of pure-Python arithmetic",
        _cpu_task,
        lambda: range(tasks),
        tasks,
    )


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


def _connect(host: str, port: int, timeout: float) -> str:
    """One blocking TCP connect, as the tutorial's scanner does it: open, closed or filtered."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise from_oserror(exc, "creating a TCP socket", fix="raise ulimit -n") from exc
    try:
        sock.settimeout(timeout)
        # Close with RST rather than FIN: a benchmark that opens thousands of connections would
        # otherwise fill the table with TIME_WAIT entries and slow its own later runs.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.connect((host, port))
        return "open"
    except ConnectionRefusedError:
        return "closed"
    except TimeoutError:
        return "filtered"
    except OSError as exc:
        if exc.errno in _UNREACHABLE:
            return "unreachable"
        raise from_oserror(exc, f"connecting to {host} port {port}") from exc
    finally:
        sock.close()


def connect_workload(
    kind: str,
    targets: Sequence[str] | Any,
    ports: Sequence[int],
    *,
    timeout: float = 1.0,
    tasks: int | None = None,
) -> Workload:
    """Blocking TCP connects through the pool: ``scan`` = one task per (host, port), ``sweep`` =
    one task per host (up if any of ``ports`` answers, with SYN-ACK or RST).

    ``targets`` is any sized, re-iterable collection of addresses (a list of strings or a
    :class:`hilos.targets.TargetSpace`); it is walked lazily. ``tasks`` truncates the work, or
    repeats it round-robin to reach ``tasks`` items (a sweep of one loopback host 256 times).
    """
    if kind not in ("scan", "sweep"):
        raise UsageError(f"bench: unknown connect workload {kind!r}")
    if not ports:
        raise UsageError(f"bench: {kind} needs at least one port")
    if not timeout > 0:
        raise UsageError(f"bench: --timeout must be positive, not {timeout}")
    port_list = tuple(ports)
    per_host = len(port_list) if kind == "scan" else 1
    size = len(targets) * per_host
    if size == 0:
        raise UsageError(f"bench: {kind} has no targets")
    count = size if tasks is None else tasks

    def one_pass() -> Iterator[Any]:
        for address in targets:
            host = str(address)
            if kind == "scan":
                for port in port_list:
                    yield (host, port)
            else:
                yield host

    def items() -> Iterator[Any]:
        # Lazy round-robin: never a list of the whole target space.
        return itertools.islice(itertools.chain.from_iterable(_forever(one_pass)), count)

    if kind == "scan":

        def scan_one(item: tuple[str, int]) -> str:
            return _connect(item[0], item[1], timeout)

        fn: Callable[[Any], object] = scan_one
        hosts = len(targets)
        what = (
            f"{count} connects ({hosts} host{'s' if hosts != 1 else ''} x {len(port_list)} "
            f"port{'s' if len(port_list) != 1 else ''}), timeout {timeout:g} s"
        )
    else:

        def sweep_one(host: str) -> str:
            for port in port_list:
                if _connect(host, port, timeout) in ("open", "closed"):
                    return "up"
            return "down"

        fn = sweep_one
        shown = ",".join(map(str, port_list[:4])) + ("..." if len(port_list) > 4 else "")
        what = f"{count} hosts, each TCP connect to port {shown} until one answers, "
        what += f"timeout {timeout:g} s"
    return Workload(kind, what, fn, items, count, tally=True)


def _forever(make: Callable[[], Iterator[Any]]) -> Iterator[Iterator[Any]]:
    while True:
        yield make()


def make_workload(
    name: str,
    *,
    tasks: int | None = None,
    sleep: float = 0.05,
    targets: Iterable[str] = ("127.0.0.1",),
    ports: str | None = None,
    timeout: float = 1.0,
) -> Workload:
    """Build a workload by its ``--workload`` name from the command's options.

    Example::

        result = run_bench(make_workload("scan", ports="1-1024"), (1, 2, 4, 8), repeat=3)
    """
    if name == "demo":
        return demo_workload(DEFAULT_TASKS["demo"] if tasks is None else tasks, sleep)
    if name == "cpu":
        return cpu_workload(DEFAULT_TASKS["cpu"] if tasks is None else tasks)
    if name in ("scan", "sweep"):
        from hilos.targets import parse_ports, parse_targets

        space = parse_targets(list(targets))
        port_list = parse_ports(ports if ports is not None else DEFAULT_PORTS[name])
        if tasks is None and name == "sweep":
            tasks = DEFAULT_TASKS["sweep"]
        return connect_workload(name, space, port_list, timeout=timeout, tasks=tasks)
    raise UsageError(f"bench: unknown workload {name!r} (choose from {', '.join(WORKLOADS)})")


# -- measuring ---------------------------------------------------------------------------------


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


# -- plotting ----------------------------------------------------------------------------------


def require_matplotlib() -> None:
    """Raise HilosError with the install hint unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise HilosError("--plot needs matplotlib: pip install 'hilos[plot]'") from exc


def check_plot_path(path: str) -> None:
    """Raise UsageError now if `path` cannot be written, not after minutes of measuring.

    The directory must exist and be writable, and the path must not be a directory.
    """
    import os

    if not path:
        raise UsageError("--plot needs a file name")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"--plot {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--plot {path}: is a directory")
    if not os.access(directory, os.W_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    ):
        raise UsageError(f"--plot {path}: not writable")


def write_plot(result: BenchResult, path: str) -> None:
    """Write a PNG of speed-up against threads, with the ideal line and the knee marked.

    Needs matplotlib (``pip install 'hilos[plot]'``); raises HilosError without it.
    """
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError as exc:
        raise HilosError("--plot needs matplotlib: pip install 'hilos[plot]'") from exc

    threads = [r.threads for r in result.rows]
    speedups = [r.speedup for r in result.rows]
    top = max(threads)
    fig = Figure(figsize=(7.0, 4.6), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.plot(threads, speedups, marker="o", color="tab:blue", linewidth=2, label="measured")
    # Drawn after the measured line so it stays visible where the two coincide (sleep-bound).
    ax.plot([1, top], [1, top], linestyle="--", color="0.45", label="ideal (speed-up = threads)")
    for r in result.rows:
        ax.annotate(
            f"{r.speedup:.1f}x",
            (r.threads, r.speedup),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
            color="tab:blue",
        )
    if result.knee is not None:
        knee = result.row(result.knee)
        ax.plot(
            [knee.threads],
            [knee.speedup],
            marker="o",
            markersize=16,
            markerfacecolor="none",
            markeredgecolor="tab:red",
            markeredgewidth=2,
            linestyle="none",
            label=f"knee: {knee.threads} thread{'s' if knee.threads > 1 else ''}",
        )
    else:
        ax.plot([], [], linestyle="none", label=f"no knee up to {top} threads")
    plain = FuncFormatter(lambda value, _pos: f"{value:g}")
    ticks = [float(t) for t in threads]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(plain)
    low = min(0.5, min(speedups) / 1.5)
    ax.set_ylim(low, top * 1.6)
    y_ticks = [2.0**k for k in range(-3, 13) if low <= 2.0**k <= top * 1.6]
    ax.yaxis.set_major_locator(FixedLocator(y_ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(plain)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("worker threads")
    ax.set_ylabel("speed-up over 1 thread")
    fig.suptitle(f"hilos bench --workload {result.workload}", fontsize=12)
    ax.set_title(f"{result.description}; median of {result.repeat}", fontsize=8.5, color="0.35")
    ax.legend(loc="upper left", fontsize=9)
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise HilosError(f"--plot: cannot write {path}: {exc.strerror or exc}") from exc
