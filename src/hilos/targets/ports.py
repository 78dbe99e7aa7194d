"""TCP port specifications: `-p` parsing, the project's own top-ports ranking, service names.

Port specs (``parse_ports``) follow nmap's syntax for TCP:

    22,80,443      single ports          1-1024     an inclusive range
    -1024          1-1024                60000-     60000-65535
    -              every port 1-65535    T:22,80    ``T:`` (TCP) is tolerated; ``U:`` is refused
    http,ssh       names from this module's service table (``service_port``)

Whitespace around commas and dashes is ignored. Port 0, ports above 65535, reversed ranges, unknown
names and empty items raise PortSpecError naming the spec.

The top-ports ranking (``top_ports``) is the project's own, composed from public knowledge of which
services are common; it is not taken from any other tool's data file. It is built by one documented
rule so that every n from 1 to 65535 has an answer:

1. ``_HAND_RANKED``: about 200 ports ranked by hand, most common first (web, remote access, mail,
   file sharing, directory, databases, then management and message-queue ports);
2. every other port of the service table (``_SERVICES``), ascending;
3. the rest of the well-known range 1-1024, ascending;
4. conventional high ports: 1025-1100 and 49152-49200 (RPC/ephemeral ranges where Windows services
   land), the alternate web block 8000-8099, repdigits 1111..9999, multiples of 1000 from 2000 to
   65000, and 10000-10010;
5. everything else from 1025 to 65535, ascending.

``top_ports(n)`` with n above 65535 is clamped to all 65535 ports (the list cannot get longer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from hilos.errors import PortSpecError

__all__ = [
    "MAX_PORT",
    "exclude_ports",
    "parse_ports",
    "service_name",
    "service_port",
    "top_ports",
]

MAX_PORT = 65535

# Port -> service name, after IANA's registry names where a service is well known by them, or the
# name operators use (redis, elasticsearch) where IANA's entry is something nobody runs.
_SERVICES: dict[int, str] = {
    1: "tcpmux",
    7: "echo",
    9: "discard",
    13: "daytime",
    17: "qotd",
    19: "chargen",
    20: "ftp-data",
    21: "ftp",
    22: "ssh",
    23: "telnet",
    25: "smtp",
    37: "time",
    43: "whois",
    49: "tacacs",
    53: "domain",
    70: "gopher",
    79: "finger",
    80: "http",
    81: "http-alt",
    88: "kerberos",
    102: "iso-tsap",
    104: "dicom",
    106: "pop3pw",
    109: "pop2",
    110: "pop3",
    111: "rpcbind",
    113: "ident",
    119: "nntp",
    135: "msrpc",
    137: "netbios-ns",
    139: "netbios-ssn",
    143: "imap",
    161: "snmp",
    179: "bgp",
    194: "irc",
    199: "smux",
    264: "bgmp",
    389: "ldap",
    427: "svrloc",
    443: "https",
    444: "snpp",
    445: "microsoft-ds",
    464: "kpasswd",
    465: "submissions",
    497: "retrospect",
    502: "modbus",
    512: "exec",
    513: "login",
    514: "shell",
    515: "printer",
    524: "ncp",
    543: "klogin",
    544: "kshell",
    548: "afp",
    554: "rtsp",
    563: "nntps",
    587: "submission",
    593: "http-rpc-epmap",
    631: "ipp",
    636: "ldaps",
    646: "ldp",
    749: "kerberos-adm",
    853: "domain-s",
    873: "rsync",
    902: "vmware-auth",
    989: "ftps-data",
    990: "ftps",
    992: "telnets",
    993: "imaps",
    995: "pop3s",
    1080: "socks",
    1099: "rmiregistry",
    1194: "openvpn",
    1352: "lotusnotes",
    1433: "ms-sql-s",
    1434: "ms-sql-m",
    1521: "oracle",
    1701: "l2tp",
    1723: "pptp",
    1812: "radius",
    1883: "mqtt",
    1900: "upnp",
    2049: "nfs",
    2082: "cpanel",
    2083: "cpanel-ssl",
    2181: "zookeeper",
    2375: "docker",
    2376: "docker-tls",
    2379: "etcd-client",
    2380: "etcd-server",
    2404: "iec-104",
    3128: "squid-http",
    3260: "iscsi",
    3268: "globalcatldap",
    3269: "globalcatldapssl",
    3306: "mysql",
    3389: "ms-wbt-server",
    3690: "svn",
    4369: "epmd",
    4444: "krb524",
    4786: "smart-install",
    5060: "sip",
    5061: "sips",
    5222: "xmpp-client",
    5269: "xmpp-server",
    5353: "mdns",
    5432: "postgresql",
    5601: "kibana",
    5631: "pcanywheredata",
    5672: "amqp",
    5671: "amqps",
    5900: "vnc",
    5901: "vnc-1",
    5902: "vnc-2",
    5938: "teamviewer",
    5984: "couchdb",
    5985: "wsman",
    5986: "wsmans",
    6000: "x11",
    6379: "redis",
    6443: "kubernetes",
    6514: "syslog-tls",
    6667: "irc",
    6697: "ircs",
    7001: "weblogic",
    7474: "neo4j",
    8000: "http-alt",
    8008: "http",
    8009: "ajp13",
    8080: "http-proxy",
    8081: "http-alt",
    8086: "influxdb",
    8088: "radan-http",
    8443: "https-alt",
    8883: "secure-mqtt",
    8888: "http-alt",
    9000: "cslistener",
    9042: "cassandra",
    9090: "zeus-admin",
    9092: "kafka",
    9100: "jetdirect",
    9200: "elasticsearch",
    9300: "elasticsearch-transport",
    9418: "git",
    10000: "webmin",
    10250: "kubelet",
    11211: "memcache",
    15672: "rabbitmq-mgmt",
    20000: "dnp",
    25565: "minecraft",
    27017: "mongodb",
    27018: "mongodb-shard",
    50000: "ibm-db2",
}

_SERVICE_PORTS: dict[str, int] = {}
for _port, _name in sorted(_SERVICES.items()):
    _SERVICE_PORTS.setdefault(_name, _port)  # a name used twice maps to its lowest port
del _port, _name

# Most common first, by judgement: web and remote access, then mail, Windows/SMB, DNS, databases
# and VPN, then directory, printing, file sharing, management interfaces, queues and IoT.
_HAND_RANKED: tuple[int, ...] = (
    80, 443, 22, 21, 25, 3389, 110, 445, 139, 143,
    53, 135, 3306, 8080, 1723, 111, 995, 993, 5900, 1025,
    587, 8888, 199, 1720, 465, 8443, 8000, 23, 5432, 1433,
    8081, 3128, 6379, 1521, 27017, 9200, 5985, 5986, 389, 636,
    88, 464, 3268, 3269, 2049, 873, 631, 515, 9100, 554,
    5060, 5061, 179, 113, 81, 10000, 514, 513, 512, 548,
    1080, 1194, 1812, 8008, 8009, 8088, 9090, 9000, 5000, 3000,
    2000, 5001, 5800, 5901, 5902, 6000, 6001, 7001, 7000, 8010,
    8082, 8083, 8084, 8085, 8086, 8090, 8180, 8181, 8800, 9080,
    9443, 4443, 2082, 2083, 2086, 2087, 2095, 2096, 10443, 7443,
    6443, 2375, 2376, 2379, 2380, 10250, 4369, 5672, 5671, 15672,
    1883, 8883, 9092, 2181, 11211, 9042, 7474, 5984, 50000, 8091,
    3690, 9418, 1099, 1352, 1434, 5631, 5938, 6667, 6697, 5222,
    5269, 853, 990, 992, 989, 563, 119, 79, 7, 9,
    13, 37, 43, 70, 106, 109, 161, 264, 427, 444,
    497, 524, 543, 544, 593, 646, 749, 902, 1026, 1027,
    1028, 1029, 1030, 49152, 49153, 49154, 49155, 49156, 49157, 3260,
    502, 102, 2404, 20000, 4786, 6514, 1900, 5353, 1701, 5601,
    9300, 27018, 25565, 8001, 8002, 8003, 8444, 8500, 8600, 8765,
    8899, 8983, 9001, 9002, 9091, 9191, 9999, 7070, 7777, 1337,
)  # fmt: skip


def _conventional_high_ports() -> Iterable[int]:
    yield from range(1025, 1101)
    yield from range(49152, 49201)
    yield from range(8000, 8100)
    yield from (d * 1111 for d in range(1, 10))
    yield from range(2000, 65001, 1000)
    yield from range(10000, 10011)


@lru_cache(maxsize=1)
def _ranking() -> tuple[int, ...]:
    """All 65535 ports in the project's ranked order (the rule is in the module docstring)."""
    seen: dict[int, None] = {}
    for group in (
        _HAND_RANKED,
        sorted(_SERVICES),
        range(1, 1025),
        _conventional_high_ports(),
        range(1025, MAX_PORT + 1),
    ):
        for port in group:
            seen.setdefault(port, None)
    return tuple(seen)


