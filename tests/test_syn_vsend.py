"""The SYN scan's batched sender sends the frames of the per-probe loop, byte for byte, and
keeps its accounting (final probes skipped, sent counted, indices collected)."""

from __future__ import annotations

import mmap
import random
import socket
import struct
from types import SimpleNamespace

from hilos.probes.base import SPORT_BASE
from hilos.syn.hosts import HostTable
from hilos.syn.vsend import VectorSend
from hilos.wire.cookie import Cookie
from hilos.wire.frames import PACK_FRAME, SUFFIX, WIN_FLAGS_SYN
from hilos.wire.ratelimit import TokenBucket

SRC = 0xC6130002  # 198.19.0.2 (no packet leaves: frames go into a socket pair)


class _Link:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.source = SRC
        self.eth = bytes(range(1, 13)) + b"\x08\x00"

    def ip_prefix(self, proto: int, total_len: int) -> tuple[bytes, int]:
        head = struct.pack("!BBHHHBB", 0x45, 0, total_len, 0, 0x4000, 64, proto)
        return self.eth + head, (int.from_bytes(head, "big") + self.source) % 0xFFFF

    def covers(self, dst: int) -> bool:
        return True


def _scalar(entry: tuple, port: int, sport: int, cookie: Cookie) -> bytes:
    """Sender.send_chunk's frame for one probe (its arithmetic, copied)."""
    _addr, seed, _d4, base, _prefix, frame = entry
    seq = cookie.value(seed, port, sport)
    c = base + port + sport + (seq >> 16) + (seq & 0xFFFF)
    c = (c & 0xFFFF) + (c >> 16)
    c = ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF
    return PACK_FRAME.pack(frame, sport, port, seq, 0, WIN_FLAGS_SYN, c, SUFFIX)


def test_batched_syn_frames_equal_the_per_probe_loop(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("hilos.wire.sockets.source_address", lambda name: "198.19.0.2")
    monkeypatch.setattr("hilos.syn.hosts.source_address", lambda name: "198.19.0.2")
    rng = random.Random(7)
    cookie = Cookie(rng.getrandbits(128))
    hosts = [f"198.18.{rng.randrange(256)}.{rng.randrange(256)}" for _ in range(40)]
    table = HostTable(hosts, cookie)
    ports = [22, 80, 443, 8080, 1, 65535]
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    with a, b:
        link = _Link(a)
        assert table.use_link(link) == len(table)  # type: ignore[arg-type]
        total = len(table) * len(ports)
        final = mmap.mmap(-1, (total + 7) // 8)
        sent: list[int] = []
        sender = SimpleNamespace(
            link=link, hosts=table, engine=SimpleNamespace(cookie=cookie),
            state=SimpleNamespace(ports=tuple(ports), np=len(ports), final=final,
                                  has_code=mmap.mmap(-1, len(table))),
            bucket=TokenBucket(None), pace_wait=lambda: None,
            coord=SimpleNamespace(sent=sent.append),
        )  # fmt: skip
        vs = VectorSend.serving(sender)  # type: ignore[arg-type]
        assert vs is not None
        sport = SPORT_BASE + 1234
        vs.batch.probe.sport = sport  # type: ignore[attr-defined]
        order = list(range(total))
        rng.shuffle(order)
        final[order[5] >> 3] |= 1 << (order[5] & 7)  # answered already: not resent
        collect: list[int] = []
        walk = iter(order)
        assert vs.send_chunk(walk, 100, True, collect) == 100
        assert vs.send_chunk(walk, 10_000, True, collect) == total - 100
        expect = [i for i in order if i != order[5]]
        assert collect == expect
        assert sum(sent) == len(expect)
        got = [b.recv(128) for _ in expect]
        # A resend pass defers the probes of hosts that have not answered anything.
        sender.state.has_code[3] = 1
        sent.clear()
        deferred = bytearray(len(final))
        assert vs.send_chunk(iter(order), total, False, None, deferred) == total
        marked = [i for i in range(total) if deferred[i >> 3] >> (i & 7) & 1]
        assert sum(sent) == len(ports) and marked == [
            i for i in range(total) if i // len(ports) != 3
        ]
        assert all(b.recv(128) for _ in ports)
    np_ = len(ports)
    for i, frame in zip(expect, got, strict=True):
        assert frame == _scalar(table.entries[i // np_], ports[i % np_], sport, cookie)


def test_mixed_tables_keep_the_per_probe_loop() -> None:
    table = SimpleNamespace(entries=[(("a", 0), 1, b"\1\2\3\4", 0, b"", None)])
    assert VectorSend.serving(SimpleNamespace(link=object(), hosts=table)) is None  # type: ignore[arg-type]
    assert VectorSend.serving(SimpleNamespace(link=None, hosts=table)) is None  # type: ignore[arg-type]
