"""Vectorised probe frames equal the scalar builders byte for byte; the batch validators accept
exactly what the scalar parsers accept (fuzzed)."""

from __future__ import annotations

import ipaddress
import random
import struct
from typing import Any

import numpy as np

from hilos.probes.base import SPORT_BASE
from hilos.probes.icmp_echo import build_echo
from hilos.probes.tcp_reply import parse_ipv4
from hilos.probes.vector import EchoVector, TcpVector
from hilos.wire.checksum import checksum
from hilos.wire.cookie import Cookie
from hilos.wire.frames import ACK, ECHO_PAD, RST, SYN, build_ipv4_packet, build_tcp_segment

ETH = bytes(range(12)) + b"\x08\x00"


def _rows(probe: EchoVector | TcpVector, n: int) -> tuple[np.ndarray, np.ndarray]:
    buf = bytearray(probe.template * n)
    return np.frombuffer(buf, dtype=probe.layout), np.frombuffer(buf, np.uint8).reshape(n, -1)


def _ip4(proto: int, src: int, dst: int, payload: bytes, flags: int) -> bytes:
    head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, flags, 64, proto, 0,
                       src.to_bytes(4, "big"), dst.to_bytes(4, "big"))  # fmt: skip
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + payload


def test_echo_frames_equal_the_scalar_builder() -> None:
    rng = random.Random(1)
    for _ in range(5):
        key, src = Cookie(rng.getrandbits(128)), rng.getrandbits(32)
        probe = EchoVector(key, ETH, src)
        dst = np.array([rng.getrandbits(32) for _ in range(700)], np.uint32)
        rows, frames = _rows(probe, len(dst))
        probe.patch(rows, dst, np.zeros(len(dst), np.uint16))
        for k, d in enumerate(dst.tolist()):
            c = key.echo(d)
            t = int(rows["sent"][k])
            icmp = build_echo(c >> 16, c & 0xFFFF, struct.pack("!QI", t, c) + ECHO_PAD)
            assert bytes(frames[k]) == ETH + _ip4(1, src, d, icmp, 0x4000)


def test_tcp_frames_equal_the_scalar_builder() -> None:
    rng = random.Random(2)
    for ack in (False, True):
        cookie, src = Cookie(rng.getrandbits(128)), rng.getrandbits(32)
        probe = TcpVector(cookie, ETH, src, ack=ack)
        probe.sport = rng.randrange(SPORT_BASE, 65536)
        dst = np.array([rng.getrandbits(32) for _ in range(700)], np.uint32)
        port = np.array([rng.randrange(65536) for _ in range(700)], np.uint16)
        rows, frames = _rows(probe, len(dst))
        probe.patch(rows, dst, port)
        s, sp = ipaddress.IPv4Address(src), probe.sport
        for k, (d, p) in enumerate(zip(dst.tolist(), port.tolist(), strict=True)):
            c = cookie.value(cookie.host_seed(d), p, sp)
            da = ipaddress.IPv4Address(d)
            seg = build_tcp_segment(s, da, sp, p, c, c if ack else 0, ACK if ack else SYN)
            assert bytes(frames[k]) == ETH + build_ipv4_packet(s, da, seg)


def _batch(pkts: list[bytes], snap: int = 96) -> tuple[np.ndarray, np.ndarray]:
    arr = np.zeros((len(pkts), snap), np.uint8)
    for k, p in enumerate(pkts):
        arr[k, : min(len(p), snap)] = np.frombuffer(p[:snap], np.uint8)
    return arr, np.array([len(p) for p in pkts], np.int64)


def _mutate(rng: random.Random, p: bytes) -> bytes:
    b = bytearray(p)
    for _ in range(rng.randrange(4)):
        if not b:
            break
        b[rng.randrange(len(b))] = rng.getrandbits(8)
    if rng.random() < 0.2:
        b = b[: rng.randrange(len(b) + 1)]
    return bytes(b)


def _echo_reply(key: Cookie, src: int, ours: int, rng: random.Random) -> bytes:
    c = key.echo(src)
    icmp = build_echo(c >> 16, c & 0xFFFF, struct.pack("!QI", 5, c) + ECHO_PAD)
    icmp = bytes([0]) + icmp[1:] if rng.random() < 0.8 else icmp  # type 0; else a request
    return _ip4(1, src, ours, icmp, 0)


