"""The practice lab: a scanner, a router and hundreds of hosts in network namespaces (Linux, root).

Three namespaces per lab, all named after it, nothing in the root namespace::

    <name>-scan   198.19.0.2/30, fd18:ff::2/64; routes only 198.18.0.0/16 and fd18:0:0:100::/64
        | veth
    <name>-net    the router: forwards, blackholes dead addresses, answers 198.18.254.0/24
        |         host-unreachable, drops --loss percent of forwarded packets (nftables numgen)
        | veth (rtt 0), or two TUN devices joined by a userspace delayer (rtt > 0: no sch_netem)
    <name>-hosts  every live address on its loopback; hilos.labsvc serves the open ports;
                  nftables drops ICMP echo to ICMP-silent hosts and TCP to filtered ports

Fixed hosts (always present, whatever the seed)::

    198.18.0.1   ICMP on; 12 common services (21 22 25 80 110 143 443 3306 5432 6379 8080
                 9200), 5 on unusual ports (2222 ssh, 7777 redis, 8081 http, 8443 https,
                 10443 tls); filtered 135 139 445 3389; every other port closed
    198.18.0.2   ICMP silent (echo dropped); open 22 ssh and 80 http; filtered 443
    198.18.0.3   the hostile host: 19 flood (10 MB), 23 terminal escapes, 4444 accepts and
                 never speaks, 27017 echo (MongoDB's port; sends the scanner's probe back);
                 also 22 ssh
    198.18.0.4   services on unusual ports only (1110 1143 2121 2525 3307 5433 6380 8000 8888
                 9201 9443 22222); filtered 22 80 443
    fd18:0:0:100::1   ICMPv6 on; open 22 80 443
    198.18.0.251-254  always dead (silent); 198.18.254.0/24 answers host-unreachable

Names: the router runs the lab's DNS server (hilos.labdns) on 198.19.0.1 and fd18:ff::1, and
``/etc/netns/<name>-scan/resolv.conf`` points the scanner namespace at it (``ip netns exec``
mounts it over /etc/resolv.conf; an nsswitch.conf there says "hosts: files dns", so nothing else
is asked). It answers for ``lab.test`` (RFC 6761) and refuses every other name::

    h1 h2 h3 h4.lab.test   198.18.0.1 .2 .3 .4 (and PTRs back)
    v6.lab.test            fd18:0:0:100::1
    dual.lab.test          198.18.0.1 and fd18:0:0:100::1
    multi.lab.test         198.18.0.1 and 198.18.0.2
    dead.lab.test          198.18.0.254

Example::

    lab = Lab.up("demo", rtt_ms=40)
    try:
        print(lab.run(["ping", "-c1", "198.18.0.1"]).stdout)
    finally:
        lab.down()
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import importlib
import ipaddress
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hilos.errors import LabError, UsageError

__all__ = [
    "DEAD_HOST",
    "LAB4",
    "LAB6",
    "STATE_ROOT",
    "UNREACHABLE",
    "Lab",
    "LabNameError",
    "LabStatus",
    "PlannedHost",
    "plan_hosts",
    "teardown",
]

LAB4 = "198.18.0.0/16"
DENSE = "198.18.0.0/24"
UNREACHABLE = "198.18.254.0/24"
LAB6 = "fd18:0:0:100::/64"
DEAD_HOST = "198.18.0.254"

SCAN_ADDR4, ROUTER_SCAN_ADDR4 = "198.19.0.2", "198.19.0.1"
ROUTER_HOSTS_ADDR4, HOSTS_ADDR4 = "198.19.0.5", "198.19.0.6"
SCAN_ADDR6, ROUTER_SCAN_ADDR6 = "fd18:ff::2", "fd18:ff::1"
ROUTER_HOSTS_ADDR6, HOSTS_ADDR6 = "fd18:fe::1", "fd18:fe::2"

STATE_ROOT = Path("/run/hilos-lab")
NETNS_DIR = Path("/run/netns")
ETC_NETNS = Path("/etc/netns")  # `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*
DNS_SERVERS = (ROUTER_SCAN_ADDR4, ROUTER_SCAN_ADDR6)  # the scanner's next hop: no RTT, no loss

# Interface names live inside the lab's own namespaces, so they never collide between labs.
_IF_SCAN, _IF_ROUTER_SCAN = "scan0", "up0"
_IF_ROUTER_HOSTS, _IF_HOSTS = "down0", "hosts0"
_TUN_ROUTER, _TUN_HOSTS = "dly0", "dly1"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$")
_READY_TIMEOUT = 30.0
_FIX_ROOT = "run it as root, e.g. `sudo hilos lab up`"

# --------------------------------------------------------------------------------------------
# The plan: which hosts live, with which ports. Pure and reproducible from the seed.
# --------------------------------------------------------------------------------------------

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
        PlannedHost(addr, 4, icmp, dict(ports), filt) for addr, icmp, ports, filt in _FIXED4
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
        hosts.append(PlannedHost(addr6, 6, icmp6, dict(ports6), filt6))
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


def _truth(
    name: str, plan: Sequence[PlannedHost], rtt_ms: float, loss_percent: float, seed: int
) -> dict[str, Any]:
    describe = _labsvc_describe()
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
        hosts.append({"addr": h.addr, "family": h.family, "icmp": h.icmp, "ports": ports})
    return {
        "name": name,
        "rtt_ms": float(rtt_ms),
        "loss_percent": float(loss_percent),
        "seed": seed,
        "scanner_ns": f"{name}-scan",
        "scanner_addr4": SCAN_ADDR4,
        "scanner_addr6": SCAN_ADDR6,
        "ranges": {"lab4": LAB4, "dense": DENSE, "unreachable": UNREACHABLE, "lab6": LAB6},
        "dns": _dns_truth(plan),
        "hosts": hosts,
    }


_SERVICE_MODULE = "hilos.labsvc"  # run as `python -m` in the hosts namespace; has describe(kind)
_DNS_MODULE = "hilos.labdns"  # run as `python -m` in the router namespace
_RESOLVER_FILES = ("resolv.conf", "nsswitch.conf")


def _dns_spec(plan: Sequence[PlannedHost]) -> Any:
    from hilos import labdns

    return labdns.lab_dns_spec(
        (h.addr for h in plan), (DEAD_HOST,), [(a, 53) for a in DNS_SERVERS], (LAB4, LAB6)
    )


def _dns_truth(plan: Sequence[PlannedHost]) -> dict[str, Any]:
    from hilos.labdns import DOMAIN

    records = _dns_spec(plan).records
    suffix = "." + DOMAIN
    return {
        "domain": DOMAIN,
        "servers": list(DNS_SERVERS),
        "names": {
            n: {t: list(v) for t, v in r.items()}
            for n, r in records.items()
            if n.endswith(suffix) and n != "ns" + suffix
        },
        "ptr": {
            str(ipaddress.ip_address(_unreverse(n))): r["PTR"][0]
            for n, r in records.items()
            if "PTR" in r
        },
    }


def _unreverse(name: str) -> str:
    """The address of a reverse-lookup name (in-addr.arpa or ip6.arpa)."""
    labels = name.split(".")[:-2][::-1]
    if name.endswith(".in-addr.arpa"):
        return ".".join(labels)
    return ":".join("".join(labels[i : i + 4]) for i in range(0, 32, 4))


def _resolver_files(name: str) -> dict[str, str]:
    """resolv.conf and nsswitch.conf for the scanner namespace: the lab's DNS server only.

    nsswitch.conf is this machine's with its `hosts:` line replaced, so that no other source
    (systemd-resolved via nss-resolve, mDNS) can answer a lab test's lookup.
    """
    resolv = (
        f"# hilos lab {name}: the lab's own DNS server ({_DNS_MODULE} in {name}-net); it answers\n"
        "# for lab.test, refuses everything else and never forwards. Removed by `hilos lab down`.\n"
        + "".join(f"nameserver {a}\n" for a in DNS_SERVERS)
        + "options timeout:1 attempts:2\n"
    )
    try:
        lines = Path("/etc/nsswitch.conf").read_text().splitlines()
    except OSError:
        lines = []
    kept = [line for line in lines if not re.match(r"\s*hosts\s*:", line)]
    nsswitch = "\n".join([f"# hilos lab {name}: lab names from the lab's DNS only", *kept])
    return {"resolv.conf": resolv, "nsswitch.conf": nsswitch + "\nhosts: files dns\n"}


def _remove_resolver(name: str) -> bool:
    """Remove the scanner namespace's resolver files (only ours); whether any was there."""
    ns_dir = ETC_NETNS / f"{name}-scan"
    found = False
    for fname in _RESOLVER_FILES:
        with contextlib.suppress(FileNotFoundError):
            (ns_dir / fname).unlink()
            found = True
    with contextlib.suppress(OSError):
        ns_dir.rmdir()  # only when empty: never remove what someone else put there
    return found


