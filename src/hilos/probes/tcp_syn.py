"""The TCP SYN probe (nmap -sS, -PS): a SYN whose sequence number is the keyed cookie.

A SYN-ACK (port open) or RST-ACK (closed) answering it acknowledges cookie + 1 (RFC 9293 3.4).
"""

from __future__ import annotations

import ipaddress

from hilos.wire.cookie import MASK32
from hilos.wire.frames import ACK, RST, SYN, SynTemplate4, tcp6_probe
from hilos.wire.sockets import source_address

__all__ = ["SynProbe"]


class SynProbe:
    """Builds SYN probes (a ProbeModule) with a per-/24 cache of source address and template.

    Per-packet loops take `template(ip)` once per host and call its `syn` (or inline it); `build`
    is the scalar form. `expected` is what tcp_reply's receiver applies to SYN-ACK and RST-ACK.
    """

    name = "tcp-syn"
    flags = SYN

    def __init__(self) -> None:
        self._by_net: dict[int, SynTemplate4] = {}

    def template(self, ip: int) -> SynTemplate4:
        """The IPv4 template for `ip`: its source address is the kernel's route's (per /24)."""
        net = ip >> 8
        t = self._by_net.get(net)
        if t is None:
            t = SynTemplate4(source_address(ipaddress.IPv4Address(ip)))
            self._by_net[net] = t
        return t

    def build(self, version: int, dst: int, dport: int, sport: int, cookie: int) -> bytes:
        """The probe as the raw socket of its family sends it (IPv4 packet or IPv6 segment)."""
        if version == 4:
            t = self.template(dst)
            d4 = dst.to_bytes(4, "big")
            return t.syn(d4, t.dst_sum(d4), dport, sport, cookie)
        return tcp6_probe(dport, sport, cookie)

    @staticmethod
    def expected(flags: int, seq: int, ack: int) -> int | None:
        """The cookie a SYN-ACK or RST-ACK proves it saw (ack - 1); None for anything else."""
        if flags & SYN:
            return (ack - 1) & MASK32 if flags & (ACK | RST) == ACK else None
        if flags & RST and flags & ACK:
            return (ack - 1) & MASK32
        return None
