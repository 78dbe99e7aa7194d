"""Benchmark: line rate (issue 11). Dense sweeps in a namespace of its own where every address
of 127.0.0.0/8 answers, and the SYN scan of the lab, against fping, zmap, nmap and the previous
release, same run. Prints `ratio X = N.NN (target <= T)` lines. Usage (root)::

    sudo .venv/bin/python benchmarks/bench_dense.py --previous /work/prev/.venv/bin/python
    sudo .venv/bin/python benchmarks/bench_dense.py --skip-lab        # the namespace part only
    sudo .venv/bin/python benchmarks/bench_dense.py --skip-dense --rtt 0

Dense part (namespace hbd<pid>, only lo up): 127.0.0.0/16 vs `fping -a -q -i0 -r0 -g`; /12 vs the
previous release, peak RSS (the child's VmHWM through /usr/bin/time); /10 once, time against
4 x the /12's and memory. Lab part (rtt 0 and 40, scanners INSIDE the lab's scanner namespace):
the lab /16 x 16 ports vs the previous release and zmap's own reported send rate (`zmap -r 0`,
its configured blacklist, which lists 198.18.0.0/15, replaced by an empty one: it targets only
the lab /16), -p- of 4 lab hosts vs
`nmap -sS -p- -T5 --min-rate 50000`. Every hilos run is checked exact (counts, truth file).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from _common import PREVIOUS, add_options, prepare_pythons
from bench_syn import Bench, Tool, hilos_states, nmap_states, run_workload

from hilos.lab import Lab, teardown

NET = "198.18.0.0/16"


RUNS = 3  # runs per tool, alternated; medians printed (the /12 and /10 once: they are long)


def ratio(name: str, value: float, target: float) -> str:
    ok = "met" if value <= target else "NOT met"
    return f"ratio {name} = {value:.2f} (target <= {target:g}) {ok}"


# -- the dense part ---------------------------------------------------------------------------


class Namespace:
    """A fresh network namespace with only lo up; everything runs inside it."""

    def __init__(self) -> None:
        self.name = f"hbd{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def timed(
        self, cmd: Sequence[str], rss: bool = False, out: Path | None = None
    ) -> tuple[float, int | None]:
        """(seconds, peak RSS in kB if asked) of `cmd` run in the namespace, its stdout to
        `out` (or nowhere)."""
        extra: list[str] = []
        rss_file = Path(tempfile.mktemp(prefix="bench-rss-"))
        if rss:
            extra = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file)]
        sink = out.open("w") if out is not None else subprocess.DEVNULL
        t = time.monotonic()
        proc = subprocess.run(["ip", "netns", "exec", self.name, *extra, *cmd],
                              stdout=sink, stderr=subprocess.PIPE, text=True,
                              timeout=1800, check=False)  # fmt: skip
        elapsed = time.monotonic() - t
        if out is not None:
            sink.close()  # type: ignore[union-attr]
        if proc.returncode not in (0, 1):  # fping exits 1 when some host is unreachable
            raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-400:]}")
        peak = int(rss_file.read_text().split()[-1]) if rss else None
        rss_file.unlink(missing_ok=True)
        return elapsed, peak

    def close(self) -> None:
        subprocess.run(["ip", "netns", "delete", self.name], check=False)


def _count_up(path: Path) -> int:
    with path.open() as fh:
        return sum(1 for line in fh if '"status": "up"' in line)


def bench_dense(pythons: dict[str, str], workdir: Path, anchors: bool, big: bool) -> None:
    ns = Namespace()
    try:
        print(f"\n=== dense sweeps in namespace {ns.name} (only lo up: every address answers) ===")
        out = workdir / "d16.jsonl"

        def hilos(python: str, net: str, rss: bool = False) -> tuple[float, int | None, int]:
            # JSON Lines on stdout, as a user piping it: an output file makes hilos keep a
            # checkpoint by default (issue 13), which is another workload.
            cmd = [python, "-m", "hilos", "sweep", net, "-q", "--format", "json"]
            t, peak = ns.timed(cmd, rss, out)
            return t, peak, _count_up(out)

        fping = anchors and shutil.which("fping") is not None
        t16s, tfs, n16s = [], [], []
        for _ in range(RUNS):  # alternated, medians
            t, _, n = hilos(pythons[""], "127.0.0.0/16")
            t16s.append(t)
            n16s.append(n)
            if fping:
                tfs.append(ns.timed(["fping", "-a", "-q", "-i0", "-r0", "-g", "127.0.0.0/16"])[0])
        t16 = statistics.median(t16s)
        runs16 = " ".join(f"{t:.2f}" for t in t16s)
        exact = set(n16s) == {65536}
        print(f"  hilos sweep 127.0.0.0/16: median {t16:.2f} s of {RUNS} ({runs16}), "
              f"up {n16s} (exact: {exact})")  # fmt: skip
        if fping:
            tf = statistics.median(tfs)
            print(f"  fping -a -q -i0 -r0 -g 127.0.0.0/16: median {tf:.2f} s "
                  f"({' '.join(f'{t:.2f}' for t in tfs)})")  # fmt: skip
            print("  " + ratio("hilos/fping /16", t16 / tf, 1.0))
        t12, rss12, n12 = hilos(pythons[""], "127.0.0.0/12", rss=True)
        assert rss12 is not None
        print(f"  hilos sweep 127.0.0.0/12: {t12:.2f} s, {n12} up (exact: {n12 == 1 << 20}), "
              f"peak RSS {rss12 / 1024:.0f} MB (target < 150 MB)")  # fmt: skip
        if PREVIOUS in pythons:
            tp, rssp, np_ = hilos(pythons[PREVIOUS], "127.0.0.0/12", rss=True)
            print(f"  previous sweep 127.0.0.0/12: {tp:.2f} s, {np_} up, "
                  f"peak RSS {(rssp or 0) / 1024:.0f} MB")  # fmt: skip
            print("  " + ratio("hilos/previous /12", t12 / tp, 0.15))
        if big:
            t10, rss10, n10 = hilos(pythons[""], "127.0.0.0/10", rss=True)
            print(f"  hilos sweep 127.0.0.0/10: {t10:.2f} s, {n10} up (exact: {n10 == 1 << 22}), "
                  f"peak RSS {(rss10 or 0) / 1024:.0f} MB")  # fmt: skip
            print("  " + ratio("/10 time / (4 x /12 time)", t10 / (4 * t12), 1.15))
            print("  " + ratio("/10 peak RSS / /12 peak RSS", (rss10 or 0) / rss12, 1.15))
    finally:
        ns.close()


# -- the lab part -----------------------------------------------------------------------------


def _zmap_pps(lab: Lab, b: Bench, workdir: Path, port: int) -> float | None:
    """zmap's own average send rate (packets/s) over the lab /16 at -r 0, from its status
    line; None without zmap. Its configured blacklist (/etc/zmap/blacklist.conf lists
    198.18.0.0/15, the benchmarking range) is replaced by an empty file: the lab is the only
    target, and zmap runs inside the lab's scanner namespace (no default route out)."""
    if shutil.which("zmap") is None or b.gw_mac is None:
        return None
    empty = workdir / "zmap-blocklist.conf"
    empty.write_text("")
    cmd = ["zmap", "-p", str(port), "-r", "0", "-i", "scan0", "-S", "198.19.0.2",
           "-G", b.gw_mac, "-b", str(empty), "-c", "1",
           "-o", str(workdir / "zmap.csv"), NET]  # fmt: skip
    proc = lab.run(cmd, timeout=300)
    # Its status lines (stderr): "send: N X p/s (Y Kp/s avg)", at the end "send: N done (...)".
    rates = re.findall(r"send: \d+ (?:done|[\d.]+ [KMG]?p/s) \(([\d.]+) ([KMG]?)p/s avg\)",
                       proc.stderr)  # fmt: skip
    if not rates:
        print(f"  zmap: no send rate in its output ({proc.returncode}): {proc.stderr[-300:]}")
        return None
    value, unit = rates[-1]
    return float(value) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}[unit]