def _labsvc_describe() -> Any:
    try:
        module = importlib.import_module(_SERVICE_MODULE)
    except ImportError as exc:
        raise LabError(f"the lab's service server {_SERVICE_MODULE} is missing: {exc}") from exc
    return module.describe


# --------------------------------------------------------------------------------------------
# Running commands
# --------------------------------------------------------------------------------------------


def _run(cmd: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
    try:
        out = subprocess.run(
            list(cmd), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise LabError(
            f"{cmd[0]} not found: install iproute2 and nftables (`make system-deps`)"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{' '.join(cmd[:6])}` took longer than {timeout:g} s") from exc
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().splitlines()
        raise LabError(f"`{' '.join(cmd[:6])}` failed: {' | '.join(detail[:3]) or out.returncode}")
    return out.stdout


def _ip_batch(ns: str, lines: Sequence[str]) -> None:
    if lines:
        _run(["ip", "-n", ns, "-batch", "-"], stdin="\n".join(lines) + "\n")


def _in_ns(ns: str, *cmd: str, stdin: str | None = None) -> str:
    return _run(["ip", "netns", "exec", ns, *cmd], stdin=stdin)


def _ns_exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


class LabNameError(LabError, UsageError):
    """A lab name unfit for namespace names: bad user input (the CLI exits 2), still a LabError."""


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise LabNameError(
            f"bad lab name {name!r}: use 1-24 letters, digits, '-' or '_', starting with a letter "
            "or digit"
        )


def _check_privileges() -> None:
    if sys.platform != "linux":
        raise LabError("the lab needs Linux network namespaces")
    if os.geteuid() != 0:
        raise LabError(f"the lab needs root (network namespaces, nftables): {_FIX_ROOT}")
    for tool, pkg in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            raise LabError(f"`{tool}` not found: install {pkg} (`make system-deps`)")


def _namespaces(name: str) -> tuple[str, str, str]:
    return f"{name}-scan", f"{name}-net", f"{name}-hosts"


def _state_dir(name: str) -> Path:
    return STATE_ROOT / name


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state letter follows the parenthesised command name; a zombie has finished.
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] not in (b"Z", b"X")


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop_pids(pids: Sequence[int], grace: float = 2.0) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left = list(pids)
    while left and time.monotonic() < deadline:
        for pid in left:
            _reap(pid)
        left = [p for p in left if _alive(p)]
        if left:
            time.sleep(0.02)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for pid in left:
        for _ in range(100):
            _reap(pid)
            if not _alive(pid):
                break
            time.sleep(0.01)


def _ns_pids(ns: str) -> list[int]:
    if not _ns_exists(ns):
        return []
    try:
        out = _run(["ip", "netns", "pids", ns], timeout=10)
    except LabError:
        return []
    return [int(x) for x in out.split() if x.isdigit()]


def _start_daemon(ns: str, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start `python args…` inside `ns`, detached (own session) so it outlives `hilos lab up`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_child_env(),
        )


def _child_env() -> dict[str, str]:
    # The children import hilos: make sure they find this very copy, installed or not.
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, what: str, deadline: float) -> None:
    while True:
        try:
            text = log.read_text(errors="replace")
        except OSError:
            text = ""
        if re.search(r"(?m)^ready\b", text):
            return
        if proc.poll() is not None:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise LabError(f"{what} exited with status {proc.returncode}: {tail or 'no output'}")
        if time.monotonic() > deadline:
            raise LabError(f"{what} did not report ready within {_READY_TIMEOUT:g} s (log: {log})")
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# Building and tearing down
# --------------------------------------------------------------------------------------------

_COMMON_SYSCTLS = (
    "net.ipv4.conf.all.rp_filter=0",
    "net.ipv4.conf.default.rp_filter=0",
    # ICMP errors (host/port unreachable) are rate limited by default: a sweep of the
    # unreachable block would see only the first few. ratemask=0 exempts every ICMP type.
    "net.ipv4.icmp_ratemask=0",
    "net.ipv6.icmp.ratelimit=0",
    "net.ipv6.conf.all.accept_dad=0",
    "net.ipv6.conf.default.accept_dad=0",
)
_SYSCTLS = {
    "scan": (
        "net.ipv4.ping_group_range=0 2147483647",
        "net.ipv4.ip_local_port_range=10240 65535",
        "net.ipv4.tcp_tw_reuse=1",
    ),
    "net": ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"),
    "hosts": ("net.core.somaxconn=4096", "net.ipv4.tcp_max_syn_backlog=4096"),
}


def _nft_hosts(plan: Sequence[PlannedHost]) -> str:
    silent4 = [h.addr for h in plan if not h.icmp and h.family == 4]
    silent6 = [h.addr for h in plan if not h.icmp and h.family == 6]
    filt4 = [f"{h.addr} . {p}" for h in plan if h.family == 4 for p in h.filtered_ports]
    filt6 = [f"{h.addr} . {p}" for h in plan if h.family == 6 for p in h.filtered_ports]

    def nft_set(name: str, typ: str, elems: list[str]) -> str:
        body = f"elements = {{ {', '.join(elems)} }}" if elems else ""
        return f"  set {name} {{ type {typ}; {body} }}\n"

    return (
        "table inet hilos_lab {\n"
        + nft_set("silent4", "ipv4_addr", silent4)
        + nft_set("silent6", "ipv6_addr", silent6)
        + nft_set("filt4", "ipv4_addr . inet_service", filt4)
        + nft_set("filt6", "ipv6_addr . inet_service", filt6)
        + "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        "    icmp type echo-request ip daddr @silent4 drop\n"
        "    icmpv6 type echo-request ip6 daddr @silent6 drop\n"
        "    ip daddr . tcp dport @filt4 drop\n"
        "    ip6 daddr . tcp dport @filt6 drop\n"
        "  }\n"
        "}\n"
    )


def _nft_loss(loss_percent: float) -> str:
    # In the router's forward hook, so both directions lose packets; hundredths of a percent.
    threshold = round(loss_percent * 100)
    return (
        "table inet hilos_lab {\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        f"    numgen random mod 10000 < {threshold} drop\n"
        "  }\n"
        "}\n"
    )


def _services_spec(plan: Sequence[PlannedHost]) -> dict[str, Any]:
    services = [
        {"addr": h.addr, "port": port, "kind": kind}
        for h in plan
        for port, kind in sorted(h.open_ports.items())
    ]
    return {"services": services}


def _build(
    name: str,
    plan: Sequence[PlannedHost],
    rtt_ms: float,
    loss_percent: float,
    state: dict[str, Any],
    state_path: Path,
) -> dict[str, subprocess.Popen[bytes]]:
    scan, net, hosts = _namespaces(name)
    sdir = _state_dir(name)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def save() -> None:
        state["pids"] = {k: p.pid for k, p in procs.items()}
        _write_json(state_path, state)

    for ns in (scan, net, hosts):
        _run(["ip", "netns", "add", ns])
    delay_s = rtt_ms / 2000.0
    if rtt_ms > 0:
        procs["delayer"] = _start_daemon(
            net,
            ["-m", "hilos.lab", "_delayer", hosts, _TUN_ROUTER, _TUN_HOSTS, repr(delay_s)],
            sdir / "delayer.log",
        )
        save()
    # Sysctls before any interface exists, so the interfaces inherit the defaults.
    for role, ns in (("scan", scan), ("net", net), ("hosts", hosts)):
        _in_ns(ns, "sysctl", "-q", "-w", *_COMMON_SYSCTLS, *_SYSCTLS[role])
    # Created directly inside the namespaces: nothing ever appears in the root namespace.
    _run(
        ["ip", "link", "add", _IF_SCAN, "netns", scan, "type", "veth",
         "peer", "name", _IF_ROUTER_SCAN, "netns", net]
    )  # fmt: skip
    if rtt_ms <= 0:
        _run(
            ["ip", "link", "add", _IF_ROUTER_HOSTS, "netns", net, "type", "veth",
             "peer", "name", _IF_HOSTS, "netns", hosts]
        )  # fmt: skip
    _ip_batch(
        scan,
        [
            "link set lo up",
            f"link set {_IF_SCAN} up",
            f"addr add {SCAN_ADDR4}/30 dev {_IF_SCAN}",
            f"addr add {SCAN_ADDR6}/64 dev {_IF_SCAN} nodad",
            f"route add {LAB4} via {ROUTER_SCAN_ADDR4}",
            f"route add {LAB6} via {ROUTER_SCAN_ADDR6}",
        ],
    )
    router = [
        "link set lo up",
        f"link set {_IF_ROUTER_SCAN} up",
        f"addr add {ROUTER_SCAN_ADDR4}/30 dev {_IF_ROUTER_SCAN}",
        f"addr add {ROUTER_SCAN_ADDR6}/64 dev {_IF_ROUTER_SCAN} nodad",
        # Dead addresses vanish silently; only live /32s are routed on toward the hosts.
        f"route add blackhole {LAB4}",
        f"route add unreachable {UNREACHABLE}",
        f"route add blackhole {LAB6}",
    ]
    hosts_cmds = ["link set lo up"]
    for h in plan:
        plen = 32 if h.family == 4 else 128
        hosts_cmds.append(f"addr add {h.addr}/{plen} dev lo")
    live_routes: list[str] = []
    if rtt_ms <= 0:
        router += [
            f"link set {_IF_ROUTER_HOSTS} up",
            f"addr add {ROUTER_HOSTS_ADDR4}/30 dev {_IF_ROUTER_HOSTS}",
            f"addr add {ROUTER_HOSTS_ADDR6}/64 dev {_IF_ROUTER_HOSTS} nodad",
        ]
        hosts_cmds += [
            f"link set {_IF_HOSTS} up",
            f"addr add {HOSTS_ADDR4}/30 dev {_IF_HOSTS}",
            f"addr add {HOSTS_ADDR6}/64 dev {_IF_HOSTS} nodad",
            f"route add default via {ROUTER_HOSTS_ADDR4}",
            f"route add ::/0 via {ROUTER_HOSTS_ADDR6}",
        ]
        for h in plan:
            if h.family == 4:
                live_routes.append(f"route add {h.addr}/32 via {HOSTS_ADDR4}")
            else:
                live_routes.append(f"route add {h.addr}/128 via {HOSTS_ADDR6}")
    else:
        for h in plan:
            plen = 32 if h.family == 4 else 128
            live_routes.append(f"route add {h.addr}/{plen} dev {_TUN_ROUTER}")
    _ip_batch(hosts, hosts_cmds)
    _in_ns(hosts, "nft", "-f", "-", stdin=_nft_hosts(plan))
    if loss_percent > 0:
        _in_ns(net, "nft", "-f", "-", stdin=_nft_loss(loss_percent))
    spec_path = sdir / "services.json"
    _write_json(spec_path, _services_spec(plan))
    procs["labsvc"] = _start_daemon(
        hosts, ["-m", _SERVICE_MODULE, str(spec_path)], sdir / "labsvc.log"
    )
    dns_path = sdir / "dns.json"
    _write_json(dns_path, _dns_spec(plan).to_json())
    procs["labdns"] = _start_daemon(net, ["-m", _DNS_MODULE, str(dns_path)], sdir / "labdns.log")
    save()
    ns_dir = ETC_NETNS / scan
    ns_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in _resolver_files(name).items():
        (ns_dir / fname).write_text(text)
    deadline = time.monotonic() + _READY_TIMEOUT
    if rtt_ms > 0:
        _wait_ready(procs["delayer"], sdir / "delayer.log", "the delayer", deadline)
        # The TUN devices exist once the delayer is ready; a long queue absorbs scan bursts.
        router.append(f"link set {_TUN_ROUTER} up txqueuelen 30000")
        _ip_batch(
            hosts,
            [
                f"link set {_TUN_HOSTS} up txqueuelen 30000",
                f"route add default dev {_TUN_HOSTS}",
                f"route add ::/0 dev {_TUN_HOSTS}",
            ],
        )
    _ip_batch(net, router + live_routes)
    _wait_ready(procs["labsvc"], sdir / "labsvc.log", "the service server (hilos.labsvc)", deadline)
    _wait_ready(procs["labdns"], sdir / "labdns.log", "the DNS server (hilos.labdns)", deadline)
    return procs


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def _read_state(name: str) -> dict[str, Any] | None:
    try:
        data = json.loads((_state_dir(name) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def teardown(name: str) -> bool:
    """Remove lab `name`: its processes, namespaces and state. Idempotent; works after a crash.

    Returns whether anything was there to remove.
    """
    _check_name(name)
    _check_privileges()
    found = False
    state = _read_state(name)
    pids: set[int] = set()
    if state is not None:
        found = True
        for pid in (state.get("pids") or {}).values():
            if isinstance(pid, int) and _is_lab_process(pid):
                pids.add(pid)
    namespaces = [ns for ns in _namespaces(name) if _ns_exists(ns)]
    for ns in namespaces:
        # Whatever still runs inside the lab's namespaces belongs to the lab (or to `lab run`).
        pids.update(_ns_pids(ns))
    pids.discard(os.getpid())
    if pids:
        _stop_pids(sorted(pids))
    errors = []
    for ns in namespaces:
        found = True
        try:
            _run(["ip", "netns", "del", ns])
        except LabError as exc:
            errors.append(str(exc))
    found = _remove_resolver(name) or found
    sdir = _state_dir(name)
    if sdir.exists():
        found = True
        shutil.rmtree(sdir, ignore_errors=True)
    if errors:
        raise LabError("; ".join(errors))
    return found


def _is_lab_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"hilos.lab" in cmdline  # hilos.lab (the delayer), hilos.labsvc or hilos.labdns


# --------------------------------------------------------------------------------------------
# The public API
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LabStatus:
    """What `hilos lab status` reports. `partial` means leftovers of a lab that is not fully up."""

    name: str
    up: bool
    partial: bool = False
    truth_path: str | None = None
    rtt_ms: float = 0.0
    loss_percent: float = 0.0
    hosts4: int = 0
    hosts6: int = 0
    icmp_silent: int = 0
    open_ports: int = 0
    filtered_ports: int = 0
    problems: tuple[str, ...] = ()

    @property
    def hosts(self) -> int:
        return self.hosts4 + self.hosts6


class Lab:
    """A running lab. Build one with `Lab.up(name)`, find a running one with `Lab.attach(name)`.

    `truth` is the truth file's content (see HELPERS.md); `run(cmd)` runs a command inside the
    scanner namespace, the only place the lab may be probed from.
    """

    def __init__(
        self,
        name: str,
        truth: dict[str, Any],
        procs: Mapping[str, subprocess.Popen[bytes]] | None = None,
    ) -> None:
        self.name = name
        self.truth = truth
        self._procs = dict(procs or {})

    @classmethod
    def up(
        cls,
        name: str = "hilos",
        *,
        rtt_ms: float = 0,
        loss_percent: float = 0,
        seed: int = 1,
        dense: int = 60,
        sparse: int = 500,
        ipv6: int = 6,
    ) -> Lab:
        """Build lab `name` and return it once every host answers. Raises LabError on failure."""
        _check_name(name)
        _check_privileges()
        if not 0 <= rtt_ms <= 10000:
            raise LabError(f"rtt must be between 0 and 10000 ms (asked {rtt_ms:g})")
        if not 0 <= loss_percent <= 100:
            raise LabError(f"loss must be between 0 and 100 percent (asked {loss_percent:g})")
        if rtt_ms > 0 and not os.path.exists("/dev/net/tun"):
            raise LabError("--rtt needs /dev/net/tun (modprobe tun)")
        plan = plan_hosts(seed, dense, sparse, ipv6)
        existing = [ns for ns in _namespaces(name) if _ns_exists(ns)]
        if existing or _state_dir(name).exists():
            raise LabError(f"lab {name!r} already exists: `hilos lab down --name {name}` first")
        truth = _truth(name, plan, rtt_ms, loss_percent, seed)
        sdir = _state_dir(name)
        sdir.mkdir(parents=True, mode=0o755)
        state: dict[str, Any] = {
            "name": name,
            "rtt_ms": float(rtt_ms),
            "loss_percent": float(loss_percent),
            "seed": seed,
            "owner_pid": os.getpid(),
            "started": time.time(),
            "complete": False,
            "pids": {},
        }
        state_path = sdir / "state.json"
        _write_json(state_path, state)
        try:
            procs = _build(name, plan, rtt_ms, loss_percent, state, state_path)
            _write_json(sdir / "truth.json", truth)
            state["complete"] = True
            _write_json(state_path, state)
        except BaseException:
            with contextlib.suppress(LabError):
                teardown(name)
            raise
        return cls(name, truth, procs)

    @classmethod
    def attach(cls, name: str = "hilos") -> Lab:
        """The running lab `name` (built earlier, maybe by another process), ready to `run`."""
        _check_name(name)
        _check_privileges()  # entering its namespaces needs root
        st = cls.status(name)
        if not st.up or st.truth_path is None:
            why = f" ({'; '.join(st.problems)})" if st.problems else ""
            raise LabError(f"lab {name!r} is not up{why}: `hilos lab up --name {name}`")
        truth = json.loads(Path(st.truth_path).read_text())
        return cls(name, truth)

    @staticmethod
    def status(name: str = "hilos") -> LabStatus:
        """Whether lab `name` is up (namespaces, processes, truth file all there) and its counts."""
        _check_name(name)
        state = _read_state(name)
        namespaces = [ns for ns in _namespaces(name) if _ns_exists(ns)]
        if state is None and not namespaces:
            return LabStatus(name, up=False)
        problems = [f"namespace {ns} missing" for ns in _namespaces(name) if ns not in namespaces]
        if state is None:
            problems.append("state file missing")
            return LabStatus(name, up=False, partial=True, problems=tuple(problems))
        if not state.get("complete"):
            problems.append("not completely built (building, or crashed while building)")
        for what, pid in (state.get("pids") or {}).items():
            if not (isinstance(pid, int) and _alive(pid)):
                problems.append(f"{what} (pid {pid}) is not running")
        if state.get("complete") and not (ETC_NETNS / f"{name}-scan" / "resolv.conf").exists():
            problems.append(f"{ETC_NETNS}/{name}-scan/resolv.conf missing")
        truth_path = _state_dir(name) / "truth.json"
        truth: dict[str, Any] = {}
        try:
            truth = json.loads(truth_path.read_text())
        except (OSError, ValueError):
            problems.append("truth file missing")
        hosts = truth.get("hosts", [])
        ports = [p for h in hosts for p in h["ports"].values()]
        return LabStatus(
            name,
            up=not problems,
            partial=bool(problems),
            truth_path=str(truth_path) if truth else None,
            rtt_ms=float(state.get("rtt_ms", 0.0)),
            loss_percent=float(state.get("loss_percent", 0.0)),
            hosts4=sum(1 for h in hosts if h["family"] == 4),
            hosts6=sum(1 for h in hosts if h["family"] == 6),
            icmp_silent=sum(1 for h in hosts if not h["icmp"]),
            open_ports=sum(1 for p in ports if p["state"] == "open"),
            filtered_ports=sum(1 for p in ports if p["state"] == "filtered"),
            problems=tuple(problems),
        )

    @property
    def scanner_ns(self) -> str:
        return f"{self.name}-scan"

    @property
    def router_ns(self) -> str:
        return f"{self.name}-net"

    @property
    def hosts_ns(self) -> str:
        return f"{self.name}-hosts"

    @property
    def truth_path(self) -> Path:
        return _state_dir(self.name) / "truth.json"

    def run(
        self, cmd: Sequence[str], timeout: float | None = None, **kw: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run `cmd` inside the scanner namespace. Output is captured as text unless `kw` says
        otherwise (stdout=…, capture_output=…, text=…)."""
        if not any(k in kw for k in ("stdout", "stderr", "capture_output")):
            kw["capture_output"] = True
        if not any(k in kw for k in ("text", "encoding", "errors", "universal_newlines")):
            kw["text"] = True
        return subprocess.run(
            ["ip", "netns", "exec", self.scanner_ns, *cmd], timeout=timeout, check=False, **kw
        )

    def down(self) -> None:
        """Remove the lab (idempotent)."""
        teardown(self.name)
        for proc in self._procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)
        self._procs.clear()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def __repr__(self) -> str:
        return f"Lab({self.name!r}, hosts={len(self.truth.get('hosts', []))})"


# --------------------------------------------------------------------------------------------
# The delayer: the lab's RTT, in userspace (no sch_netem on the kernels we run on)
# --------------------------------------------------------------------------------------------

_TUNSETIFF = 0x400454CA
_IFF_TUN = 0x0001
_IFF_NO_PI = 0x1000
_CLONE_NEWNET = 0x40000000
_READ_SIZE = 2048  # TUN MTU is 1500 and the device has no GSO: no packet is larger
_BATCH = 512  # packets read per readable event before looking at the other side
_QUEUE_LIMIT = 200_000  # packets held per direction; beyond that, drop like a full router queue


def _open_tun(name: str) -> int:
    """Create TUN device `name` in the current network namespace; return its non-blocking fd."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    ifr = struct.pack("16sH22x", name.encode(), _IFF_TUN | _IFF_NO_PI)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, ifr)
    except OSError:
        os.close(fd)
        raise
    return fd


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        native = getattr(os, "setns", None)  # Python 3.12+
        if native is not None:
            native(fd, _CLONE_NEWNET)
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
    finally:
        os.close(fd)


def delay_loop(fd_a: int, fd_b: int, delay: float, stop: list[bool] | None = None) -> int:
    """Relay packets a->b and b->a, each held `delay` seconds, until `stop[0]`; return drops.

    A fixed delay keeps order, so a FIFO per direction suffices. Packets read in one wakeup share
    a deadline and travel as one queue entry: no per-packet tuple, one clock read per batch.
    One thread on purpose: most of the work is in the kernel (each write to a TUN device runs the
    receiving namespace's network stack: ~80% system time), and a thread or a process per
    direction measured slower on two shared cores. Measured at 20 ms each way: lossless to
    30-40k packets/s in each direction, ~90-110k packets/s in total at saturation.
    """
    ep = select.epoll()
    ep.register(fd_a, select.EPOLLIN)
    ep.register(fd_b, select.EPOLLIN)
    q_ab: deque[tuple[float, list[bytes]]] = deque()  # read from a, to be written to b
    q_ba: deque[tuple[float, list[bytes]]] = deque()
    held = {fd_a: 0, fd_b: 0}
    dropped = 0
    read, write, mono, poll = os.read, os.write, time.monotonic, ep.poll
    batch_range = range(_BATCH)
    # Only a caller that can set stop[0] needs the loop to wake up now and then to look at it.
    idle = 0.2 if stop is not None else -1.0
    stop = stop if stop is not None else [False]
    try:
        while not stop[0]:
            if q_ab or q_ba:
                head = min(q[0][0] for q in (q_ab, q_ba) if q)
                timeout = max(0.0, head - mono())
            else:
                timeout = idle
            events = poll(timeout)
            now = mono()
            for fd, _ev in events:
                batch: list[bytes] = []
                append = batch.append
                try:
                    for _ in batch_range:
                        append(read(fd, _READ_SIZE))
                except BlockingIOError:
                    pass
                if held[fd] >= _QUEUE_LIMIT:
                    dropped += len(batch)
                elif batch:
                    held[fd] += len(batch)
                    (q_ab if fd == fd_a else q_ba).append((now + delay, batch))
            for q, src, dst in ((q_ab, fd_a, fd_b), (q_ba, fd_b, fd_a)):
                while q and q[0][0] <= now:
                    batch = q.popleft()[1]
                    held[src] -= len(batch)
                    for pkt in batch:
                        try:
                            write(dst, pkt)
                        except OSError:
                            dropped += 1
    finally:
        ep.close()
    return dropped


def _delayer_main(argv: Sequence[str]) -> int:
    """`python -m hilos.lab _delayer HOSTS_NS ROUTER_TUN HOSTS_TUN DELAY_S`, started in the router
    namespace: opens one TUN there, enters the hosts namespace, opens the other, and relays."""
    if len(argv) != 4:
        os.write(2, b"usage: python -m hilos.lab _delayer HOSTS_NS ROUTER_TUN HOSTS_TUN DELAY_S\n")
        return 2
    hosts_ns, tun_router, tun_hosts, delay_text = argv
    delay = float(delay_text)
    # A TUN device belongs to the namespace the opener is in when it opens /dev/net/tun.
    fd_router = _open_tun(tun_router)
    _setns(str(NETNS_DIR / hosts_ns))
    fd_hosts = _open_tun(tun_hosts)
    os.chdir("/")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.write(1, b"ready\n")
    delay_loop(fd_router, fd_hosts, delay)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "_delayer":
        try:
            sys.exit(_delayer_main(sys.argv[2:]))
        except OSError as exc:
            os.write(2, f"delayer: {exc}\n".encode())
            sys.exit(1)
    os.write(2, b"usage: python -m hilos.lab _delayer HOSTS_NS ROUTER_TUN HOSTS_TUN DELAY_S\n")
    sys.exit(errno.EINVAL)
