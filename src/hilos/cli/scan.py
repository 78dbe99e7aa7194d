"""`hilos scan`: options to a hilos.pipeline scan, its results streamed to the outputs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from hilos.cli import baseline, chunked, keep
from hilos.cli.aliases import add_nmap_options
from hilos.cli.options import (
    Subcommands,
    add_output_options,
    add_probe_options,
    add_target_options,
    notifier,
    positive_int,
)
from hilos.cli.process import EXIT_INTERRUPTED, EXIT_OK
from hilos.errors import UsageError

if TYPE_CHECKING:
    from hilos.pipeline import Scan
    from hilos.results import ScanHostResult

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos scan` and its options."""
    scan = sub.add_parser("scan", help="port scan")
    add_target_options(scan)
    ports = scan.add_mutually_exclusive_group()
    ports.add_argument("-p", dest="ports", metavar="SPEC", help="ports: 22,80,443 or 1-1024 or -")
    ports.add_argument(
        "--top-ports",
        type=positive_int,
        metavar="N",
        help="the N most common ports (default: 1000 when no -p is given)",
    )
    scan.add_argument("--exclude-ports", metavar="SPEC", help="ports to leave out")
    scan.add_argument(
        "--type",
        default="auto",
        metavar="TYPE",
        help="syn = raw-socket SYN scan (root), connect = full TCP connect (any user), "
        "auto = syn when raw sockets work, else connect (default auto); udp = UDP scan, alone "
        "or beside TCP: syn,udp (ports: -p U:53,161,T:22,80)",
    )
    scan.add_argument("-Pn", dest="no_discovery", action="store_true", help="skip host discovery")
    scan.add_argument("--banners", action="store_true", help="read banners and name services")
    add_probe_options(scan)
    add_output_options(scan, ("text", "json", "csv", "xml", "grep", "html"))
    scan.add_argument("--shard", metavar="I/N", help="scan only shard I of N (1-based)")
    baseline.add_option(scan)
    chunked.add_options(scan)
    add_nmap_options(scan, "scan")
    scan.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """hilos scan: options to a hilos.pipeline.Scan, its results to the outputs."""
    import threading
    import time

    from hilos.output.progress import Progress
    from hilos.pipeline import scan
    from hilos.targets import parse_shard
    from hilos.targets.ports import exclude_ports

    args, resumed = keep.resume(args, "scan")  # --resume FILE of a one-piece run
    tcp_type, udp = _types(args)
    if resumed is None and chunked.wanted(args):  # --checkpoint, --resume, --cluster
        if args.baseline:
            raise UsageError("--baseline with --checkpoint/--resume/--cluster: use hilos diff")
        return chunked.run(args, "scan", _pick_type)
    base = baseline.Baseline(args)  # read first: a bad file exits 2 before anything runs
    quiet = bool(getattr(args, "quiet", False))
    notice = notifier(args)
    targets = keep.targets(args, notice, resumed, "no targets to scan")
    if targets is None:  # resumed, and every host was written already
        return keep.nothing_left(args, "scan", resumed)
    ports, udp_ports = _ports(args, tcp_type, udp)
    if args.exclude_ports:
        ports = exclude_ports(ports, args.exclude_ports)
        udp_ports = exclude_ports(udp_ports, args.exclude_ports)
    if not ports and not udp_ports:
        raise UsageError("no ports left to scan after --exclude-ports")
    shard = parse_shard(args.shard) if args.shard else None
    scan_type, why = _pick_type(tcp_type) if ports else ("udp", "")
    if not udp_ports:
        udp = False
    elif scan_type == "udp":
        ports, udp_ports = udp_ports, ()
    # Every check of the options runs here, before any output file is opened.
    job = scan(
        targets,
        ports,
        scan_type=scan_type if scan_type in ("syn", "udp") else "connect",  # type: ignore[arg-type]
        udp_ports=udp_ports,
        discovery=not args.no_discovery,
        rate=args.rate,
        timeout=args.timeout,
        retries=args.retries,
        threads=args.threads,
        seed=args.seed,
        randomize=args.randomize,
        shard=shard,
        banners=args.banners,
        show_all=args.show_all,
        on_notice=notice,
        **keep.engine_state(resumed),
    )
    if why:
        notice(why)

    start_wall = time.time()
    progress = Progress(sys.stderr, quiet=quiet, label="scan")
    progress.requested_rate = args.rate
    keeper = keep.Keeper.for_run(args, "scan", targets, resumed)
    keeper.keep_state(job)  # the scan's own state too (hilos.scanstate)
    out = keeper.open(
        args,
        progress,
        {"start": start_wall, "scan_type": scan_type, "ports": ports, "udp_ports": udp_ports},
    )
    keeper.start()
    finished = threading.Event()

    def tick() -> None:
        # Discovery, then the scan: a line for each, with the hosts up found so far.
        while not finished.wait(0.1):
            st = job.stats
            progress.update(st.done, st.total, found=st.up, sent=st.sent)

    def summary() -> dict[str, object]:
        s = job.summary
        return {"addresses": s.addresses, "up": s.up, "elapsed": s.elapsed}

    if progress.enabled:
        threading.Thread(target=tick, name="hilos-progress", daemon=True).start()
    held: list[ScanHostResult] = []
    try:
        _write_all(job, keeper, out, base, held)
    except KeyboardInterrupt:
        finished.set()
        job.cancel()
        keeper.write_many(out, held)  # finished, not yet written
        keeper.stop()  # saved before the unfinished hosts: a resumed run cuts them off
        # Every result found so far goes to the outputs; unfinished hosts are marked so.
        for host in job.drain():
            out.write(host)
        progress.close()
        out.close(summary(), error="interrupted")
        sys.stderr.write("hilos: interrupted\n")
        keeper.tell()
        return EXIT_INTERRUPTED
    except BaseException:
        finished.set()
        job.cancel()
        keeper.stop()
        progress.close()
        out.close(error="failed")
        raise
    finished.set()
    progress.close()
    out.close(summary())
    keeper.finish()
    if not quiet:
        _rate(job, args.rate)
    base.report(args)
    return EXIT_OK


