"""The `hilos` command line: parses options, builds library objects, prints. Nothing else prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal, NoReturn

from hilos import __version__
from hilos.cli_aliases import add_nmap_options
from hilos.cli_process import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from hilos.errors import HilosError, UsageError

if TYPE_CHECKING:  # the handlers import lazily to keep start-up fast
    from _typeshed import SupportsWrite

    from hilos.output import OutputSet
    from hilos.output.progress import Progress
    from hilos.targets import TargetSpace


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"hilos: error: {message}\n")
        raise SystemExit(EXIT_USAGE)

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse swallows write errors: --help > /dev/full would exit 0 having written nothing.
        if message:
            (file or sys.stderr).write(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative number: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The whole option tree; kept in one place so `--help` and the contract agree."""
    parser = _Parser(
        prog="hilos", description="Multithreaded network tasks: sweep, scan, demo, lab."
    )
    parser.add_argument("--version", action="version", version=f"hilos {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    demo = sub.add_parser("demo", help="the tutorial's worker/queue/lock example")
    demo.add_argument("--threads", type=_positive_int, default=2, help="worker threads (default 2)")
    demo.add_argument("--tasks", type=_non_negative_int, default=10, help="tasks (default 10)")
    demo.add_argument("--sleep", type=_non_negative_float, default=1.0, help="seconds per task (1)")
    demo.set_defaults(handler=_cmd_demo)

    sweep = sub.add_parser("sweep", help="host discovery (ping sweep)")
    _add_target_options(sweep)
    sweep.add_argument(
        "--method",
        choices=("auto", "icmp", "tcp"),
        default="auto",
        help="probes: icmp = echo (root or ping_group_range), tcp = SYN/ACK or connect to "
        "443 and 80, auto = both where allowed (default auto)",
    )
    _add_common_probe_options(sweep)
    _add_output_options(sweep, ("text", "json", "csv", "xml", "grep"))
    add_nmap_options(sweep, "sweep")
    sweep.set_defaults(handler=_cmd_sweep)

    scan = sub.add_parser("scan", help="port scan")
    _add_target_options(scan)
    ports = scan.add_mutually_exclusive_group()
    ports.add_argument("-p", dest="ports", metavar="SPEC", help="ports: 22,80,443 or 1-1024 or -")
    ports.add_argument(
        "--top-ports",
        type=_positive_int,
        metavar="N",
        help="the N most common ports (default: 1000 when no -p is given)",
    )
    scan.add_argument("--exclude-ports", metavar="SPEC", help="ports to leave out")
    scan.add_argument(
        "--type",
        choices=("auto", "connect", "syn"),
        default="auto",
        help="syn = raw-socket SYN scan (root), connect = full TCP connect (any user), "
        "auto = syn when raw sockets work, else connect (default auto)",
    )
    scan.add_argument("-Pn", dest="no_discovery", action="store_true", help="skip host discovery")
    scan.add_argument("--banners", action="store_true", help="read banners and name services")
    _add_common_probe_options(scan)
    _add_output_options(scan, ("text", "json", "csv", "xml", "grep"))
    scan.add_argument("--shard", metavar="I/N", help="scan only shard I of N (1-based)")
    add_nmap_options(scan, "scan")
    scan.set_defaults(handler=_cmd_scan)

    lab = sub.add_parser("lab", help="the practice network in namespaces (root)")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=_Parser)
    lab_sub.required = True
    up = lab_sub.add_parser("up", help="build the lab")
    up.add_argument(
        "--rtt",
        type=_non_negative_float,
        default=0.0,
        metavar="MS",
        help="added round-trip time in ms (default 0)",
    )
    up.add_argument(
        "--loss",
        type=_non_negative_float,
        default=0.0,
        metavar="PERCENT",
        help="percent of packets lost at the router, either way (default 0)",
    )
    up.add_argument(
        "--seed", type=int, default=1, metavar="N", help="seed of the host plan (default 1)"
    )
    up.add_argument(
        "--dense",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="live hosts in the dense /24 (default 60)",
    )
    up.add_argument(
        "--sparse",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="live hosts scattered over the /16 (default 500)",
    )
    up.add_argument(
        "--ipv6",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="live IPv6 hosts in fd18:0:0:100::/64 (default 6)",
    )
    up.set_defaults(handler=_cmd_lab)
    down = lab_sub.add_parser("down", help="remove the lab")
    down.set_defaults(handler=_cmd_lab)
    status = lab_sub.add_parser("status", help="is the lab up; where is its truth file")
    status.set_defaults(handler=_cmd_lab)
    run = lab_sub.add_parser("run", help="run a command in the scanner namespace")
    run.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")
    run.set_defaults(handler=_cmd_lab)
    for action in (up, down, status, run):
        action.add_argument(
            "--name",
            default="hilos",
            help="lab name (prefix of its namespaces; default hilos)",
        )

    bench = sub.add_parser(
        "bench",
        help="what more threads do, measured",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run the same work on 1, 2, 4, ... threads; print wall time, tasks/s, "
        "speed-up and efficiency.",
        epilog="demo = sleep-bound (near-linear), cpu = pure Python (flat: the GIL),\n"
        "sweep/scan = blocking TCP connect per item, the tutorial's scanner.\n"
        "Default target is 127.0.0.1. For anything but loopback, run it INSIDE the lab:\n"
        "  hilos lab run -- hilos bench --workload scan --target 198.18.0.0/28 -p 22,80 "
        "--timeout 0.5",
    )
    bench.add_argument("--workload", choices=("demo", "cpu", "sweep", "scan"), default="demo")
    bench.add_argument(
        "--threads",
        default="1,2,4,8,16,32",
        metavar="LIST",
        help="thread counts, comma-separated (1 is always measured)",
    )
    bench.add_argument(
        "--tasks",
        type=_positive_int,
        default=None,
        help="tasks per run (demo 64, cpu 200, sweep 256, scan: hosts x ports)",
    )
    bench.add_argument(
        "--sleep", type=_non_negative_float, default=0.05, help="demo: seconds per task (0.05)"
    )
    bench.add_argument("--repeat", type=_positive_int, default=3, help="runs per count (median)")
    bench.add_argument("--plot", metavar="FILE.png", help="write a speed-up chart (matplotlib)")
    bench.add_argument(
        "--target",
        action="append",
        default=None,
        metavar="SPEC",
        help="sweep/scan targets (default 127.0.0.1; others: inside the lab)",
    )
    bench.add_argument(
        "-p",
        "--ports",
        default=None,
        metavar="SPEC",
        help="sweep/scan ports (scan 1-1024, sweep 80,443)",
    )
    bench.add_argument(
        "--timeout",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="sweep/scan connect timeout (1)",
    )
    bench.set_defaults(handler=_cmd_bench)
    return parser


