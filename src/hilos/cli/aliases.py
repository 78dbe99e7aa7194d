"""The spellings nmap users type (`-sS`, `-oX FILE`, `-T4`, `--open`, ...), as `hilos` options.

`add_nmap_options` declares them on the sweep and scan parsers; `normalise` runs after parsing,
before the command's handler, and folds them into the options the handlers already read
(`type`, `rate`, `timeout`, `retries`, `top_ports`, ...), so no handler knows about them.

Timing templates (`-T0`..`-T5`) fill only what the command line left unset, so an explicit
`--rate`, `--timeout` or `--retries` wins, whatever the order (nmap: the later option wins;
a template only setting defaults is the simpler rule to explain):

====  ===========  ===================  =========  =========
-T    nmap name    --rate (per second)  --timeout  --retries
====  ===========  ===================  =========  =========
0     paranoid     0.0033 (1 per 300 s)  5         1
1     sneaky       0.067 (1 per 15 s)    5         1
2     polite       2.5 (1 per 0.4 s)     2         1
3     normal       hilos's defaults      default   default
4     aggressive   hilos's defaults      0.5       2
5     insane       hilos's defaults      0.25      1
====  ===========  ===================  =========  =========

`--max-rate N` is `--rate N` (hilos's rate is a ceiling). hilos never paces below its rate,
so `--min-rate N` only lifts a slower rate (from `-T0`..`-T2`) up to N; above `--rate` it is
an error.
"""

from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass

from hilos.errors import UsageError

__all__ = ["TIMING", "Timing", "add_nmap_options", "normalise", "timing_help"]


@dataclass(frozen=True, slots=True)
class Timing:
    """What one -T template sets: None leaves hilos's own default."""

    name: str
    rate: float | None
    timeout: float | None
    retries: int | None


TIMING: dict[int, Timing] = {
    0: Timing("paranoid", 1 / 300, 5.0, 1),
    1: Timing("sneaky", 1 / 15, 5.0, 1),
    2: Timing("polite", 2.5, 2.0, 1),
    3: Timing("normal", None, None, None),
    4: Timing("aggressive", None, 0.5, 2),
    5: Timing("insane", None, 0.25, 1),
}


def timing_help() -> str:
    """One line per template, for --help."""

    def show(value: float | int | None, unit: str = "") -> str:
        return "default" if value is None else f"{value:.3g}{unit}"

    return "; ".join(
        f"{n} {t.name}: rate {show(t.rate, '/s')}, timeout {show(t.timeout, ' s')}, "
        f"retries {show(t.retries)}"
        for n, t in TIMING.items()
    )


def _output_pair(fmt: str, path: str) -> tuple[str, str]:
    if not path:
        raise argparse.ArgumentTypeError("needs a file name (- = stdout)")
    return fmt, path


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def add_nmap_options(p: argparse.ArgumentParser, kind: str) -> None:
    """Declare nmap's spellings on the `sweep` or `scan` parser (help says what each means)."""
    nmap = p.add_argument_group("nmap spellings (aliases of the options above)")
    if kind == "scan":
        nmap.add_argument(
            "-sS", dest="type", action="store_const", const="syn", help="= --type syn"
        )
        nmap.add_argument(
            "-sT", dest="type", action="store_const", const="connect", help="= --type connect"
        )
        nmap.add_argument(
            "-sU", dest="udp", action="store_true", help="UDP scan (= --type udp; with -sS: both)"
        )
        nmap.add_argument(
            "-sn",
            dest="sweep_only",
            action="store_true",
            help="host discovery only: run `hilos sweep` on the targets",
        )
        nmap.add_argument(
            "-F", dest="fast", action="store_true", help="= --top-ports 100 (nmap's fast scan)"
        )
    else:
        nmap.add_argument(
            "-sn", dest="sweep_only", action="store_true", help="accepted: a sweep is what -sn does"
        )
    formats = {"N": "text", "X": "xml", "G": "grep", "J": "json"}
    for letter, fmt in formats.items():
        nmap.add_argument(
            f"-o{letter}",
            dest="nmap_outputs",
            action="append",
            default=None,
            type=functools.partial(_output_pair, fmt),
            metavar="FILE",
            help=f"write {fmt} output to FILE (- = stdout), whatever its extension",
        )
    nmap.add_argument(
        "-T",
        dest="timing",
        type=int,
        choices=range(6),
        default=None,
        metavar="0-5",
        help="timing template; fills --rate/--timeout/--retries left unset: " + timing_help(),
    )
    nmap.add_argument(
        "--min-rate",
        type=_rate,
        default=None,
        metavar="PPS",
        help="hilos never paces below --rate: lifts a slower -T rate to PPS (default: none)",
    )
    nmap.add_argument(
        "--max-rate", type=_rate, default=None, metavar="PPS", help="= --rate PPS (a ceiling)"
    )
    nmap.add_argument(
        "--open",
        dest="only_open",
        action="store_true",
        help="list only open ports, and only hosts that have one (sweep: only up hosts)",
    )
    nmap.add_argument(
        "-n", dest="no_dns", action="store_true", help="accepted: hilos never does reverse DNS"
    )
    nmap.add_argument(
        "--reason", action="store_true", help="accepted: hilos always shows the reasons"
    )
    nmap.add_argument(
        "-v",
        dest="verbose",
        action="count",
        default=0,
        help="more detail on stderr (timing, outputs; -vv, -d: also the parsed options)",
    )
    nmap.add_argument(
        "-d",
        dest="debug",
        action="count",
        default=0,
        help="debugging detail on stderr (-v and more)",
    )