_ENGINE = """
import sys, time, numpy as np
from hilos.wire.link import LinkTx
from hilos.wire.cookie import Cookie
from hilos.probes.vector import TcpVector
from hilos.wire.vector import FrameBatch
link = LinkTx.for_route(0xC6120001)
fb = FrameBatch(TcpVector(Cookie(), link.eth, link.source, df=True), link.sock, 256)
ports = np.full(256, int(sys.argv[1]), np.uint16)
t = time.perf_counter(); sent = 0
for s in range(0, 1 << 20, 256):
    sent += fb.send((0xC6120000 + (np.arange(s, s + 256) & 0xFFFF)).astype(np.uint32), ports)
print(sent / (time.perf_counter() - t))
"""


def _engine_pps(lab: Lab, python: str, port: int) -> float:
    """Packets/s of the SYN scan's batched sender alone (hilos.syn.vsend's FrameBatch of
    TcpVector frames on the LinkTx socket), inside the scanner namespace: the figure that
    compares with zmap's own send rate (its status line counts sends, not answers)."""
    proc = lab.run([python, "-c", _ENGINE, str(port)], timeout=300)
    return float(proc.stdout.strip().splitlines()[-1])


def _hilos_syn(
    b: Bench, python: str, targets: list[str], ports: str, tag: str, r: int
) -> tuple[float, Callable[[str, int], str]]:
    """A hilos SYN scan with its JSON Lines on stdout, which goes straight to a file: with -Pn
    every address is listed (172 MB for the /16 x 16), and a harness reading that through a
    pipe would take a core from the scan it times."""
    out = b.dir / f"hilos-{tag}-{r}.jsonl"
    cmd = [python, "-m", "hilos", "scan", *targets, "-p", ports, "--type", "syn", "-Pn",
           "-q", "--format", "json"]  # fmt: skip
    with open(out, "w") as fh:
        t = time.monotonic()
        proc = b.lab.run(cmd, timeout=900, stdout=fh, stderr=subprocess.PIPE, text=True)
        elapsed = time.monotonic() - t
    if proc.returncode != 0:
        raise RuntimeError(f"hilos failed ({proc.returncode}): {proc.stderr[-500:]}")
    return elapsed, hilos_states(out)


