"""Tests for hilos.probes.tcp_reply: validating SYN-ACK, RST and ICMP replies (fuzzed parsers)."""

from __future__ import annotations

import ipaddress
import socket
import struct
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers_tcp import pseudo, ref_checksum
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
)
from hilos.probes.tcp_reply import parse_icmp4, parse_icmp6, parse_ipv4, parse_tcp6
from hilos.wire.cookie import Cookie
from hilos.wire.frames import ACK, RST, SYN, build_ipv4_packet, build_tcp_segment

if TYPE_CHECKING:
    pass

SRC4, DST4 = "198.19.0.2", "198.18.0.7"
SRC6, DST6 = "fd18:ff::2", "fd18:0:0:100::9"
COOKIE = Cookie(0x1234_5678_9ABC_DEF0_0FED_CBA9_8765_4321)


def cookie_for(dst: str, port: int, sport: int, c: Cookie = COOKIE) -> int:
    return c.value(c.host_seed(int(ipaddress.ip_address(dst))), port, sport)


def tcp_reply(
    sport: int, dport: int, seq: int, ack: int, flags: int, src: str, dst: str, opts: bytes = b""
) -> bytes:
    """A reply segment (as the target would send it) with a correct checksum."""
    off = (20 + len(opts)) // 4
    hdr = struct.pack("!HHIIHHHH", sport, dport, seq, ack, (off << 12) | flags, 65535, 0, 0) + opts
    c = ref_checksum(pseudo(src, dst, len(hdr)) + hdr)
    return hdr[:16] + struct.pack("!H", c) + hdr[18:]


def ip4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0x4000,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return hdr[:10] + struct.pack("!H", ref_checksum(hdr)) + hdr[12:] + payload


# --- building ------------------------------------------------------------------------------------


# --- parsing -------------------------------------------------------------------------------------


def synack4(port: int = 443, sport: int = SPORT_BASE + 5, flags: int = SYN | ACK) -> bytes:
    c = cookie_for(DST4, port, sport)
    return ip4(DST4, SRC4, 6, tcp_reply(port, sport, 777, (c + 1) & 0xFFFFFFFF, flags, DST4, SRC4))


def test_parse_syn_ack_rst_ack_and_rst() -> None:
    r = parse_ipv4(COOKIE, synack4())
    assert r is not None and (r.kind, r.reason, r.port, r.sport) == (
        KIND_SYN_ACK,
        "syn-ack",
        443,
        SPORT_BASE + 5,
    )
    assert r.addr == int(ipaddress.ip_address(DST4)) and r.family == 4 and r.rtt_ms >= 0
    r = parse_ipv4(COOKIE, synack4(flags=RST | ACK))
    assert r is not None and (r.kind, r.reason) == (KIND_RST, "reset")
    # The RST answering an ACK probe: seq == our ack (== cookie), no ACK flag.
    c = cookie_for(DST4, 80, SPORT_BASE + 9)
    rst = ip4(DST4, SRC4, 6, tcp_reply(80, SPORT_BASE + 9, c, 0, RST, DST4, SRC4))
    r = parse_ipv4(COOKIE, rst)
    assert r is not None and r.kind == KIND_RST and r.port == 80


def test_rtt_ticks_are_fine_and_samples_wrap_late() -> None:
    # The send time rides in the source port: RTTs come in TICK_MS steps (1.048576 ms before,
    # issue 9), wrapping after SPORT_COUNT ticks; the ports stay below Linux's ephemeral range.
    assert TICK_MS < 0.3
    assert SPORT_COUNT * TICK_MS > 4000
    assert SPORT_BASE >= 1024 and SPORT_BASE + SPORT_COUNT <= 32768
    sent = SPORT_BASE + ((time.monotonic_ns() >> TICK_SHIFT) & SPORT_MASK)
    time.sleep(0.005)
    r = parse_ipv4(COOKIE, synack4(sport=sent, port=443))
    assert r is not None and 5.0 - TICK_MS <= r.rtt_ms < 100


