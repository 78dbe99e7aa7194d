"""The UDP scan's batched ICMP reader (hilos.udp.rx4): exactly the scalar receiver's answers."""

from __future__ import annotations

import random
import socket
import struct

import numpy as np

from hilos.udp.receiver import UdpReceiver, Validator
from hilos.udp.rx4 import SNAP, Icmp4Batch
from hilos.udp.state import REASON_CODE, UdpState
from hilos.udp.targets import UdpTargets
from hilos.wire.cookie import Cookie

HOSTS = [f"198.18.0.{i}" for i in range(1, 41)] + ["fd18::5"]
PORTS = [7, 53, 123, 161, 500, 1900, 40000, 65535]
SCANNER = socket.inet_aton("198.18.254.1")


def _ip(src: bytes, dst: bytes, proto: int, body: bytes, options: bytes = b"") -> bytes:
    ihl = (20 + len(options)) // 4
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(options) + len(body), 0, 0, 64,
                       proto, 0, src, dst)  # fmt: skip
    return head + options + body


def _error(tg: UdpTargets, rnd: random.Random) -> bytes:
    """An ICMP error quoting a probe: mostly right, sometimes forged or broken on purpose."""
    h = rnd.randrange(len(tg) - 1)
    port = rnd.choice([*PORTS, 9999])
    sport = tg.sport(h, port) if port != 9999 else 40000
    if rnd.random() < 0.15:
        sport ^= 1 << rnd.randrange(16)
    addr = socket.inet_aton(tg.names[h])
    if rnd.random() < 0.05:
        addr = socket.inet_aton("198.18.1.9")
    udp = struct.pack("!HHHH", sport, port, 8, 0)
    quoted = _ip(SCANNER, addr, 17 if rnd.random() > 0.05 else 6, udp,
                 b"\x01" * 4 * rnd.choice([0, 0, 0, 1, 10]))  # fmt: skip
    typ = 3 if rnd.random() > 0.05 else rnd.choice([0, 11, 5])
    code = rnd.choice([3, 3, 3, 0, 1, 2, 9, 10, 13, 7, 200])
    icmp = bytes([typ, code, 0, 0, 0, 0, 0, 0]) + quoted
    pkt = _ip(addr, SCANNER, 1, icmp, b"\x01" * 4 * rnd.choice([0, 0, 0, 2, 10]))
    if rnd.random() < 0.1:
        pkt = pkt[: rnd.randrange(len(pkt) + 1)]
    if rnd.random() < 0.1:
        b = bytearray(pkt)
        for _ in range(3):
            if b:
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        pkt = bytes(b)
    return pkt


def test_batch_validation_gives_exactly_the_scalar_receivers_answers() -> None:
    rnd = random.Random(7)
    cookie = Cookie(0x1234_5678_9ABC_DEF0_1122_3344_5566_7788)
    pkts = [_error(UdpTargets(HOSTS, cookie), rnd) for _ in range(3000)]
    pkts += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(80))) for _ in range(500)]

    scalar = UdpState(UdpTargets(HOSTS, cookie), PORTS, None)
    rx = UdpReceiver.__new__(UdpReceiver)
    rx.validator = Validator(scalar)
    n_scalar = sum(rx.handle(1, "198.18.0.1", p) for p in pkts)

    batched = UdpState(UdpTargets(HOSTS, cookie), PORTS, None)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as dummy:
        batch = Icmp4Batch(dummy, batched)
    rows = np.zeros((len(pkts), SNAP), dtype=np.uint8)
    lens = np.zeros(len(pkts), dtype=np.int64)
    for i, p in enumerate(pkts):
        rows[i, : min(len(p), SNAP)] = np.frombuffer(p[:SNAP], dtype=np.uint8)
        lens[i] = min(len(p), SNAP)
    counted = batch.handle(rows, lens, [None] * len(pkts))

    assert scalar.codes == batched.codes
    assert len(scalar.codes) > 250  # most of the 320 (host, port) pairs answered
    assert {REASON_CODE["port-unreach"], REASON_CODE["admin-prohibited"]} <= set(
        scalar.codes.values()
    )
    assert counted >= n_scalar  # duplicates count in both, only the first becomes a state


def test_batched_round_trips_end_at_the_kernels_arrival_time() -> None:
    """recvmmsg brings each packet's SO_TIMESTAMPNS: a late read still measures the path."""
    import os
    import time

    import pytest

    from hilos.probes.udp_reply import build_udp

    if os.geteuid() != 0:
        pytest.skip("raw sockets need root")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = UdpState(UdpTargets(["127.0.0.1"], Cookie()), [port], None)
    rx = UdpReceiver(state, frozenset({4}), batched=True)
    try:
        assert rx.tx4 is not None and rx._batch is not None
        state.mark_sent(0)
        rx.tx4.sendto(build_udp(state.targets.sport(0, port), port, b""), ("127.0.0.1", 0))
        time.sleep(0.1)
        assert rx._batch.drain()
        assert state.codes == {0: REASON_CODE["port-unreach"]}
        assert state.rtt[0] < 30, state.rtt
    finally:
        rx.close()
