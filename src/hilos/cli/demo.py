"""`hilos demo`: the tutorial's worker/queue/lock example, on hilos.pool."""

from __future__ import annotations

import argparse

from hilos.cli.options import Subcommands, non_negative_float, non_negative_int, positive_int
from hilos.cli.process import EXIT_OK
from hilos.errors import UsageError

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos demo` and its options."""
    demo = sub.add_parser("demo", help="the tutorial's worker/queue/lock example")
    demo.add_argument("--threads", type=positive_int, default=2, help="worker threads (default 2)")
    demo.add_argument("--tasks", type=non_negative_int, default=10, help="tasks (default 10)")
    demo.add_argument("--sleep", type=non_negative_float, default=1.0, help="seconds per task (1)")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """The tutorial's worker/queue/lock example on hilos.pool; this worker does the printing."""
    import threading
    import time

    from hilos.pool import MAX_THREADS, Pool

    if args.threads > MAX_THREADS:
        raise UsageError(f"--threads must be at most {MAX_THREADS}, not {args.threads}")
    print_lock = threading.Lock()
    pause = float(args.sleep)

    def demo_worker(item: int) -> int:
        # Threads share one terminal: without the lock their lines can interleave mid-line.
        # That shared-state lesson is the point of the tutorial, so the worker keeps it visible.
        with print_lock:
            print(f"Working on {item}", flush=True)
        time.sleep(pause)
        with print_lock:
            print(f"Finished {item}", flush=True)
        return item

    start = time.perf_counter()
    # grace=1: on Ctrl-C the running tasks may finish (and print "Finished") for up to a second.
    pool: Pool[int, int] = Pool(demo_worker, threads=args.threads, grace=1.0)
    with pool:
        for result in pool.imap_unordered(range(args.tasks)):
            result.result()  # a worker's failure (say, a closed stdout) surfaces here
    elapsed = time.perf_counter() - start
    print(f"All workers completed their tasks after {elapsed:.2f} seconds", flush=True)
    return EXIT_OK
