"""Tests for hilos.syn.send: its IP packets and Ethernet frames equal the reference builds."""

from __future__ import annotations

import socket
import threading
from typing import Any

from helpers_tcp import ref_checksum
from hilos.syn.control import Control
from hilos.syn.hosts import HostTable
from hilos.syn.plan import Plan
from hilos.syn.send import Sender
from hilos.syn.state import ScanState
from hilos.wire.cookie import Cookie
from hilos.wire.frames import build_tcp_segment
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket

HOSTS = ["127.0.0.7", "127.0.1.9", "127.0.0.200"]
PORTS = [22, 443, 65535]
ETH = bytes.fromhex("0200000000010200000000020800")


class Capture:
    """A socket that keeps what is sent (sendto for the IP path, send for the frame path)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, pkt: bytes, addr: tuple[str, int]) -> int:
        self.sent.append((pkt, addr))
        return len(pkt)

    def send(self, pkt: bytes) -> int:
        self.sent.append((pkt, None))
        return len(pkt)


class Engine:
    def __init__(self) -> None:
        self.tx4 = Capture()
        self.tx6 = None


class Coord:
    def __init__(self) -> None:
        self.count = 0

    def sent(self, n: int) -> None:
        self.count += n

    def pace(self) -> float:
        return 0.0


def _link(covered: list[str]) -> tuple[LinkTx, Capture]:
    """A LinkTx for 127.0.0.1 whose route cache already covers the /24s of `covered`."""
    link = object.__new__(LinkTx)
    sock = Capture()
    link.sock = sock  # type: ignore[assignment]
    link.eth = ETH
    link.source = 0x7F000001
    link._by24 = {int.from_bytes(socket.inet_aton(a), "big") >> 8: True for a in covered}
    link._long, link._local = set(), set()
    return link, sock


def _sender(cookie: Cookie) -> tuple[Sender, Engine, Coord]:
    hosts = HostTable(HOSTS, cookie)
    plan = Plan(len(HOSTS), len(PORTS), 1, None)
    state = ScanState(hosts, PORTS, Control(0.1), plan.total)
    engine, coord = Engine(), Coord()
    sender = Sender(
        engine,  # type: ignore[arg-type]
        hosts,
        state,
        plan,
        TokenBucket(None),
        coord,  # type: ignore[arg-type]
        threading.Event(),
        1,
    )
    return sender, engine, coord


def _check_ip_packet(ip: bytes, cookie: Cookie) -> None:
    assert len(ip) == 44 and ip[0] == 0x45 and ip[9] == 6
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    sport, dport = int.from_bytes(ip[20:22], "big"), int.from_bytes(ip[22:24], "big")
    seq = cookie.value(cookie.host_seed(int.from_bytes(ip[16:20], "big")), dport, sport)
    assert ip[20:] == build_tcp_segment(src, dst, sport, dport, seq)


def test_ip_path_packets_equal_reference_builds() -> None:
    cookie = Cookie(0xC0FFEE)
    sender, engine, coord = _sender(cookie)
    assert sender.send_chunk(iter(range(9)), 9, False, None) == 9 and coord.count == 9
    sent = engine.tx4.sent
    assert sorted((a[0], int.from_bytes(p[22:24], "big")) for p, a in sent) == sorted(
        (h, p) for h in HOSTS for p in PORTS
    )
    for pkt, _addr in sent:
        _check_ip_packet(pkt, cookie)  # the kernel fills the IP checksum (IP_HDRINCL)


def test_frame_path_packets_equal_reference_builds() -> None:
    cookie = Cookie(0xBEEF)
    sender, engine, _coord = _sender(cookie)
    link, frames = _link(["127.0.0.7"])  # 127.0.1.9 stays on the IP socket
    assert sender.hosts.use_link(link) == 2
    sender.link = link
    sender.send_chunk(iter(range(9)), 9, False, None)
    assert len(frames.sent) == 6 and len(engine.tx4.sent) == 3
    for frame, _none in frames.sent:
        assert frame[:14] == ETH
        ip = frame[14:]
        assert ref_checksum(ip[:20]) == 0  # on this path we write the IP checksum ourselves
        assert ip[6:9] == bytes([0x40, 0, 64])  # DF, TTL 64
        _check_ip_packet(ip, cookie)
