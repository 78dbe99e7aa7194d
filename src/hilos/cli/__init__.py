"""The `hilos` command line: parses options, runs one subcommand, prints. Nothing else prints.

One module per subcommand (demo, sweep, scan, lab, bench), each with `add(sub)` to declare
its options and `run(args) -> int`; the shared option helpers are in `options`, the nmap
spellings in `aliases`, signals, exit codes and the failure mapping in `process`. The
commands import the library lazily, inside `run`, so `hilos --help` starts fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hilos import __version__
from hilos.cli import bench, cluster, demo, diff, lab, report, scan, sweep
from hilos.cli import process as proc
from hilos.cli.options import OPENED, Parser
from hilos.cli.process import EXIT_OK, EXIT_USAGE

__all__ = ["build_parser", "main"]

COMMANDS = (demo, sweep, scan, lab, bench, cluster, report, diff)
"""The subcommands, in the order --help lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The whole option tree; kept in one place so `--help` and the contract agree."""
    parser = Parser(
        prog="hilos", description="Multithreaded network tasks: sweep, scan, demo, lab."
    )
    parser.add_argument("--version", action="version", version=f"hilos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hilos` console script; returns the exit status.

    Bare `hilos` prints the help and exits 0 (as nmap does). SIGTERM/SIGHUP stop a run as
    Ctrl-C does and exit 143/129; failures are one line on stderr (see hilos.cli.process).
    """
    # hilos uses no BLAS: without this, numpy's OpenBLAS starts a thread per core in every
    # process (~14 ms of its import), and they spin beside the senders.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    proc.ensure_streams()
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if not argv:
            parser.print_help()
            return proc.final_flush(EXIT_OK)
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already reported
        return proc.final_flush(exc.code if isinstance(exc.code, int) else EXIT_USAGE)
    except OSError as exc:  # the help or version to a full or broken stdout
        return proc.stdout_failed(exc)
    OPENED.clear()
    with proc.StopSignals() as stop:
        code = stop.exit_code(proc.run_handler(args))
    if code > 128 and not getattr(args, "quiet", False):
        proc.report_interrupted(OPENED)
    return proc.final_flush(code)
