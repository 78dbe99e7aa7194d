"""Names in the lab: the DNS server's zone, the truth's names, the scanner's resolver files."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hilos.lab.plan import DEAD_HOST, LAB4, LAB6, ROUTER_SCAN_ADDR4, ROUTER_SCAN_ADDR6, PlannedHost

if TYPE_CHECKING:
    from hilos.lab.dns import DnsSpec

ETC_NETNS = Path("/etc/netns")  # `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*
DNS_SERVERS = (ROUTER_SCAN_ADDR4, ROUTER_SCAN_ADDR6)  # the scanner's next hop: no RTT, no loss

DNS_MODULE = "hilos.lab.dns"  # run as `python -m` in the router namespace
_RESOLVER_FILES = ("resolv.conf", "nsswitch.conf")

# Names of the lab's fixed hosts (hilos.lab): name -> addresses. Only hosts the plan has get one.
_FIXED_NAMES: dict[str, tuple[str, ...]] = {
    "h1": ("198.18.0.1",),
    "h2": ("198.18.0.2",),
    "h3": ("198.18.0.3",),
    "h4": ("198.18.0.4",),
    "v6": ("fd18:0:0:100::1",),
    "dual": ("198.18.0.1", "fd18:0:0:100::1"),
    "multi": ("198.18.0.1", "198.18.0.2"),
    "dead": ("198.18.0.254",),
}


def _reverse_zone(net: str) -> str:
    """The reverse zone of a network whose prefix falls on an octet (v4) or nibble (v6)."""
    network = ipaddress.ip_network(net)
    step = 8 if network.version == 4 else 4
    labels = network.network_address.reverse_pointer.split(".")
    keep = network.prefixlen // step
    return ".".join(labels[len(labels) - 2 - keep :])


def lab_dns_spec(
    live: Iterable[str],
    dead: Iterable[str],
    listen: Sequence[tuple[str, int]],
    networks: Sequence[str],
) -> DnsSpec:
    """The lab's zone: names for the fixed hosts present in `live` (or `dead`), PTRs back to
    their first name, NS/SOA at the apex naming the server's own addresses in `listen`, and the
    reverse zones of `networks` (the lab's ranges)."""
    from hilos.lab.dns import DOMAIN, DnsSpec  # not at import: `python -m hilos.lab.dns` runs it

    present = set(live) | set(dead)
    records: dict[str, dict[str, tuple[str, ...]]] = {}
    ptr: dict[str, str] = {}
    for label, addrs in _FIXED_NAMES.items():
        if not all(a in present for a in addrs):
            continue
        name = f"{label}.{DOMAIN}"
        for a in addrs:
            rtype = "A" if ipaddress.ip_address(a).version == 4 else "AAAA"
            records.setdefault(name, {}).setdefault(rtype, ())
            records[name][rtype] += (a,)
            ptr.setdefault(ipaddress.ip_address(a).reverse_pointer, name)
    for rname, target in ptr.items():
        records[rname] = {"PTR": (target,)}
    server = f"ns.{DOMAIN}"
    for addr, _port in listen:
        rtype = "A" if ipaddress.ip_address(addr).version == 4 else "AAAA"
        records.setdefault(server, {}).setdefault(rtype, ())
        records[server][rtype] += (addr,)
    zones = (DOMAIN, *dict.fromkeys(_reverse_zone(n) for n in networks))
    return DnsSpec(tuple((a, p) for a, p in listen), zones, records)


def dns_spec(plan: Sequence[PlannedHost]) -> DnsSpec:
    return lab_dns_spec(
        (h.addr for h in plan), (DEAD_HOST,), [(a, 53) for a in DNS_SERVERS], (LAB4, LAB6)
    )


def dns_truth(plan: Sequence[PlannedHost]) -> dict[str, Any]:
    from hilos.lab.dns import DOMAIN

    records = dns_spec(plan).records
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


def resolver_files(name: str) -> dict[str, str]:
    """resolv.conf and nsswitch.conf for the scanner namespace: the lab's DNS server only.

    nsswitch.conf is this machine's with its `hosts:` line replaced, so that no other source
    (systemd-resolved via nss-resolve, mDNS) can answer a lab test's lookup.
    """
    resolv = (
        f"# hilos lab {name}: the lab's own DNS server ({DNS_MODULE} in {name}-net); it answers\n"
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


def remove_resolver(name: str) -> bool:
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
