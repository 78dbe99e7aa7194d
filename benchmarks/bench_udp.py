"""Benchmark: hilos UDP scan vs nmap -sU -T4 in a private lab, with discovery, states checked.

Needs root and nmap. For each case (plain; --rtt 40; --loss 10; ratelimit: every host limits its
ICMP errors as Linux does by default, `hilos lab up --icmp-ratelimit`) builds its own lab (the dense
/24 only), runs every scanner INSIDE the lab's scanner namespace on the lab /24 x the top N UDP
ports (default 100; nmap gets the very same port list), rebuilds each tool's states from its
output, checks them against the lab's truth file (every (host, port) of the live hosts, and the
hosts found up), checks the services named for every open UDP port, and runs the unprivileged
path (as nobody, -Pn on the live hosts) for the same states. hilos runs `--repeat` times (3) and
its median is compared (the rate-limited case: once, since the hosts' ICMP budgets would carry
over); every run's states are checked. nmap -sU is slow by design: its run
is capped (--nmap-cap seconds, default 240); a capped run is reported as "> cap s" and the ratio
is then an upper bound. Usage::

    sudo .venv/bin/python benchmarks/bench_udp.py                   # the four cases
    sudo .venv/bin/python benchmarks/bench_udp.py --quick           # 8 hosts x 20 ports, a check
    sudo .venv/bin/python benchmarks/bench_udp.py --case plain --nmap-cap 600
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

from _common import compile_hilos

from hilos.lab import Lab, teardown
from hilos.targets.udp_ports import top_udp_ports, udp_service_name

NET = "198.18.0.0/24"
# name -> (rtt ms, loss %, hosts rate-limit their ICMP errors as Linux does by default)
CASES = {
    "plain": (0.0, 0.0, False),
    "rtt40": (40.0, 0.0, False),
    "loss10": (0.0, 10.0, False),
    "ratelimit": (0.0, 0.0, True),
}
TARGET = 0.1
States = dict[tuple[str, int], str]


def truth_states(truth: dict[str, Any], ports: list[int]) -> tuple[States, dict[str, Any]]:
    """(host, port) -> state for every live host of the /24, and the open ports' services."""
    net = ipaddress.ip_network(NET)
    states: States = {}
    services: dict[str, Any] = {}
    for h in truth["hosts"]:
        if h["family"] != 4 or ipaddress.ip_address(h["addr"]) not in net:
            continue
        for p in ports:
            u = h["udp"].get(str(p))
            states[h["addr"], p] = "closed" if u is None else u["state"]
            if u is not None and u["state"] == "open":
                services[f"{h['addr']}:{p}"] = [u["service"], u["product"], u["version"]]
    return states, services


def hilos_states(path: Path) -> tuple[States, dict[str, Any], set[str]]:
    states: States = {}
    services: dict[str, Any] = {}
    up = set()
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if row.get("status") == "up":
            up.add(row["host"])
        for p in row.get("ports", ()):
            states[row["host"], p["port"]] = p["state"]
            if p["state"] == "open":
                services[f"{row['host']}:{p['port']}"] = [
                    p.get("service"), p.get("product"), p.get("version")]  # fmt: skip
    return states, services, up


def nmap_states(path: Path, ports: list[int]) -> States:
    states: States = {}
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, FileNotFoundError):
        return states  # cut short before any host was written
    for host in root.iter("host"):
        addr = host.find("address")
        status = host.find("status")
        if addr is None or status is None or status.get("state") != "up":
            continue
        default = "unknown"
        explicit: dict[int, str] = {}
        for ep in host.iter("extraports"):
            default = ep.get("state", "unknown")
        for p in host.iter("port"):
            st = p.find("state")
            explicit[int(p.get("portid", "0"))] = st.get("state", "?") if st is not None else "?"
        for port in ports:
            states[addr.get("addr", ""), port] = explicit.get(port, default)
    return states


def wrong(found: States, truth: States) -> int:
    return len(wrong_ones(found, truth))


def wrong_ones(found: States, truth: States) -> list[str]:
    """Each wrong state as "host:port got X, want Y" (what a failed run prints)."""
    return [f"{h}:{p} got {found.get((h, p))}, want {v}" for (h, p), v in truth.items()
            if found.get((h, p)) != v]  # fmt: skip


