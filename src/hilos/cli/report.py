"""`hilos report`: scan files of hilos, nmap or masscan to one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys

from hilos.cli.options import Subcommands
from hilos.cli.process import EXIT_OK
from hilos.errors import UsageError

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos report` and its options."""
    report = sub.add_parser(
        "report",
        help="an HTML page of scan files (hilos, nmap -oX, masscan -oJ/-oL)",
        description="Read one or more scan files (hilos JSON Lines or XML, nmap -oX, masscan "
        "-oJ or -oL; the format is found from the content) and write one self-contained HTML "
        "page: summary, charts, a sortable and filterable table of hosts and ports. Several "
        "files are merged by host address.",
    )
    report.add_argument("scans", nargs="+", metavar="SCAN", help="scan files (- = stdin)")
    report.add_argument(
        "-o", dest="output", default="-", metavar="FILE", help="the page (default: stdout)"
    )
    report.add_argument("--title", help="the page's title (default: '<tool> scan report')")
    report.add_argument("-q", "--quiet", action="store_true", help="no summary line on stderr")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Read every SCAN (exit 2 naming a bad one), write the page, say what it holds."""
    from hilos.errors import OutputError
    from hilos.report import load_scans
    from hilos.report.html import render_html

    if args.scans.count("-") > 1:
        raise UsageError("stdin (-) can be read once")
    run_ = load_scans(args.scans)
    page = render_html(run_, title=args.title)
    if args.output == "-":
        sys.stdout.write(page)
        sys.stdout.flush()
    else:
        try:
            f = open(args.output, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        try:
            with f:
                f.write(page)
        except OSError as exc:
            raise OutputError(args.output, exc) from None
    if not args.quiet:
        where = "stdout" if args.output == "-" else args.output
        sys.stderr.write(
            f"hilos: report of {len(run_.hosts)} hosts ({run_.hosts_up} up, {run_.open_ports} "
            f"open ports) written to {where}\n"
        )
    return EXIT_OK
