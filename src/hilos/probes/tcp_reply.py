"""Validating replies to TCP probes: SYN-ACK/RST segments and ICMP errors quoting our probe.

A reply is accepted only if the cookie recomputed from its own fields (address, port, our source
port) matches what it carries: SYN-ACK and RST-ACK acknowledge cookie + 1 (SynProbe.expected),
the RST answering an ACK probe carries seq == cookie (AckProbe.expected), and an ICMP/ICMPv6
destination-unreachable quotes our header, whose seq is the cookie. Nothing is stored per probe;
the RTT comes from the send tick in our source port (hilos.probes.base). The parsers never raise:
anything malformed or foreign gives None.
"""

from __future__ import annotations

import struct
import time

from hilos.probes.base import (
    KIND_RST,
    KIND_SYN_ACK,
    KIND_UNREACH,
    SPORT_BASE,
    SPORT_COUNT,
    SPORT_MASK,
    TICK_MS,
    TICK_SHIFT,
    Reply,
    unreach_reason,
)
from hilos.wire.cookie import Cookie
from hilos.wire.frames import ACK, RST, SYN

__all__ = ["parse_icmp4", "parse_icmp6", "parse_ipv4", "parse_tcp6"]

_IP4_TCP = struct.Struct("!12xII")
_TCP_HEAD = struct.Struct("!HHIIxB")


def _match_tcp(
    cookie: Cookie, family: int, addr: int, buf: bytes | bytearray | memoryview, off: int, n: int
) -> Reply | None:
    if n - off < 14:
        return None
    port, sport, seq, ack, flags = _TCP_HEAD.unpack_from(buf, off)
    if (sport - SPORT_BASE) & 0xFFFF >= SPORT_COUNT:
        return None
    # The union of SynProbe.expected and AckProbe.expected, inlined (one call per reply less).
    if flags & SYN:
        if flags & (ACK | RST) != ACK:
            return None  # a SYN (our own, seen on loopback) or a nonsensical SYN+RST
        kind, reason, expect = KIND_SYN_ACK, "syn-ack", ack - 1
    elif flags & RST:
        kind, reason = KIND_RST, "reset"
        # RST-ACK answering a SYN acknowledges cookie + 1; a bare RST answering an ACK probe
        # carries seq == our ack (RFC 9293 3.10.7.1).
        expect = ack - 1 if flags & ACK else seq
    else:
        return None
    if expect & 0xFFFFFFFF != cookie.value(cookie.host_seed(addr), port, sport):
        return None
    rtt = (((time.monotonic_ns() >> TICK_SHIFT) - sport + SPORT_BASE) & SPORT_MASK) * TICK_MS
    return Reply(family, addr, port, sport, kind, reason, rtt)


def parse_ipv4(
    cookie: Cookie, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate an IPv4 packet from a raw IPPROTO_TCP socket; None unless it answers our probe."""
    try:
        if n is None:
            n = len(buf)
        if n < 20 or buf[0] >> 4 != 4 or buf[9] != 6:
            return None
        ihl = (buf[0] & 15) * 4
        if ihl < 20 or (buf[6] & 0x3F) or buf[7]:  # MF or an offset: replies are never fragments
            return None
        src, _dst = _IP4_TCP.unpack_from(buf, 0)
        return _match_tcp(cookie, 4, src, buf, ihl, n)
    except (struct.error, IndexError, ValueError):
        return None


def parse_tcp6(
    cookie: Cookie, src: int, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate a TCP segment from a raw AF_INET6 socket (no IPv6 header) sent by address `src`."""
    try:
        return _match_tcp(cookie, 6, src, buf, 0, len(buf) if n is None else n)
    except (struct.error, IndexError, ValueError):
        return None


def _match_quote(
    cookie: Cookie,
    family: int,
    reason: str,
    dst: int,
    buf: bytes | bytearray | memoryview,
    off: int,
    n: int,
) -> Reply | None:
    if n - off < 8:
        return None  # RFC 792 quotes at least 8 bytes of the original datagram: sport, dport, seq
    sport, port, seq = struct.unpack_from("!HHI", buf, off)
    if (sport - SPORT_BASE) & 0xFFFF >= SPORT_COUNT:
        return None
    if seq != cookie.value(cookie.host_seed(dst), port, sport):
        return None
    rtt = (((time.monotonic_ns() >> TICK_SHIFT) - sport + SPORT_BASE) & SPORT_MASK) * TICK_MS
    return Reply(family, dst, port, sport, KIND_UNREACH, reason, rtt)


def parse_icmp4(
    cookie: Cookie, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate an ICMP destination-unreachable (raw IPPROTO_ICMP socket) quoting our probe.

    The reply's `addr` is the probed destination taken from the quoted header (the ICMP may come
    from a router), `port` the probed port.
    """
    try:
        if n is None:
            n = len(buf)
        if n < 20 or buf[0] >> 4 != 4 or buf[9] != 1:
            return None
        ihl = (buf[0] & 15) * 4
        if ihl < 20 or n < ihl + 8 + 20:
            return None
        reason = unreach_reason(4, buf[ihl], buf[ihl + 1])
        if reason is None:
            return None
        q = ihl + 8
        if buf[q] >> 4 != 4 or buf[q + 9] != 6:
            return None
        qihl = (buf[q] & 15) * 4
        if qihl < 20:
            return None
        (qdst,) = struct.unpack_from("!I", buf, q + 16)
        return _match_quote(cookie, 4, reason, qdst, buf, q + qihl, n)
    except (struct.error, IndexError, ValueError):
        return None


def parse_icmp6(
    cookie: Cookie, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate an ICMPv6 destination-unreachable (raw IPPROTO_ICMPV6 socket, no IPv6 header).

    The quoted packet is our IPv6 header (40 bytes, next header TCP) followed by our TCP header.
    """
    try:
        if n is None:
            n = len(buf)
        if n < 8 + 40 + 8:
            return None
        reason = unreach_reason(6, buf[0], buf[1])
        if reason is None:
            return None
        q = 8
        if buf[q] >> 4 != 6 or buf[q + 6] != 6:
            return None
        qdst = int.from_bytes(bytes(buf[q + 24 : q + 40]), "big")
        return _match_quote(cookie, 6, reason, qdst, buf, q + 40, n)
    except (struct.error, IndexError, ValueError):
        return None
