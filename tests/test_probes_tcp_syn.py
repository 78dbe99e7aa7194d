"""Tests for hilos.probes.tcp_syn: SynProbe builds, and accepts what the receiver accepts."""

from __future__ import annotations

import socket
import struct

from hypothesis import given
from hypothesis import strategies as st

from hilos.probes.base import KIND_RST, KIND_SYN_ACK, SPORT_BASE, ProbeModule
from hilos.probes.tcp_ack import AckProbe
from hilos.probes.tcp_reply import parse_ipv4
from hilos.probes.tcp_syn import SynProbe
from hilos.wire.cookie import Cookie
from hilos.wire.frames import ACK, RST, SYN, build_tcp_segment

COOKIE = Cookie(0x42)


def _reply4(src: str, dport: int, sport: int, seq: int, ack: int, flags: int) -> bytes:
    tcp = struct.pack("!HHIIHHHH", dport, sport, seq, ack, 0x5000 | flags, 0, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, socket.inet_aton(src), bytes(4))
    return ip + tcp


def test_modules_are_probe_modules() -> None:
    modules: list[ProbeModule] = [SynProbe(), AckProbe()]
    assert [(m.name, m.flags) for m in modules] == [("tcp-syn", SYN), ("tcp-ack", ACK)]


def test_build_matches_reference_segments() -> None:
    syn = SynProbe()
    lo = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
    pkt = syn.build(4, lo, 443, SPORT_BASE + 9, 0xDEADBEEF)
    assert pkt[20:] == build_tcp_segment("127.0.0.1", "127.0.0.1", SPORT_BASE + 9, 443, 0xDEADBEEF)
    assert struct.unpack_from("!IIH", syn.build(6, 1, 22, SPORT_BASE, 5), 4) == (
        5,
        0,
        (6 << 12) | SYN,
    )


@given(
    flags=st.integers(0, 0x3F),
    seq=st.integers(0, 2**32 - 1),
    port=st.integers(1, 65535),
    sport=st.integers(SPORT_BASE, SPORT_BASE + 100),
)
def test_receiver_accepts_exactly_what_the_modules_expect(
    flags: int, seq: int, port: int, sport: int
) -> None:
    """tcp_reply inlines SynProbe.expected and AckProbe.expected: both must say the same."""
    ip = int.from_bytes(socket.inet_aton("198.18.0.9"), "big")
    cookie = COOKIE.value(COOKIE.host_seed(ip), port, sport)
    for ack in (cookie + 1 & 0xFFFFFFFF, seq):
        for s in (cookie, seq):
            r = parse_ipv4(COOKIE, _reply4("198.18.0.9", port, sport, s, ack, flags))
            hits = [
                m.name
                for m in (SynProbe, AckProbe)
                if m.expected(flags, s, ack) == cookie  # type: ignore[arg-type]
            ]
            assert (r is not None) == bool(hits), (flags, hits)
            if r is not None:
                assert r.kind == (KIND_SYN_ACK if flags & SYN else KIND_RST)
                assert r.reason == ("syn-ack" if flags & SYN else "reset")


def test_expected_by_flags() -> None:
    assert SynProbe.expected(SYN | ACK, 0, 10) == 9
    assert SynProbe.expected(RST | ACK, 0, 0) == 0xFFFFFFFF
    assert SynProbe.expected(SYN, 0, 10) is None
    assert SynProbe.expected(SYN | RST | ACK, 0, 10) is None
    assert SynProbe.expected(RST, 5, 10) is None
