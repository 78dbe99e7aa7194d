"""End-to-end sweeps in the project's lab: exact live sets against the truth file.

Every command runs inside the lab's scanner namespace (lab.run), the only place the lab may be
probed from.
"""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hilos.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.root]

if TYPE_CHECKING:
    from conftest import Unprivileged


def _truth_hosts(lab: Lab, net: str) -> dict[str, dict[str, Any]]:
    space = ipaddress.ip_network(net)
    return {
        h["addr"]: h
        for h in lab.truth["hosts"]
        if ipaddress.ip_address(h["addr"]) in space  # type: ignore[operator]
    }


def _sweep(lab: Lab, *args: str, timeout: float = 60) -> tuple[list[dict[str, Any]], str, float]:
    t0 = time.monotonic()
    proc = lab.run(
        [sys.executable, "-m", "hilos", "sweep", *args, "--format", "json"], timeout=timeout
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return rows, proc.stderr, elapsed


def _up(rows: list[dict[str, Any]]) -> set[str]:
    return {r["host"] for r in rows if r["status"] == "up"}


@pytest.mark.timeout(120)
def test_dense_slash24_exact_including_icmp_silent(lab: Lab) -> None:
    rows, err, elapsed = _sweep(lab, "198.18.0.0/24")
    want = _truth_hosts(lab, "198.18.0.0/24")
    assert _up(rows) == set(want)
    silent = {a for a, h in want.items() if not h["icmp"]}
    assert silent and silent <= _up(rows)  # found by the TCP probes
    assert all(r["rtt_ms"] is not None and r["reason"] for r in rows)
    assert "raw" in err and "sweep: using" in err
    assert elapsed < 20


@pytest.mark.timeout(180)
def test_slash16_exact_nothing_from_unreachable_block(lab: Lab) -> None:
    rows, _err, elapsed = _sweep(lab, "198.18.0.0/16")
    want = _truth_hosts(lab, "198.18.0.0/16")
    assert len(want) > 500
    assert _up(rows) == set(want)
    unreachable = ipaddress.ip_network("198.18.254.0/24")
    assert not [r for r in rows if ipaddress.ip_address(r["host"]) in unreachable]
    assert elapsed < 60


@pytest.mark.timeout(120)
def test_all_lists_down_hosts_with_reasons(make_lab: Any) -> None:
    # A lab of its own: its router's ICMP error budget is not spent by other sweeps.
    lab = make_lab(dense=8, sparse=0, ipv6=0)
    rows, _err, _t = _sweep(lab, "198.18.254.0/29", "198.18.0.1", "198.18.0.251-254", "--all")
    by_host = {r["host"]: r for r in rows}
    assert by_host["198.18.0.1"]["status"] == "up"
    # The router rate-limits its ICMP errors (6 in a burst, then 1/s per destination, as
    # Linux does), so some of the block may be plain silent: all down, some said unreachable.
    reasons = []
    for i in range(8):
        row = by_host[f"198.18.254.{i}"]
        assert (row["status"], row["rtt_ms"]) == ("down", None)
        reasons.append(row["reason"])
    assert set(reasons) <= {"host-unreach", "no-response"} and "host-unreach" in reasons
    for i in range(251, 255):
        assert by_host[f"198.18.0.{i}"]["reason"] == "no-response"
    assert len(rows) == 13


@pytest.mark.timeout(180)
def test_ipv6_hosts(lab: Lab) -> None:
    rows, _err, _t = _sweep(lab, "fd18:0:0:100::/112")
    want = _truth_hosts(lab, "fd18:0:0:100::/64")
    assert want and _up(rows) == set(want)


@pytest.mark.timeout(180)
def test_unprivileged_falls_back_and_finds_what_tcp_can(
    lab: Lab, unprivileged: Unprivileged
) -> None:
    rows, err, _t = _sweep_as_nobody(lab, unprivileged, "198.18.0.0/24")
    notes = [line for line in err.splitlines() if "sweep: using" in line]
    assert len(notes) == 1 and "not privileged" in notes[0] and "TCP connect" in notes[0]
    want = _truth_hosts(lab, "198.18.0.0/24")
    reachable = {
        a
        for a, h in want.items()
        if h["ports"].get("80", {}).get("state") != "filtered"
        or h["ports"].get("443", {}).get("state") != "filtered"
    }
    found = _up(rows)
    assert found <= set(want)
    assert reachable <= found
    assert {r["reason"] for r in rows} <= {"syn-ack", "conn-refused", "echo-reply"}


def _sweep_as_nobody(
    lab: Lab, nobody: Unprivileged, *args: str
) -> tuple[list[dict[str, Any]], str, float]:
    t0 = time.monotonic()
    proc = lab.run(
        [*nobody.argv, "-m", "hilos", "sweep", *args, "--format", "json"],
        timeout=120,
        env=nobody.env,
        cwd=nobody.cwd,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return rows, proc.stderr, time.monotonic() - t0


@pytest.mark.timeout(240)
def test_ctrl_c_keeps_results_and_exits_130(lab: Lab, tmp_path: Path) -> None:
    out = tmp_path / "partial.jsonl"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.scanner_ns, sys.executable, "-m", "hilos", "sweep",
         "198.18.0.0/16", "--rate", "4000", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 200):
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    lines = [ln for ln in out.read_text().splitlines() if ln.strip()]
    assert lines
    want = _truth_hosts(lab, "198.18.0.0/16")
    assert {json.loads(ln)["host"] for ln in lines} <= set(want)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ten_percent_loss_with_retries_3_finds_every_host(make_lab: Any) -> None:
    lossy = make_lab(loss_percent=10, dense=60, sparse=0, ipv6=0)
    rows, _err, _t = _sweep(lossy, "198.18.0.0/24", "--retries", "3", timeout=120)
    assert _up(rows) == set(_truth_hosts(lossy, "198.18.0.0/24"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_rtt_40_exact(make_lab: Any) -> None:
    slow = make_lab(rtt_ms=40, dense=60, sparse=100, ipv6=2)
    rows, _err, _t = _sweep(slow, "198.18.0.0/24", timeout=120)
    assert _up(rows) == set(_truth_hosts(slow, "198.18.0.0/24"))
    rows, _err, _t = _sweep(slow, "198.18.0.0/16", timeout=120)
    assert _up(rows) == set(_truth_hosts(slow, "198.18.0.0/16"))
    assert all(r["rtt_ms"] >= 30 for r in rows)  # the delayer's 40 ms, measured


# --- Names from the lab's own DNS server (hilos.lab.dns), never this machine's resolver ----------


@pytest.mark.timeout(120)
def test_sweep_a_lab_name(lab: Lab) -> None:
    rows, _err, _t = _sweep(lab, "h1.lab.test", "dead.lab.test", "--all")
    by_host = {r["host"]: r for r in rows}
    assert by_host["198.18.0.1"]["status"] == "up"
    assert by_host["198.18.0.1"].get("hostname") == "h1.lab.test", rows
    assert by_host["198.18.0.254"]["status"] == "down"
    assert by_host["198.18.0.254"].get("hostname") == "dead.lab.test", rows
    text = lab.run([sys.executable, "-m", "hilos", "sweep", "h1.lab.test"], timeout=60)
    assert text.returncode == 0, text.stderr
    # The sweep's table keeps one address a line and adds the name the user gave to it.
    line = next(x for x in text.stdout.splitlines() if x.startswith("198.18.0.1 "))
    assert "h1.lab.test" in line and " up " in line, text.stdout


@pytest.mark.timeout(120)
def test_scan_a_lab_name(lab: Lab) -> None:
    for scan_type in ("connect", "syn"):
        cmd = [
            sys.executable,
            "-m",
            "hilos",
            "scan",
            "h1.lab.test",
            "-p",
            "22",
            "--type",
            scan_type,
        ]
        text = lab.run(cmd, timeout=60)
        assert text.returncode == 0, text.stderr
        assert "h1.lab.test (198.18.0.1)" in text.stdout, text.stdout
        assert re.search(r"22/tcp\s+open", text.stdout), text.stdout
        js = lab.run([*cmd, "--format", "json"], timeout=60)
        assert js.returncode == 0, js.stderr
        rows = [json.loads(line) for line in js.stdout.splitlines() if line.strip()]
        hosts = [r for r in rows if r.get("host") == "198.18.0.1"]
        assert hosts and all(r.get("hostname") == "h1.lab.test" for r in hosts), rows


@pytest.mark.timeout(120)
def test_scan_names_the_echo_server_as_the_truth_does(lab: Lab) -> None:
    """An echo server on MongoDB's port sends hilos's own probe back: nmap calls it echo."""
    want = next(h for h in lab.truth["hosts"] if h["addr"] == "198.18.0.3")["ports"]["27017"]
    assert want["service"] == "echo"
    for scan_type in ("connect", "syn"):
        cmd = [sys.executable, "-m", "hilos", "scan", "h3.lab.test", "-p", "27017", "--banners"]
        proc = lab.run([*cmd, "--type", scan_type, "--format", "json", "-q"], timeout=60)
        assert proc.returncode == 0, proc.stderr
        (row,) = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
        (port,) = row["ports"]
        assert (port["state"], port["service"], port["product"]) == ("open", "echo", None), row