def test_parse_rejects_wrong_cookie_port_flags_and_foreign() -> None:
    good = bytearray(synack4())
    assert parse_ipv4(COOKIE, bytes(good)) is not None
    assert parse_ipv4(Cookie(99), bytes(good)) is None  # another key
    bad_ack = bytearray(good)
    bad_ack[31] ^= 1  # last byte of the ack number
    assert parse_ipv4(COOKIE, bytes(bad_ack)) is None
    assert parse_ipv4(COOKIE, synack4(sport=SPORT_BASE - 1)) is None  # not our source port
    assert parse_ipv4(COOKIE, synack4(sport=SPORT_BASE + SPORT_COUNT)) is None
    assert parse_ipv4(COOKIE, synack4(flags=SYN)) is None  # our own SYN seen on loopback
    assert parse_ipv4(COOKIE, synack4(flags=ACK)) is None  # a plain ACK
    assert parse_ipv4(COOKIE, synack4(flags=SYN | RST | ACK)) is None
    # Kernel RST answering a SYN-ACK: seq = that SYN-ACK's ack = cookie + 1, no ACK flag.
    c = cookie_for(DST4, 443, SPORT_BASE + 5)
    assert (
        parse_ipv4(
            COOKIE, ip4(DST4, SRC4, 6, tcp_reply(443, SPORT_BASE + 5, c + 1, 0, RST, DST4, SRC4))
        )
        is None
    )
    assert parse_ipv4(COOKIE, ip4(DST4, SRC4, 17, bytes(20))) is None  # UDP
    frag = bytearray(good)
    frag[6:8] = b"\x20\x00"  # more-fragments set
    assert parse_ipv4(COOKIE, bytes(frag)) is None
    # The reply must come from the probed address: the same segment from elsewhere fails.
    moved = bytearray(good)
    moved[12:16] = ipaddress.IPv4Address("198.18.0.8").packed
    assert parse_ipv4(COOKIE, bytes(moved)) is None


def test_parse_ipv6_segment() -> None:
    sport = SPORT_BASE + 77
    c = cookie_for(DST6, 22, sport)
    seg = tcp_reply(22, sport, 1, c + 1, SYN | ACK, DST6, SRC6)
    src = int(ipaddress.ip_address(DST6))
    r = parse_tcp6(COOKIE, src, seg)
    assert r is not None and r.family == 6 and r.kind == KIND_SYN_ACK and r.addr == src
    assert parse_tcp6(COOKIE, src ^ 1, seg) is None
    assert parse_tcp6(COOKIE, src, seg[:13]) is None


def icmp4_unreach(code: int, quoted: bytes, router: str = "198.19.0.1") -> bytes:
    body = struct.pack("!BBHI", 3, code, 0, 0) + quoted
    body = body[:2] + struct.pack("!H", ref_checksum(body)) + body[4:]
    return ip4(router, SRC4, 1, body)


def our_syn4(port: int, sport: int) -> bytes:
    seq = cookie_for(DST4, port, sport)
    return build_ipv4_packet(SRC4, DST4, build_tcp_segment(SRC4, DST4, sport, port, seq))


@pytest.mark.parametrize(
    ("code", "reason"), [(1, "host-unreach"), (3, "port-unreach"), (13, "admin-prohibited")]
)
def test_parse_icmp4_unreachable_quoting_our_syn(code: int, reason: str) -> None:
    sport = SPORT_BASE + 3
    for quote_len in (28, 44):  # RFC 792 minimum (IP header + 8 bytes) and the whole probe
        r = parse_icmp4(COOKIE, icmp4_unreach(code, our_syn4(8080, sport)[:quote_len]))
        assert r is not None and r.kind == KIND_UNREACH and r.reason == reason
        assert r.addr == int(ipaddress.ip_address(DST4)) and r.port == 8080 and r.sport == sport
    foreign = bytearray(our_syn4(8080, sport))
    foreign[27] ^= 0xFF  # the seq is not our cookie
    assert parse_icmp4(COOKIE, icmp4_unreach(1, bytes(foreign))) is None
    assert parse_icmp4(COOKIE, icmp4_unreach(1, our_syn4(8080, sport)[:27])) is None
    echo = ip4("198.19.0.1", SRC4, 1, struct.pack("!BBHHH", 0, 0, 0, 1, 1))
    assert parse_icmp4(COOKIE, echo) is None