def nobody_python(copy: Path) -> tuple[list[str], dict[str, str]]:
    """setpriv + an interpreter nobody can run with a world-readable copy of hilos."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1")
    setpriv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    for python in dict.fromkeys([sys.executable, os.path.realpath(sys.executable),
                                 "/usr/bin/python3"]):  # fmt: skip
        ok = subprocess.run([*setpriv, python, "-c", "import hilos"], env=env, cwd=str(copy),
                            capture_output=True, check=False)  # fmt: skip
        if ok.returncode == 0:
            return [*setpriv, python], env
    sys.exit("bench: no Python that nobody can run with hilos")


class Case:
    def __init__(
        self, name: str, rtt: float, loss: float, ratelimit: bool, dense: int, ports: list[int]
    ) -> None:
        self.name, self.ports, self.rtt, self.ratelimit = name, ports, rtt, ratelimit
        self.lab_name = f"hbu{name[:5]}"
        teardown(self.lab_name)
        self.lab = Lab.up(self.lab_name, dense=dense, sparse=0, ipv6=0, rtt_ms=rtt,
                          loss_percent=loss, icmp_ratelimit=ratelimit)  # fmt: skip
        self.dir = Path(tempfile.mkdtemp(prefix="bench-udp-"))
        self.truth, self.truth_services = truth_states(self.lab.truth, ports)
        self.live = sorted({h for h, _ in self.truth}, key=ipaddress.ip_address)

    def refill(self) -> None:
        """Behind the hosts' ICMP rate limit, the next tool starts with full budgets (6 s)."""
        if self.ratelimit:
            time.sleep(7.0)

    def close(self) -> None:
        self.lab.down()
        shutil.rmtree(self.dir, ignore_errors=True)

    def hilos(
        self,
        prefix: list[str] | None = None,
        env: dict[str, str] | None = None,
        targets: list[str] | None = None,
        tag: str = "root",
    ) -> tuple[float, Path, str]:
        out = self.dir / f"hilos-{tag}.jsonl"
        if prefix is not None:
            out.touch(mode=0o666)
            out.chmod(0o666)
            os.chmod(self.dir, 0o777)
        spec = ",".join(map(str, self.ports))
        cmd = [*(prefix or [sys.executable]), "-m", "hilos", "scan", "-sU", "-p", spec,
               "--all", "-q", "-oJ", str(out), *(targets or [NET])]  # fmt: skip
        t = time.monotonic()
        proc = self.lab.run(cmd, timeout=1800, env=env)
        elapsed = time.monotonic() - t
        if proc.returncode != 0:
            sys.exit(f"bench: hilos failed: {proc.stderr[-1500:]}")
        return elapsed, out, proc.stderr.strip()

    def nmap(self, cap: float) -> tuple[float, bool, States, str]:
        out = self.dir / "nmap.xml"
        spec = ",".join(map(str, self.ports))
        cmd = ["ip", "netns", "exec", self.lab.scanner_ns, "nmap", "-sU", "-T4", "-n", "-p", spec,
               "-oX", str(out), NET]  # fmt: skip
        t = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        capped = False
        try:
            text, _ = proc.communicate(timeout=cap)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
            capped = True
        elapsed = time.monotonic() - t
        own = [ln for ln in (text or "").splitlines() if ln.startswith("Nmap done")]
        return elapsed, capped, nmap_states(out, self.ports), own[0] if own else "(no summary)"


