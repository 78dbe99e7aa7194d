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

from hilos.bench.plot import check_plot_path, require_matplotlib, write_plot
from hilos.bench.runner import BenchResult, BenchRow, find_knee, parse_thread_counts, run_bench
from hilos.bench.workloads import (
    CPU_STEPS,
    DEFAULT_TASKS,
    WORKLOADS,
    Workload,
    connect_workload,
    cpu_workload,
    demo_workload,
    make_workload,
)

__all__ = [
    "CPU_STEPS",
    "DEFAULT_TASKS",
    "WORKLOADS",
    "BenchResult",
    "BenchRow",
    "Workload",
    "check_plot_path",
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
