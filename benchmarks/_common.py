"""Shared by the benchmark scripts: the before/after options (--previous, --no-anchors).

--previous PYTHON measures every hilos row a second time with another interpreter's hilos (the
previous release installed in its own venv), in the same run, as a row "... (previous)", and
prints `ratio hilos/previous` per case. --no-anchors leaves out nmap, fping, masscan and the
tutorial, so that a before/after comparison runs quickly.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

PREVIOUS = " (previous)"  # suffix of the previous release's row names
TARGET = 1.10  # issue 10: no figure worse than the previous release's by more than 10%


def add_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--previous",
        metavar="PYTHON",
        help="also measure every hilos row with PYTHON -m hilos (e.g. the previous release's "
        "venv) and print the ratio hilos/previous",
    )
    ap.add_argument(
        "--no-anchors",
        action="store_true",
        help="run only hilos (and --previous): no nmap, fping, masscan or tutorial",
    )


def prepare_pythons(args: argparse.Namespace) -> dict[str, str]:
    """{row-name suffix: interpreter} for the hilos rows, each interpreter's hilos pre-compiled
    (compile_hilos)."""
    pythons = {"": sys.executable}
    if args.previous:
        pythons[PREVIOUS] = args.previous
    for python in pythons.values():
        compile_hilos(python)
    return pythons


def compile_hilos(python: str = sys.executable) -> None:
    """Write `python`'s hilos bytecode now: an installed package runs from bytecode, and this
    environment may forbid writing it at import (PYTHONDONTWRITEBYTECODE), which would charge
    every run a compile of each module changed since (about 0.08 s for a scan's 115)."""
    where = subprocess.run(
        [python, "-c", "import hilos, os; print(os.path.dirname(hilos.__file__))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if where.returncode != 0:
        sys.exit(f"bench: {python} cannot import hilos: {where.stderr.strip()[-300:]}")
    subprocess.run([python, "-m", "compileall", "-q", where.stdout.strip()],
                   check=False, stdout=subprocess.DEVNULL)  # fmt: skip


def previous_ratio(current: float, previous: float) -> str:
    return f"ratio hilos/previous = {current / previous:.2f}  (target <= {TARGET:.2f})"
