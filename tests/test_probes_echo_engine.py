"""Tests for hilos.probes.echo_engine.EchoEngine: loopback echo, stateless matching (root)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from hilos.probes.echo_engine import EchoEngine
from hilos.probes.icmp_echo import V6_TAG, build_echo
from hilos.wire.ratelimit import TokenBucket


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
