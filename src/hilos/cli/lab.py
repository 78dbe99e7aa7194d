"""`hilos lab`: build, inspect, remove the practice network, or run a command inside it."""

from __future__ import annotations

import argparse
import sys

from hilos.cli.options import Parser, Subcommands, non_negative_float, non_negative_int
from hilos.errors import HilosError, UsageError

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos lab` and its actions (up, down, status, run)."""
    lab = sub.add_parser("lab", help="the practice network in namespaces (root)")
    lab_sub = lab.add_subparsers(dest="lab_command", metavar="ACTION", parser_class=Parser)
    lab_sub.required = True
    up = lab_sub.add_parser("up", help="build the lab")
    up.add_argument(
        "--rtt",
        type=non_negative_float,
        default=0.0,
        metavar="MS",
        help="added round-trip time in ms (default 0)",
    )
    up.add_argument(
        "--loss",
        type=non_negative_float,
        default=0.0,
        metavar="PERCENT",
        help="percent of packets lost at the router, either way (default 0)",
    )
    up.add_argument(
        "--icmp-ratelimit",
        action="store_true",
        help="each host rate-limits its ICMP errors as Linux does by default (1/s after a "
        "burst of 6, per peer); without it they are unlimited",
    )
    up.add_argument(
        "--seed", type=int, default=1, metavar="N", help="seed of the host plan (default 1)"
    )
    up.add_argument(
        "--dense",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="live hosts in the dense /24 (default 60)",
    )
    up.add_argument(
        "--sparse",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="live hosts scattered over the /16 (default 500)",
    )
    up.add_argument(
        "--ipv6",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="live IPv6 hosts in fd18:0:0:100::/64 (default 6)",
    )
    up.add_argument(
        "--vantage",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="also N vantage points: scanner namespaces NAME-v1..vN on the lab network "
        "(for hilos cluster members; default 0)",
    )
    up.set_defaults(handler=run)
    down = lab_sub.add_parser("down", help="remove the lab")
    down.set_defaults(handler=run)
    status = lab_sub.add_parser("status", help="is the lab up; where is its truth file")
    status.set_defaults(handler=run)
    inside = lab_sub.add_parser("run", help="run a command in the scanner namespace")
    inside.add_argument(
        "--vantage",
        type=non_negative_int,
        default=0,
        metavar="K",
        help="run in vantage point K (from lab up --vantage) instead of the scanner namespace",
    )
    inside.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- CMD")
    inside.set_defaults(handler=run)
    for action in (up, down, status, inside):
        action.add_argument(
            "--name",
            default="hilos",
            help="lab name (prefix of its namespaces; default hilos)",
        )


def run(args: argparse.Namespace) -> int:
    """hilos lab ACTION: up, down and status report on stdout; run execs the command."""
    import os
    import time

    from hilos.lab import Lab, LabStatus, teardown

    def counts_line(st: LabStatus) -> str:
        extra = [f"rtt {st.rtt_ms:g} ms"] if st.rtt_ms else []
        extra += [f"loss {st.loss_percent:g}%"] if st.loss_percent else []
        extra += ["ICMP errors rate-limited per host"] if st.icmp_ratelimit else []
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
        lab = Lab.up(
            name,
            rtt_ms=args.rtt,
            loss_percent=args.loss,
            icmp_ratelimit=args.icmp_ratelimit,
            seed=args.seed,
            vantage=args.vantage,
            **counts,
        )
        took = time.monotonic() - start
        st = Lab.status(name)
        print(f"lab {name} up in {took:.1f} s: {counts_line(st)}")
        print(f"scanner namespace: {lab.scanner_ns} (no default route; reaches only the lab)")
        print(f"truth: {lab.truth_path}")
        if args.vantage:
            from hilos.lab.vantage import vantage_address

            where = ", ".join(f"{k}: {vantage_address(k)}" for k in range(1, args.vantage + 1))
            print(f"vantage points ({name}-v1..v{args.vantage}): {where}")
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
    where = lab.scanner_ns
    if args.vantage:
        from hilos.lab.vantage import vantage_ns

        where = vantage_ns(name, args.vantage)
        if not os.path.exists(f"/run/netns/{where}"):
            raise UsageError(f"lab {name} has no vantage point {args.vantage}")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp("ip", ["ip", "netns", "exec", where, *cmd])
    except OSError as exc:
        raise HilosError(f"lab run: cannot run ip netns exec: {exc}") from exc
