"""The batched UDP frames equal the scalar path's datagrams, kind by kind, on random probes."""

from __future__ import annotations

import ipaddress
import random
import socket

import numpy as np
import pytest

from hilos.probes.udp_payloads import PORT_KINDS, ROTATION, build_payload
from hilos.probes.udp_reply import build_udp
from hilos.probes.udp_vector import UdpVector
from hilos.udp.targets import UdpTargets
from hilos.wire.cookie import Cookie
from hilos.wire.vector import FrameBatch

KINDS = sorted({*ROTATION, *(k for ks in PORT_KINDS.values() for k in ks)})


@pytest.mark.parametrize("kind", KINDS)
def test_frames_equal_the_scalar_datagrams(kind: str) -> None:
    rng = random.Random(kind)
    cookie = Cookie(rng.getrandbits(128))
    addrs = [rng.getrandbits(32) for _ in range(300)]
    ports = [rng.randrange(1, 65536) for _ in range(300)]
    targets = UdpTargets([str(ipaddress.IPv4Address(a)) for a in addrs], cookie)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        batch = FrameBatch(UdpVector(cookie, kind), s, 512, addressed=True)
        n = batch.fill(np.array(addrs, dtype=np.uint32), np.array(ports, dtype=np.uint16))
        for i in range(n):
            h = targets.index4[addrs[i]]
            want = build_udp(
                targets.sport(h, ports[i]),
                ports[i],
                build_payload(kind, targets.value(h, ports[i])),
            )
            frame = bytes(batch.frames[i])
            assert frame[16:20] == addrs[i].to_bytes(4, "big")
            assert frame[9] == 17 and frame[0] == 0x45
            assert frame[20:] == want, (kind, i)


def test_validate_accepts_only_the_keyed_ports() -> None:
    cookie = Cookie(99)
    probe = UdpVector(cookie, "dns")
    targets = UdpTargets(["198.18.0.1"], cookie)
    sport = targets.sport(0, 53)
    rows = np.zeros((3, 64), dtype=np.uint8)
    for r, dport in enumerate((sport, sport ^ 1, sport)):
        pkt = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17 if r < 2 else 6, 0, 0, 198, 18, 0, 1])
        pkt += bytes([198, 19, 0, 2]) + build_udp(53, dport, b"x" * 12)
        rows[r, : len(pkt)] = np.frombuffer(pkt, dtype=np.uint8)
    ans = probe.validate(rows, np.array([40, 40, 40]))
    assert ans.ok.tolist() == [True, False, False]
    assert int(ans.port[0]) == 53 and int(ans.addr[0]) == 0xC6120001
