"""The TCP ACK probe (nmap -PA): an unsolicited ACK with seq = ack = the keyed cookie.

A live host answers with a bare RST whose sequence number is our acknowledgement number
(RFC 9293 3.10.7.1), whether or not the port is open: a host discovery probe.
"""

from __future__ import annotations

from hilos.probes.tcp_syn import SynProbe
from hilos.wire.frames import ACK, RST, SYN, tcp6_probe

__all__ = ["AckProbe"]


class AckProbe:
    """Builds ACK probes (a ProbeModule); shares the SYN probe's per-/24 templates."""

    name = "tcp-ack"
    flags = ACK

    def __init__(self, syn: SynProbe | None = None) -> None:
        self._syn = syn or SynProbe()

    def build(self, version: int, dst: int, dport: int, sport: int, cookie: int) -> bytes:
        """The probe as the raw socket of its family sends it (IPv4 packet or IPv6 segment)."""
        if version == 4:
            t = self._syn.template(dst)
            d4 = dst.to_bytes(4, "big")
            return t.ack(d4, t.dst_sum(d4), dport, sport, cookie)
        return tcp6_probe(dport, sport, cookie, cookie, ACK)

    @staticmethod
    def expected(flags: int, seq: int, ack: int) -> int | None:
        """The cookie a bare RST proves it saw (its seq); None for anything else."""
        if flags & (SYN | ACK | RST) == RST:
            return seq
        return None
