"""Reading what comes back to a UDP probe: datagrams and the ICMP errors that quote our probe.

Pure parsers over received bytes (raw IPv4 sockets deliver the IP header, raw IPv6 sockets only
what follows it). They never raise on malformed input: a short or inconsistent packet is None.
Validation against the scan's cookie is the engine's (hilos.udp): these say only what a packet
claims. An ICMP error is read from the IP and UDP headers it quotes, so the engine can check
that the quoted destination is one of its targets and the quoted source port its cookie.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from hilos.probes.base import unreach_reason

__all__ = [
    "Datagram",
    "Quoted",
    "build_udp",
    "parse_icmp4",
    "parse_icmp6",
    "parse_udp4",
    "parse_udp6",
    "udp_state",
]

_UDP: Final = 17


class Datagram(NamedTuple):
    """A UDP datagram: from `addr` (int) port `sport` to our port `dport`; payload at `offset`."""

    addr: int
    sport: int
    dport: int
    offset: int
    end: int


class Quoted(NamedTuple):
    """An ICMP destination unreachable quoting a UDP datagram we sent to `addr`:`dport` from
    our port `sport`; `reason` is nmap's word for it (port-unreach, host-unreach, ...)."""

    addr: int
    sport: int
    dport: int
    reason: str


def build_udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and payload for a raw socket. The checksum is left 0: "none" over IPv4
    (RFC 768), and filled in by the kernel over IPv6 (IPV6_CHECKSUM on the socket)."""
    return (
        sport.to_bytes(2, "big")
        + dport.to_bytes(2, "big")
        + (8 + len(payload)).to_bytes(2, "big")
        + b"\x00\x00"
        + payload
    )


def parse_udp4(buf: bytes | bytearray | memoryview, n: int) -> Datagram | None:
    """A UDP datagram as a raw IPv4 socket delivers it (IP header first)."""
    if n < 28 or buf[0] >> 4 != 4 or buf[9] != _UDP:
        return None
    ihl = (buf[0] & 0x0F) * 4
    if ihl < 20 or n < ihl + 8:
        return None
    total = min(n, int.from_bytes(buf[2:4], "big") or n)
    ulen = int.from_bytes(buf[ihl + 4 : ihl + 6], "big")
    end = min(total, ihl + ulen) if ulen >= 8 else total
    return Datagram(
        int.from_bytes(buf[12:16], "big"),
        int.from_bytes(buf[ihl : ihl + 2], "big"),
        int.from_bytes(buf[ihl + 2 : ihl + 4], "big"),
        ihl + 8,
        max(ihl + 8, end),
    )


def parse_udp6(addr: int, buf: bytes | bytearray | memoryview, n: int) -> Datagram | None:
    """A UDP datagram as a raw IPv6 socket delivers it (the UDP header first); `addr` is the
    sender's address from recvfrom."""
    if n < 8:
        return None
    ulen = int.from_bytes(buf[4:6], "big")
    end = min(n, ulen) if ulen >= 8 else n
    return Datagram(addr, int.from_bytes(buf[0:2], "big"), int.from_bytes(buf[2:4], "big"), 8, end)


def parse_icmp4(buf: bytes | bytearray | memoryview, n: int) -> Quoted | None:
    """An ICMP destination unreachable (IP header first) quoting an IPv4 UDP datagram."""
    if n < 20 or buf[0] >> 4 != 4:
        return None
    ihl = (buf[0] & 0x0F) * 4
    if ihl < 20 or n < ihl + 8 + 28:
        return None
    reason = unreach_reason(4, buf[ihl], buf[ihl + 1])
    if reason is None:
        return None
    q = ihl + 8
    if buf[q] >> 4 != 4 or buf[q + 9] != _UDP:
        return None
    qihl = (buf[q] & 0x0F) * 4
    u = q + qihl
    if qihl < 20 or n < u + 8:
        return None
    return Quoted(
        int.from_bytes(buf[q + 16 : q + 20], "big"),
        int.from_bytes(buf[u : u + 2], "big"),
        int.from_bytes(buf[u + 2 : u + 4], "big"),
        reason,
    )


def parse_icmp6(buf: bytes | bytearray | memoryview, n: int) -> Quoted | None:
    """An ICMPv6 destination unreachable (ICMPv6 header first) quoting an IPv6 UDP datagram."""
    if n < 8 + 40 + 8:
        return None
    reason = unreach_reason(6, buf[0], buf[1])
    if reason is None or buf[8] >> 4 != 6 or buf[8 + 6] != _UDP:
        return None
    return Quoted(
        int.from_bytes(buf[32:48], "big"),
        int.from_bytes(buf[48:50], "big"),
        int.from_bytes(buf[50:52], "big"),
        reason,
    )


def udp_state(reason: str) -> str:
    """nmap's UDP port state for an ICMP error's reason: closed for port unreachable, else
    filtered."""
    return "closed" if reason == "port-unreach" else "filtered"
