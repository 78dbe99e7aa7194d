"""`hilos diff`: what changed between two scans, as `diff` exits: 0 same, 1 changed, 2 trouble."""

from __future__ import annotations

import argparse
import sys

from hilos.cli.options import Subcommands
from hilos.cli.process import EXIT_OK

__all__ = ["EXIT_CHANGED", "add", "run"]

EXIT_CHANGED = 1
"""Exit status when the scans differ (diff(1)'s; bad input is 2, as for every command)."""


def add(sub: Subcommands) -> None:
    """Register `hilos diff` and its options."""
    diff = sub.add_parser(
        "diff",
        help="compare two scans (hilos, nmap -oX, masscan; formats may differ)",
        description="Compare two scan files (hilos JSON Lines or XML, nmap -oX, masscan -oJ "
        "or -oL, in any pair): hosts up or gone, ports opened or closed, services whose "
        "product or version changed. Exit status 0: no change, 1: changes, 2: bad input.",
    )
    diff.add_argument("old", metavar="OLD", help="the earlier scan file")
    diff.add_argument("new", metavar="NEW", help="the later scan file")
    diff.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text lines (+ new, - gone, ~ changed) or JSON Lines, one change each (default text)",
    )
    diff.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Read both files (exit 2 naming a bad one), print the changes, exit 0 or 1."""
    from hilos.errors import UsageError
    from hilos.report import load_scan
    from hilos.report.diff import diff_runs, format_json, format_text

    if args.old == "-" and args.new == "-":
        raise UsageError("stdin (-) can be read once")
    old, new = load_scan(args.old), load_scan(args.new)
    for run in (old, new):
        if not run.complete:
            sys.stderr.write(
                f"hilos: {run.source} is a scan that did not finish: hosts it did not reach "
                "may show as gone\n"
            )
    changes = diff_runs(old, new)
    sys.stdout.write(format_json(changes) if args.format == "json" else format_text(changes))
    sys.stdout.flush()
    return EXIT_CHANGED if changes else EXIT_OK
