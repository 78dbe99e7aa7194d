"""Benchmark: hilos SYN scan vs nmap -sS (and masscan) in a private lab, same run, median of N.

Needs root, nmap (and optionally masscan). Builds its own lab with a unique name (one per --rtt
value), runs every scanner INSIDE the lab's scanner namespace, checks every state against the
lab's truth file, prints times and ratios, and tears the lab down. Usage::

    sudo .venv/bin/python benchmarks/bench_syn.py                 # rtt 0 and rtt 40
    sudo .venv/bin/python benchmarks/bench_syn.py --rtt 0 --runs 1
    sudo .venv/bin/python benchmarks/bench_syn.py --no-anchors --previous ../prev/.venv/bin/python

Workloads: all 65,535 ports of 198.18.0.1 (open, closed and filtered ports); the lab /16
(65,536 addresses) x 22,80,443 without discovery. States are rebuilt from each tool's output:
hilos JSON Lines (unlisted ports of a listed host are closed, unlisted hosts are down: every port
filtered), nmap XML (extraports give the state of unlisted ports), masscan lists open ports only.
--previous PYTHON adds a "(previous)" row per hilos row; --no-anchors runs hilos rows only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from _common import PREVIOUS, add_options, prepare_pythons, previous_ratio

from hilos.lab import Lab, teardown

HOST = "198.18.0.1"
NET = "198.18.0.0/16"
ALL_PORTS = list(range(1, 65536))
NET_PORTS = [22, 80, 443]

H1 = "hilos scan --type syn -p-"  # the hilos rows' labels
H16 = "hilos scan --type syn /16 -p22,80,443"

States = dict[tuple[str, int], str]
# A row: its label, one run (run number -> seconds, states found), how many runs.
Tool = tuple[str, Callable[[int], tuple[float, Callable[[str, int], Any]]], int]


def truth_state(truth: dict[str, Any]) -> Callable[[str, int], str]:
    live = {h["addr"]: h["ports"] for h in truth["hosts"]}

    def state(host: str, port: int) -> str:
        ports = live.get(host)
        if ports is None:
            return "filtered"  # dead (silent) or the unreachable block: both filtered
        p = ports.get(str(port))
        return "closed" if p is None else str(p["state"])

    return state


def score(
    found: Callable[[str, int], str | None],
    hosts: Sequence[str],
    ports: Sequence[int],
    truth: Callable[[str, int], str],
) -> tuple[Counter[str], int]:
    """States found (by state) and the number of (host, port) pairs that differ from the truth.
    `found` returns None for "not reported" (masscan reports open ports only)."""
    counts: Counter[str] = Counter()
    wrong = 0
    for h in hosts:
        for p in ports:
            s = found(h, p)
            want = truth(h, p)
            if s is None:
                wrong += want == "open"
                continue
            counts[s] += 1
            wrong += s != want
    return counts, wrong


def hilos_states(path: Path) -> Callable[[str, int], str]:
    listed: dict[str, dict[int, str]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            h = json.loads(line)
            listed[h["host"]] = {p["port"]: p["state"] for p in h["ports"]}

    def state(host: str, port: int) -> str:
        ports = listed.get(host)
        if ports is None:
            return "filtered"  # not listed: down, no port answered
        return ports.get(port, "closed")

    return state


def nmap_states(path: Path) -> Callable[[str, int], str]:
    hosts: dict[str, tuple[dict[int, str], str]] = {}
    root = ET.parse(path).getroot()
    for host in root.iter("host"):
        addr = host.find("address")
        if addr is None:
            continue
        explicit: dict[int, str] = {}
        default = "unknown"
        ports = host.find("ports")
        if ports is not None:
            for ep in ports.iter("extraports"):
                default = ep.get("state", "unknown")
            for p in ports.iter("port"):
                st = p.find("state")
                explicit[int(p.get("portid", "0"))] = (
                    st.get("state", "?") if st is not None else "?"
                )
        hosts[addr.get("addr", "")] = (explicit, default)

    def state(host: str, port: int) -> str:
        if host not in hosts:
            return "missing"
        explicit, default = hosts[host]
        return explicit.get(port, default)

    return state


def masscan_states(path: Path) -> Callable[[str, int], str | None]:
    opened = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "open":
            opened.add((parts[3], int(parts[2])))
    return lambda h, p: "open" if (h, p) in opened else None


class Bench:
    def __init__(self, lab: Lab, workdir: Path, pythons: dict[str, str]) -> None:
        self.lab = lab
        self.dir = workdir
        self.pythons = pythons
        self.truth = truth_state(lab.truth)
        self.gw_mac = self._gateway_mac()

    def _gateway_mac(self) -> str | None:
        # masscan writes Ethernet frames itself: it needs the router's MAC inside the scanner ns.
        self.lab.run(["ping", "-c1", "-W1", HOST], timeout=10)
        out = self.lab.run(["ip", "neigh", "show", "198.19.0.1"], timeout=10).stdout.split()
        return out[out.index("lladdr") + 1] if "lladdr" in out else None

    def timed(self, cmd: Sequence[str], timeout: float = 900) -> float:
        t = time.monotonic()
        try:
            proc = self.lab.run(list(cmd), timeout=timeout)
        except subprocess.TimeoutExpired:
            return math.inf  # reported as a timeout; its output is not scored
        elapsed = time.monotonic() - t
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-500:]}")
        return elapsed

    def hilos(
        self, python: str, target: str, ports: str, tag: str, r: int
    ) -> tuple[float, Callable[[str, int], str]]:
        out = self.dir / f"hilos-{tag}-{r}.jsonl"
        cmd = [python, "-m", "hilos", "scan", target, "-p", ports, "--type", "syn",
               "-Pn", "--format", "json", "-o", str(out)]  # fmt: skip
        return self.timed(cmd), hilos_states(out)

    def hilos_rows(self, label: str, target: str, ports: str, runs: int) -> list[Tool]:
        """One row per interpreter: label + its suffix ("" or " (previous)")."""
        tag = target.replace("/", "_")
        return [
            (label + suffix, partial(self.hilos, python, target, ports, f"{i}-{tag}"), runs)
            for i, (suffix, python) in enumerate(self.pythons.items())
        ]

    def nmap(
        self, target: str, ports: str, timing: Sequence[str], tag: str
    ) -> tuple[float, Callable[[str, int], str]]:
        out = self.dir / f"nmap-{tag}.xml"
        cmd = ["nmap", "-sS", "-n", "-Pn", "-p", ports, *timing, "-oX", str(out), target]
        return self.timed(cmd), nmap_states(out)

    def masscan(
        self, target: str, ports: str, rate: int, tag: str
    ) -> tuple[float, Callable[[str, int], str | None]]:
        out = self.dir / f"masscan-{tag}.txt"
        cmd = ["masscan", target, "-p", ports, "--rate", str(rate), "--wait", "1",
               "--adapter", "scan0", "--adapter-ip", "198.19.0.2", "--adapter-port", "40000",
               "--router-mac", str(self.gw_mac), "-oL", str(out)]  # fmt: skip
        # masscan sometimes stalls for minutes in this lab (seen: 130 s, 270 s, 9 min for 2 s
        # of sending); a stalled run is cut at 60 s and shown as a timeout.
        elapsed = self.timed(cmd, timeout=60)
        if elapsed == math.inf:
            return elapsed, lambda h, p: None
        return elapsed, masscan_states(out)


def run_workload(
    name: str,
    tools: list[Tool],
    hosts: Sequence[str],
    ports: Sequence[int],
    truth: Callable[[str, int], str],
    runs: int,
) -> dict[str, float]:
    """Alternate the tools run by run; print median time, states and mismatches per tool."""
    times: dict[str, list[float]] = {t[0]: [] for t in tools}
    checks: dict[str, list[tuple[Counter[str], int]]] = {t[0]: [] for t in tools}
    for r in range(runs):
        for label, fn, max_runs in tools:
            if r >= max_runs:
                continue
            elapsed, states = fn(r)
            times[label].append(elapsed)
            if elapsed != math.inf:
                checks[label].append(score(states, hosts, ports, truth))
    print(f"\n  {name}")
    want, _ = score(truth, hosts, ports, truth)
    print(f"    truth: {dict(sorted(want.items()))}")
    medians = {}
    width = max(40, *(len(t[0]) for t in tools))
    for label, _fn, _m in tools:
        med = statistics.median(times[label])
        medians[label] = med
        counts, _ = checks[label][-1] if checks[label] else (Counter(), 0)
        worst = max((w for _c, w in checks[label]), default=-1)
        runs_txt = " ".join("timeout" if t == math.inf else f"{t:.2f}" for t in times[label])
        print(
            f"    {label:<{width}} median {med:7.2f} s  (runs: {runs_txt})  "
            f"states {dict(sorted(counts.items()))}  wrong {worst}"
        )
    return medians


def bench_lab(rtt: float, runs: int, workdir: Path, pythons: dict[str, str], anchors: bool) -> None:
    name = f"bsyn{os.getpid() % 100000}r{int(rtt)}"
    teardown(name)
    lab = Lab.up(name, rtt_ms=rtt)
    try:
        b = Bench(lab, workdir, pythons)
        print(f"\n=== lab {name}: rtt {rtt:g} ms, {len(lab.truth['hosts'])} live hosts ===")
        have_masscan = anchors and shutil.which("masscan") is not None and b.gw_mac is not None
        one = b.hilos_rows(H1, HOST, "-", runs)
        if anchors:
            one += [
                ("nmap -sS -p- -T4", lambda r: b.nmap(HOST, "-", ["-T4"], f"t4-{r}"), runs),
                (
                    "nmap -sS -p- -T5 --min-rate 50000",
                    lambda r: b.nmap(HOST, "-", ["-T5", "--min-rate", "50000"], f"t5-{r}"),
                    runs,
                ),
            ]
        if have_masscan:
            one.append(
                (
                    "masscan -p1-65535 --rate 100000",
                    lambda r: b.masscan(HOST, "1-65535", 100000, f"1-{r}"),
                    runs,
                )
            )
        m1 = run_workload(f"all ports of {HOST}", one, [HOST], ALL_PORTS, b.truth, runs)
        hosts = [str(a) for a in ipaddress.ip_network(NET)]
        net = b.hilos_rows(H16, NET, "22,80,443", runs)
        if anchors:
            net.append(
                (
                    "nmap -sS -T5 --min-rate 100000 /16",
                    lambda r: b.nmap(NET, "22,80,443", ["-T5", "--min-rate", "100000"], f"16-{r}"),
                    1,  # about 30-50 s a run: once
                )
            )
        if have_masscan:
            net.append(
                (
                    "masscan /16 --rate 100000",
                    lambda r: b.masscan(NET, "22,80,443", 100000, f"16-{r}"),
                    runs,
                )
            )
        m16 = run_workload(
            f"{NET} x 22,80,443 (no discovery)", net, hosts, NET_PORTS, b.truth, runs
        )
        print(f"\n  ratios (rtt {rtt:g} ms):")
        h1, h16 = m1[H1], m16[H16]
        if PREVIOUS in pythons:
            print(f"    -p- one host:  {previous_ratio(h1, m1[H1 + PREVIOUS])}")
            print(f"    /16 x 3 ports: {previous_ratio(h16, m16[H16 + PREVIOUS])}")
        if not anchors:
            return
        print(f"    -p- one host: hilos / nmap -T4           = {h1 / m1['nmap -sS -p- -T4']:.2f}x")
        t5 = m1["nmap -sS -p- -T5 --min-rate 50000"]
        print(f"    -p- one host: hilos / nmap -T5 min 50000 = {h1 / t5:.2f}x  (target <= 1.0x)")
        n16 = m16["nmap -sS -T5 --min-rate 100000 /16"]
        print(f"    /16 x 3 ports: hilos / nmap              = {h16 / n16:.2f}x  (target <= 0.1x)")
        if have_masscan:
            mc1, mc16 = m1["masscan -p1-65535 --rate 100000"], m16["masscan /16 --rate 100000"]
            for what, h, m in (("-p- one host: ", h1, mc1), ("/16 x 3 ports:", h16, mc16)):
                ratio = "n/a (masscan's median run timed out)" if m == math.inf else f"{h / m:.2f}x"
                print(f"    {what} hilos / masscan           = {ratio}")
        else:
            print("    masscan: skipped (not installed, or no router MAC in the scanner namespace)")
    finally:
        lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rtt", type=float, action="append", help="lab RTT in ms (repeatable)")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool (median; nmap /16 once)")
    add_options(ap)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_syn: needs root (raw sockets, network namespaces)", file=sys.stderr)
        return 2
    anchors = not args.no_anchors
    if anchors and shutil.which("nmap") is None:
        print("bench_syn: needs nmap (apt-get install nmap)", file=sys.stderr)
        return 2
    pythons = prepare_pythons(args)
    with tempfile.TemporaryDirectory(prefix="bench-syn-") as tmp:
        for rtt in args.rtt or [0.0, 40.0]:
            bench_lab(rtt, args.runs, Path(tmp), pythons, anchors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