def run_case(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== {case.name}: lab {NET} ({len(case.live)} live hosts) x {len(case.ports)} UDP "
          f"ports, rtt {case.rtt} ms{', ICMP rate-limited per host' if case.ratelimit else ''}"
          " ==", flush=True)  # fmt: skip
    # hilos runs `--repeat` times (its median is the figure, every run's states are checked);
    # nmap once (minutes under a rate limit). The rate-limited case runs hilos once: the hosts'
    # ICMP budgets would carry over from one run to the next.
    times, bad, missing, svc_bad, examples = [], 0, [], {}, []
    for _ in range(1 if case.ratelimit else args.repeat):
        t_run, out, _ = case.hilos()
        states, services, up = hilos_states(out)
        times.append(t_run)
        bad_run = wrong_ones(states, case.truth)
        bad, examples = max(bad, len(bad_run)), examples + bad_run[:3]
        missing = sorted(set(missing) | (set(case.live) - up))
        svc_bad |= {k: (services.get(k), v) for k, v in case.truth_services.items()
                    if services.get(k) != v}  # fmt: skip
    t_h = statistics.median(times)
    counts = Counter(case.truth.values())
    runs = f" (median of {', '.join(f'{t:.2f}' for t in times)})" if len(times) > 1 else ""
    print(f"  hilos scan -sU          {t_h:8.2f} s   wrong states {bad}/{len(case.truth)}, "
          f"hosts missed {len(missing)}, services wrong {len(svc_bad)}/{len(case.truth_services)}"
          f"   truth {dict(counts)}{runs}")  # fmt: skip
    for k, v in list(svc_bad.items())[:5]:
        print(f"    service {k}: got {v[0]}, want {v[1]}")
    for line in examples[:5]:
        print(f"    wrong: {line}")
    row: dict[str, Any] = {"case": case.name, "hilos_s": round(t_h, 2), "wrong": bad,
                           "hilos_runs": [round(t, 2) for t in times],
                           "services_wrong": len(svc_bad), "missed_hosts": missing}  # fmt: skip
    if not args.no_unprivileged:
        copy = Path(tempfile.mkdtemp(prefix="hilos-src-"))
        shutil.copytree(Path(__file__).resolve().parent.parent / "src" / "hilos", copy / "hilos",
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        for p in [copy, *copy.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        prefix, env = nobody_python(copy)
        case.refill()
        t_u, out_u, err = case.hilos(prefix, env, ["-Pn", *case.live], tag="nobody")
        shutil.rmtree(copy, ignore_errors=True)
        st_u, _, _ = hilos_states(out_u)
        bad_u = wrong(st_u, case.truth)
        print(f"  hilos -sU as nobody     {t_u:8.2f} s   wrong states {bad_u}   ({err[:90]})")
        row.update(nobody_s=round(t_u, 2), nobody_wrong=bad_u)
    if not args.no_nmap:
        case.refill()
        t_n, capped, st_n, own = case.nmap(args.nmap_cap)
        shown = f"> {t_n:.0f} s (capped)" if capped else f"{t_n:8.2f} s"
        print(f"  nmap -sU -T4            {shown}   wrong states {wrong(st_n, case.truth)}   "
              f"nmap says: {own}")  # fmt: skip
        bound = "<=" if capped else "="
        print(f"  ratio hilos / nmap {bound} {t_h / t_n:.3f}x  (target <= {TARGET}x)")
        row.update(nmap_s=round(t_n, 2), nmap_capped=capped, ratio=round(t_h / t_n, 4))
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append", help="default: all three")
    ap.add_argument("--top", type=int, default=100, help="top N UDP ports (default 100)")
    ap.add_argument("--dense", type=int, default=60, help="live hosts in the /24 (default 60)")
    ap.add_argument("--nmap-cap", type=float, default=240.0, help="seconds nmap may run")
    ap.add_argument("--repeat", type=int, default=3, help="hilos runs per case, median (3)")
    ap.add_argument("--no-nmap", action="store_true")
    ap.add_argument("--no-unprivileged", action="store_true")
    ap.add_argument("--quick", action="store_true", help="8 hosts x top 20 ports, nmap cap 60 s")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the lab)")
    if not args.no_nmap and shutil.which("nmap") is None:
        sys.exit("bench: nmap not found (or --no-nmap)")
    if args.quick:
        args.top, args.dense, args.nmap_cap = 20, 8, 60.0
    compile_hilos()  # hilos runs from bytecode, as installed
    ports = list(top_udp_ports(args.top))
    assert all(udp_service_name(p) or True for p in ports)
    rows = []
    for name in args.case or list(CASES):
        rtt, loss, ratelimit = CASES[name]
        case = Case(name, rtt, loss, ratelimit, args.dense, ports)
        try:
            rows.append(run_case(case, args))
        finally:
            case.close()
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    exact = all(r["wrong"] == 0 and r["services_wrong"] == 0 and not r["missed_hosts"]
                and r.get("nobody_wrong", 0) == 0 for r in rows)  # fmt: skip
    print("\nall states exact, services named, unprivileged the same:", "yes" if exact else "NO")
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())
