"""The lab's plan: which hosts live, with which ports; pure and reproducible from the seed."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from hilos.errors import LabError

LAB4 = "198.18.0.0/16"
DENSE = "198.18.0.0/24"
UNREACHABLE = "198.18.254.0/24"
LAB6 = "fd18:0:0:100::/64"
DEAD_HOST = "198.18.0.254"
SCAN_ADDR4 = "198.19.0.2"
ROUTER_SCAN_ADDR4 = "198.19.0.1"
ROUTER_HOSTS_ADDR4 = "198.19.0.5"
HOSTS_ADDR4 = "198.19.0.6"
SCAN_ADDR6 = "fd18:ff::2"
ROUTER_SCAN_ADDR6 = "fd18:ff::1"
ROUTER_HOSTS_ADDR6 = "fd18:fe::1"
HOSTS_ADDR6 = "fd18:fe::2"

# Realistic pool of services (port, kind, weight): weights roughly follow how often each is
# found open on real networks, so most hosts look like web or ssh servers.
_POOL: tuple[tuple[int, str, int], ...] = (
    (80, "http", 30),
    (22, "ssh", 26),
    (443, "https", 22),
    (8080, "http", 8),
    (21, "ftp", 5),
    (25, "smtp", 6),
    (3306, "mysql", 6),
    (5432, "postgresql", 4),
    (6379, "redis", 4),
    (110, "pop3", 3),
    (143, "imap", 3),
    (9200, "elasticsearch", 2),
)
_POOL_WEIGHTS = tuple(w for _, _, w in _POOL)
_PORT_COUNT_WEIGHTS = (25, 35, 25, 15)  # a random host has 0, 1, 2 or 3 open ports
_FILTER_POOL = (23, 135, 139, 445, 1433, 3389, 5900, 8443)
_ICMP_SILENT_SHARE = 0.10
_FILTERED_SHARE = 0.04

_FIXED4: tuple[tuple[str, bool, dict[int, str], tuple[int, ...]], ...] = (
    (
        "198.18.0.1",
        True,
        {
            21: "ftp", 22: "ssh", 25: "smtp", 80: "http", 110: "pop3", 143: "imap",
            443: "https", 3306: "mysql", 5432: "postgresql", 6379: "redis", 8080: "http",
            9200: "elasticsearch",
            2222: "ssh", 7777: "redis", 8081: "http", 8443: "https", 10443: "tls",
        },
        (135, 139, 445, 3389),
    ),
    ("198.18.0.2", False, {22: "ssh", 80: "http"}, (443,)),
    ("198.18.0.3", True, {19: "flood", 22: "ssh", 23: "escape", 4444: "silent", 27017: "echo"}, ()),
    (
        "198.18.0.4",
        True,
        {
            1110: "pop3", 1143: "imap", 2121: "ftp", 2525: "smtp", 3307: "mysql",
            5433: "postgresql", 6380: "redis", 8000: "http", 8888: "http",
            9201: "elasticsearch", 9443: "tls", 22222: "ssh",
        },
        (22, 80, 443),
    ),
)  # fmt: skip
_FIXED6 = ("fd18:0:0:100::1", True, {22: "ssh", 80: "http", 443: "https"}, ())
# UDP of the fixed hosts (hilos.lab.services.udp_server kinds; "drop": nftables drops it, so
# open|filtered; "reject": ICMP admin-prohibited, so filtered); every other UDP port of a live
# host is closed (ICMP port unreachable). .4 runs its services on unusual ports.
UDP_FIXED: dict[str, dict[int, str]] = {
    "198.18.0.1": {
        53: "dns", 123: "ntp", 161: "snmp", 1900: "ssdp", 11211: "memcached",
        137: "drop", 138: "reject",
    },
    "198.18.0.2": {53: "drop", 161: "reject", 500: "reject", 1434: "drop"},
    "198.18.0.4": {5000: "dns", 10000: "snmp", 3456: "ntp", 9200: "memcached", 5300: "dns"},
    "fd18:0:0:100::1": {53: "dns", 161: "snmp", 123: "drop", 1900: "reject"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PlannedHost:
    """One live host of the plan: its address, whether it answers ping, its open and filtered ports.

    `open_ports` maps port -> labsvc kind (ssh, http, tls, flood, ...).
    """

    addr: str
    family: int
    icmp: bool
    open_ports: Mapping[int, str] = field(default_factory=dict)
    filtered_ports: tuple[int, ...] = ()
    udp: Mapping[int, str] = field(default_factory=dict)  # port -> UDP kind, drop or reject


def plan_hosts(
    seed: int = 1, dense: int = 60, sparse: int = 500, ipv6: int = 6
) -> list[PlannedHost]:
    """The live hosts of a lab, reproducible from `seed`.

    `dense` counts live hosts in 198.18.0.0/24 including the four fixed ones (always present);
    `sparse` hosts are scattered over the rest of 198.18.0.0/16 (never in the unreachable block);
    `ipv6` hosts live in fd18:0:0:100::/64 with small interface ids (::1 fixed, the rest < ::10000).
    """
    if min(dense, sparse, ipv6) < 0:
        raise LabError("host counts must not be negative")
    if dense > 250:
        raise LabError(f"dense hosts: at most 250 fit in {DENSE} (asked {dense})")
    if sparse > 60000:
        raise LabError(f"sparse hosts: at most 60000 (asked {sparse})")
    if ipv6 > 60000:
        raise LabError(f"IPv6 hosts: at most 60000 (asked {ipv6})")
    rng = random.Random(seed)
    hosts: list[PlannedHost] = [
        PlannedHost(addr, 4, icmp, dict(ports), filt, dict(UDP_FIXED.get(addr, {})))
        for addr, icmp, ports, filt in _FIXED4
    ]
    base4 = int(ipaddress.IPv4Address("198.18.0.0"))
    # Dense: .5-.250 (.1-.4 fixed, .251-.254 kept dead so docs and tests can name a dead host).
    for last in sorted(rng.sample(range(5, 251), max(0, dense - len(_FIXED4)))):
        hosts.append(_random_host(rng, str(ipaddress.IPv4Address(base4 + last)), 4))
    # Sparse: third octet 1-253 (0 is the dense /24, 254 the unreachable block), last octet 1-254.
    picks = rng.sample(range(253 * 254), sparse)
    for n in sorted(picks):
        third, last = divmod(n, 254)
        addr = str(ipaddress.IPv4Address(base4 + (third + 1) * 256 + last + 1))
        hosts.append(_random_host(rng, addr, 4))
    if ipv6:
        addr6, icmp6, ports6, filt6 = _FIXED6
        hosts.append(PlannedHost(addr6, 6, icmp6, dict(ports6), filt6, dict(UDP_FIXED[addr6])))
        base6 = int(ipaddress.IPv6Address("fd18:0:0:100::"))
        for iid in sorted(rng.sample(range(2, 0x10000), ipv6 - 1)):
            hosts.append(_random_host(rng, str(ipaddress.IPv6Address(base6 + iid)), 6))
    return hosts


def _random_host(rng: random.Random, addr: str, family: int) -> PlannedHost:
    count = rng.choices(range(4), weights=_PORT_COUNT_WEIGHTS)[0]
    icmp = rng.random() >= _ICMP_SILENT_SHARE
    if not icmp:
        count = max(count, 1)  # an ICMP-silent host is findable by TCP only
    ports: dict[int, str] = {}
    while len(ports) < count:
        port, kind, _ = rng.choices(_POOL, weights=_POOL_WEIGHTS)[0]
        ports[port] = kind
    filtered: tuple[int, ...] = ()
    if rng.random() < _FILTERED_SHARE:
        free = [p for p in _FILTER_POOL if p not in ports]
        filtered = tuple(sorted(rng.sample(free, rng.randint(2, 3))))
    return PlannedHost(addr, family, icmp, ports, filtered)