def _rows(b: Bench, label: str, targets: list[str], ports: str) -> list[Tool]:
    """One hilos row per interpreter (label + "" or " (previous)")."""
    return [
        (label + suffix, partial(_hilos_syn, b, py, targets, ports, f"{i}-{len(targets)}"), RUNS)
        for i, (suffix, py) in enumerate(b.pythons.items())
    ]


def _nmap_hosts(
    b: Bench, hosts: list[str], timing: list[str], workdir: Path
) -> tuple[float, Callable[[str, int], str]]:
    """nmap -sS -p- of `hosts` (one argument each: nmap takes no comma lists)."""
    out = workdir / "nmap-hosts.xml"
    cmd = ["nmap", "-sS", "-n", "-Pn", "-p-", *timing, "-oX", str(out), *hosts]
    return b.timed(cmd), nmap_states(out)


def bench_lab(rtt: float, pythons: dict[str, str], workdir: Path, anchors: bool) -> None:
    name = f"bdn{os.getpid() % 100000}r{int(rtt)}"
    teardown(name)
    lab = Lab.up(name, rtt_ms=rtt)
    try:
        b = Bench(lab, workdir, pythons)
        live = [h["addr"] for h in lab.truth["hosts"]]
        counts: dict[int, int] = {}
        for h in lab.truth["hosts"]:
            for p, d in h["ports"].items():
                if d["state"] == "open":
                    counts[int(p)] = counts.get(int(p), 0) + 1
        ports16 = sorted(sorted(counts, key=lambda p: -counts[p])[:16])
        spec = ",".join(map(str, ports16))
        print(f"\n=== lab {name}: rtt {rtt:g} ms, {len(live)} live hosts; ports {spec} ===")
        hosts = [str(a) for a in ipaddress.ip_network(NET)]
        h16 = "hilos scan --type syn /16 x 16 ports"
        rows = _rows(b, h16, [NET], spec)
        m16 = run_workload(f"{NET} x 16 ports", rows, hosts, ports16, b.truth, RUNS)
        if PREVIOUS in pythons:
            print("  " + ratio("hilos/previous SYN /16 x 16", m16[h16] / m16[h16 + PREVIOUS], 0.35))
        sent = 65536 * len(ports16)
        print(f"  hilos scan: {sent / m16[h16]:.0f} probes/s over the whole run (first pass, "
              "retry pass and waits)")  # fmt: skip
        hpps = _engine_pps(lab, pythons[""], ports16[0])
        print(f"  hilos batched engine send rate (the SYN scan's sender, 1,048,576 SYNs to the "
              f"/16): {hpps:.0f} packets/s")  # fmt: skip
        if anchors:
            zpps = _zmap_pps(lab, b, workdir, ports16[0])
            if zpps is None:
                print("  zmap: skipped (not installed: scripts/system-deps; or no router MAC)")
            else:
                print(f"  zmap -r 0 reported send rate: {zpps:.0f} packets/s")
                print("  " + ratio("zmap send rate / hilos send rate", zpps / hpps, 1.0))
        several = ",".join(live[:4])
        hp = "hilos scan --type syn -p- 4 hosts"
        rows = _rows(b, hp, live[:4], "-")
        if anchors:
            t5 = ["-T5", "--min-rate", "50000"]
            rows.append(("nmap -sS -p- -T5 --min-rate 50000",
                         lambda r: _nmap_hosts(b, live[:4], t5, workdir), RUNS))  # fmt: skip
        all_ports = list(range(1, 65536))
        mp = run_workload(f"-p- of {several}", rows, live[:4], all_ports, b.truth, RUNS)
        if anchors:
            r = mp[hp] / mp["nmap -sS -p- -T5 --min-rate 50000"]
            if rtt == 0:
                print("  " + ratio("hilos/nmap -p- (rtt 0)", r, 0.7))
            else:  # the issue asks only exactness here (the rows above say "wrong 0")
                print(f"  ratio hilos/nmap -p- (rtt {rtt:g}) = {r:.2f} (target: exact states)")
    finally:
        lab.down()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rtt", type=float, action="append", help="lab RTT in ms (repeatable)")
    ap.add_argument("--skip-lab", action="store_true", help="only the namespace sweeps")
    ap.add_argument("--skip-dense", action="store_true", help="only the lab scans")
    ap.add_argument("--no-10", action="store_true", help="leave out the /10 sweep")
    add_options(ap)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_dense: needs root (namespaces, raw sockets)", file=sys.stderr)
        return 2
    pythons = prepare_pythons(args)
    anchors = not args.no_anchors
    with tempfile.TemporaryDirectory(prefix="bench-dense-") as tmp:
        work = Path(tmp)
        if not args.skip_dense:
            bench_dense(pythons, work, anchors, not args.no_10)
        if not args.skip_lab:
            for rtt in args.rtt or [0.0, 40.0]:
                bench_lab(rtt, pythons, work, anchors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