def top_ports(n: int) -> tuple[int, ...]:
    """The ``n`` most common TCP ports, most common first (the project's own ranking).

    n above 65535 is clamped to all 65535 ports; n below 1 raises PortSpecError.

    >>> top_ports(3)
    (80, 443, 22)
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise PortSpecError(f"invalid --top-ports {n!r}: expected a whole number")
    if n < 1:
        raise PortSpecError(f"invalid --top-ports {n}: must be at least 1")
    return _ranking()[:n]


def service_name(port: int) -> str | None:
    """The service usually found on TCP ``port`` (22 -> "ssh"), or None if not in the table."""
    if isinstance(port, bool) or not isinstance(port, int):
        return None
    return _SERVICES.get(port)


def service_port(name: str) -> int | None:
    """The TCP port of service ``name`` (``"ssh"`` -> 22), case-insensitive, or None if unknown."""
    if not isinstance(name, str):
        return None
    return _SERVICE_PORTS.get(name.strip().lower())


_ITEM = re.compile(r"(?P<lo>[0-9]*)\s*-\s*(?P<hi>[0-9]*)|(?P<one>[0-9]+)|(?P<name>[A-Za-z][\w.-]*)")
_PROTO = re.compile(r"\s*([A-Za-z]):\s*")


def _number(text: str, spec: str) -> int:
    # [0-9]+ only: int() would also accept "+5", "1_000" and non-ASCII digits.
    if len(text) > 6:
        raise PortSpecError(f"invalid port spec {spec!r}: port {text} is out of range 1-{MAX_PORT}")
    value = int(text)
    if not 1 <= value <= MAX_PORT:
        raise PortSpecError(
            f"invalid port spec {spec!r}: port {value} is out of range 1-{MAX_PORT}"
        )
    return value


def _ranges(spec: str) -> list[tuple[int, int]]:
    if not isinstance(spec, str):
        raise PortSpecError(f"invalid port spec {spec!r}: expected a string")
    if not spec.strip():
        raise PortSpecError("invalid port spec '': it is empty")
    out: list[tuple[int, int]] = []
    for raw in spec.split(","):
        item = raw.strip()
        proto = _PROTO.match(item)
        if proto:
            letter = proto.group(1).upper()
            if letter == "U":
                raise PortSpecError(f"invalid port spec {spec!r}: UDP ports need a UDP scan (-sU)")
            if letter != "T":
                raise PortSpecError(
                    f"invalid port spec {spec!r}: protocol {proto.group(1)}: is not supported "
                    "(TCP only; T: is accepted)"
                )
            item = item[proto.end() :]
        if not item:
            raise PortSpecError(f"invalid port spec {spec!r}: empty item (stray comma?)")
        m = _ITEM.fullmatch(item)
        if m is None:
            raise PortSpecError(
                f"invalid port spec {spec!r}: cannot parse {item!r} "
                "(expected PORT, LOW-HIGH, -HIGH, LOW-, - or a service name)"
            )
        if m.group("one") is not None:
            port = _number(m.group("one"), spec)
            out.append((port, port))
        elif m.group("name") is not None:
            port_of_name = service_port(m.group("name"))
            if port_of_name is None:
                raise PortSpecError(f"invalid port spec {spec!r}: unknown service {item!r}")
            out.append((port_of_name, port_of_name))
        else:
            lo = _number(m.group("lo"), spec) if m.group("lo") else 1
            hi = _number(m.group("hi"), spec) if m.group("hi") else MAX_PORT
            if lo > hi:
                raise PortSpecError(
                    f"invalid port spec {spec!r}: range {item!r} starts after it ends ({lo} > {hi})"
                )
            out.append((lo, hi))
    return out


def parse_ports(spec: str) -> tuple[int, ...]:
    """Parse a TCP port spec into a sorted tuple of unique ports.

    >>> parse_ports("443, 22,80-82")
    (22, 80, 81, 82, 443)
    >>> len(parse_ports("-"))
    65535
    """
    ranges = _ranges(spec)
    if len(ranges) == 1:
        lo, hi = ranges[0]
        return tuple(range(lo, hi + 1))
    ports: set[int] = set()
    for lo, hi in ranges:
        ports.update(range(lo, hi + 1))
    return tuple(sorted(ports))


def exclude_ports(ports: Iterable[int], spec: str) -> tuple[int, ...]:
    """``ports`` without those of ``spec`` (``--exclude-ports 9100``), keeping the given order."""
    excluded = frozenset(parse_ports(spec))
    return tuple(p for p in ports if p not in excluded)
