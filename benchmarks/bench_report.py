"""Benchmark: reports and diffs of a 10,000-host scan, and the page's load time in Chromium.

No network: the scan is made up (10,000 addresses of 198.18.0.0/16, a few open ports each,
banners on some), written as hilos JSON Lines and nmap-style XML by hilos's own writers. Times
(median of --runs): reading each file, diffing two scans, building the page; then Debian's
headless Chromium loads the page from file:// (`--dump-dom`): the whole run (browser start
included), an empty page's run for comparison, and the page's own marks (`data-render-ms`:
its script, from JSON.parse to the first table page; `data-ready-ms`: since navigation start).
Usage::

    .venv/bin/python benchmarks/bench_report.py [--hosts 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hilos.output import open_outputs
from hilos.report import load_scan
from hilos.report.diff import diff_runs
from hilos.report.html import render_html
from hilos.results import PortResult, ScanHostResult

SERVICES = [
    (22, "ssh", "OpenSSH", "9.2p1"),
    (80, "http", "nginx", "1.22.1"),
    (443, "https", "Apache httpd", "2.4.57"),
    (3306, "mysql", "MySQL", "8.0.36"),
    (6379, "redis", None, None),
    (8080, "http-proxy", None, None),
]


def make_hosts(count: int, seed: int) -> list[ScanHostResult]:
    rng = random.Random(seed)
    hosts = []
    for i in range(count):
        ports = []
        for number, name, product, version in rng.sample(SERVICES, rng.randint(1, 4)):
            banner = f"SSH-2.0-{product}_{version}" if name == "ssh" else None
            ports.append(
                PortResult(
                    number,
                    "open",
                    "syn-ack",
                    service=name,
                    product=product,
                    version=version,
                    banner=banner,
                )
            )
        if rng.random() < 0.2:
            ports.append(PortResult(135, "filtered", "no-response", service="msrpc"))
        address = f"198.18.{i // 250}.{i % 250 + 1}"
        hosts.append(
            ScanHostResult(
                address,
                "up",
                "syn-ack",
                tuple(sorted(ports, key=lambda p: p.port)),
                rtt_ms=rng.random(),
            )
        )
    return hosts


def write(hosts: list[ScanHostResult], fmt: str, path: Path) -> None:
    out = open_outputs(
        "scan",
        [fmt],
        [str(path)],
        None,
        show_all=False,
        stdout=io.StringIO(),
        meta={"args": "hilos scan 198.18.0.0/18", "start": time.time()},
    )
    for h in hosts:
        out.write(h)
    out.close({"addresses": len(hosts), "up": len(hosts), "elapsed": 1.0})


def row(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:46} {seconds:8.3f} s" + (f"  ({note})" if note else ""))


def median(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        action()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def chromium_run(page: Path, fragment: str = "") -> tuple[float, dict[str, float]]:
    browser = shutil.which("chromium")
    assert browser is not None
    with tempfile.TemporaryDirectory(prefix="hilos-bench-chromium-") as profile:
        t = time.perf_counter()
        proc = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri() + (f"#{fragment}" if fragment else ""),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"bench: chromium failed: {proc.stderr[-500:]}")
    marks = {m: float(v) for m, v in re.findall(r'data-(render|ready)-ms="([\d.]+)"', proc.stdout)}
    return elapsed, marks


def browser_rows(page: Path, runs: int, empty: Path) -> None:
    base = statistics.median(chromium_run(empty)[0] for _ in range(runs))
    row("chromium --dump-dom, an empty page", base, "browser start")
    for fragment in ("", "filter=ssh", "size=all"):
        results = [chromium_run(page, fragment) for _ in range(runs)]
        wall = statistics.median(r[0] for r in results)
        render = statistics.median(r[1].get("render", float("nan")) for r in results)
        ready = statistics.median(r[1].get("ready", float("nan")) for r in results)
        label = f"#{fragment}" if fragment else "(first 500 rows)"
        row(
            f"chromium --dump-dom, report {label}",
            wall,
            f"page script {render:.0f} ms, ready {ready:.0f} ms after navigation start",
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="hilos-bench-report-") as tmp:
        d = Path(tmp)
        old, new = make_hosts(args.hosts, 1), make_hosts(args.hosts, 2)
        write(old, "json", d / "old.jsonl")
        write(new, "json", d / "new.jsonl")
        write(old, "xml", d / "old.xml")
        ports = sum(len(h.ports) for h in old)
        print(f"bench_report: {args.hosts:,} hosts, {ports:,} listed ports, median of {args.runs}")
        for name in ("old.jsonl", "old.xml"):
            size = (d / name).stat().st_size / 1e6
            t = median(args.runs, lambda n=name: load_scan(str(d / n)))  # type: ignore[misc]
            row(f"read {name} ({size:.1f} MB)", t)
        a, b = load_scan(str(d / "old.jsonl")), load_scan(str(d / "new.jsonl"))
        changes = diff_runs(a, b)
        t = median(args.runs, lambda: diff_runs(a, b))
        row(f"diff old new ({len(changes):,} changes)", t)
        t = median(args.runs, lambda: render_html(a))
        page = d / "report.html"
        page.write_text(render_html(a), encoding="utf-8")
        row(f"build the page ({page.stat().st_size / 1e6:.1f} MB)", t)
        if shutil.which("chromium") is None:
            print("  chromium: not installed (scripts/system-deps installs it); page load skipped")
            return
        empty = d / "empty.html"
        empty.write_text("<!DOCTYPE html><title>empty</title>", encoding="utf-8")
        browser_rows(page, args.runs, empty)


if __name__ == "__main__":
    main()