def normalise(args: argparse.Namespace) -> None:
    """Fold the nmap spellings (and the checks the handlers cannot make) into `args`.

    Raises UsageError (exit 2) for contradictions: `-F` with `-p`, `--open` with `--all`,
    `--min-rate` above `--rate`, an empty `-p`, `-sn` with port options.
    """
    command = getattr(args, "command", None)
    if command not in ("sweep", "scan"):
        return
    if command == "scan":
        _ports(args)
    _rates(args)
    if getattr(args, "only_open", False) and getattr(args, "show_all", False):
        raise UsageError("--open lists only open ports and --all also closed ones: choose one")
    if getattr(args, "sweep_only", False) and command == "scan":
        _to_sweep(args)
    # The outputs' rules (pairing, extensions, one stdout) before anything runs or prints.
    from hilos.output import plan_outputs

    plan_outputs(
        args.command,
        args.format,
        args.output,
        args.output_all,
        explicit=getattr(args, "nmap_outputs", None),
    )
    level = int(getattr(args, "verbose", 0) or 0) + 2 * int(getattr(args, "debug", 0) or 0)
    from hilos.output.progress import Progress

    # -v: progress also when stderr is no terminal (a log), a line every 5 s (nmap -v's pace).
    Progress.log_every = 5.0 if level else None
    if level and not getattr(args, "quiet", False):
        _explain(args, level)


def _ports(args: argparse.Namespace) -> None:
    if args.ports is not None and not args.ports.strip():
        # An empty spec used to fall through to the top 1000 ports: a scan nobody asked for.
        raise UsageError("-p: empty port specification (e.g. -p 22,80 or -p 1-1024 or -p-)")
    if getattr(args, "fast", False):
        if args.ports is not None or args.top_ports is not None:
            raise UsageError("-F is --top-ports 100: do not combine it with -p or --top-ports")
        args.top_ports = 100


def _rates(args: argparse.Namespace) -> None:
    max_rate = getattr(args, "max_rate", None)
    if max_rate is not None:
        if args.rate is not None and args.rate != max_rate:
            raise UsageError(f"--max-rate {max_rate:g} and --rate {args.rate:g} disagree")
        args.rate = max_rate
    explicit_rate = args.rate is not None
    timing = getattr(args, "timing", None)
    if timing is not None:
        t = TIMING[timing]
        if args.rate is None:
            args.rate = t.rate
        if args.timeout is None:
            args.timeout = t.timeout
        if args.retries is None:
            args.retries = t.retries
    min_rate = getattr(args, "min_rate", None)
    if min_rate is not None and args.rate is not None and args.rate < min_rate:
        if explicit_rate:
            raise UsageError(f"--min-rate {min_rate:g} is above --rate {args.rate:g}")
        args.rate = min_rate  # a -T template's slow pace, lifted


def _to_sweep(args: argparse.Namespace) -> None:
    """`hilos scan -sn TARGETS` is `hilos sweep TARGETS` (nmap -sn: discovery, no port scan)."""
    from hilos.cli import sweep

    given = [
        flag
        for flag, used in (
            ("-p", args.ports is not None),
            ("--top-ports/-F", args.top_ports is not None),
            ("--exclude-ports", args.exclude_ports is not None),
            ("--banners", args.banners),
            ("--shard", args.shard is not None),
            ("-Pn", args.no_discovery),
            ("--type/-sS/-sT/-sU", args.type != "auto" or args.udp),
        )
        if used
    ]
    if given:
        raise UsageError(f"-sn does host discovery only (a sweep): drop {', '.join(given)}")
    args.command = "sweep"
    args.method = "auto"
    args.handler = sweep.run


def _explain(args: argparse.Namespace, level: int) -> None:
    """-v: the effective parameters on stderr before the run; -vv/-d: every parsed option."""

    def show(value: object, unit: str = "") -> str:
        if value is None:
            return "default"
        return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    timing = getattr(args, "timing", None)
    template = f" (-T{timing} {TIMING[timing].name})" if timing is not None else ""
    lines = [
        f"{args.command}: rate {show(args.rate, '/s')}, timeout {show(args.timeout, ' s')}, "
        f"retries {show(args.retries)}, threads {show(args.threads)}{template}"
    ]
    if args.command == "scan":
        lines.append(
            f"scan type requested: {args.type} (auto: SYN when raw sockets work, else connect); "
            f"ports: {args.ports or f'top {args.top_ports or 1000}'}; "
            f"discovery: {'off (-Pn)' if args.no_discovery else 'on'}"
        )
    else:
        lines.append(f"sweep method: {args.method}")
    pairs = getattr(args, "nmap_outputs", None) or []
    outs = [f"{f} -> {p}" for f, p in pairs]
    outs += [f"{f} -> {p}" for f, p in zip(args.format or [], args.output or [], strict=False)]
    if args.output_all:
        outs.append(f"every format -> {args.output_all}.*")
    if outs:
        lines.append("outputs: " + ", ".join(outs))
    if level >= 2:
        skip = {"handler"}
        lines.append(
            "options: "
            + ", ".join(f"{k}={v!r}" for k, v in sorted(vars(args).items()) if k not in skip)
        )
    for line in lines:
        sys.stderr.write(f"hilos: {line}\n")
    sys.stderr.flush()
