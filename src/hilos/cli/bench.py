"""`hilos bench`: one workload at several thread counts, as a table (and a chart)."""

from __future__ import annotations

import argparse
import sys

from hilos.cli.options import Subcommands, non_negative_float, positive_float, positive_int
from hilos.cli.process import EXIT_OK

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos bench` and its options."""
    bench = sub.add_parser(
        "bench",
        help="what more threads do, measured",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the same work on 1, 2, 4, ... threads; print wall time, tasks/s, "
        "speed-up and efficiency.",
        epilog="demo = sleep-bound (near-linear), cpu = pure Python (flat: the GIL),\n"
        "sweep/scan = blocking TCP connect per item, the tutorial's scanner.\n"
        "Default target is 127.0.0.1. For anything but loopback, run it INSIDE the lab:\n"
        "  hilos lab run -- hilos bench --workload scan --target 198.18.0.0/28 -p 22,80 "
        "--timeout 0.5",
    )
    bench.add_argument("--workload", choices=("demo", "cpu", "sweep", "scan"), default="demo")
    bench.add_argument(
        "--threads",
        default="1,2,4,8,16,32",
        metavar="LIST",
        help="thread counts, comma-separated (1 is always measured)",
    )
    bench.add_argument(
        "--tasks",
        type=positive_int,
        default=None,
        help="tasks per run (demo 64, cpu 200, sweep 256, scan: hosts x ports)",
    )
    bench.add_argument(
        "--sleep", type=non_negative_float, default=0.05, help="demo: seconds per task (0.05)"
    )
    bench.add_argument("--repeat", type=positive_int, default=3, help="runs per count (median)")
    bench.add_argument("--plot", metavar="FILE.png", help="write a speed-up chart (matplotlib)")
    bench.add_argument(
        "--target",
        action="append",
        default=None,
        metavar="SPEC",
        help="sweep/scan targets (default 127.0.0.1; others: inside the lab)",
    )
    bench.add_argument(
        "-p",
        "--ports",
        default=None,
        metavar="SPEC",
        help="sweep/scan ports (scan 1-1024, sweep 80,443)",
    )
    bench.add_argument(
        "--timeout",
        type=positive_float,
        default=1.0,
        metavar="S",
        help="sweep/scan connect timeout (1)",
    )
    bench.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Measure one workload at several thread counts; print the table (and write the chart)."""
    from hilos import bench

    counts = bench.parse_thread_counts(args.threads)
    if args.plot is not None:
        bench.check_plot_path(args.plot)  # fail before a long measurement, not after it
        bench.require_matplotlib()
    workload = bench.make_workload(
        args.workload,
        tasks=args.tasks,
        sleep=args.sleep,
        targets=args.target or ["127.0.0.1"],
        ports=args.ports,
        timeout=args.timeout,
    )
    show_steps = sys.stderr.isatty()

    def on_step(threads: int, rep: int, of: int) -> None:
        if show_steps:
            sys.stderr.write(f"\rbench: {threads} threads, run {rep}/{of}   ")
            sys.stderr.flush()

    def report(result: bench.BenchResult) -> list[str]:
        """The table and its footnotes, as lines."""
        lines = [
            f"workload {result.workload}: {result.description}; median of {result.repeat}",
            f"{'threads':>7}  {'wall s':>8}  {'tasks/s':>9}  {'speed-up':>8}  {'efficiency':>10}",
        ]
        for row in result.rows:
            mark = "  <- knee" if row.threads == result.knee else ""
            lines.append(
                f"{row.threads:>7}  {row.wall:>8.3f}  {row.tasks_per_s:>9.1f}  "
                f"{row.speedup:>7.2f}x  {row.efficiency:>10.0%}{mark}"
            )
        if result.knee is None:
            lines.append(f"knee: none up to {result.rows[-1].threads} threads (still scaling)")
        else:
            best = max(row.speedup for row in result.rows)
            knee = f"{result.knee} thread{'s' if result.knee != 1 else ''}"
            lines.append(f"knee: {knee} (fewest reaching 90% of the best, {best:.2f}x)")
        if result.workload in ("sweep", "scan"):
            outcomes = ", ".join(f"{name} {count}" for name, count in result.outcomes)
            lines.append(f"outcomes (last run): {outcomes}")
        failed = sum(row.errors for row in result.rows)
        if failed:
            lines.append(f"warning: {failed} tasks failed; first: {result.first_error}")
        return lines

    try:
        result = bench.run_bench(workload, counts, args.repeat, on_step=on_step)
    finally:
        if show_steps:
            sys.stderr.write("\r\033[K")
    for line in report(result):
        print(line)
    if args.plot is not None:
        bench.write_plot(result, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK
