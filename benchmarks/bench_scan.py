"""Benchmark of the port scanner: hilos (connect) vs nmap -sT / -sV and the tutorial's approach.

Builds its own lab (a unique name, removed at the end) and runs every tool inside the lab's
scanner namespace, the only place the lab may be probed from. Root only.

    python benchmarks/bench_scan.py            # rtt 0
    python benchmarks/bench_scan.py --rtt 40   # 40 ms round trips
    python benchmarks/bench_scan.py --repeat 3 --quick
    python benchmarks/bench_scan.py --previous /work/prev/.venv/bin/python --no-anchors

Cases (same run, alternating tools, median of --repeat runs; nmap -sV once when slow):
  full   -p- of one host (198.18.0.1):  hilos vs nmap -sT -p- -T4 vs tutorial (100 threads)
  dense  198.18.0.0/24 x 1-1024 with discovery:  hilos vs nmap -sT -p1-1024 -T4
  svc    the service hosts' ports with banners:  hilos --banners vs nmap -sV
Each result is checked against the lab's truth file: "exact" or the number of wrong ports.
--previous PYTHON adds a row "hilos (previous)" per case; --no-anchors runs hilos rows only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import PREVIOUS, add_options, prepare_pythons, previous_ratio

from hilos.lab import Lab, teardown

FULL_HOST = "198.18.0.1"
DENSE = "198.18.0.0/24"
SERVICE_HOSTS = ["198.18.0.1", "198.18.0.4"]

# The tutorial's scanner: a queue of ports, N threads, blocking connect_ex with a timeout.
TUTORIAL = r"""
import queue, socket, sys, threading, json
host, threads, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
q = queue.Queue()
for port in range(1, 65536):
    q.put(port)
opened = []
lock = threading.Lock()
def worker():
    while True:
        try:
            port = q.get_nowait()
        except queue.Empty:
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        if s.connect_ex((host, port)) == 0:
            with lock:
                opened.append(port)
        s.close()
ts = [threading.Thread(target=worker) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(sorted(opened)))
"""

States = dict[str, dict[int, str]]  # host -> port -> state (closed ports left out)


def truth_states(lab: Lab, hosts: list[str] | None, ports: range | list[int]) -> States:
    want = set(ports)
    out: States = {}
    for h in lab.truth["hosts"]:
        if hosts is not None and h["addr"] not in hosts:
            continue
        if hosts is None and not h["addr"].startswith("198.18.0."):
            continue
        out[h["addr"]] = {int(p): v["state"] for p, v in h["ports"].items() if int(p) in want}
    return out


def diff(got: States, want: States) -> str:
    wrong = 0
    for host in set(got) | set(want):
        g, w = got.get(host, {}), want.get(host, {})
        wrong += sum(1 for p in set(g) | set(w) if g.get(p) != w.get(p))
        if host not in got or host not in want:
            wrong += 1
    return "exact" if wrong == 0 else f"{wrong} wrong"


def run(lab: Lab, cmd: list[str], timeout: float = 600) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = lab.run(cmd, timeout=timeout)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])}... failed ({out.returncode}): {out.stderr[-500:]}")
    return elapsed, out.stdout


def hilos_states(stdout: str) -> tuple[States, dict[str, dict[int, dict[str, Any]]]]:
    states: States = {}
    ports: dict[str, dict[int, dict[str, Any]]] = {}
    for line in stdout.splitlines():
        d = json.loads(line)
        states[d["host"]] = {p["port"]: p["state"] for p in d["ports"] if p["state"] != "closed"}
        ports[d["host"]] = {p["port"]: p for p in d["ports"]}
    return states, ports


def nmap_states(xml_text: str) -> tuple[States, dict[str, dict[int, dict[str, Any]]]]:
    root = ET.fromstring(xml_text)
    states: States = {}
    ports: dict[str, dict[int, dict[str, Any]]] = {}
    for host in root.findall("host"):
        if host.find("status").get("state") != "up":  # type: ignore[union-attr]
            continue
        addr = host.find("address").get("addr")  # type: ignore[union-attr]
        assert addr is not None
        states[addr] = {}
        ports[addr] = {}
        for p in host.findall("ports/port"):
            num = int(p.get("portid", "0"))
            state = p.find("state").get("state")  # type: ignore[union-attr]
            svc = p.find("service")
            info = {
                "state": state,
                "service": svc.get("name") if svc is not None else None,
                "product": svc.get("product") if svc is not None else None,
                "version": svc.get("version") if svc is not None else None,
                "tls": bool(svc is not None and svc.get("tunnel") == "ssl"),
            }
            ports[addr][num] = info
            if state != "closed":
                states[addr][num] = str(state)
    return states, ports


Row = Callable[[], tuple[float, str]]  # one run of a tool: (seconds, verdict)


def hilos_rows(
    lab: Lab, pythons: dict[str, str], argv: list[str], verdict: Callable[[str], str]
) -> dict[str, Row]:
    """One row per interpreter, "hilos" + suffix: `python -m hilos *argv`, stdout -> verdict."""

    def row(python: str) -> Row:
        def go() -> tuple[float, str]:
            t, out = run(lab, [python, "-m", "hilos", *argv])
            return t, verdict(out)

        return go

    return {f"hilos{suffix}": row(python) for suffix, python in pythons.items()}


def median_runs(repeat: int, fns: dict[str, Row]) -> dict[str, tuple[float, str]]:
    """Run each tool `repeat` times, alternating; the median time and the last verdict."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    verdict: dict[str, str] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            t, v = fn()
            times[name].append(t)
            verdict[name] = v
    return {k: (statistics.median(v), verdict[k]) for k, v in times.items()}


def report(title: str, rows: dict[str, tuple[float, str]], base: str, target: float) -> None:
    """The rows, with their ratio to `base` and its target when `base` was run (anchors)."""
    print(f"\n{title}")
    ref = rows[base][0] if base in rows else None
    for name, (t, v) in rows.items():
        vs = "" if ref is None else f"{t / ref if ref else float('nan'):5.2f}x {base:<10} "
        print(f"  {name:<34} {t:7.2f} s   {vs}{v}")
    h = rows["hilos"][0]
    if ref is not None:
        ok = "MET" if h <= target * ref and rows["hilos"][1] == "exact" else "NOT MET"
        print(f"  target: hilos <= {target}x {base}, exact -> {ok} ({h / ref:.2f}x)")
    print_previous(rows)


def print_previous(rows: dict[str, tuple[float, str]]) -> None:
    if "hilos" + PREVIOUS in rows:
        print(f"  {previous_ratio(rows['hilos'][0], rows['hilos' + PREVIOUS][0])}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rtt", type=float, default=0.0, help="lab round-trip time in ms")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="skip the tutorial and nmap -sV")
    add_options(ap)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_scan: needs root (it builds a lab in network namespaces)", file=sys.stderr)
        return 2
    name = f"hbs{os.getpid() % 100000}"
    teardown(name)
    pythons = prepare_pythons(args)
    print(f"building lab {name} (rtt {args.rtt:g} ms) ...", flush=True)
    lab = Lab.up(name, rtt_ms=args.rtt)
    tmp = Path(tempfile.mkdtemp(prefix="hilos-bench-"))
    try:
        return _bench(lab, args, pythons, tmp)
    finally:
        lab.down()


