"""Tests for hilos.probes.icmp: checksums, echo building, reply parsing (fuzzed), sockets."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilos.probes.icmp import (
    V6_TAG,
    EchoBuilder,
    EchoEngine,
    IcmpReply,
    build_echo,
    checksum,
    open_icmp_socket,
    parse_reply,
)
from hilos.probes.ratelimit import TokenBucket

if TYPE_CHECKING:
    from conftest import Unprivileged

IS_ROOT = os.geteuid() == 0


def _slow_checksum(data: bytes) -> int:
    """RFC 1071 the textbook way, to check the fast one against."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _verifies(data: bytes) -> bool:
    """A buffer with its checksum in place sums to 0xFFFF (either zero of ones' complement)."""
    return _slow_checksum(data) in (0, 0xFFFF)


def _ipv4(src: str, dst: str, proto: int, payload: bytes, ihl: int = 5) -> bytes:
    options = b"\x01" * ((ihl - 5) * 4)  # NOPs
    head = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl, 0, 20 + len(options) + len(payload), 0, 0, 64, proto, 0,
        socket.inet_aton(src), socket.inet_aton(dst),
    )  # fmt: skip
    return head + options + payload


def _icmp(kind: int, code: int, rest: bytes, body: bytes) -> bytes:
    msg = struct.pack("!BBH", kind, code, 0) + rest + body
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


# -- checksum and building ------------------------------------------------------------------


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the sum of these words is 0xddf2, so the checksum is 0x220d.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=200))
def test_checksum_matches_textbook(data: bytes) -> None:
    fast = checksum(data)
    slow = _slow_checksum(data)
    # +0 and -0 are the same checksum in ones' complement arithmetic.
    assert fast == slow or {fast, slow} == {0, 0xFFFF}


def test_build_echo_v4() -> None:
    pkt = build_echo(0x1234, 0xBEEF, b"hello!")
    assert pkt[0] == 8 and pkt[1] == 0
    assert struct.unpack_from("!HH", pkt, 4) == (0x1234, 0xBEEF)
    assert pkt[8:] == b"hello!"
    assert _verifies(pkt)


def test_build_echo_v6_leaves_checksum_to_kernel() -> None:
    pkt = build_echo(1, 2, b"x", v6=True)
    assert pkt[0] == 128 and pkt[2:4] == b"\x00\x00"


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**63 - 1))
def test_echo_builder_incremental_checksum(cookie: int, sent_ns: int) -> None:
    pkt = EchoBuilder().build(cookie, sent_ns)
    assert pkt[0] == 8
    assert _verifies(pkt)
    assert struct.unpack_from("!I", pkt, 4)[0] == cookie
    reply = parse_reply(b"\x00" + pkt[1:], family=4, ip_header=False, source="127.0.0.1")
    assert reply is not None and reply.sent_ns == sent_ns and reply.payload_cookie == cookie


# -- parsing ----------------------------------------------------------------------------------


def test_parse_echo_reply_with_ip_header() -> None:
    msg = _icmp(0, 0, struct.pack("!HH", 7, 9), b"payload")
    reply = parse_reply(_ipv4("198.18.0.5", "198.19.0.2", 1, msg))
    assert reply == IcmpReply(
        "echo-reply", 4, "198.18.0.5", "198.18.0.5", 0, 0, 7, 9, payload=b"payload"
    )
    assert reply.cookie == (7 << 16) | 9


def test_parse_echo_reply_with_ip_options() -> None:
    msg = _icmp(0, 0, struct.pack("!HH", 1, 2), b"")
    reply = parse_reply(_ipv4("127.0.0.1", "127.0.0.1", 1, msg, ihl=7))
    assert reply is not None and (reply.ident, reply.seq) == (1, 2)


def test_parse_datagram_socket_reply_has_no_ip_header() -> None:
    msg = _icmp(0, 0, struct.pack("!HH", 40000, 3), b"")
    reply = parse_reply(msg, family=4, ip_header=False, source="127.0.0.1")
    assert reply is not None and reply.target == "127.0.0.1" and reply.seq == 3
    assert parse_reply(msg, family=4, ip_header=False, source=None) is None


