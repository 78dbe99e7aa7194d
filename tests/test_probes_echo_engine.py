"""Tests for hilos.probes.echo_engine.EchoEngine: loopback echo, stateless matching (root)."""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time

import pytest

from hilos.errors import NetworkError
from hilos.probes.echo_engine import EchoEngine
from hilos.probes.icmp_echo import V6_TAG, build_echo
from hilos.wire.cookie import Cookie
from hilos.wire.frames import ECHO_PAD
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

    engine = EchoEngine(Cookie(12345), TokenBucket(None), on_result, families=(4, 6))
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
    engine = EchoEngine(Cookie(1), TokenBucket(None), lambda k, r, t: seen.append(k), families=(4,))
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
    engine = EchoEngine(
        Cookie(5), TokenBucket(None), lambda k, r, t: found.append((k, r)), families=()
    )
    engine.sockets[4] = IcmpSocket(sock, 4, raw=True)  # type: ignore[arg-type]
    return engine


def test_sent_cookies_are_cookie_echo_v4_and_v6() -> None:
    """The send loops' inlined arithmetic is Cookie.echo: identifier + sequence and the copy
    after the send time carry echo(address), for IPv4 and IPv6, and the ICMP checksum holds."""
    sock4, sock6 = FlakySocket([]), FlakySocket([])
    engine = _engine_on(sock4, [])
    engine.sockets[6] = IcmpSocket(sock6, 6, raw=True)  # type: ignore[arg-type]
    a4 = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
    a6 = int.from_bytes(socket.inet_pton(socket.AF_INET6, "fd18::1"), "big")
    ranges = [(4, a4, a4 + 300), (6, a6, a6 + 40), (6, 0, 3)]  # built, never sent
    assert engine.send_ranges(ranges, {}, threading.Event()) == 301 + 41 + 4
    want = [*range(a4, a4 + 301), *range(a6, a6 + 41), *range(4)]
    packets = [p for p, _d in sock4.sent + sock6.sent]
    for addr, pkt in zip(want, packets, strict=True):
        ident, seq = struct.unpack_from("!HH", pkt, 4)
        assert (ident << 16 | seq) == engine.cookie.echo(addr) != Cookie(6).echo(addr)
        assert struct.unpack_from("!I", pkt, 16)[0] == engine.cookie.echo(addr)
        assert pkt.endswith(ECHO_PAD)
    for pkt in packets[:301]:
        assert int.from_bytes(pkt, "big") % 0xFFFF == 0  # the ICMP checksum verifies


@pytest.mark.root
@pytest.mark.timeout(20)
def test_receiver_accepts_exactly_cookie_echo_and_counts_loss_probes() -> None:
    """The receiver's inlined arithmetic is Cookie.echo (v4 and v6): a request built by hand
    with the engine's Cookie.echo is answered and matched; with a loss probe's Cookie it is
    counted as a loss reply, never as a result; with another key it is ignored."""
    seen: list[tuple[int, str]] = []
    engine = EchoEngine(Cookie(77), TokenBucket(None), lambda k, r, t: seen.append((k, r)))
    engine.loss_keys = (Cookie(78),)
    lo4 = int.from_bytes(socket.inet_aton("127.0.0.1"), "big")
    s4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        engine.start()
        for key in (engine.cookie, engine.loss_keys[0], Cookie(79)):
            c4, c6 = key.echo(lo4 + 4), key.echo(1)
            s4.sendto(build_echo(c4 >> 16, c4 & 0xFFFF, bytes(8) + ECHO_PAD), ("127.0.0.5", 0))
            req6 = struct.pack("!BBHHH", 128, 0, 0, c6 >> 16, c6 & 0xFFFF) + bytes(8)
            s6.sendto(req6, ("::1", 0, 0, 0))  # the kernel fills an ICMPv6 checksum
        deadline = time.monotonic() + 5
        while (len(seen) < 2 or engine.loss_replies < 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        s4.close()
        s6.close()
        engine.close()
    assert sorted(seen) == [(lo4 + 4, "echo-reply"), (1 + V6_TAG, "echo-reply")]
    assert engine.loss_replies == 2


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


class ReplySocket:
    """Hands the receiver the queued (data, source) pairs, then ends it as a closed socket."""

    def __init__(self, replies: list[tuple[bytes, tuple[object, ...]]]) -> None:
        self.replies = replies

    def recvfrom(self, size: int) -> tuple[bytes, tuple[object, ...]]:
        if self.replies:
            return self.replies.pop(0)
        raise OSError(errno.EBADF, "closed")


def test_receiver_cookie_is_cookie_echo_for_any_address() -> None:
    """The receiver's inlined Cookie.echo over addresses the loopback cannot reach: IPv4 with
    its IP header (raw), IPv6 with non-zero upper 64 bits (they fold into the seed); replies
    under a loss probe's Cookie are counted apart, others' cookies are ignored."""
    seen: list[tuple[int, str]] = []
    engine = EchoEngine(
        Cookie(77), TokenBucket(None), lambda k, r, t: seen.append((k, r)), families=()
    )
    engine.loss_keys = (Cookie(78),)
    v6 = [
        int.from_bytes(socket.inet_pton(socket.AF_INET6, a), "big")
        for a in ("fd18::9", "fd18:ffff:1:2::ff")
    ]
    v4 = [0xC6120007, 0xC613FFFE]  # data only: nothing is sent
    replies4, replies6 = [], []
    for key in (engine.cookie, engine.loss_keys[0], Cookie(79)):
        for a in v4:
            c = key.echo(a)
            icmp = bytes([0]) + build_echo(c >> 16, c & 0xFFFF, bytes(8) + ECHO_PAD)[1:]
            ip = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(icmp),
                0,
                0,
                64,
                1,
                0,
                a.to_bytes(4, "big"),
                bytes(4),
            )
            replies4.append((ip + icmp, (socket.inet_ntoa(a.to_bytes(4, "big")), 0)))
        for a in v6:
            c = key.echo(a)
            icmp = struct.pack("!BBHHH", 129, 0, 0, c >> 16, c & 0xFFFF) + bytes(8)
            replies6.append(
                (icmp, (socket.inet_ntop(socket.AF_INET6, a.to_bytes(16, "big")), 0, 0, 0))
            )
    engine._receive(IcmpSocket(ReplySocket(replies4), 4, raw=True))  # type: ignore[arg-type]
    engine._receive(IcmpSocket(ReplySocket(replies6), 6, raw=True))  # type: ignore[arg-type]
    assert seen == [(a, "echo-reply") for a in v4] + [(a + V6_TAG, "echo-reply") for a in v6]
    assert engine.loss_replies == 4


def test_loss_probes_use_their_own_cookies() -> None:
    """Each loss round has its own Cookie (never the sweep's), and its requests carry it."""
    sock = FlakySocket([])
    engine = _engine_on(sock, [])
    hosts = [0xC6120007, 0xC6120008]  # built, never sent
    assert engine.send_loss_probes(hosts, 2) == 4 and engine.loss_sent == 4
    keys = engine.loss_keys
    assert len(keys) == 2 and all(isinstance(k, Cookie) for k in keys)
    assert len({(k.k1, k.k2) for k in (*keys, engine.cookie)}) == 3
    got = [struct.unpack_from("!I", p, 4)[0] for p, _d in sock.sent]
    assert got == [k.echo(h) for k in keys for h in hosts]
