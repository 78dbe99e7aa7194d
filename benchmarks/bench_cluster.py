"""Benchmark: a SYN scan of the lab /16 x top 100 ports on a hilos cluster, three workers vs one.

Needs root and hilos[cluster]. Builds its own lab with three vantage points; the scheduler and
the client run in vantage 1, the workers in vantages 1..N, each capped at --rate PPS (low
enough that the workers are rate-bound, not CPU-bound, on a small machine). Everything listens
on lab addresses inside the lab's namespaces, with the cluster's mutual TLS. Prints each
configuration's time, the ratio (target <= 0.4) and whether each result equals the one-machine
scan (same seed) host for host and port for port. Usage::

    sudo .venv/bin/python benchmarks/bench_cluster.py                 # --rate 2500 (each worker)
    sudo .venv/bin/python benchmarks/bench_cluster.py --rate 3000 --net 198.18.0.0/20
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hilos.lab import Lab, teardown
from hilos.lab.vantage import vantage_address, vantage_ns

HILOS = [sys.executable, "-m", "hilos"]
TARGET = 0.4


def _in(lab: str, k: int) -> list[str]:
    return ["ip", "netns", "exec", vantage_ns(lab, k)]


def _results(path: Path) -> dict[str, object]:
    objs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {str(o["host"]): o for o in objs}


def _wait_workers(lab: str, address: str, certs: Path, n: int) -> None:
    code = (
        "from distributed import Client\n"
        "from distributed.security import Security\n"
        f"d = {str(certs)!r}\n"
        "sec = Security(tls_ca_file=d + '/ca.pem', tls_client_cert=d + '/node.pem',"
        " tls_client_key=d + '/node.key', require_encryption=True)\n"
        f"with Client({address!r}, security=sec, timeout=20) as c:\n"
        f"    c.wait_for_workers({n}, timeout=60)\n"
    )
    subprocess.run([*_in(lab, 1), sys.executable, "-c", code], check=True, timeout=90)


def run_cluster(
    lab: str, certs: Path, workers: int, rate: float, scan: list[str], out: Path
) -> float:
    """Seconds of one cluster scan with `workers` workers (scheduler and client in vantage 1)."""
    port = 18900 + workers
    address = f"tls://{vantage_address(1)}:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        procs.append(subprocess.Popen(
            [*_in(lab, 1), *HILOS, "cluster", "scheduler", "--listen", address, "--certs",
             str(certs), "-q"], **quiet,  # type: ignore[arg-type]
        ))  # fmt: skip
        time.sleep(2)
        for k in range(1, workers + 1):
            procs.append(subprocess.Popen(
                [*_in(lab, k), *HILOS, "cluster", "worker", address, "--certs", str(certs),
                 "--name", f"w{k}", "--rate", str(rate), "-q"], **quiet,  # type: ignore[arg-type]
            ))  # fmt: skip
        _wait_workers(lab, address, certs, workers)
        start = time.monotonic()
        subprocess.run(
            [*_in(lab, 1), *HILOS, "scan", *scan, "--cluster", address, "--certs", str(certs),
             "-o", str(out)], check=True, stdout=subprocess.DEVNULL, timeout=1800,
        )  # fmt: skip
        return time.monotonic() - start
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=2500.0, help="each worker's --rate (pps)")
    ap.add_argument("--net", default="198.18.0.0/16", help="targets (inside the lab)")
    ap.add_argument("--top-ports", type=int, default=100)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_cluster: needs root (the lab)")
    name = f"hbc{os.getpid() % 100000}"
    teardown(name)
    scan = [args.net, "--top-ports", str(args.top_ports), "--type", "syn"]
    scan += ["--seed", str(args.seed), "-q"]
    with tempfile.TemporaryDirectory(prefix="hilos-bench-cluster-") as tmp:
        tmpdir = Path(tmp)
        certs = tmpdir / "certs"
        try:
            Lab.up(name, vantage=3)
            subprocess.run([*HILOS, "cluster", "certs", str(certs)], check=True,
                           capture_output=True)  # fmt: skip
            ref = tmpdir / "one-machine.jsonl"
            t0 = time.monotonic()
            subprocess.run([*_in(name, 2), *HILOS, "scan", *scan, "-o", str(ref)], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            print(f"one machine, no cap: {time.monotonic() - t0:6.1f} s")
            want = _results(ref)
            times = {}
            for workers in (1, 3):
                out = tmpdir / f"cluster-{workers}.jsonl"
                times[workers] = run_cluster(name, certs, workers, args.rate, scan, out)
                got = _results(out)
                exact = "exact" if got == want else f"DIFFERS ({len(got)} vs {len(want)} hosts)"
                print(
                    f"cluster, {workers} worker(s) at {args.rate:,.0f} pps each: "
                    f"{times[workers]:6.1f} s  {len(got)} hosts  {exact}"
                )
            ratio = times[3] / times[1]
            verdict = "ok" if ratio <= TARGET else "MISSED"
            print(f"ratio 3 workers / 1 worker = {ratio:.2f}  (target <= {TARGET}) {verdict}")
        finally:
            teardown(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