def test_parse_unreachable_quoting_our_echo() -> None:
    probe = build_echo(0xAAAA, 0xBBBB, b"data")
    quoted = _ipv4("198.19.0.2", "198.18.254.7", 1, probe)
    msg = _icmp(3, 1, b"\x00" * 4, quoted)
    reply = parse_reply(_ipv4("198.19.0.1", "198.19.0.2", 1, msg))
    assert reply is not None
    assert reply.kind == "host-unreach" and reply.code == 1
    assert reply.reporter == "198.19.0.1" and reply.target == "198.18.254.7"
    assert reply.cookie == 0xAAAABBBB and reply.proto == 1


def test_parse_time_exceeded_quoting_tcp() -> None:
    tcp = struct.pack("!HHI", 61000, 443, 0xDEADBEEF)
    msg = _icmp(11, 0, b"\x00" * 4, _ipv4("198.19.0.2", "198.18.3.3", 6, tcp))
    reply = parse_reply(_ipv4("198.18.0.9", "198.19.0.2", 1, msg))
    assert reply is not None and reply.kind == "time-exceeded"
    assert reply.proto == 6 and reply.quoted[:8] == tcp and reply.target == "198.18.3.3"


def test_parse_icmpv6() -> None:
    msg = struct.pack("!BBHHH", 129, 0, 0, 5, 6) + b"x"
    reply = parse_reply(msg, family=6, source="fd18::1%scan0")
    assert reply is not None and reply.family == 6 and reply.target == "fd18::1"
    inner = struct.pack("!IHBB16s16s", 0x60000000, 8, 58, 64,
                        socket.inet_pton(socket.AF_INET6, "fd18:ff::2"),
                        socket.inet_pton(socket.AF_INET6, "fd18::99"))  # fmt: skip
    unreach = struct.pack("!BBHI", 1, 3, 0, 0) + inner + build_echo(1, 2, v6=True)
    reply = parse_reply(unreach, family=6, source="fd18:ff::1")
    assert reply is not None and reply.kind == "host-unreach" and reply.target == "fd18::99"


_FOREIGN_QUOTE = _ipv4("5.6.7.8", "9.9.9.9", 1, _icmp(0, 0, b"\0" * 4, b""))


@pytest.mark.parametrize(
    "packet",
    [
        _ipv4("1.2.3.4", "5.6.7.8", 1, _icmp(8, 0, b"\x00" * 4, b"")),  # an echo request
        _ipv4("1.2.3.4", "5.6.7.8", 1, _icmp(5, 0, b"\x00" * 4, b"")),  # a redirect
        _ipv4("1.2.3.4", "5.6.7.8", 17, b"\x00" * 8),  # UDP
        _ipv4("1.2.3.4", "5.6.7.8", 1, _icmp(3, 1, b"\x00" * 4, b"\x45")),  # short quote
        # An error about someone's echo *reply* is not about a probe of ours.
        _ipv4("1.2.3.4", "5.6.7.8", 1, _icmp(3, 1, b"\x00" * 4, _FOREIGN_QUOTE)),
        b"",
        b"\x45",
        b"\x60" + b"\x00" * 40,  # IPv6 on an IPv4 socket
    ],
)  # fmt: skip
def test_parse_ignores_foreign_packets(packet: bytes) -> None:
    assert parse_reply(packet) is None


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.sampled_from([4, 6, 5]), st.booleans())
def test_parse_never_raises_on_garbage(data: bytes, family: int, ip_header: bool) -> None:
    result = parse_reply(data, family=family, ip_header=ip_header, source="127.0.0.1")
    assert result is None or isinstance(result, IcmpReply)


