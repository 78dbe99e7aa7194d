"""`hilos sweep`: host discovery from the command line, results streamed to the outputs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from hilos.cli import chunked, keep
from hilos.cli.aliases import add_nmap_options
from hilos.cli.options import (
    Subcommands,
    add_output_options,
    add_probe_options,
    add_target_options,
    notifier,
)
from hilos.cli.process import EXIT_INTERRUPTED, EXIT_OK
from hilos.errors import UsageError

if TYPE_CHECKING:
    from hilos.sweep import Sweeper

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos sweep` and its options."""
    sweep = sub.add_parser("sweep", help="host discovery (ping sweep)")
    add_target_options(sweep)
    sweep.add_argument(
        "--method",
        choices=("auto", "icmp", "tcp"),
        default="auto",
        help="probes: icmp = echo (root or ping_group_range), tcp = SYN/ACK or connect to "
        "443 and 80, auto = both where allowed (default auto)",
    )
    add_probe_options(sweep)
    add_output_options(sweep, ("text", "json", "csv", "xml", "grep", "html"))
    add_nmap_options(sweep, "sweep")
    chunked.add_options(sweep)
    sweep.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """hilos sweep: targets, the best probes this process may send, streamed outputs."""
    import time

    from hilos.output.progress import Progress
    from hilos.sweep import Sweeper, SweepProgress

    args, resumed = keep.resume(args, "sweep")  # --resume FILE of a one-piece run
    if resumed is None and chunked.wanted(args):  # --checkpoint, --resume, --cluster
        return chunked.run(args, "sweep")
    quiet = bool(getattr(args, "quiet", False))
    notice = notifier(args)
    if not args.targets and not args.input_file:  # (a resumed run has its own)
        raise UsageError("no targets given (addresses, CIDR ranges, names or -iL FILE)")
    targets = keep.targets(args, notice, resumed, "no targets left to sweep")
    if targets is None:  # resumed, and every host was written already
        return keep.nothing_left(args, "sweep", resumed)
    if args.method == "icmp":
        _check_icmp({a.version for pair in targets.iter_ranges() for a in pair} or {4})
    start_wall = time.time()
    progress = Progress(sys.stderr, quiet=quiet, label="sweep")

    progress.requested_rate = args.rate

    def on_progress(p: SweepProgress) -> None:
        dense = sweeper.dense  # the batched engine counts its packets
        progress.update(p.done, p.total, found=p.up, sent=dense.sent if dense else None)

    sweeper = Sweeper(
        targets,
        method=args.method,
        rate=args.rate,
        timeout=args.timeout,
        retries=args.retries,
        threads=args.threads,
        randomize=args.randomize,
        seed=args.seed,
        all_hosts=args.show_all,
        on_progress=on_progress if progress.enabled else None,
        on_notice=notice,
        resume=keep.engine_state(resumed).get("resume"),
    )
    keeper = keep.Keeper.for_run(args, "sweep", targets, resumed)
    keeper.keep_state(sweeper)  # where the passes stand (hilos.sweep.resume)
    out = keeper.open(args, progress, {"start": start_wall})
    keeper.start()
    stream = sweeper.batches()  # one write (and flush) per batch of hosts found together
    try:
        for hosts in stream:
            keeper.write_many(out, hosts)
    except KeyboardInterrupt:
        # Stop the senders, then every result found so far still reaches the outputs.
        sweeper.cancel()
        keeper.stop()  # saved before the drained hosts: a resumed run probes them again
        out.write_many(sweeper.drain())
        progress.close()
        summary = _summary(sweeper.probed, out.up, sweeper.started or time.monotonic())
        out.close(summary, error="interrupted")
        sys.stderr.write("hilos: interrupted\n")
        keeper.tell()
        return EXIT_INTERRUPTED
    except BaseException:
        sweeper.cancel()
        keeper.stop()
        progress.close()
        out.close(error="failed")
        raise
    finally:
        stream.close()
    progress.close()
    summary = _summary(targets.size, out.up, sweeper.started or time.monotonic())
    out.close(summary)
    keeper.finish()
    if not quiet:
        _rate(sweeper, args.rate)
    if not quiet and not _text_on_stdout(args):
        # The text report ends with its own summary; anything else gets one on stderr.
        sys.stderr.write(
            f"hilos: {summary['addresses']} addresses, {summary['up']} up, "
            f"{summary['elapsed']:.2f} s\n"
        )
    return EXIT_OK


def _rate(sweeper: Sweeper, asked: float | None) -> None:
    """A raw sweep closes with the packets/s it achieved beside --rate."""
    from hilos.output.progress import rate_line

    seconds = sum(sweeper.pass_seconds)
    if sweeper.dense is not None:
        sys.stderr.write(rate_line(sweeper.dense.sent, seconds, asked, sweeper.dense.drops))
    elif sweeper.sent:
        sys.stderr.write(rate_line(sweeper.sent, seconds, asked))


def _check_icmp(families: set[int]) -> None:
    """--method icmp without the privilege is a usage error (exit 2), as --type syn is."""
    from hilos.errors import PrivilegeError
    from hilos.wire.sockets import open_icmp_socket

    for family in sorted(families):
        try:
            open_icmp_socket(family).close()
        except PrivilegeError as exc:
            raise UsageError(
                f"--method icmp: {exc}; or use --method tcp (or auto) without privileges"
            ) from exc


def _summary(addresses: int, up: int, started: float) -> dict[str, object]:
    import time

    return {"addresses": addresses, "up": up, "elapsed": time.monotonic() - started}


def _text_on_stdout(args: argparse.Namespace) -> bool:
    from hilos.output import plan_outputs

    plan = plan_outputs(
        "sweep",
        args.format,
        args.output,
        args.output_all,
        explicit=getattr(args, "nmap_outputs", None),
    )
    return any(spec.format == "text" and spec.to_stdout for spec in plan)
