"""Vantage points: extra scanner namespaces on the lab network (for a cluster's members).

Vantage k (1-based) is namespace ``NAME-vK`` with address 198.19.254.(4k+2)/30, its router
side 198.19.254.(4k+1) in the router namespace. Its only routes lead into the lab
(198.18.0.0/15 and fd18::/16 via the router): it reaches the lab hosts, the scanner and every
other vantage point, and nothing outside the lab.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from pathlib import Path

from hilos.errors import LabError, UsageError
from hilos.lab.netns import NETNS_DIR, in_ns, ip_batch, lab_namespaces, ns_exists, run_cmd
from hilos.lab.resolver import ETC_NETNS, resolver_files

__all__ = [
    "MAX_VANTAGE",
    "add_vantages",
    "remove_vantage_files",
    "vantage_address",
    "vantage_namespaces",
    "vantage_ns",
]

MAX_VANTAGE = 16
_BASE = int(ipaddress.IPv4Address("198.19.254.0"))
_SYSCTLS = (
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    "net.ipv4.ping_group_range=0 2147483647",
    "net.ipv4.ip_local_port_range=10240 65535",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
)


def vantage_ns(name: str, k: int) -> str:
    return f"{name}-v{k}"


def vantage_address(k: int) -> str:
    """Vantage k's IPv4 address (where its scheduler or worker listens)."""
    return str(ipaddress.IPv4Address(_BASE + 4 * k + 2))


def _router_address(k: int) -> str:
    return str(ipaddress.IPv4Address(_BASE + 4 * k + 1))


def check_vantage(count: int) -> None:
    if not 0 <= count <= MAX_VANTAGE:
        raise UsageError(f"--vantage takes 0 to {MAX_VANTAGE} vantage points, not {count}")


def add_vantages(name: str, count: int) -> list[str]:
    """Build `count` vantage namespaces on lab `name` (already up); their names."""
    check_vantage(count)
    _scan, net, _hosts = lab_namespaces(name)
    made = []
    for k in range(1, count + 1):
        ns = vantage_ns(name, k)
        if ns_exists(ns):
            raise LabError(f"namespace {ns} exists already")
        run_cmd(["ip", "netns", "add", ns])
        made.append(ns)
        in_ns(ns, "sysctl", "-q", "-w", *_SYSCTLS)
        router_if = f"vp{k}"
        run_cmd(
            ["ip", "link", "add", "scan0", "netns", ns, "type", "veth",
             "peer", "name", router_if, "netns", net]
        )  # fmt: skip
        v6, r6 = f"fd18:fd:{k:x}::2", f"fd18:fd:{k:x}::1"
        ip_batch(
            ns,
            [
                "link set lo up",
                "link set scan0 up",
                f"addr add {vantage_address(k)}/30 dev scan0",
                f"addr add {v6}/64 dev scan0 nodad",
                f"route add 198.18.0.0/15 via {_router_address(k)}",
                f"route add fd18::/16 via {r6}",
            ],
        )
        ip_batch(
            net,
            [
                f"link set {router_if} up",
                f"addr add {_router_address(k)}/30 dev {router_if}",
                f"addr add {r6}/64 dev {router_if} nodad",
            ],
        )
        ns_dir = ETC_NETNS / ns
        ns_dir.mkdir(parents=True, exist_ok=True)
        for fname, text in resolver_files(name).items():
            (ns_dir / fname).write_text(text)
    return made


def vantage_namespaces(name: str) -> list[str]:
    """The vantage namespaces of lab `name` that exist now."""
    pattern = re.compile(re.escape(name) + r"-v\d+")
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if pattern.fullmatch(p.name))


def remove_vantage_files(name: str) -> None:
    """The vantage namespaces' resolver files (theirs only; the namespaces go with the lab's)."""
    pattern = re.compile(re.escape(name) + r"-v\d+")
    if not ETC_NETNS.is_dir():
        return
    for d in ETC_NETNS.iterdir():
        if pattern.fullmatch(d.name):
            for fname in resolver_files(name):
                with contextlib.suppress(FileNotFoundError):
                    (Path(d) / fname).unlink()
            with contextlib.suppress(OSError):
                d.rmdir()
