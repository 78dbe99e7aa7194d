"""Tests for hilos.wire.frames: reference builders, pseudo-header checksums, fast templates."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers_tcp import pseudo, ref_checksum
from hilos.probes.base import SPORT_BASE, SPORT_COUNT
from hilos.wire.checksum import checksum
from hilos.wire.frames import (
    ACK,
    ECHO,
    ECHO_PAD,
    ECHO_SUM4,
    SYN,
    SynTemplate4,
    build_ipv4_packet,
    build_tcp_segment,
    tcp6_probe,
)

SRC4, DST4 = "198.19.0.2", "198.18.0.7"
SRC6, DST6 = "fd18:ff::2", "fd18:0:0:100::9"


@pytest.mark.parametrize(("src", "dst"), [(SRC4, DST4), (SRC6, DST6)])
def test_segment_checksum_covers_pseudo_header(src: str, dst: str) -> None:
    seg = build_tcp_segment(src, dst, 61234, 443, 0xDEADBEEF, 0, SYN)
    assert len(seg) == 24 and seg[20:] == bytes([2, 4, 0x05, 0xB4])  # MSS 1460 option
    sport, dport, seq, ack, offflags = struct.unpack("!HHIIH", seg[:14])
    assert (sport, dport, seq, ack, offflags >> 12, offflags & 0x3F) == (
        61234,
        443,
        0xDEADBEEF,
        0,
        6,
        SYN,
    )
    assert ref_checksum(pseudo(src, dst, len(seg)) + seg) == 0
    # A different destination must not verify: the pseudo-header is really included.
    other = "198.18.0.8" if ":" not in dst else "fd18:0:0:100::a"
    assert ref_checksum(pseudo(src, other, len(seg)) + seg) != 0


def test_ipv4_packet_header() -> None:
    seg = build_tcp_segment(SRC4, DST4, 61000, 22, 7)
    pkt = build_ipv4_packet(SRC4, DST4, seg)
    assert len(pkt) == 44 and pkt[0] == 0x45 and pkt[9] == 6 and pkt[8] == 64
    assert struct.unpack("!H", pkt[2:4])[0] == 44
    assert ref_checksum(pkt[:20]) == 0
    assert pkt[12:16] == ipaddress.IPv4Address(SRC4).packed
    assert pkt[16:20] == ipaddress.IPv4Address(DST4).packed


@given(
    dport=st.integers(1, 65535),
    sport=st.integers(SPORT_BASE, SPORT_BASE + SPORT_COUNT - 1),
    seq=st.integers(0, 2**32 - 1),
    dst=st.integers(0, 2**32 - 1),
)
def test_precomputed_template_equals_reference_build(
    dport: int, sport: int, seq: int, dst: int
) -> None:
    t = SynTemplate4(SRC4)
    d4 = dst.to_bytes(4, "big")
    dst_s = socket.inet_ntoa(d4)
    fast = t.syn(d4, t.dst_sum(d4), dport, sport, seq)
    ref = build_ipv4_packet(SRC4, dst_s, build_tcp_segment(SRC4, dst_s, sport, dport, seq))
    # The kernel fills the IP header checksum for IP_HDRINCL (raw(7)); everything else is equal.
    assert fast[:10] == ref[:10] and fast[12:] == ref[12:]
    assert ref_checksum(pseudo(SRC4, dst_s, 24) + fast[20:]) == 0
    fast_ack = t.ack(d4, t.dst_sum(d4), dport, sport, seq)
    ref_ack = build_tcp_segment(SRC4, dst_s, sport, dport, seq, seq, ACK)
    assert fast_ack[20:] == ref_ack


def test_ipv6_probe_leaves_checksum_to_kernel() -> None:
    seg = tcp6_probe(443, 61001, 99)
    assert seg[16:18] == b"\0\0"  # IPV6_CHECKSUM makes the kernel fill it
    ref = build_tcp_segment(SRC6, DST6, 61001, 443, 99)
    assert seg[:16] == ref[:16] and seg[18:] == ref[18:]


@given(cookie=st.integers(0, 2**32 - 1), sent_ns=st.integers(0, 2**64 - 1))
def test_echo_sum4_gives_the_echo_requests_checksum(cookie: int, sent_ns: int) -> None:
    csum = 0xFFFF - (ECHO_SUM4 + cookie + cookie + sent_ns) % 0xFFFF
    pkt = ECHO.pack(8, 0, csum, cookie, sent_ns, cookie) + ECHO_PAD
    assert ref_checksum(pkt) in (0, 0xFFFF)  # either zero of ones' complement
    assert csum == checksum(ECHO.pack(8, 0, 0, cookie, sent_ns, cookie) + ECHO_PAD) or {
        csum,
        checksum(ECHO.pack(8, 0, 0, cookie, sent_ns, cookie) + ECHO_PAD),
    } == {0, 0xFFFF}