def _bench(lab: Lab, args: argparse.Namespace, pythons: dict[str, str], tmp: Path) -> int:
    rtt, anchors = args.rtt, not args.no_anchors
    full = range(1, 65536)
    want_full = truth_states(lab, [FULL_HOST], full)
    want_dense = truth_states(lab, None, range(1, 1025))
    # nmap's -T4 timing; under latency nmap adapts by itself, as hilos does.

    def nmap_full() -> tuple[float, str]:
        t, out = run(lab, ["nmap", "-sT", "-p-", "-T4", "-n", FULL_HOST, "-oX", "-"])
        return t, diff(nmap_states(out)[0], want_full)

    def tutorial(threads: int) -> Callable[[], tuple[float, str]]:
        def go() -> tuple[float, str]:
            t, out = run(lab, [sys.executable, "-c", TUTORIAL, FULL_HOST, str(threads), "1.0"])
            opened = set(json.loads(out))
            truth_open = {p for p, s in want_full[FULL_HOST].items() if s == "open"}
            filtered = sum(1 for s in want_full[FULL_HOST].values() if s == "filtered")
            wrong = len(opened ^ truth_open) + filtered  # cannot tell filtered from closed
            return t, "exact" if wrong == 0 else f"{wrong} wrong (filtered seen as closed)"

        return go

    fns = hilos_rows(lab, pythons,
                     ["scan", FULL_HOST, "-p-", "--type", "connect", "--format", "json", "-q"],
                     lambda out: diff(hilos_states(out)[0], want_full))  # fmt: skip
    if anchors:
        fns["nmap -sT -p- -T4"] = nmap_full
    if anchors and not args.quick:
        fns["tutorial (100 threads, connect_ex)"] = tutorial(100)
        if rtt > 0:
            fns["tutorial (1000 threads, connect_ex)"] = tutorial(1000)
    rows = median_runs(args.repeat, fns)
    report(f"-p- one host ({FULL_HOST}), rtt {rtt:g} ms", rows, "nmap -sT -p- -T4",
           0.3 if rtt > 0 else 0.8)  # fmt: skip

    def nmap_dense() -> tuple[float, str]:
        t, out = run(lab, ["nmap", "-sT", "-p1-1024", "-T4", "-n", DENSE, "-oX", "-"])
        return t, diff(nmap_states(out)[0], want_dense)

    fns = hilos_rows(lab, pythons,
                     ["scan", DENSE, "-p", "1-1024", "--type", "connect", "--format", "json", "-q"],
                     lambda out: diff(hilos_states(out)[0], want_dense))  # fmt: skip
    if anchors:
        fns["nmap -sT -p1-1024 -T4"] = nmap_dense
    rows = median_runs(args.repeat, fns)
    report(f"{DENSE} x 1-1024 with discovery, rtt {rtt:g} ms", rows, "nmap -sT -p1-1024 -T4",
           0.3)  # fmt: skip

    # Services: the same ports of the service hosts, named by each tool, checked vs truth.
    by = {h["addr"]: h for h in lab.truth["hosts"]}
    svc_ports = sorted({int(p) for a in SERVICE_HOSTS for p in by[a]["ports"]})
    spec = ",".join(map(str, svc_ports))

    def named(ports: dict[str, dict[int, dict[str, Any]]], nmap: bool) -> str:
        total = right = 0
        for a in SERVICE_HOSTS:
            for p, want in by[a]["ports"].items():
                if want["state"] != "open":
                    continue
                total += 1
                got = ports.get(a, {}).get(int(p), {})
                name = got.get("service")
                if nmap and got.get("tls") and name in ("http", "smtp"):
                    name = {"http": "https", "smtp": "smtps"}[name]  # nmap's ssl/http = https
                if name == want["service"] and got.get("product") == want["product"]:
                    right += 1
        return f"{right}/{total} services named right"

    def nmap_svc() -> tuple[float, str]:
        t, out = run(lab, ["nmap", "-sT", "-sV", "-T4", "-n", "-p", spec, *SERVICE_HOSTS,
                           "-oX", "-"], timeout=900)  # fmt: skip
        return t, named(nmap_states(out)[1], nmap=True)

    if args.quick:
        return 0
    fns = hilos_rows(lab, pythons, ["scan", *SERVICE_HOSTS, "-p", spec, "--type", "connect",
                                    "--banners", "--format", "json", "-q"],
                     lambda out: named(hilos_states(out)[1], nmap=False))  # fmt: skip
    rows = median_runs(args.repeat, fns)
    if anchors:
        rows["nmap -sV -sT -T4"] = nmap_svc()  # once: it is slow
    print(f"\nservices on {' '.join(SERVICE_HOSTS)} ({len(svc_ports)} ports), rtt {rtt:g} ms")
    ref = rows["nmap -sV -sT -T4"][0] if anchors else None
    for name_, (t, v) in rows.items():
        vs = "" if ref is None else f"{t / ref:5.2f}x nmap -sV    "
        print(f"  {name_:<34} {t:7.2f} s   {vs}{v}")
    if ref is not None:
        h = rows["hilos"][0]
        ok = "MET" if h <= 0.1 * ref else "NOT MET"
        print(f"  target: hilos <= 0.1x nmap -sV -> {ok} ({h / ref:.2f}x)")
    print_previous(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
