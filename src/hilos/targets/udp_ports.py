"""UDP ports: nmap's top UDP ports ranking, UDP service names, and `-p U:53,T:22` specs.

The ranking follows nmap-services' UDP open frequencies for its head (631, 161, 137, 123 ...)
and holds the same 100 ports as ``nmap -sU --top-ports 100``; beyond 100 come the remaining
ports 1-1024, then the rest in order.
"""

from __future__ import annotations

import re
from typing import Final

from hilos.errors import PortSpecError
from hilos.targets.ports import parse_ports

__all__ = ["UDP_SERVICES", "split_protocols", "top_udp_ports", "udp_service_name"]

_TOP100: Final = (
    631, 161, 137, 123, 138, 1434, 445, 135, 67, 53, 139, 500, 68, 520, 1900, 4500, 514, 49152,
    162, 69, 5353, 111, 49154, 1701, 998, 996, 997, 999, 3283, 49153, 1812, 136, 2222, 2049,
    3456, 32768, 1813, 1433, 1025, 120, 626, 5060, 1645, 1646, 177, 427, 497, 593, 623, 1719,
    1718, 7, 9, 17, 19, 49, 80, 88, 158, 443, 515, 518, 1022, 1023, 1026, 1027, 1028, 1029,
    1030, 2000, 2048, 2223, 3703, 4444, 5000, 5632, 9200, 10000, 17185, 20031, 30718, 31337,
    32769, 32771, 32815, 33281, 49156, 49181, 49182, 49185, 49186, 49188, 49190, 49191, 49192,
    49193, 49194, 49200, 49201, 65024,
)  # fmt: skip

UDP_SERVICES: Final[dict[int, str]] = {
    7: "echo", 9: "discard", 17: "qotd", 19: "chargen", 49: "tacacs", 53: "domain",
    67: "dhcps", 68: "dhcpc", 69: "tftp", 80: "http", 88: "kerberos-sec", 111: "rpcbind",
    120: "cfdptkt", 123: "ntp", 135: "msrpc", 136: "profile", 137: "netbios-ns",
    138: "netbios-dgm", 139: "netbios-ssn", 158: "pcmail-srv", 161: "snmp", 162: "snmptrap",
    177: "xdmcp", 427: "svrloc", 443: "https", 445: "microsoft-ds", 497: "retrospect",
    500: "isakmp", 514: "syslog", 515: "printer", 518: "ntalk", 520: "route",
    593: "http-rpc-epmap", 623: "asf-rmcp", 626: "serialnumberd", 631: "ipp", 996: "vsinet",
    997: "maitrd", 998: "puparp", 999: "applix", 1022: "exp2", 1025: "blackjack",
    1026: "win-rpc", 1029: "solid-mux", 1030: "iad1", 1433: "ms-sql-s", 1434: "ms-sql-m",
    1645: "radius", 1646: "radacct", 1701: "L2TP", 1718: "h225gatedisc", 1719: "h323gatestat",
    1812: "radius", 1813: "radacct", 1900: "upnp", 2000: "cisco-sccp", 2048: "dls-monitor",
    2049: "nfs", 2222: "msantipiracy", 2223: "rockwell-csp2", 3283: "netassistant",
    3456: "IISrpc-or-vat", 3703: "adobeserver-3", 4444: "krb524", 4500: "nat-t-ike",
    5000: "upnp", 5060: "sip", 5353: "zeroconf", 5632: "pcanywherestat", 9200: "wap-wsp",
    10000: "ndmp", 11211: "memcache", 17185: "wdbrpc", 20031: "bakbonenetvault",
    31337: "BackOrifice", 32768: "omad", 32769: "filenet-rpc", 32771: "sometimes-rpc6",
}  # fmt: skip

_PREFIX = re.compile(r"\s*([A-Za-z]):\s*")


def udp_service_name(port: int) -> str | None:
    """The service usually found on UDP `port` (161 -> "snmp"), or None."""
    return UDP_SERVICES.get(port)


def top_udp_ports(n: int) -> tuple[int, ...]:
    """The `n` most frequently open UDP ports, most frequent first."""
    if n <= len(_TOP100):
        return _TOP100[:n]
    seen = set(_TOP100)
    rest = [p for p in range(1, 65536) if p not in seen]
    rest.sort(key=lambda p: p > 1024)  # stable: the well-known range first
    return (*_TOP100, *rest[: n - len(_TOP100)])


def split_protocols(spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(TCP ports, UDP ports) of an nmap-style spec: ``U:`` and ``T:`` apply to the items after
    them up to the next prefix; items before any prefix are for both protocols.

    >>> split_protocols("U:53,161,T:22,80")
    ((22, 80), (53, 161))
    >>> split_protocols("22,U:53")
    ((22,), (22, 53))
    """
    if not isinstance(spec, str):
        raise PortSpecError(f"invalid port spec {spec!r}: expected a string")
    groups: dict[str, list[str]] = {"": [], "T": [], "U": []}
    current = ""
    for raw in spec.split(","):
        m = _PREFIX.match(raw)
        item = raw
        if m:
            current = m.group(1).upper()
            if current not in ("T", "U"):
                raise PortSpecError(
                    f"invalid port spec {spec!r}: protocol {m.group(1)}: is not supported "
                    "(T: and U: are)"
                )
            item = raw[m.end() :]
        groups[current].append(item)
    both = _parse(groups[""], spec)
    tcp = tuple(sorted(set(both) | set(_parse(groups["T"], spec))))
    udp = tuple(sorted(set(both) | set(_parse(groups["U"], spec))))
    if not tcp and not udp:
        raise PortSpecError(f"invalid port spec {spec!r}: no ports")
    return tcp, udp


def _parse(items: list[str], spec: str) -> tuple[int, ...]:
    if not items:
        return ()
    try:
        return parse_ports(",".join(items))
    except PortSpecError as exc:
        raise PortSpecError(f"invalid port spec {spec!r}: {exc}") from exc
