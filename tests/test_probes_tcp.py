"""Raw TCP probes: packet build/parse, checksums, cookies, fuzzed parsers, loopback discovery."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hilos.probes import tcp
from hilos.probes.tcp import (
    ACK,
    KIND_RST,
    KIND_SYN_ACK,
    KIND_UNREACH,
    RST,
    SPORT_BASE,
    SPORT_COUNT,
    SYN,
    Cookie,
    SynTemplate4,
    build_ipv4_packet,
    build_tcp_segment,
    parse_icmp4,
    parse_icmp6,
    parse_ipv4,
    parse_tcp6,
    tcp_discover,
)

if TYPE_CHECKING:
    from conftest import Unprivileged

SRC4, DST4 = "198.19.0.2", "198.18.0.7"
SRC6, DST6 = "fd18:ff::2", "fd18:0:0:100::9"
COOKIE = Cookie(0x1234_5678_9ABC_DEF0_0FED_CBA9_8765_4321)


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


def test_checksum_matches_reference_and_rfc1071_example() -> None:
    # RFC 1071 section 3 example: words 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2 (complement).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert tcp.checksum(data) == ref_checksum(data) == (~0xDDF2) & 0xFFFF
    for blob in (b"", b"\x01", b"\xff" * 41, os.urandom(99)):
        assert tcp.checksum(blob) == ref_checksum(blob)


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
    seg = tcp.tcp6_probe(443, 61001, 99)
    assert seg[16:18] == b"\0\0"  # IPV6_CHECKSUM makes the kernel fill it
    ref = build_tcp_segment(SRC6, DST6, 61001, 443, 99)
    assert seg[:16] == ref[:16] and seg[18:] == ref[18:]


def test_cookie_is_keyed_and_spread() -> None:
    a, b = Cookie(1), Cookie(2)
    ip = int(ipaddress.ip_address(DST4))
    assert a.value(a.host_seed(ip), 80, 61000) == Cookie(1).value(
        Cookie(1).host_seed(ip), 80, 61000
    )
    assert a.value(a.host_seed(ip), 80, 61000) != b.value(b.host_seed(ip), 80, 61000)
    values = {a.value(a.host_seed(ip), port, 61000) for port in range(1, 5001)}
    assert len(values) > 4990  # 32-bit outputs: collisions among 5000 inputs are rare
    v6 = int(ipaddress.ip_address(DST6))
    # The upper 64 bits of an IPv6 address count too.
    assert a.host_seed(v6) != a.host_seed(v6 ^ (1 << 100))


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
    assert tcp.TICK_MS < 0.3
    assert SPORT_COUNT * tcp.TICK_MS > 4000
    assert SPORT_BASE >= 1024 and SPORT_BASE + SPORT_COUNT <= 32768
    sent = tcp.SPORT_BASE + ((time.monotonic_ns() >> tcp.TICK_SHIFT) & tcp.SPORT_MASK)
    time.sleep(0.005)
    r = parse_ipv4(COOKIE, synack4(sport=sent, port=443))
    assert r is not None and 5.0 - tcp.TICK_MS <= r.rtt_ms < 100


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


def _accepted_is_genuine(r: tcp.Reply | None) -> bool:
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


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.mark.root
@pytest.mark.timeout(30)
def test_can_raw_as_root() -> None:
    assert tcp.can_raw()
    assert str(tcp.source_address("127.0.0.1")) == "127.0.0.1"
    assert str(tcp.source_address("::1")) == "::1"


@pytest.mark.root
@pytest.mark.timeout(30)
def test_discover_loopback_syn_ack_and_rst(listener: int) -> None:
    seen: list[str] = []
    found = tcp_discover(
        ["127.0.0.1"], timeout=0.3, syn_port=listener, on_reply=lambda r: seen.append(r.host)
    )
    assert found["127.0.0.1"].status == "up" and found["127.0.0.1"].reason == "syn-ack"
    assert seen == ["127.0.0.1"]
    # Nothing listens on 443 here (normally): the RST-ACK / RST answer still means up.
    closed = _free_port()
    found = tcp_discover(["127.0.0.1", "::1"], timeout=0.3, syn_port=closed, ack_port=closed)
    assert {h: r.reason for h, r in found.items()} == {"127.0.0.1": "rst", "::1": "rst"}
    assert all(r.rtt_ms is not None and r.rtt_ms < 100 for r in found.values())


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_raises_privilege_error_naming_the_fix(unprivileged: Unprivileged) -> None:
    code = (
        "import sys\n"
        "from hilos.errors import PrivilegeError\n"
        "from hilos.probes.tcp import can_raw, tcp_discover\n"
        "from hilos.synscan import syn_scan\n"
        "assert not can_raw()\n"
        "calls = (lambda: tcp_discover(['127.0.0.1']),\n"
        "         lambda: list(syn_scan(['127.0.0.1'], [80])))\n"
        "for fn in calls:\n"
        "    try:\n"
        "        fn()\n"
        "    except PrivilegeError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        sys.exit('no PrivilegeError')\n"
    )
    proc = unprivileged.run(["-c", code])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "permission denied" in line and "setcap cap_net_raw+ep" in line and "root" in line
