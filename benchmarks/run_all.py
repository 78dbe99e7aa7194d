"""Run every benchmark (sweep, connect scan, SYN scan) at rtt 0 and 40 ms, one after the other.

Root only: each benchmark builds a lab of its own and runs every tool inside its scanner namespace.
Usage: python benchmarks/run_all.py [--rtt 0 --rtt 40] [--only sweep,scan,syn]
                                   [--previous PYTHON] [--no-anchors]
--previous and --no-anchors are passed to every benchmark (see benchmarks/_common.py): a
before/after comparison of two hilos releases in the same run.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rtt", type=float, action="append", default=None)
    parser.add_argument("--only", default="sweep,scan,syn")
    parser.add_argument("--repeat", type=int, default=3)
    add_options(parser)
    args = parser.parse_args()
    rtts = args.rtt or [0.0, 40.0]
    passed = ["--previous", args.previous] if args.previous else []
    if args.no_anchors:
        passed.append("--no-anchors")
    status = 0
    for name in args.only.split(","):
        script, repeat_flag = SCRIPTS[name]
        for rtt in rtts:
            print(f"\n===== {name} benchmark, rtt {rtt:g} ms =====", flush=True)
            cmd = [sys.executable, str(script), "--rtt", f"{rtt:g}", repeat_flag, str(args.repeat),
                   *passed]  # fmt: skip
            status |= subprocess.run(cmd, check=False).returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