def test_echo_validator_on_fuzzed_packets() -> None:
    rng = random.Random(3)
    key, ours = Cookie(rng.getrandbits(128)), 0x7F000001
    probe = EchoVector(key, ETH, ours)
    pkts = []
    for _ in range(10_000):
        p = _echo_reply(key, rng.getrandbits(32), ours, rng)
        pkts.append(_mutate(rng, p) if rng.random() < 0.6 else p)
    arr, lens = _batch(pkts)
    got = probe.validate(arr, lens)
    for k, p in enumerate(pkts):
        ihl = (p[0] & 15) * 4 if p else 0
        valid = (
            len(p) >= ihl + 20 and p[0] >> 4 == 4 and ihl >= 20 and p[9] == 1 and p[ihl] == 0
            and len(p) <= 96
            and int.from_bytes(p[ihl + 4 : ihl + 8], "big")
            == key.echo(int.from_bytes(p[12:16], "big"))
        )  # fmt: skip
        assert bool(got.ok[k]) == valid, k
        if valid:
            assert int(got.addr[k]) == int.from_bytes(p[12:16], "big")
    assert 1000 < int(got.ok.sum()) < 9000


def _tcp_reply(cookie: Cookie, rng: random.Random) -> bytes:
    addr, port = rng.getrandbits(32), rng.randrange(1, 65536)
    sport = rng.randrange(SPORT_BASE, 65536) if rng.random() < 0.9 else rng.randrange(65536)
    c = cookie.value(cookie.host_seed(addr), port, sport)
    flags, seq, ack = rng.choice(
        [(SYN | ACK, 77, c + 1), (RST | ACK, 0, c + 1), (RST, c, 0), (SYN, c, 0), (ACK, c, c)]
    )
    seg = struct.pack("!HHIIBBHHH", port, sport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 1024, 0, 0)  # fmt: skip
    return _ip4(6, addr, 0x7F000001, seg, 0)


def test_tcp_validator_agrees_with_the_scalar_parser_on_fuzzed_packets() -> None:
    rng = random.Random(4)
    cookie = Cookie(rng.getrandbits(128))
    probe = TcpVector(cookie, ETH, 0x7F000001)
    pkts = []
    for _ in range(10_000):
        p = _tcp_reply(cookie, rng)
        pkts.append(_mutate(rng, p) if rng.random() < 0.5 else p)
    got = _agrees_with_the_scalar_parser(probe, cookie, pkts)
    assert 1000 < int(got.ok.sum()) < 9000


def _agrees_with_the_scalar_parser(probe: TcpVector, cookie: Cookie, pkts: list[bytes]) -> Any:
    got = probe.validate(*_batch(pkts))
    for k, p in enumerate(pkts):
        want = parse_ipv4(cookie, p)
        assert bool(got.ok[k]) == (want is not None), (k, p.hex())
        if want is not None:
            assert (int(got.addr[k]), int(got.port[k]), int(got.kind[k])) == (
                want.addr, want.port, want.kind)  # fmt: skip
    return got


def test_tcp_validator_agrees_on_a_batch_without_ip_options() -> None:
    """Every row's TCP header at column 20 (the common case, read by slices, not gathers),
    a fifth of them cut short: the same answers as the scalar parser."""
    rng = random.Random(5)
    cookie = Cookie(rng.getrandbits(128))
    probe = TcpVector(cookie, ETH, 0x7F000001)
    pkts = [_tcp_reply(cookie, rng) for _ in range(5_000)]
    pkts = [p[: rng.randrange(20, len(p))] if rng.random() < 0.2 else p for p in pkts]
    got = _agrees_with_the_scalar_parser(probe, cookie, pkts)
    assert 500 < int(got.ok.sum()) < 5000


def test_echo_validator_on_a_batch_without_ip_options() -> None:
    rng = random.Random(6)
    key, ours = Cookie(rng.getrandbits(128)), 0x7F000001
    probe = EchoVector(key, ETH, ours)
    srcs = [rng.getrandbits(32) for _ in range(2_000)]
    pkts = [_echo_reply(key, s, ours, rng) for s in srcs]
    got = probe.validate(*_batch(pkts))
    for k, p in enumerate(pkts):
        assert bool(got.ok[k]) == (p[20] == 0), k  # echo replies valid, requests not
        if p[20] == 0:
            assert int(got.addr[k]) == srcs[k]