_VALID = [
    _ipv4("198.18.0.5", "198.19.0.2", 1, _icmp(0, 0, struct.pack("!HH", 7, 9), b"p" * 20)),
    _ipv4("198.19.0.1", "198.19.0.2", 1,
          _icmp(3, 1, b"\x00" * 4, _ipv4("198.19.0.2", "198.18.254.7", 1, build_echo(1, 2)))),
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_VALID), st.integers(0, 80), st.binary(min_size=1, max_size=4),
       st.integers(0, 80))  # fmt: skip
def test_parse_never_raises_on_truncated_or_corrupted(
    packet: bytes, cut: int, junk: bytes, where: int
) -> None:
    truncated = packet[:cut]
    assert parse_reply(truncated) is None or cut >= 28
    pos = min(where, len(packet))
    corrupted = packet[:pos] + junk + packet[pos + len(junk) :]
    result = parse_reply(corrupted)
    assert result is None or isinstance(result, IcmpReply)


# -- sockets and the engine (loopback only) ---------------------------------------------------


@pytest.mark.root
def test_raw_socket_has_kernel_type_filter() -> None:
    isock = open_icmp_socket(4)
    try:
        assert isock.raw and isock.ip_header
        blocked = struct.unpack("=I", isock.sock.getsockopt(255, 1, 4))[0]
        assert not blocked & (1 << 0) and not blocked & (1 << 3) and not blocked & (1 << 11)
        assert blocked & (1 << 8)  # echo requests (ours, on loopback) never reach Python
        assert isock.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 1 << 20
    finally:
        isock.close()


@pytest.mark.root
@pytest.mark.timeout(20)
def test_engine_loopback_v4_v6_stateless() -> None:
    found: dict[int, tuple[str, float | None]] = {}
    done = threading.Event()

    def on_result(key: int, reason: str, rtt: float | None) -> None:
        found[key] = (reason, rtt)
        if len(found) >= 3:
            done.set()

    engine = EchoEngine(12345, TokenBucket(None), on_result, families=(4, 6))
    try:
        engine.start()
        lo = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
        engine.send_ranges([(4, lo, lo + 1), (6, 1, 1)], {}, threading.Event())
        assert done.wait(5.0), found
    finally:
        engine.close()
    assert found[lo][0] == "echo-reply" and found[lo + 1][0] == "echo-reply"
    assert found[1 + V6_TAG][0] == "echo-reply"
    rtt = found[lo][1]
    assert rtt is not None and 0 <= rtt < 1000
    assert engine.sent == 3


@pytest.mark.root
@pytest.mark.timeout(20)
def test_engine_skips_answered_and_rejects_foreign_cookies() -> None:
    seen: list[int] = []
    engine = EchoEngine(1, TokenBucket(None), lambda k, r, t: seen.append(k), families=(4,))
    other = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        engine.start()
        lo = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
        # Someone else's ping on the same host: its reply must not count.
        other.sendto(build_echo(0x4242, 1, b"foreign"), ("127.0.0.9", 0))
        n = engine.send_ranges([(4, lo, lo + 3)], {lo + 1: "echo-reply"}, threading.Event())
        assert n == 3
        time.sleep(0.5)
    finally:
        other.close()
        engine.close()
    assert sorted(seen) == [lo, lo + 2, lo + 3]


@pytest.mark.root
@pytest.mark.timeout(30)
def test_unprivileged_socket_error_names_the_sysctl(unprivileged: Unprivileged) -> None:
    """As `nobody` with ping_group_range closed: a PrivilegeError naming both fixes."""
    code = (
        "from hilos.probes.icmp import open_icmp_socket, ping_group_allows\n"
        "from hilos.errors import PrivilegeError\n"
        "try:\n"
        "    s = open_icmp_socket(4)\n"
        "    print('OPENED', 'raw' if s.raw else 'dgram', ping_group_allows())\n"
        "except PrivilegeError as e:\n"
        "    print('ERR', e)\n"
    )
    proc = unprivileged.run(["-c", code], timeout=20)
    out = proc.stdout.strip()
    if out.startswith("OPENED"):
        assert out.split()[1] == "dgram"  # never raw without privilege
    else:
        assert out.startswith("ERR"), proc.stderr
        assert "ping_group_range" in out and "root" in out