def _add_target_options(p: argparse.ArgumentParser) -> None:
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


def _add_common_probe_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        metavar="PPS",
        help="most packets (or new connections) per second (default: no cap below what "
        "the machine sends)",
    )
    p.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        metavar="S",
        help="longest wait for an answer, seconds (default: adaptive, from 1 s down to "
        "a few round trips once answers arrive)",
    )
    p.add_argument(
        "--retries",
        "--max-retries",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="resends of an unanswered probe, 0-20 (default: 1; connect scan 2)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
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


def _add_output_options(p: argparse.ArgumentParser, formats: Sequence[str]) -> None:
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


def _cmd_demo(args: argparse.Namespace) -> int:
    """The tutorial's worker/queue/lock example on hilos.pool; this worker does the printing."""
    import threading
    import time

    from hilos.pool import MAX_THREADS, Pool

    if args.threads > MAX_THREADS:
        raise UsageError(f"--threads must be at most {MAX_THREADS}, not {args.threads}")
    print_lock = threading.Lock()
    pause = float(args.sleep)

    def demo_worker(item: int) -> int:
        # Threads share one terminal: without the lock their lines can interleave mid-line.
        # That shared-state lesson is the point of the tutorial, so the worker keeps it visible.
        with print_lock:
            print(f"Working on {item}", flush=True)
        time.sleep(pause)
        with print_lock:
            print(f"Finished {item}", flush=True)
        return item

    start = time.perf_counter()
    # grace=1: on Ctrl-C the running tasks may finish (and print "Finished") for up to a second.
    pool: Pool[int, int] = Pool(demo_worker, threads=args.threads, grace=1.0)
    with pool:
        for result in pool.imap_unordered(range(args.tasks)):
            result.result()  # a worker's failure (say, a closed stdout) surfaces here
    elapsed = time.perf_counter() - start
    print(f"All workers completed their tasks after {elapsed:.2f} seconds", flush=True)
    return EXIT_OK


def _notifier(args: argparse.Namespace) -> Callable[[str], None]:
    """One-line notices on stderr (`hilos: …`), silenced by -q."""
    quiet = bool(getattr(args, "quiet", False))

    def notice(msg: str) -> None:
        if not quiet:
            sys.stderr.write(f"hilos: {msg}\n")

    return notice


def _parse_cli_targets(args: argparse.Namespace, notice: Callable[[str], None]) -> TargetSpace:
    """The target options shared by sweep and scan, as one lazy TargetSpace."""
    from hilos.targets import parse_targets

    return parse_targets(
        args.targets,
        exclude=[s for spec in args.exclude for s in spec.split(",") if s.strip()],
        input_file=args.input_file,
        exclude_file=args.exclude_file,
        on_warning=notice,
    )


def _open_cli_outputs(
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
    _OPENED.append(out)  # main() reports an interrupted run's numbers from it
    return out


_OPENED: list[OutputSet] = []


def _cmd_sweep(args: argparse.Namespace) -> int:
    """hilos sweep: targets, the best probes this process may send, streamed outputs."""
    import time

    from hilos.output.progress import Progress
    from hilos.sweep import Sweeper, SweepProgress

    quiet = bool(getattr(args, "quiet", False))
    notice = _notifier(args)
    if not args.targets and not args.input_file:
        raise UsageError("no targets given (addresses, CIDR ranges, names or -iL FILE)")
    targets = _parse_cli_targets(args, notice)
    if targets.size == 0:
        raise UsageError("no targets left to sweep (every name failed or all were excluded)")
    if args.method == "icmp":
        _sweep_check_icmp({a.version for pair in targets.iter_ranges() for a in pair} or {4})
    start_wall = time.time()
    progress = Progress(sys.stderr, quiet=quiet, label="sweep")

    def on_progress(p: SweepProgress) -> None:
        progress.update(p.done, p.total, found=p.up)

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
    )
    out = _open_cli_outputs("sweep", args, progress, {"start": start_wall})
    stream = sweeper.__iter__()
    try:
        for host in stream:
            out.write(host)
    except KeyboardInterrupt:
        # Stop the senders, then every result found so far still reaches the outputs.
        sweeper.cancel()
        for host in sweeper.drain():
            out.write(host)
        progress.close()
        summary = _sweep_summary(sweeper.probed, out.up, sweeper.started or time.monotonic())
        out.close(summary, error="interrupted")
        sys.stderr.write("hilos: interrupted\n")
        return EXIT_INTERRUPTED
    except BaseException:
        sweeper.cancel()
        progress.close()
        out.close(error="failed")
        raise
    finally:
        stream.close()
    progress.close()
    summary = _sweep_summary(targets.size, out.up, sweeper.started or time.monotonic())
    out.close(summary)
    if not quiet and not _sweep_text_on_stdout(args):
        # The text report ends with its own summary; anything else gets one on stderr.
        sys.stderr.write(
            f"hilos: {summary['addresses']} addresses, {summary['up']} up, "
            f"{summary['elapsed']:.2f} s\n"
        )
    return EXIT_OK


def _sweep_check_icmp(families: set[int]) -> None:
    """--method icmp without the privilege is a usage error (exit 2), as --type syn is."""
    from hilos.errors import PrivilegeError
    from hilos.probes.icmp import open_icmp_socket

    for family in sorted(families):
        try:
            open_icmp_socket(family).close()
        except PrivilegeError as exc:
            raise UsageError(
                f"--method icmp: {exc}; or use --method tcp (or auto) without privileges"
            ) from exc


def _sweep_summary(addresses: int, up: int, started: float) -> dict[str, object]:
    import time

    return {"addresses": addresses, "up": up, "elapsed": time.monotonic() - started}


def _sweep_text_on_stdout(args: argparse.Namespace) -> bool:
    from hilos.output import plan_outputs

    plan = plan_outputs(
        "sweep",
        args.format,
        args.output,
        args.output_all,
        explicit=getattr(args, "nmap_outputs", None),
    )
    return any(spec.format == "text" and spec.to_stdout for spec in plan)


def _cmd_scan(args: argparse.Namespace) -> int:
    """hilos scan: options to a hilos.pipeline.Scan, its results to the outputs."""
    import threading
    import time

    from hilos.output.progress import Progress
    from hilos.pipeline import scan
    from hilos.targets import parse_shard
    from hilos.targets.ports import exclude_ports, parse_ports, top_ports

    quiet = bool(getattr(args, "quiet", False))
    notice = _notifier(args)
    targets = _parse_cli_targets(args, notice)
    if targets.size == 0:
        raise UsageError("no targets to scan (give addresses, CIDR ranges, names or -iL FILE)")
    ports = parse_ports(args.ports) if args.ports else top_ports(args.top_ports or 1000)
    if args.exclude_ports:
        ports = exclude_ports(ports, args.exclude_ports)
    if not ports:
        raise UsageError("no ports left to scan after --exclude-ports")
    shard = parse_shard(args.shard) if args.shard else None
    scan_type, why = _scan_pick_type(args.type)
    # Every check of the options runs here, before any output file is opened.
    job = scan(
        targets,
        ports,
        scan_type="syn" if scan_type == "syn" else "connect",
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
    )
    if why:
        notice(why)

    start_wall = time.time()
    progress = Progress(sys.stderr, quiet=quiet, label="scan")
    out = _open_cli_outputs(
        "scan", args, progress, {"start": start_wall, "scan_type": scan_type, "ports": ports}
    )
    finished = threading.Event()

    def tick() -> None:
        # Discovery, then the scan: a line for each, with the hosts up found so far.
        while not finished.wait(0.1):
            st = job.stats
            progress.update(st.done, st.total, found=st.up)

    def summary() -> dict[str, object]:
        s = job.summary
        return {"addresses": s.addresses, "up": s.up, "elapsed": s.elapsed}

    if progress.enabled:
        threading.Thread(target=tick, name="hilos-progress", daemon=True).start()
    try:
        for host in job:
            out.write(host)
    except KeyboardInterrupt:
        finished.set()
        job.cancel()
        # Every result found so far goes to the outputs; unfinished hosts are marked so.
        for host in job.drain():
            out.write(host)
        progress.close()
        out.close(summary(), error="interrupted")
        sys.stderr.write("hilos: interrupted\n")
        return EXIT_INTERRUPTED
    except BaseException:
        finished.set()
        job.cancel()
        progress.close()
        out.close(error="failed")
        raise
    finished.set()
    progress.close()
    out.close(summary())
    return EXIT_OK


def _scan_pick_type(wanted: str) -> tuple[str, str]:
    """(scan type, what to say once): --type auto is SYN when raw sockets work here, else
    connect; --type syn without the privilege is a usage error naming the fix."""
    if wanted == "connect":
        return "connect", ""
    from hilos.synscan import can_raw

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


def _cmd_lab(args: argparse.Namespace) -> int:
    import os
    import time

    from hilos.lab import Lab, LabStatus, teardown

    def counts_line(st: LabStatus) -> str:
        extra = [f"rtt {st.rtt_ms:g} ms"] if st.rtt_ms else []
        extra += [f"loss {st.loss_percent:g}%"] if st.loss_percent else []
        return (
            f"{st.hosts} live hosts ({st.hosts6} IPv6, {st.icmp_silent} ICMP-silent), "
            f"{st.open_ports} open and {st.filtered_ports} filtered ports"
            + "".join(f", {e}" for e in extra)
        )

    name: str = args.name
    action: str = args.lab_command
    if action == "up":
        counts = {k: v for k in ("dense", "sparse", "ipv6") if (v := getattr(args, k)) is not None}
        start = time.monotonic()
        lab = Lab.up(name, rtt_ms=args.rtt, loss_percent=args.loss, seed=args.seed, **counts)
        took = time.monotonic() - start
        st = Lab.status(name)
        print(f"lab {name} up in {took:.1f} s: {counts_line(st)}")
        print(f"scanner namespace: {lab.scanner_ns} (no default route; reaches only the lab)")
        print(f"truth: {lab.truth_path}")
        dns = lab.truth["dns"]
        print(
            f"names: {', '.join(sorted(dns['names']))} "
            f"(the lab's DNS at {dns['servers'][0]}, only inside the lab)"
        )
        print(f"try:   hilos lab run --name {name} -- ping -c1 h1.lab.test")
        return 0
    if action == "down":
        removed = teardown(name)
        print(f"lab {name} {'removed' if removed else 'was not up'}")
        return 0
    if action == "status":
        st = Lab.status(name)
        if st.up:
            print(f"lab {name} is up: {counts_line(st)}")
            print(f"truth: {st.truth_path}")
            return 0
        if st.partial:
            print(f"lab {name} is broken: {'; '.join(st.problems)}")
            print(f"clean up with: hilos lab down --name {name}")
        else:
            print(f"lab {name} is not up")
        return 1
    # run: exec the command in the scanner namespace, so its exit status is ours.
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    if not cmd:
        raise UsageError("lab run: give a command, e.g. `hilos lab run -- ping 198.18.0.1`")
    lab = Lab.attach(name)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp("ip", ["ip", "netns", "exec", lab.scanner_ns, *cmd])
    except OSError as exc:
        raise HilosError(f"lab run: cannot run ip netns exec: {exc}") from exc


def _cmd_bench(args: argparse.Namespace) -> int:
    """Measure one workload at several thread counts; print the table (and write the chart)."""
    from hilos import bench

    counts = bench.parse_thread_counts(args.threads)
    if args.plot is not None:
        bench.check_plot_path(args.plot)  # fail before a long measurement, not after it
        bench.require_matplotlib()
    workload = bench.make_workload(
        args.workload,
        tasks=args.tasks,
        sleep=args.sleep,
        targets=args.target or ["127.0.0.1"],
        ports=args.ports,
        timeout=args.timeout,
    )
    show_steps = sys.stderr.isatty()

    def on_step(threads: int, rep: int, of: int) -> None:
        if show_steps:
            sys.stderr.write(f"\rbench: {threads} threads, run {rep}/{of}   ")
            sys.stderr.flush()

    def report(result: bench.BenchResult) -> list[str]:
        """The table and its footnotes, as lines."""
        lines = [
            f"workload {result.workload}: {result.description}; median of {result.repeat}",
            f"{'threads':>7}  {'wall s':>8}  {'tasks/s':>9}  {'speed-up':>8}  {'efficiency':>10}",
        ]
        for row in result.rows:
            mark = "  <- knee" if row.threads == result.knee else ""
            lines.append(
                f"{row.threads:>7}  {row.wall:>8.3f}  {row.tasks_per_s:>9.1f}  "
                f"{row.speedup:>7.2f}x  {row.efficiency:>10.0%}{mark}"
            )
        if result.knee is None:
            lines.append(f"knee: none up to {result.rows[-1].threads} threads (still scaling)")
        else:
            best = max(row.speedup for row in result.rows)
            knee = f"{result.knee} thread{'s' if result.knee != 1 else ''}"
            lines.append(f"knee: {knee} (fewest reaching 90% of the best, {best:.2f}x)")
        if result.workload in ("sweep", "scan"):
            outcomes = ", ".join(f"{name} {count}" for name, count in result.outcomes)
            lines.append(f"outcomes (last run): {outcomes}")
        failed = sum(row.errors for row in result.rows)
        if failed:
            lines.append(f"warning: {failed} tasks failed; first: {result.first_error}")
        return lines

    try:
        result = bench.run_bench(workload, counts, args.repeat, on_step=on_step)
    finally:
        if show_steps:
            sys.stderr.write("\r\033[K")
    for line in report(result):
        print(line)
    if args.plot is not None:
        bench.write_plot(result, args.plot)
        print(f"plot: {args.plot}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hilos` console script; returns the exit status.

    Bare `hilos` prints the help and exits 0 (as nmap does). SIGTERM/SIGHUP stop a run as
    Ctrl-C does and exit 143/129; failures are one line on stderr (see hilos.cli_process).
    """
    from hilos import cli_process as proc

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
    _OPENED.clear()
    with proc.StopSignals() as stop:
        code = stop.exit_code(proc.run_handler(args))
    if code > 128 and not getattr(args, "quiet", False):
        proc.report_interrupted(_OPENED)
    return proc.final_flush(code)


if __name__ == "__main__":
    sys.exit(main())
