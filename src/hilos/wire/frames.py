"""Packet layouts and templates: TCP/IPv4/ICMP header numbers, reference builders, fast templates.

Wire format of a TCP probe (RFC 9293, formerly RFC 793; IPv4 RFC 791; checksum RFC 1071 with the
pseudo-header)::

    IPv4 header (20 bytes, IP_HDRINCL)  |  TCP header (20 bytes) + MSS option (4 bytes)
    0x45 tos len id frag ttl=64 p=6 sum  |  sport dport seq ack off=6|flags win sum urp 02 04 05 b4
        src           dst                |

For IPv6 the probe is the TCP segment alone: the raw IPPROTO_TCP socket lets the kernel add the
IPv6 header, and IPV6_CHECKSUM makes the kernel fill the TCP checksum. `build_tcp_segment` and
`build_ipv4_packet` are the readable reference builders; `SynTemplate4` and the `PACK_*` layouts
are what per-packet loops use (tests check they produce the same bytes).
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

from hilos.wire.checksum import checksum

__all__ = [
    "ACK",
    "ECHO",
    "ECHO_PAD",
    "ECHO_PAYLOAD_LEN",
    "ECHO_SUM4",
    "FIN",
    "ICMP6_DEST_UNREACH",
    "ICMP6_ECHO_REPLY",
    "ICMP6_ECHO_REQUEST",
    "ICMP6_TIME_EXCEEDED",
    "ICMP_DEST_UNREACH",
    "ICMP_ECHO_REPLY",
    "ICMP_ECHO_REQUEST",
    "ICMP_TIME_EXCEEDED",
    "MSS",
    "PACK4",
    "PACK_FRAME",
    "PSH",
    "RST",
    "SEG6",
    "SUFFIX",
    "SYN",
    "SYN_WORD",
    "TTL",
    "WINDOW",
    "WIN_FLAGS_SYN",
    "SynTemplate4",
    "build_ipv4_packet",
    "build_tcp_segment",
    "tcp6_probe",
    "tcp_checksum",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS: Final = 1460
WINDOW: Final = 1024  # nmap's SYN window; any non-zero value works
TTL: Final = 64

# RFC 792 (ICMPv4) and RFC 4443 (ICMPv6) type numbers.
ICMP_ECHO_REPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_ECHO_REQUEST: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP6_DEST_UNREACH: Final = 1
ICMP6_TIME_EXCEEDED: Final = 3
ICMP6_ECHO_REQUEST: Final = 128
ICMP6_ECHO_REPLY: Final = 129

# A hilos echo request: type, code, checksum, cookie (identifier << 16 | sequence), send time
# (ns), cookie again, then the padding (see hilos.probes.icmp_echo for the drawing).
ECHO: Final = struct.Struct("!BBHIQI")
ECHO_PAD: Final = b"hilos-sweep\x00"  # makes our probes recognisable in a capture; even length
ECHO_PAYLOAD_LEN: Final = ECHO.size - 8 + len(ECHO_PAD)
# The sum (mod 0xFFFF) of an IPv4 echo request's fixed words, type/code and padding: a request's
# checksum is 0xFFFF - (ECHO_SUM4 + cookie + cookie + send_ns) % 0xFFFF (the sum of a number's
# 16-bit words is the number mod 0xFFFF), one modulo per packet.
ECHO_SUM4: Final = ((ICMP_ECHO_REQUEST << 8) + int.from_bytes(ECHO_PAD, "big")) % 0xFFFF

# The TCP probe's per-packet layouts (the words that change are packed, the rest are constants).
SYN_WORD: Final = (6 << 12) | SYN  # data offset 6 words (MSS option) and the SYN flag
SEG6: Final = struct.Struct("!HHIIHHHHBBH")  # an IPv6 probe: the TCP segment alone
PACK4: Final = struct.Struct("!16s4sHHII4sH6s")  # IPv4 header to src, dst, then TCP
# An Ethernet frame: eth header, IPv4 header (with its checksum) up to the destination, then TCP.
PACK_FRAME: Final = struct.Struct("!34sHHII4sH6s")
WIN_FLAGS_SYN: Final = struct.pack("!HH", SYN_WORD, WINDOW)
SUFFIX: Final = struct.pack("!HBBH", 0, 2, 4, MSS)  # urgent pointer, MSS option


def tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """The TCP checksum of `segment` over the IPv4 or IPv6 pseudo-header of packed `src`/`dst`."""
    proto = 6
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    else:  # RFC 8200 section 8.1: 32-bit length, 24 zero bits, next header
        pseudo = src + dst + struct.pack("!I3xB", len(segment), proto)
    return checksum(pseudo + segment)


def build_tcp_segment(
    src: IPAddress | str,
    dst: IPAddress | str,
    sport: int,
    dport: int,
    seq: int,
    ack: int = 0,
    flags: int = SYN,
    *,
    mss: int | None = MSS,
    window: int = WINDOW,
) -> bytes:
    """A TCP header (+ MSS option) with a correct checksum over the IPv4/IPv6 pseudo-header."""
    s = ipaddress.ip_address(src).packed
    d = ipaddress.ip_address(dst).packed
    if len(s) != len(d):
        raise ValueError("source and destination must be the same IP family")
    opts = struct.pack("!BBH", 2, 4, mss) if mss is not None else b""
    offset = (20 + len(opts)) // 4
    hdr = (
        struct.pack("!HHIIHHHH", sport, dport, seq, ack, (offset << 12) | flags, window, 0, 0)
        + opts
    )
    csum = tcp_checksum(s, d, hdr)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:]


def build_ipv4_packet(
    src: IPAddress | str, dst: IPAddress | str, segment: bytes, *, ttl: int = TTL, ident: int = 0
) -> bytes:
    """An IPv4 header (with its checksum) in front of `segment` (protocol TCP)."""
    s = ipaddress.IPv4Address(src).packed
    d = ipaddress.IPv4Address(dst).packed
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ident, 0, ttl, 6, 0, s, d)
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + segment


class SynTemplate4:
    """Precomputed IPv4 SYN/ACK probe: per packet only ports, seq and a folded checksum change.

    ``pack(dst4, host_sum, dport, sport, seq)`` builds the 44-byte packet; `host_sum` is
    ``dst_sum(dst4)``. The kernel fills the IP id and header checksum for IP_HDRINCL (raw(7)).
    """

    __slots__ = (
        "ack_const",
        "const",
        "prefix",
        "struct",
        "suffix",
        "win_flags_ack",
        "win_flags_syn",
    )

    def __init__(self, src: IPAddress | str) -> None:
        s = ipaddress.IPv4Address(src).packed
        self.prefix = struct.pack("!BBHHHBBH", 0x45, 0, 44, 0, 0, TTL, 6, 0) + s
        self.win_flags_syn = struct.pack("!HH", (6 << 12) | SYN, WINDOW)
        self.win_flags_ack = struct.pack("!HH", (6 << 12) | ACK, WINDOW)
        self.suffix = struct.pack("!HBBH", 0, 2, 4, MSS)
        s1, s2 = struct.unpack("!HH", s)
        # Pseudo-header (src, proto, TCP length) + header words that never change (urp, MSS).
        self.const = s1 + s2 + 6 + 24 + WINDOW + 0x0204 + MSS
        self.ack_const = (6 << 12) | ACK
        self.struct = PACK4

    @staticmethod
    def dst_sum(dst4: bytes) -> int:
        return (dst4[0] << 8 | dst4[1]) + (dst4[2] << 8 | dst4[3])

    def syn(self, dst4: bytes, host_sum: int, dport: int, sport: int, seq: int) -> bytes:
        s = self.const + host_sum + dport + sport + (seq >> 16) + (seq & 0xFFFF) + ((6 << 12) | SYN)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return self.struct.pack(
            self.prefix, dst4, sport, dport, seq, 0, self.win_flags_syn, ~s & 0xFFFF, self.suffix
        )

    def ack(self, dst4: bytes, host_sum: int, dport: int, sport: int, cookie: int) -> bytes:
        """An ACK probe: seq = ack = cookie (the RST answer carries seq == our ack)."""
        c = (cookie >> 16) + (cookie & 0xFFFF)
        s = self.const + host_sum + dport + sport + c + c + self.ack_const
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return self.struct.pack(
            self.prefix,
            dst4,
            sport,
            dport,
            cookie,
            cookie,
            self.win_flags_ack,
            ~s & 0xFFFF,
            self.suffix,
        )


def tcp6_probe(dport: int, sport: int, seq: int, ack: int = 0, flags: int = SYN) -> bytes:
    """A 24-byte TCP segment with a zero checksum: the kernel fills it (IPV6_CHECKSUM)."""
    return SEG6.pack(sport, dport, seq, ack, (6 << 12) | flags, WINDOW, 0, 0, 2, 4, MSS)