def test_parse_icmp6_unreachable() -> None:
    sport = SPORT_BASE + 12
    seq = cookie_for(DST6, 443, sport)
    ip6 = struct.pack("!IHBB", 6 << 28, 24, 6, 64)
    ip6 += ipaddress.IPv6Address(SRC6).packed + ipaddress.IPv6Address(DST6).packed
    quoted = ip6 + build_tcp_segment(SRC6, DST6, sport, 443, seq)
    msg = struct.pack("!BBHI", 1, 3, 0, 0) + quoted  # type 1 code 3: address unreachable
    r = parse_icmp6(COOKIE, msg)
    assert r is not None and r.reason == "host-unreach" and r.family == 6 and r.port == 443
    assert r.addr == int(ipaddress.ip_address(DST6))
    assert parse_icmp6(COOKIE, struct.pack("!BBHI", 1, 4, 0, 0) + quoted).reason == "port-unreach"  # type: ignore[union-attr]
    assert parse_icmp6(COOKIE, struct.pack("!BBHI", 129, 0, 0, 0) + quoted) is None  # echo reply
    assert parse_icmp6(COOKIE, msg[:55]) is None


# --- fuzzing: the parsers never raise and never accept a reply whose cookie does not match ----


def _accepted_is_genuine(r: Reply | None) -> bool:
    if r is None:
        return True
    return bool(SPORT_BASE <= r.sport < SPORT_BASE + SPORT_COUNT)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120))
def test_fuzz_random_bytes_never_raise(data: bytes) -> None:
    for fn in (parse_ipv4, parse_icmp4, parse_icmp6):
        assert _accepted_is_genuine(fn(COOKIE, data))
    assert _accepted_is_genuine(parse_tcp6(COOKIE, 12345, data))
    for view in (memoryview(data), bytearray(data)):
        parse_ipv4(COOKIE, view, len(data))


VALID = [synack4(), synack4(flags=RST | ACK), icmp4_unreach(1, our_syn4(8080, SPORT_BASE + 3))]


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    which=st.sampled_from(range(len(VALID))),
    edits=st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), max_size=4),
    cut=st.integers(0, 80),
)
def test_fuzz_mutated_replies(which: int, edits: list[tuple[int, int]], cut: int) -> None:
    """Flip bytes of a valid reply and truncate it: no exception, and whatever is still
    accepted carries a cookie that really matches the (address, port, source port) it claims."""
    pkt = bytearray(VALID[which])
    for pos, val in edits:
        if pos < len(pkt):
            pkt[pos] = val
    data = bytes(pkt[: max(cut, 0)] if cut < len(pkt) else pkt)
    r = parse_icmp4(COOKIE, data) if which == 2 else parse_ipv4(COOKIE, data)
    if r is None:
        return
    c = COOKIE.value(COOKIE.host_seed(r.addr), r.port, r.sport)
    if which == 2:
        q = 20 + 8 + (data[28] & 15) * 4
        assert struct.unpack_from("!I", data, q + 4)[0] == c
    else:
        ihl = (data[0] & 15) * 4
        seq, ack = struct.unpack_from("!II", data, ihl + 4)
        flags = data[ihl + 13]
        assert (ack - 1) & 0xFFFFFFFF == c if flags & ACK else seq == c


@settings(max_examples=300)
@given(
    src=st.integers(0, 2**32 - 1),
    port=st.integers(1, 65535),
    sport=st.integers(0, 65535),
    seq=st.integers(0, 2**32 - 1),
    ack=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 255),
)
def test_fuzz_foreign_tcp_never_accepted(
    src: int, port: int, sport: int, seq: int, ack: int, flags: int
) -> None:
    """Well-formed TCP from anywhere is accepted only if it carries the right cookie."""
    s = socket.inet_ntoa(src.to_bytes(4, "big"))
    pkt = ip4(s, SRC4, 6, tcp_reply(port, sport, seq, ack, flags, s, SRC4))
    r = parse_ipv4(COOKIE, pkt)
    if r is not None:
        c = COOKIE.value(COOKIE.host_seed(src), port, sport)
        assert (ack - 1) & 0xFFFFFFFF == c or seq == c


# --- on this machine's loopback (root) ---------------------------------------------------------
