"""Benchmark of the ping sweep: hilos vs fping -i0, nmap -sn -T4 and the tutorial's approach.

Builds its own lab (a unique name, removed at the end) and runs every tool inside the lab's
scanner namespace, the only place the lab may be probed from. Root only.

    python benchmarks/bench_sweep.py             # rtt 0
    python benchmarks/bench_sweep.py --rtt 40    # 40 ms round trips (userspace delayer)
    python benchmarks/bench_sweep.py --repeat 1  # quicker
    python benchmarks/bench_sweep.py --previous /work/prev/.venv/bin/python --no-anchors

Cases, alternating tools within each round, median of --repeat rounds (5), wall and CPU time
(user + system: what a tool costs, whatever else the shared machine is doing):
  /24  198.18.0.0/24:  hilos, nmap -sn -T4, fping -i0, the tutorial (100 threads x ping -c1 -W1)
  /16  198.18.0.0/16:  hilos, fping -i0; the tutorial only ESTIMATED from a sample (every 128th
       address, scaled by 128) because a real run takes minutes; nmap not run (the issue
       measured 28.6 s at -T5 --min-rate 20000, far from the target).
Hosts found are checked against the lab's truth file (found / live, missing, extra).
Targets (issue 3): /24 <= 0.3x nmap's time; /16 with every live host <= 1.0x fping's time.
--previous PYTHON adds a row "hilos (previous)" per case; --no-anchors runs hilos rows only.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from _common import PREVIOUS, add_options, prepare_pythons, previous_ratio

from hilos.lab import Lab, teardown

DENSE = "198.18.0.0/24"
NET = "198.18.0.0/16"
SAMPLE_STEP = 128

# The tutorial's sweep: a queue of addresses, 100 threads, one `ping -c1 -W1` subprocess each.
TUTORIAL = r"""
import queue, subprocess, sys, threading
q = queue.Queue()
for line in sys.stdin:
    if line.strip():
        q.put(line.strip())
