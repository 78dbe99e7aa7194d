"""Test helpers for raw TCP probes: reference checksums and `tcp_discover` (a loopback prober).

`tcp_discover` was shipped in hilos.probes.tcp but only tests used it (issue 10): it drives
TcpProber the simple way, one round after another, to check the transport end to end.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from hilos.probes.base import KIND_SYN_ACK, KIND_UNREACH, Reply, addr_str
from hilos.probes.tcp_transport import TcpProber
from hilos.results import HostResult
from hilos.wire.ratelimit import TokenBucket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ref_checksum(data: bytes) -> int:
    """Byte-at-a-time one's complement sum (independent of the module's struct-based one)."""
    total = 0
    for i in range(0, len(data), 2):
        hi = data[i]
        lo = data[i + 1] if i + 1 < len(data) else 0
        total += (hi << 8) | lo
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


def pseudo(src: str, dst: str, length: int) -> bytes:
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + bytes([0, 6]) + length.to_bytes(2, "big")
    return s.packed + d.packed + length.to_bytes(4, "big") + bytes([0, 0, 0, 6])


def tcp_discover(
    addresses: Iterable[IPAddress | str],
    *,
    rate: float | None = None,
    timeout: float = 1.0,
    retries: int = 1,
    syn_port: int = 443,
    ack_port: int = 80,
    on_reply: Callable[[HostResult], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, HostResult]:
    """Find hosts answering raw TCP probes; returns {address: HostResult} for those that answered.

    Per address a SYN to `syn_port` and an ACK to `ack_port` (2 packets, `rate` counts packets/s);
    after all addresses, `timeout` seconds for late replies; then `retries` more rounds to the
    addresses still silent. `addresses` is iterated once per round (a list or a TargetSpace; an
    iterator is first turned into a list). A SYN-ACK or RST gives status "up" (reason "syn-ack" /
    "reset"); an ICMP unreachable gives status "down" with its reason (e.g. "host-unreach") unless
    the host also answered. `on_reply` is called once per host, from the receiver thread, when it
    first turns up (or is first reported unreachable; unreachable hosts are not retried). Setting
    `stop` ends the run early. Needs CAP_NET_RAW (PrivilegeError otherwise). Example::

        found = tcp_discover(["127.0.0.1"], timeout=0.5)
        assert found["127.0.0.1"].status == "up"
    """
    addrs = (
        [ipaddress.ip_address(a) if isinstance(a, str) else a for a in addresses]
        if isinstance(addresses, Iterator)
        else addresses
    )
    results: dict[str, HostResult] = {}
    answered: set[tuple[int, int]] = set()  # (family, address): only hosts that answered
    lock = threading.Lock()

    def handle(r: Reply) -> None:
        if r.port not in (syn_port, ack_port):
            return
        host = addr_str(r.family, r.addr)
        if r.kind == KIND_UNREACH:
            res = HostResult(host, "down", r.reason, None)
        else:
            res = HostResult(
                host, "up", "syn-ack" if r.kind == KIND_SYN_ACK else "reset", round(r.rtt_ms, 3)
            )
        with lock:
            old = results.get(host)
            if old is not None and (old.is_up or not res.is_up):
                return
            results[host] = res
            answered.add((r.family, r.addr))
        if on_reply is not None:
            on_reply(res)

    def norm(a: IPAddress | str) -> IPAddress:
        return ipaddress.ip_address(a) if isinstance(a, str) else a

    families = {4, 6}
    with TcpProber(handle, syn_port=syn_port, ack_port=ack_port, families=families) as prober:
        take = TokenBucket(rate, burst=64).take
        for _round in range(retries + 1):
            sent = 0
            batch = 0
            for a in addrs:
                addr = norm(a)
                if (addr.version, int(addr)) in answered:
                    continue
                if stop is not None and stop.is_set():
                    return results
                if batch == 0:
                    take(64)
                    batch = 32
                batch -= 1
                prober.probe(addr)
                sent += 1
            prober.engine.check()
            if sent == 0:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if stop is not None and stop.is_set():
                    return results
                time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return results
