"""Run every benchmark, one after the other: sweep, connect scan and SYN scan at rtt 0 and 40 ms,
then the line-rate (dense), UDP, cluster and report benchmarks once each (they choose their cases).

Root only: each benchmark builds a lab of its own and runs every tool inside its scanner namespace.
Usage: python benchmarks/run_all.py [--rtt 0 --rtt 40] [--previous PYTHON] [--no-anchors]
                                   [--only sweep,scan,syn,dense,udp,cluster,report]
--previous and --no-anchors are passed to the sweep/scan/syn benchmarks (see benchmarks/_common.py),
--previous also to the dense one: a before/after comparison of two hilos releases in the same run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from _common import add_options

HERE = Path(__file__).resolve().parent
SCRIPTS = {
    "sweep": (HERE / "bench_sweep.py", "--repeat"),
    "scan": (HERE / "bench_scan.py", "--repeat"),
    "syn": (HERE / "bench_syn.py", "--runs"),
}
ONCE = {  # their own cases and repeats; run once each
    "dense": HERE / "bench_dense.py",
    "udp": HERE / "bench_udp.py",
    "cluster": HERE / "bench_cluster.py",
    "report": HERE / "bench_report.py",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, action="append", default=None)
    parser.add_argument("--only", default="sweep,scan,syn,dense,udp,cluster,report")
    parser.add_argument("--repeat", type=int, default=3)
    add_options(parser)
    args = parser.parse_args()
    rtts = args.rtt or [0.0, 40.0]
    passed = ["--previous", args.previous] if args.previous else []
    if args.no_anchors:
        passed.append("--no-anchors")
    status = 0
    for name in args.only.split(","):
        if name in ONCE:
            print(f"\n===== {name} benchmark =====", flush=True)
            extra = ["--previous", args.previous] if args.previous and name == "dense" else []
            status |= subprocess.run([sys.executable, str(ONCE[name]), *extra]).returncode
            continue
        script, repeat_flag = SCRIPTS[name]
        for rtt in rtts:
            print(f"\n===== {name} benchmark, rtt {rtt:g} ms =====", flush=True)
            cmd = [sys.executable, str(script), "--rtt", f"{rtt:g}", repeat_flag, str(args.repeat),
                   *passed]  # fmt: skip
            status |= subprocess.run(cmd, check=False).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
