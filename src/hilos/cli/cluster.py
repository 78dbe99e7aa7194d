"""`hilos cluster certs|scheduler|worker`: the members of a hilos scanning cluster (Dask)."""

from __future__ import annotations

import argparse
import sys

from hilos.cli.options import Subcommands, positive_float
from hilos.cli.process import EXIT_INTERRUPTED, EXIT_OK

__all__ = ["add", "run"]


def add(sub: Subcommands) -> None:
    """Register `hilos cluster` and its three actions."""
    cluster = sub.add_parser("cluster", help="scan from several machines (Dask; hilos[cluster])")
    actions = cluster.add_subparsers(dest="action", metavar="ACTION", parser_class=type(cluster))
    actions.required = True
    certs = actions.add_parser("certs", help="write a CA and a node certificate for mutual TLS")
    certs.add_argument("dir", metavar="DIR", help="directory to create the files in")
    sched = actions.add_parser("scheduler", help="run the cluster's scheduler")
    sched.add_argument("--listen", required=True, metavar="tls://ADDR:PORT")
    worker = actions.add_parser("worker", help="run a scanner worker")
    worker.add_argument("scheduler", metavar="tls://ADDR:PORT")
    worker.add_argument("--name", help="the worker's name (progress lines show it)")
    worker.add_argument(
        "--rate", type=positive_float, metavar="PPS", help="most probes a second it sends"
    )
    for p in (sched, worker):
        p.add_argument("--certs", metavar="DIR", help="certificates from hilos cluster certs")
        p.add_argument(
            "--insecure",
            action="store_true",
            help="allow tcp:// (no TLS) on a loopback or lab address",
        )
        p.add_argument("-q", "--quiet", action="store_true", help="say nothing on stderr")
    cluster.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """One cluster action; scheduler and worker run until Ctrl-C or SIGTERM."""
    from hilos.cluster import require_distributed

    require_distributed()
    if args.action == "certs":
        from hilos.cluster.certs import make_certs

        paths = make_certs(args.dir)
        sys.stderr.write(
            f"hilos: wrote {paths.ca}, {paths.cert}, {paths.key} (and the CA key {paths.ca_key}); "
            "copy all but ca.key to each member\n"
        )
        return EXIT_OK
    from hilos.cluster.daemons import run_scheduler, run_worker
    from hilos.cluster.security import parse_address, security_for

    text = args.listen if args.action == "scheduler" else args.scheduler
    option = "--listen" if args.action == "scheduler" else "scheduler"
    address = parse_address(text, insecure=args.insecure, option=option)
    security = security_for(address, args.certs)
    _quiet_dask()

    def ready(where: str) -> None:
        if not args.quiet:
            sys.stderr.write(f"hilos: {args.action} at {where}\n")
            sys.stderr.flush()

    try:
        if args.action == "scheduler":
            run_scheduler(address, security, on_ready=ready)
        else:
            run_worker(address, security, name=args.name, rate=args.rate, on_ready=ready)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def _quiet_dask() -> None:
    """Dask logs every connection at INFO; hilos prints one line of its own."""
    import logging

    for name in ("distributed", "distributed.scheduler", "distributed.worker"):
        logging.getLogger(name).setLevel(logging.WARNING)
