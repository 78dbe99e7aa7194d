"""Tests for hilos.probes.echo_engine.EchoEngine: loopback echo, stateless matching (root)."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

import pytest

from hilos.errors import NetworkError
from hilos.probes.echo_engine import EchoEngine
from hilos.probes.icmp_echo import V6_TAG, build_echo
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.sockets import IcmpSocket


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


class FlakySocket:
    """Raises the queued errno at each next sendto (0: sends), then sends."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = errors
        self.sent: list[tuple[bytes, object]] = []

    def sendto(self, pkt: bytes, dest: object) -> int:
        if self.errors:
            code = self.errors.pop(0)
            if code:
                raise OSError(code, os.strerror(code))
        self.sent.append((pkt, dest))
        return len(pkt)

    def close(self) -> None:
        pass


def _engine_on(sock: FlakySocket, found: list[tuple[int, str]]) -> EchoEngine:
    engine = EchoEngine(5, TokenBucket(None), lambda k, r, t: found.append((k, r)), families=())
    engine.sockets[4] = IcmpSocket(sock, 4, raw=True)  # type: ignore[arg-type]
    return engine


def test_send_errors_follow_the_wire_policy() -> None:
    """hilos.wire.senders' policy: a full queue waits and sends again, no route is
    host-unreach at once, a firewall's EPERM leaves the address unanswered, anything else is
    a NetworkError (it used to be counted and forgotten)."""
    lo = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
    found: list[tuple[int, str]] = []
    sock = FlakySocket([errno.ENOBUFS, errno.ENOBUFS, 0, errno.EHOSTUNREACH, errno.EPERM])
    engine = _engine_on(sock, found)
    assert engine.send_ranges([(4, lo, lo + 3)], {}, threading.Event()) == 2
    assert [d for _p, d in sock.sent] == [("127.0.0.1", 0), ("127.0.0.4", 0)]
    assert found == [(lo + 1, "host-unreach")] and engine.send_errors == 2
    broken = _engine_on(FlakySocket([errno.EMSGSIZE]), [])
    with pytest.raises(NetworkError, match="echo"):
        broken.send_ranges([(4, lo, lo)], {}, threading.Event())
