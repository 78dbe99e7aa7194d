"""`hilos scan --baseline OLD`: the changes since an earlier scan, printed when the scan ends.

Where they go: after the text report on stdout when stdout carries it (the nightly cron job
mails stdout: the report, then what changed), else on stderr, so a data format on stdout (`--format
json`) stays parseable. The scan's exit status is unchanged (0: the scan worked); `hilos diff`
is the command whose status says "changed". An interrupted scan prints no changes: every host
it did not reach would look gone.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hilos.report.model import ScanRun
    from hilos.results import ScanHostResult

__all__ = ["Baseline", "add_option"]


def add_option(p: argparse.ArgumentParser) -> None:
    """--baseline FILE on `hilos scan`."""
    p.add_argument(
        "--baseline",
        metavar="FILE",
        help="an earlier scan (hilos, nmap -oX, masscan): print what changed since, at the end "
        "(after the text report on stdout, else on stderr)",
    )


class Baseline:
    """The earlier scan, read before the scan starts (a bad file exits 2 before any probe),
    and the hosts of this one, kept without the closed ports the baseline does not list
    (diff reads an unlisted port as not open; a big scan's closed ports would fill memory)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.path: str | None = getattr(args, "baseline", None)
        self.old: ScanRun | None = None
        self.hosts: list[ScanHostResult] = []
        self._listed: set[tuple[str, int, str]] = set()
        if self.path is not None:
            from hilos.report import load_scan

            self.old = load_scan(self.path)
            self._listed = {(h.host, p.port, p.proto) for h in self.old.hosts for p in h.ports}

    def add(self, host: ScanHostResult) -> None:
        if self.old is None:
            return
        listed = self._listed
        kept = tuple(
            p for p in host.ports if p.state != "closed" or (host.host, p.port, p.proto) in listed
        )
        self.hosts.append(host if len(kept) == len(host.ports) else replace(host, ports=kept))

    def report(self, args: argparse.Namespace) -> None:
        """Print the changes (see the module docstring for where)."""
        if self.old is None:
            return
        from hilos.report.diff import diff_runs, format_text
        from hilos.report.model import ScanRun

        changes = diff_runs(self.old, ScanRun(hosts=tuple(self.hosts), tool="hilos"))
        if _text_on_stdout(args):
            sys.stdout.write(
                f"\nChanges since {self.path} ({len(changes)}):\n{format_text(changes)}"
                if changes
                else f"\nNo change since {self.path}.\n"
            )
            sys.stdout.flush()
        elif changes:
            sys.stderr.write(f"hilos: changes since {self.path}:\n{format_text(changes)}")
        elif not getattr(args, "quiet", False):
            sys.stderr.write(f"hilos: no change since {self.path}\n")


def _text_on_stdout(args: argparse.Namespace) -> bool:
    from hilos.output import plan_outputs

    plan = plan_outputs(
        "scan",
        args.format,
        args.output,
        args.output_all,
        explicit=getattr(args, "nmap_outputs", None),
    )
    return any(spec.format == "text" and spec.to_stdout for spec in plan)
