"""Tests for hilos.sweep.connects: unprivileged discovery by connect() on loopback."""

from __future__ import annotations

import errno
import ipaddress
import socket
import threading
from collections.abc import Iterator

import pytest

from hilos.sweep import connects
from hilos.sweep.connects import ConnectDiscovery
from hilos.wire.ratelimit import TokenBucket

LO = int(ipaddress.IPv4Address("127.0.0.1"))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port of our own accepting on 127.0.0.1 (80 and 443 may have nothing listening):
    patched into TCP_PORTS for a test that needs an accepted connect."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s
    s.close()


def _run(ranges: list[tuple[int, int, int]], skip: dict[int, object]) -> dict[int, str]:
    got: dict[int, str] = {}
    lock = threading.Lock()

    def sink(key: int, reason: str, rtt_ms: float | None) -> None:
        with lock:
            got.setdefault(key, reason)

    eng = ConnectDiscovery(TokenBucket(None), sink, 2, lambda: 1.0)
    sent = eng.run_pass(ranges, skip, threading.Event())
    assert sent == 2 * (sum(b - a + 1 for _, a, b in ranges) - len(skip))
    return got


@pytest.mark.timeout(30)
def test_refused_and_accepted_connects_are_up(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connects, "TCP_PORTS", (listener.getsockname()[1], 1))
    got = _run([(4, LO, LO + 3)], {LO + 2: "echo-reply"})
    # 127.0.0.1 accepts on the listener's port; the others refuse both ports.
    assert got == {LO: "syn-ack", LO + 1: "conn-refused", LO + 3: "conn-refused"}


def test_classify_no_route_is_host_unreach_and_silence_is_nothing() -> None:
    got: list[tuple[int, str]] = []
    eng = ConnectDiscovery(TokenBucket(None), lambda k, r, t: got.append((k, r)), 1, lambda: 1.0)
    eng._classify(5, errno.EHOSTUNREACH, 0.0)
    eng._classify(6, errno.ETIMEDOUT, 0.0)
    assert got == [(5, "host-unreach")]
