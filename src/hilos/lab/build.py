"""Building a lab: namespaces, links, routes, nftables and its daemons."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hilos.lab.netns import (
    DELAYER_MODULE,
    IF_HOSTS,
    IF_ROUTER_HOSTS,
    IF_ROUTER_SCAN,
    IF_SCAN,
    READY_TIMEOUT,
    SERVICE_MODULE,
    TUN_HOSTS,
    TUN_ROUTER,
    in_ns,
    ip_batch,
    lab_namespaces,
    run_cmd,
    start_daemon,
    state_dir,
    wait_ready,
    write_json,
)
from hilos.lab.plan import (
    HOSTS_ADDR4,
    HOSTS_ADDR6,
    LAB4,
    LAB6,
    ROUTER_HOSTS_ADDR4,
    ROUTER_HOSTS_ADDR6,
    ROUTER_SCAN_ADDR4,
    ROUTER_SCAN_ADDR6,
    SCAN_ADDR4,
    SCAN_ADDR6,
    UNREACHABLE,
    PlannedHost,
)
from hilos.lab.resolver import DNS_MODULE, ETC_NETNS, dns_spec, resolver_files

UDP_MODULE = "hilos.lab.services.udp_server"  # run as `python -m` in the hosts namespace

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
    udp = {
        (fam, what): [
            f"{h.addr} . {p}"
            for h in plan
            if h.family == fam
            for p, k in h.udp.items()
            if k == what
        ]
        for fam in (4, 6)
        for what in ("drop", "reject")
    }

    def nft_set(name: str, typ: str, elems: list[str]) -> str:
        body = f"elements = {{ {', '.join(elems)} }}" if elems else ""
        return f"  set {name} {{ type {typ}; {body} }}\n"

    return (
        "table inet hilos_lab {\n"
        + nft_set("silent4", "ipv4_addr", silent4)
        + nft_set("silent6", "ipv6_addr", silent6)
        + nft_set("filt4", "ipv4_addr . inet_service", filt4)
        + nft_set("filt6", "ipv6_addr . inet_service", filt6)
        + nft_set("udrop4", "ipv4_addr . inet_service", udp[4, "drop"])
        + nft_set("udrop6", "ipv6_addr . inet_service", udp[6, "drop"])
        + nft_set("urej4", "ipv4_addr . inet_service", udp[4, "reject"])
        + nft_set("urej6", "ipv6_addr . inet_service", udp[6, "reject"])
        + "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        "    icmp type echo-request ip daddr @silent4 drop\n"
        "    icmpv6 type echo-request ip6 daddr @silent6 drop\n"
        "    ip daddr . tcp dport @filt4 drop\n"
        "    ip6 daddr . tcp dport @filt6 drop\n"
        "    ip daddr . udp dport @udrop4 drop\n"
        "    ip6 daddr . udp dport @udrop6 drop\n"
        "    ip daddr . udp dport @urej4 reject with icmp type admin-prohibited\n"
        "    ip6 daddr . udp dport @urej6 reject with icmpv6 type admin-prohibited\n"
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


# Linux limits the ICMP errors it sends to each peer (icmp_ratelimit 1000 ms, a burst of 6:
# inet_peer_xrlim_allow). Every lab host lives in one namespace, which would give them one
# budget (so the lab exempts ICMP from the kernel's limit, icmp_ratemask=0); this emulates it per
# host instead: one token bucket per (host address, peer) for destination unreachables leaving
# the hosts' namespace, port unreachables and a firewall's rejects alike, as the kernel does.
ICMP_RATE_PER_S = 1
ICMP_BURST = 6


def _nft_icmp_ratelimit() -> str:
    limit = f"limit rate over {ICMP_RATE_PER_S}/second burst {ICMP_BURST} packets"
    lines = ["table inet hilos_icmp_ratelimit {"]
    rules = []
    for v, typ, icmp, ip in (("4", "ipv4_addr", "icmp", "ip"), ("6", "ipv6_addr", "icmpv6", "ip6")):
        lines.append(
            f"  set peers{v} {{ type {typ} . {typ}; size 65535; flags dynamic,timeout;"
            " timeout 2m; }"
        )
        rules.append(
            f"    {icmp} type destination-unreachable"
            f" update @peers{v} {{ {ip} saddr . {ip} daddr {limit} }} drop"
        )
    lines += ["  chain output {", "    type filter hook output priority 0; policy accept;"]
    return "\n".join([*lines, *rules, "  }", "}", ""])


def _services_spec(plan: Sequence[PlannedHost]) -> dict[str, Any]:
    services = [
        {"addr": h.addr, "port": port, "kind": kind}
        for h in plan
        for port, kind in sorted(h.open_ports.items())
    ]
    return {"services": services}


def _udp_spec(plan: Sequence[PlannedHost]) -> dict[str, Any]:
    services = [
        {"addr": h.addr, "port": port, "kind": kind}
        for h in plan
        for port, kind in sorted(h.udp.items())
        if kind not in ("drop", "reject")
    ]
    return {"services": services}


def build_lab(
    name: str,
    plan: Sequence[PlannedHost],
    rtt_ms: float,
    loss_percent: float,
    state: dict[str, Any],
    state_path: Path,
    icmp_ratelimit: bool = False,
) -> dict[str, subprocess.Popen[bytes]]:
    scan, net, hosts = lab_namespaces(name)
    sdir = state_dir(name)
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def save() -> None:
        state["pids"] = {k: p.pid for k, p in procs.items()}
        write_json(state_path, state)

    for ns in (scan, net, hosts):
        run_cmd(["ip", "netns", "add", ns])
    delay_s = rtt_ms / 2000.0
    if rtt_ms > 0:
        procs["delayer"] = start_daemon(
            net,
            ["-m", DELAYER_MODULE, hosts, TUN_ROUTER, TUN_HOSTS, repr(delay_s)],
            sdir / "delayer.log",
        )
        save()
    # Sysctls before any interface exists, so the interfaces inherit the defaults.
    for role, ns in (("scan", scan), ("net", net), ("hosts", hosts)):
        in_ns(ns, "sysctl", "-q", "-w", *_COMMON_SYSCTLS, *_SYSCTLS[role])
    # Created directly inside the namespaces: nothing ever appears in the root namespace.
    run_cmd(
        ["ip", "link", "add", IF_SCAN, "netns", scan, "type", "veth",
         "peer", "name", IF_ROUTER_SCAN, "netns", net]
    )  # fmt: skip
    if rtt_ms <= 0:
        run_cmd(
            ["ip", "link", "add", IF_ROUTER_HOSTS, "netns", net, "type", "veth",
             "peer", "name", IF_HOSTS, "netns", hosts]
        )  # fmt: skip
    ip_batch(
        scan,
        [
            "link set lo up",
            f"link set {IF_SCAN} up",
            f"addr add {SCAN_ADDR4}/30 dev {IF_SCAN}",
            f"addr add {SCAN_ADDR6}/64 dev {IF_SCAN} nodad",
            f"route add {LAB4} via {ROUTER_SCAN_ADDR4}",
            f"route add {LAB6} via {ROUTER_SCAN_ADDR6}",
        ],
    )
    router = [
        "link set lo up",
        f"link set {IF_ROUTER_SCAN} up",
        f"addr add {ROUTER_SCAN_ADDR4}/30 dev {IF_ROUTER_SCAN}",
        f"addr add {ROUTER_SCAN_ADDR6}/64 dev {IF_ROUTER_SCAN} nodad",
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
            f"link set {IF_ROUTER_HOSTS} up",
            f"addr add {ROUTER_HOSTS_ADDR4}/30 dev {IF_ROUTER_HOSTS}",
            f"addr add {ROUTER_HOSTS_ADDR6}/64 dev {IF_ROUTER_HOSTS} nodad",
        ]
        hosts_cmds += [
            f"link set {IF_HOSTS} up",
            f"addr add {HOSTS_ADDR4}/30 dev {IF_HOSTS}",
            f"addr add {HOSTS_ADDR6}/64 dev {IF_HOSTS} nodad",
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
            live_routes.append(f"route add {h.addr}/{plen} dev {TUN_ROUTER}")
    ip_batch(hosts, hosts_cmds)
    in_ns(hosts, "nft", "-f", "-", stdin=_nft_hosts(plan))
    if icmp_ratelimit:
        in_ns(hosts, "nft", "-f", "-", stdin=_nft_icmp_ratelimit())
    if loss_percent > 0:
        in_ns(net, "nft", "-f", "-", stdin=_nft_loss(loss_percent))
    spec_path = sdir / "services.json"
    write_json(spec_path, _services_spec(plan))
    procs["labsvc"] = start_daemon(
        hosts, ["-m", SERVICE_MODULE, str(spec_path)], sdir / "labsvc.log"
    )
    udp_path = sdir / "udp.json"
    write_json(udp_path, _udp_spec(plan))
    procs["labudp"] = start_daemon(hosts, ["-m", UDP_MODULE, str(udp_path)], sdir / "labudp.log")
    dns_path = sdir / "dns.json"
    write_json(dns_path, dns_spec(plan).to_json())
    procs["labdns"] = start_daemon(net, ["-m", DNS_MODULE, str(dns_path)], sdir / "labdns.log")
    save()
    ns_dir = ETC_NETNS / scan
    ns_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in resolver_files(name).items():
        (ns_dir / fname).write_text(text)
    deadline = time.monotonic() + READY_TIMEOUT
    if rtt_ms > 0:
        wait_ready(procs["delayer"], sdir / "delayer.log", "the delayer", deadline)
        # The TUN devices exist once the delayer is ready; a long queue absorbs scan bursts.
        router.append(f"link set {TUN_ROUTER} up txqueuelen 30000")
        ip_batch(
            hosts,
            [
                f"link set {TUN_HOSTS} up txqueuelen 30000",
                f"route add default dev {TUN_HOSTS}",
                f"route add ::/0 dev {TUN_HOSTS}",
            ],
        )
    ip_batch(net, router + live_routes)
    wait_ready(
        procs["labsvc"], sdir / "labsvc.log", f"the service server ({SERVICE_MODULE})", deadline
    )
    wait_ready(procs["labudp"], sdir / "labudp.log", f"the UDP services ({UDP_MODULE})", deadline)
    wait_ready(procs["labdns"], sdir / "labdns.log", f"the DNS server ({DNS_MODULE})", deadline)
    return procs