up, lock = [], threading.Lock()
def worker():
    while True:
        try:
            ip = q.get_nowait()
        except queue.Empty:
            return
        r = subprocess.run(["ping", "-c1", "-W1", ip], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if r.returncode == 0:
            with lock:
                up.append(ip)
ts = [threading.Thread(target=worker) for _ in range(100)]
[t.start() for t in ts]
[t.join() for t in ts]
print("\n".join(up))
"""

Found = set[str]


def run_timed(
    lab: Lab, cmd: Sequence[str], parse: Callable[[str], Found], stdin: str | None = None,
    timeout: float = 300,
) -> tuple[float, Found, float]:  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = lab.run(list(cmd), timeout=timeout, input=stdin)
    elapsed = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):  # fping exits 1 when some targets are unreachable
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[-300:]}")
    # CPU seconds (user + system of the tool and its children): unlike wall time, they do
    # not depend on what else the machine is doing.
    return elapsed, parse(proc.stdout), cpu


def parse_lines(out: str) -> Found:
    return {line.strip() for line in out.splitlines() if line.strip()}


def parse_hilos(out: str) -> Found:
    rows = (json.loads(line) for line in out.splitlines() if line.strip())
    return {r["host"] for r in rows if r["status"] == "up"}


def parse_nmap_grep(out: str) -> Found:
    found = set()
    for line in out.splitlines():
        if line.startswith("Host:") and "Status: Up" in line:
            found.add(line.split()[1])
    return found


def tools_for(
    net: str, pythons: dict[str, str], anchors: bool
) -> dict[str, tuple[list[str], Callable[[str], Found]]]:
    fping = ["fping", "-a", "-q", "-i0", "-g", net]
    nmap = ["nmap", "-sn", "-T4", "-n", "-oG", "-", net]
    tools: dict[str, tuple[list[str], Callable[[str], Found]]] = {
        f"hilos{suffix}": ([python, "-m", "hilos", "sweep", net, "--format", "json", "-q"],
                           parse_hilos)
        for suffix, python in pythons.items()
    }  # fmt: skip
    if anchors and net == DENSE:
        tools["fping -i0"] = (fping, parse_lines)
        tools["nmap -sn -T4"] = (nmap, parse_nmap_grep)
    elif anchors:
        # fping 5.1's default 3 retries need more than its 65,535 sequence numbers on a /16:
        # it aborts ("not enough sequence numbers available", exit 4) after ~1 s. With -r0
        # it sends one echo per address and waits its 500 ms timeout: the baseline here.
        tools["fping -i0 -r0"] = ([*fping[:4], "-r0", *fping[4:]], parse_lines)
    return tools


def describe(found: Found, live: Found) -> str:
    missing, extra = len(live - found), len(found - live)
    text = f"{len(found & live)}/{len(live)}"
    if missing or extra:
        text += f" (missing {missing}, extra {extra})"
    else:
        text += " exact"
    return text


def bench_case(
    lab: Lab, net: str, repeat: int, pythons: dict[str, str], anchors: bool
) -> dict[str, tuple[float, Found, float]]:
    """{tool: (median seconds, hosts found in the last run, median CPU seconds)}"""
    tools = tools_for(net, pythons, anchors)
    names = list(tools)
    times: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    last: dict[str, Found] = {}
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)]  # alternate who goes first
        for name in order:
            cmd, parse = tools[name]
            elapsed, found, used = run_timed(lab, cmd, parse)
            times[name].append(elapsed)
            cpu[name].append(used)
            last[name] = found
            time.sleep(0.3)  # let the lab's queues drain between tools
    return {n: (statistics.median(times[n]), last[n], statistics.median(cpu[n])) for n in names}


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def tutorial(lab: Lab, addrs: list[str]) -> tuple[float, Found, float]:
    return run_timed(
        lab, [sys.executable, "-c", TUTORIAL], parse_lines, stdin="\n".join(addrs) + "\n",
        timeout=900,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtt", type=float, default=0.0, help="lab round-trip time in ms (0)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds; the median is reported (5)")
    ap.add_argument("--name", default=f"bsw{os.getpid() % 100000}", help="lab name (unique)")
    add_options(ap)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_sweep: needs root (it builds a lab of network namespaces)", file=sys.stderr)
        return 2
    teardown(args.name)
    pythons, anchors = prepare_pythons(args), not args.no_anchors
    t0 = time.monotonic()
    lab = Lab.up(args.name, rtt_ms=args.rtt)
    try:
        up_s = time.monotonic() - t0
        print(f"lab {args.name}: rtt {args.rtt:g} ms, up in {up_s:.1f} s, "
              f"{len(lab.truth['hosts'])} hosts; median of {args.repeat}, alternating")  # fmt: skip
        hosts = lab.truth["hosts"]
        live24 = {
            h["addr"]
            for h in hosts
            if ipaddress.ip_address(h["addr"]) in ipaddress.ip_network(DENSE)
        }
        live16 = {h["addr"] for h in hosts if h["family"] == 4}
        icmp16 = {h["addr"] for h in hosts if h["family"] == 4 and h["icmp"]}
        print(f"truth: /24 {len(live24)} live; /16 {len(live16)} live, {len(icmp16)} answer ICMP")

        print(f"\n== {DENSE} ==")
        res24 = bench_case(lab, DENSE, args.repeat, pythons, anchors)
        if anchors:
            dense = [str(a) for a in ipaddress.ip_network(DENSE)]
            tut24 = [tutorial(lab, dense) for _ in range(args.repeat)]
            res24["tutorial (100 thr x ping)"] = (
                statistics.median(t for t, _, _ in tut24),
                tut24[-1][1],
                statistics.median(c for _, _, c in tut24),
            )
        for name, (secs, found, used) in res24.items():
            print(f"  {name:28s} {secs:7.2f} s  cpu {used:6.2f} s   {describe(found, live24)}")
        if anchors:
            h24, n24 = res24["hilos"][0], res24["nmap -sn -T4"][0]
            print(f"  ratio hilos/nmap = {h24 / n24:.2f}   (target <= 0.30)   {_load()}")
        _print_previous(res24)

        print(f"\n== {NET} ==")
        res16 = bench_case(lab, NET, args.repeat, pythons, anchors)
        for name, (secs, found, used) in res16.items():
            print(f"  {name:28s} {secs:7.2f} s  cpu {used:6.2f} s   {describe(found, live16)}")
        if anchors:
            _anchors16(lab, res16, live16)
        _print_previous(res16)
    finally:
        lab.down()
    return 0


def _print_previous(res: dict[str, tuple[float, Found, float]]) -> None:
    if "hilos" + PREVIOUS in res:
        print(f"  {previous_ratio(res['hilos'][0], res['hilos' + PREVIOUS][0])}   {_load()}")


def _anchors16(lab: Lab, res16: dict[str, tuple[float, Found, float]], live16: Found) -> None:
    """The /16's tutorial estimate and the ratio to fping."""
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    sample = [str(ipaddress.IPv4Address(base + i)) for i in range(0, 65536, SAMPLE_STEP)]
    t_s, found_s, _cpu = tutorial(lab, sample)
    live_s = {a for a in live16 if (int(ipaddress.IPv4Address(a)) - base) % SAMPLE_STEP == 0}
    print(f"  {'tutorial (ESTIMATE)':28s} {t_s * SAMPLE_STEP:7.1f} s   "
          f"from {len(sample)} sampled addresses in {t_s:.2f} s x {SAMPLE_STEP}; "
          f"sample: {describe(found_s, live_s)}")  # fmt: skip
    h16, f16 = res16["hilos"][0], res16["fping -i0 -r0"][0]
    print(f"  ratio hilos/fping = {h16 / f16:.2f}   (target <= 1.00, with every live host)   "
          f"{_load()}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
