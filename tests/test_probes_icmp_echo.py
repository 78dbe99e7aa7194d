"""Tests for hilos.probes.icmp_echo: echo building, reply parsing (fuzzed)."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilos.probes.icmp_echo import IcmpReply, build_echo, parse_reply
from hilos.wire.checksum import checksum
from hilos.wire.frames import ECHO, ECHO_PAD, ICMP6_ECHO_REQUEST, ICMP_ECHO_REQUEST


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


class EchoBuilder:
    """Builds hilos echo requests fast: a precomputed template, an incremental checksum.

    Only the cookie and the send time change between packets; their contribution to the checksum
    is `(cookie + time) mod 0xFFFF` (the sum of a number's 16-bit words is the number mod 0xFFFF),
    so a packet costs one modulo and one `struct.pack`.
    """

    __slots__ = ("_base", "_kind", "_pack", "_pad", "v6")

    def __init__(self, *, v6: bool = False) -> None:
        self.v6 = v6
        self._kind = ICMP6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
        self._pad = ECHO_PAD
        self._pack = ECHO.pack
        # Sum of the fixed words: type/code and the padding.
        self._base = ((self._kind << 8) + int.from_bytes(ECHO_PAD, "big")) % 0xFFFF

    def build(self, cookie: int, sent_ns: int) -> bytes:
        """The echo request carrying `cookie` (32 bits) and `sent_ns` (64 bits)."""
        # ICMPv6: the kernel fills the checksum in (it covers a pseudo-header).
        csum = 0 if self.v6 else 0xFFFF - (self._base + cookie + cookie + sent_ns) % 0xFFFF
        return self._pack(self._kind, 0, csum, cookie, sent_ns, cookie) + self._pad

    @property
    def base_sum(self) -> int:
        """The precomputed part of the checksum (for senders that inline `build`)."""
        return self._base


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
