"""Lab tests of `hilos scan -sU` through the pipeline (discovery first): a plain lab, and one with
40 ms of round trip and 10% loss each way, where the retries keep every state exact."""

from __future__ import annotations

import ipaddress
import json
import sys
from typing import Any

import pytest

from hilos.lab import Lab

pytestmark = pytest.mark.lab

PORTS = [7, 53, 123, 137, 138, 161, 500, 1434, 1900, 3456, 5000, 9200, 10000, 11211]


def _cli_scan(lab: Lab, *extra: str) -> dict[str, dict[int, tuple[str, str, str | None]]]:
    spec = ",".join(map(str, PORTS))
    targets = extra or ("198.18.0.0/29", "fd18:0:0:100::1")
    proc = lab.run(
        [sys.executable, "-m", "hilos", "scan", "-sU", "-p", spec, "-oJ", "-", "-q", "--all",
         *targets],
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, dict[int, tuple[str, str, str | None]]] = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        if row.get("ports"):
            out[row["host"]] = {
                p["port"]: (p["state"], p["proto"], p.get("service")) for p in row["ports"]
            }
    return out


def _expected(lab: Lab) -> dict[str, dict[int, tuple[str, str, str | None]]]:
    from hilos.targets.udp_ports import udp_service_name

    want: dict[str, dict[int, tuple[str, str, str | None]]] = {}
    for h in lab.truth["hosts"]:
        addr = ipaddress.ip_address(h["addr"])
        if addr not in ipaddress.ip_network("198.18.0.0/29") and h["addr"] != "fd18:0:0:100::1":
            continue
        ports = {}
        for p in PORTS:
            u = h["udp"].get(str(p))
            if u is None:
                ports[p] = ("closed", "udp", udp_service_name(p))
            elif u["state"] == "open":
                ports[p] = ("open", "udp", u["service"])
            else:
                ports[p] = (u["state"], "udp", udp_service_name(p))
        want[h["addr"]] = ports
    return want


def _diff(got: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """(host, port) -> (got, wanted) where they differ."""
    out = {}
    for host in set(got) | set(want):
        g, w = got.get(host, {}), want.get(host, {})
        for port in set(g) | set(w):
            if g.get(port) != w.get(port):
                out[f"{host}:{port}"] = (g.get(port), w.get(port))
    return out


def _lab(make_lab: Any, **kw: Any) -> Lab:
    lab: Lab = make_lab(dense=8, sparse=0, ipv6=2, **kw)
    return lab


def test_cli_udp_scan_with_discovery_is_exact(make_lab: Any) -> None:
    lab = _lab(make_lab)
    assert _diff(_cli_scan(lab), _expected(lab)) == {}


def test_cli_udp_scan_at_40ms_and_10_percent_loss_is_exact(make_lab: Any) -> None:
    lab = _lab(make_lab, rtt_ms=40, loss_percent=10)
    want = _expected(lab)
    # -Pn: discovery under loss is the sweep's test; this one is about the UDP states.
    assert _diff(_cli_scan(lab, "-Pn", *want), want) == {}


def test_syn_and_udp_together_in_the_lab(make_lab: Any) -> None:
    lab = _lab(make_lab)
    proc = lab.run(
        [sys.executable, "-m", "hilos", "scan", "--type", "syn,udp", "-p", "T:22,23,U:53,161,7",
         "-oJ", "-", "-q", "--all", "198.18.0.1", "fd18:0:0:100::1"],
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["host"]: r for r in map(json.loads, proc.stdout.splitlines())}
    got = {(h, p["port"], p["proto"]): p["state"] for h, r in rows.items() for p in r["ports"]}
    assert got == {
        ("198.18.0.1", 22, "tcp"): "open",
        ("198.18.0.1", 23, "tcp"): "closed",
        ("198.18.0.1", 53, "udp"): "open",
        ("198.18.0.1", 161, "udp"): "open",
        ("198.18.0.1", 7, "udp"): "closed",
        ("fd18:0:0:100::1", 22, "tcp"): "open",
        ("fd18:0:0:100::1", 23, "tcp"): "closed",
        ("fd18:0:0:100::1", 53, "udp"): "open",
        ("fd18:0:0:100::1", 161, "udp"): "open",
        ("fd18:0:0:100::1", 7, "udp"): "closed",
    }
