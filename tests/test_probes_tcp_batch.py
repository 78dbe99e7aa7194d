"""The batched TCP receiver hands on_reply exactly what the per-packet parser accepts."""

from __future__ import annotations

import random
import socket
import struct

from hilos.probes.base import SPORT_BASE, Reply
from hilos.probes.tcp_batch import BatchDrain
from hilos.probes.tcp_reply import parse_ipv4
from hilos.wire.checksum import checksum
from hilos.wire.cookie import Cookie
from hilos.wire.frames import ACK, RST, SYN


def _packet(rng: random.Random, cookie: Cookie) -> bytes:
    addr, port = rng.getrandbits(32), rng.randrange(1, 65536)
    sport = rng.randrange(SPORT_BASE, 65536)
    c = cookie.value(cookie.host_seed(addr), port, sport)
    if rng.random() < 0.3:
        c ^= 1 << rng.randrange(32)  # not ours
    flags, seq, ack = rng.choice([(SYN | ACK, 9, c + 1), (RST | ACK, 0, c + 1), (RST, c, 0)])
    seg = struct.pack("!HHIIBBHHH", port, sport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4,
                      flags, 1024, 0, 0)  # fmt: skip
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, addr.to_bytes(4, "big"),
                       b"\x7f\0\0\1")  # fmt: skip
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + seg


def test_batch_drain_equals_the_parser() -> None:
    rng = random.Random(3)
    cookie = Cookie(rng.getrandbits(128))
    pkts = [_packet(rng, cookie) for _ in range(1500)] + [b"\x45" + bytes(10), b""]
    got: list[Reply] = []
    drain = BatchDrain(cookie, got.append)
    # UDP on 127.0.0.1 carries the packets as datagrams (an AF_UNIX queue holds only ~10).
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    b.bind(("127.0.0.1", 0))
    with a, b:
        b.setblocking(False)
        for p in pkts:
            a.sendto(p, b.getsockname())
        assert drain.drain(b, rounds=1) is False  # 1024 taken, more queued
        assert drain.drain(b) is True
    want = [r for r in (parse_ipv4(cookie, p) for p in pkts) if r is not None]
    assert 300 < len(want) < 1200
    assert [r[:6] for r in got] == [r[:6] for r in want]  # all but the RTT (read at another time)
    assert all(r.rtt_ms >= 0 for r in got)
