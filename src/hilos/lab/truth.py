"""The truth file: what a lab holds, for tests and benchmarks to check a scanner against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hilos.lab.plan import (
    DENSE,
    LAB4,
    LAB6,
    SCAN_ADDR4,
    SCAN_ADDR6,
    UNREACHABLE,
    PlannedHost,
)
from hilos.lab.resolver import dns_truth
from hilos.lab.services.catalog import describe
from hilos.lab.services.udp_server import UDP_KINDS

# A live host's UDP ports not listed in "udp" are closed (ICMP port unreachable).
_UDP_STATES = {
    "drop": {"state": "open|filtered", "reason": "no-response"},
    "reject": {"state": "filtered", "reason": "admin-prohibited"},
}


def _udp(h: PlannedHost) -> dict[str, dict[str, Any]]:
    """UDP ports that are not closed: open ones with what a scanner should name."""
    out: dict[str, dict[str, Any]] = {}
    for port, kind in sorted(h.udp.items()):
        if kind in _UDP_STATES:
            out[str(port)] = {**_UDP_STATES[kind], "service": None, "product": None}
        else:
            out[str(port)] = {"state": "open", "reason": "udp-response", **UDP_KINDS[kind]}
    return out


def build_truth(
    name: str, plan: Sequence[PlannedHost], rtt_ms: float, loss_percent: float, seed: int
) -> dict[str, Any]:
    cache: dict[str, dict[str, Any]] = {}
    hosts = []
    for h in plan:
        ports: dict[str, dict[str, Any]] = {}
        for port in sorted(set(h.open_ports) | set(h.filtered_ports)):
            if port in h.open_ports:
                kind = h.open_ports[port]
                if kind not in cache:
                    cache[kind] = dict(describe(kind))
                d = cache[kind]
                ports[str(port)] = {
                    "state": "open",
                    "service": d.get("service"),
                    "product": d.get("product"),
                    "version": d.get("version"),
                    "tls": bool(d.get("tls", False)),
                    "banner": d.get("banner"),
                }
            else:
                ports[str(port)] = {
                    "state": "filtered",
                    "service": None,
                    "product": None,
                    "version": None,
                    "tls": False,
                    "banner": None,
                }
        hosts.append(
            {"addr": h.addr, "family": h.family, "icmp": h.icmp, "ports": ports, "udp": _udp(h)}
        )
    return {
        "name": name,
        "rtt_ms": float(rtt_ms),
        "loss_percent": float(loss_percent),
        "seed": seed,
        "scanner_ns": f"{name}-scan",
        "scanner_addr4": SCAN_ADDR4,
        "scanner_addr6": SCAN_ADDR6,
        "ranges": {"lab4": LAB4, "dense": DENSE, "unreachable": UNREACHABLE, "lab6": LAB6},
        "dns": dns_truth(plan),
        "hosts": hosts,
    }