def _write_all(
    job: Scan,
    keeper: keep.Keeper,
    out: Any,
    base: baseline.Baseline,
    held: list[ScanHostResult],
) -> None:
    """Write each host as it finishes. Hosts ready back to back (a -Pn /16 ends with 65,536 at
    once) go out as one batch: one format call and one flush per output, not one per host.
    `held` is the batch being gathered (the caller writes it on Ctrl-C)."""

    def flush() -> None:
        batch = held[:]
        held.clear()
        keeper.write_many(out, batch)

    for host in job:
        held.append(host)
        base.add(host)
        if len(held) >= 4096 or not job.ready():
            flush()
    if held:  # the scan ended while a host looked ready: a result is never left unwritten
        flush()


def _rate(job: Scan, asked: float | None) -> None:
    """A raw scan (SYN, UDP) closes with the packets/s it achieved beside --rate."""
    from hilos.output.progress import rate_line

    sent = job.stats.sent
    if sent:
        sys.stderr.write(rate_line(sent, job.summary.elapsed, asked, job.drops))


def _types(args: argparse.Namespace) -> tuple[str, bool]:
    """(TCP scan type, or "" for none; whether UDP is scanned) from --type and -sU. -sU or
    --type udp alone is a UDP scan only (as nmap -sU); with a TCP type, both run."""
    parts = {t.strip().lower() for t in str(args.type).split(",")}
    udp = "udp" in parts or bool(getattr(args, "udp", False))
    parts.discard("udp")
    if len(parts) > 1 or not parts <= {"auto", "connect", "syn"}:
        raise UsageError(
            f"--type {args.type}: expected auto, connect, syn or udp (or both kinds: syn,udp)"
        )
    tcp = parts.pop() if parts else ""
    if udp and args.type in ("auto", "udp"):
        tcp = ""
    if udp and chunked.explicit(args):
        raise UsageError("a UDP scan with --checkpoint/--resume/--cluster is not supported yet")
    return tcp, udp


def _ports(
    args: argparse.Namespace, tcp: str, udp: bool
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(TCP ports, UDP ports) from -p (U:/T: prefixes) or --top-ports (each its own ranking)."""
    from hilos.targets.ports import parse_ports, top_ports
    from hilos.targets.udp_ports import split_protocols, top_udp_ports

    if args.ports and udp:
        t, u = split_protocols(args.ports)
        return (t if tcp else ()), u
    if args.ports:
        return parse_ports(args.ports), ()
    n = args.top_ports or 1000
    return (top_ports(n) if tcp else ()), (top_udp_ports(n) if udp else ())


def _pick_type(wanted: str) -> tuple[str, str]:
    """(scan type, what to say once): --type auto is SYN when raw sockets work here, else
    connect; --type syn without the privilege is a usage error naming the fix."""
    if wanted == "connect":
        return "connect", ""
    from hilos.wire.sockets import can_raw

    raw = can_raw()
    if wanted == "syn":
        if not raw:
            raise UsageError(
                "--type syn needs raw sockets: run as root or grant CAP_NET_RAW (sudo setcap "
                "cap_net_raw+ep $(readlink -f $(which python3))), or use --type connect"
            )
        return "syn", ""
    if raw:
        return "syn", "SYN scan (raw sockets available; --type connect for a connect scan)"
    return "connect", "connect scan (no raw-socket privilege: run as root for a SYN scan)"
