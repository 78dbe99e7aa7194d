"""What the sweep and scan commands share: the parser class, value types, option groups, outputs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, NoReturn, TypeAlias

from hilos.cli.process import EXIT_USAGE

if TYPE_CHECKING:  # the commands import these lazily to keep start-up fast
    from _typeshed import SupportsWrite

    from hilos.output import OutputSet
    from hilos.output.progress import Progress
    from hilos.targets import TargetSpace

__all__ = [
    "OPENED",
    "Parser",
    "Subcommands",
    "add_output_options",
    "add_probe_options",
    "add_target_options",
    "non_negative_float",
    "non_negative_int",
    "notifier",
    "open_cli_outputs",
    "parse_cli_targets",
    "positive_float",
    "positive_int",
]

# What add_subparsers() returns, the argument of every command's add(); argparse names the
# class privately, so it is spelled once, here.
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"hilos: error: {message}\n")
        raise SystemExit(EXIT_USAGE)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse swallows write errors: --help > /dev/full would exit 0 having written nothing.
        if message:
            (file or sys.stderr).write(message)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative number: {text!r}")
    return value


def add_target_options(p: argparse.ArgumentParser) -> None:
    """TARGET..., -iL, --exclude, --exclude-file, --randomize, --seed (sweep and scan)."""
    p.add_argument(
        "targets",
        nargs="*",
        metavar="TARGET",
        help="addresses, CIDR, ranges (198.18.0.1-200, 198.18.0-3.1-254), names",
    )
    p.add_argument(
        "-iL", dest="input_file", metavar="FILE", help="read targets from FILE (- = stdin)"
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SPEC[,SPEC]",
        help="targets to leave out, same forms as TARGET; repeatable (default: none)",
    )
    p.add_argument(
        "--exclude-file",
        "--excludefile",
        metavar="FILE",
        help="read exclusions from FILE, one per line (default: none)",
    )
    p.add_argument("--randomize", action="store_true", help="probe in a random (keyed) order")
    p.add_argument("--seed", type=int, default=None, help="seed of the random order")


def add_probe_options(p: argparse.ArgumentParser) -> None:
    """--rate, --timeout, --retries, --threads, --all (sweep and scan)."""
    p.add_argument(
        "--rate",
        type=positive_float,
        default=None,
        metavar="PPS",
        help="most packets (or new connections) per second (default: no cap below what "
        "the machine sends)",
    )
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        metavar="S",
        help="longest wait for an answer, seconds (default: adaptive, from 1 s down to "
        "a few round trips once answers arrive)",
    )
    p.add_argument(
        "--retries",
        "--max-retries",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="resends of an unanswered probe, 0-20 (default: 1; connect scan 2)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker threads (default: sweep 16, connect scan 2; a connect scan allows "
        "as many as the descriptor limit does, and says the limit; SYN scans ignore it)",
    )
    p.add_argument(
        "--all",
        dest="show_all",
        action="store_true",
        help="also list down hosts (and closed ports)",
    )


def add_output_options(p: argparse.ArgumentParser, formats: Sequence[str]) -> None:
    """--format, -o, -oA and -q; the nmap letters (-oX ...) are in hilos.cli.aliases."""
    p.add_argument(
        "--format",
        action="append",
        choices=tuple(formats),
        default=None,
        help="output format; repeat with -o to write several",
    )
    p.add_argument(
        "-o",
        dest="output",
        action="append",
        default=None,
        metavar="FILE",
        help="write the matching --format to FILE (- = stdout)",
    )
    p.add_argument(
        "-oA",
        dest="output_all",
        metavar="BASE",
        help="write every format: BASE.nmap (text), .jsonl, .csv, .xml, .gnmap",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress or summary on stderr")


def notifier(args: argparse.Namespace) -> Callable[[str], None]:
    """One-line notices on stderr (`hilos: …`), silenced by -q."""
    quiet = bool(getattr(args, "quiet", False))

    def notice(msg: str) -> None:
        if not quiet:
            sys.stderr.write(f"hilos: {msg}\n")

    return notice


def parse_cli_targets(args: argparse.Namespace, notice: Callable[[str], None]) -> TargetSpace:
    """The target options shared by sweep and scan, as one lazy TargetSpace."""
    from hilos.targets import parse_targets

    return parse_targets(
        args.targets,
        exclude=[s for spec in args.exclude for s in spec.split(",") if s.strip()],
        input_file=args.input_file,
        exclude_file=args.exclude_file,
        on_warning=notice,
    )


def open_cli_outputs(
    kind: Literal["sweep", "scan"],
    args: argparse.Namespace,
    progress: Progress,
    meta: dict[str, object],
) -> OutputSet:
    """The outputs the --format/-o/-oA options ask for, with the command line in their headers."""
    from hilos.output import open_outputs

    argv = " ".join(["hilos", *sys.argv[1:]]) if sys.argv else f"hilos {kind}"
    out = open_outputs(
        kind,
        args.format,
        args.output,
        args.output_all,
        show_all=args.show_all,
        stdout=sys.stdout,
        meta={"args": argv, **meta},
        progress=progress,
        explicit=getattr(args, "nmap_outputs", None),
        only_open=bool(getattr(args, "only_open", False)),
    )
    OPENED.append(out)  # main() reports an interrupted run's numbers from it
    return out


OPENED: list[OutputSet] = []
