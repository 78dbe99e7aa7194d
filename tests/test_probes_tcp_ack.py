"""Tests for hilos.probes.tcp_ack: AckProbe's builder and the cookie a bare RST proves it saw."""

from __future__ import annotations

import socket
import struct

from hilos.probes.base import SPORT_BASE
from hilos.probes.tcp_ack import AckProbe
from hilos.probes.tcp_syn import SynProbe
from hilos.wire.frames import ACK, FIN, PSH, RST, SYN, build_tcp_segment


def test_build_matches_reference_segments() -> None:
    ack = AckProbe(SynProbe())
    lo = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
    pkt = ack.build(4, lo, 80, SPORT_BASE + 9, 7)
    assert pkt[20:] == build_tcp_segment("127.0.0.1", "127.0.0.1", SPORT_BASE + 9, 80, 7, 7, ACK)
    seg = ack.build(6, 1, 80, SPORT_BASE, 5)
    assert struct.unpack_from("!IIH", seg, 4) == (5, 5, (6 << 12) | ACK)


def test_expected_only_from_a_bare_rst() -> None:
    assert AckProbe.expected(RST, 5, 10) == 5
    assert AckProbe.expected(RST | FIN | PSH, 5, 10) == 5
    assert AckProbe.expected(RST | ACK, 5, 10) is None
    assert AckProbe.expected(SYN | ACK, 5, 10) is None
    assert AckProbe.expected(ACK, 5, 10) is None
