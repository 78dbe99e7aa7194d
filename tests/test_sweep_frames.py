"""Tests for hilos.sweep.frames: the fast path's frames are the probe modules' probes."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from types import SimpleNamespace

import pytest

from hilos.probes.base import KIND_RST
from hilos.probes.tcp_reply import parse_ipv4
from hilos.sweep import frames as frames_mod
from hilos.sweep.engines import IcmpDiscovery, TcpDiscovery
from hilos.sweep.frames import FrameSender, claimed_blocks
from hilos.wire.cookie import Cookie
from hilos.wire.frames import SynTemplate4, build_ipv4_packet
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import Claims

LO = int(ipaddress.IPv4Address("127.0.0.1"))


def _verifies(data: bytes) -> bool:
    total = int.from_bytes(data + b"\x00" * (len(data) % 2), "big") % 0xFFFF
    return total == 0


@pytest.mark.root
@pytest.mark.timeout(30)
def test_frames_are_the_tcp_engines_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame path builds exactly the probe modules' SYN and ACK (SynTemplate4; plus the IP
    checksum the kernel would add) and ICMP echoes whose cookies the echo receiver recomputes."""
    monkeypatch.setattr(frames_mod, "send_tick", lambda: 17618)
    sent: list[bytes] = []

    class Capture:
        def send(self, frame: bytes) -> int:
            sent.append(bytes(frame))
            return len(frame)

        def close(self) -> None:
            pass

    eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
    link = LinkTx(Capture(), "fake0", LO + 1, eth, LO)  # type: ignore[arg-type]
    sink = lambda *a: None  # noqa: E731
    shared = Cookie(99)
    icmp = IcmpDiscovery(shared, TokenBucket(None), sink, {4})
    tcpe = TcpDiscovery(TokenBucket(None), sink, {4}, shared)
    try:
        with pytest.raises(ValueError, match="one Cookie"):
            other = SimpleNamespace(cookie=Cookie(100))  # a TcpDiscovery with its own key
            FrameSender(link, icmp, other, None, 1)  # type: ignore[arg-type]
        frames = FrameSender(link, icmp, tcpe, None, 1)
        target = int(ipaddress.IPv4Address("198.18.7.9"))  # built, never sent
        n = frames.send([(4, target, target)], {}, threading.Event(), None, 1, TokenBucket(None))
    finally:
        icmp.close()
        tcpe.close()
    assert n == 3 and len(sent) == 3
    echo, syn, ack = sent
    for frame in sent:
        assert frame[:14] == eth
        assert _verifies(frame[14:34])  # IPv4 header checksum
        assert frame[30:34] == target.to_bytes(4, "big")
    assert echo[23] == socket.IPPROTO_ICMP and _verifies(echo[34:])
    # The echo cookie (identifier + sequence, and its payload copy) is Cookie.echo.
    assert struct.unpack_from("!I", echo, 38)[0] == shared.echo(target)
    assert struct.unpack_from("!I", echo, 50)[0] == shared.echo(target)
    cookie = tcpe.prober.engine.cookie
    assert cookie is shared
    template = SynTemplate4("127.0.0.1")
    d4 = target.to_bytes(4, "big")
    hs = template.dst_sum(d4)
    seed = cookie.host_seed(target)
    want_syn = template.syn(d4, hs, 443, 17618, cookie.value(seed, 443, 17618))
    want_ack = template.ack(d4, hs, 80, 17618, cookie.value(seed, 80, 17618))
    for got, want in ((syn, want_syn), (ack, want_ack)):
        ip = got[14:]
        assert ip[:10] == want[:10] and ip[12:36] == want[12:36] and ip[38:] == want[38:]
        # TCP checksum: the same sum, maybe the other zero of ones' complement.
        a, b = ip[36:38], want[36:38]
        assert a == b or {a, b} == {b"\x00\x00", b"\xff\xff"}
    # The engine's own receiver accepts the RST that answers the ACK probe.
    c_ack = cookie.value(seed, 80, 17618)
    rst = build_ipv4_packet(
        "198.18.7.9",
        "127.0.0.1",
        struct.pack("!HHIIBBHHH", 80, 17618, c_ack, 0, 0x50, 0x04, 0, 0, 0),
    )
    reply = parse_ipv4(cookie, rst)
    assert reply is not None and reply.addr == target and reply.kind == KIND_RST


class _Capture:
    """A LinkTx socket that keeps the frames (no ctypes sendmmsg: no real descriptor)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, frame: bytes) -> int:
        self.sent.append(bytes(frame))
        return len(frame)

    def close(self) -> None:
        pass


@pytest.mark.root
@pytest.mark.timeout(30)
def test_echo_only_and_tcp_only_loops_build_the_combined_loops_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The three per-probe-set loops (all three frames, echo only, SYN/ACK only) are one
    loop's code each: the same address gives the same frames whichever loop built them, over
    more than one batch and across /24 blocks, skipping answered addresses."""
    monkeypatch.setattr(frames_mod, "send_tick", lambda: 17618)
    monkeypatch.setattr(time, "monotonic_ns", lambda: 123_456_789_000)
    eth = bytes.fromhex("020000000001020000000002") + b"\x08\x00"
    sink = lambda *a: None  # noqa: E731
    shared = Cookie(99)
    icmp = IcmpDiscovery(shared, TokenBucket(None), sink, {4})
    tcpe = TcpDiscovery(TokenBucket(None), sink, {4}, shared)
    first = int(ipaddress.IPv4Address("198.18.6.200"))  # built, never sent
    ranges = [(4, first, first + 99)]
    skip: dict[int, object] = {first + 7: "echo-reply"}

    def build(i: IcmpDiscovery | None, t: TcpDiscovery | None) -> list[bytes]:
        cap = _Capture()
        link = LinkTx(cap, "fake0", LO + 1, eth, LO)  # type: ignore[arg-type]
        sender = FrameSender(link, i, t, None, 1)
        n = sender.send(ranges, skip, threading.Event(), None, 1, TokenBucket(None))
        assert n == len(cap.sent) and sender.progress == 100
        return cap.sent

    try:
        both = build(icmp, tcpe)
        echo = build(icmp, None)
        syn_ack = build(None, tcpe)
    finally:
        icmp.close()
        tcpe.close()
    assert len(both) == 3 * 99 and len(echo) == 99 and len(syn_ack) == 2 * 99
    assert both[0::3] == echo
    assert [f for k, f in enumerate(both) if k % 3] == syn_ack


def test_claimed_blocks_split_ranges_at_24s_and_share_them_out() -> None:
    a = int(ipaddress.IPv4Address("198.18.0.250"))
    ranges = [(4, a, a + 300), (4, a + 1000, a + 1000)]
    blocks = list(claimed_blocks(ranges, threading.Event(), None))
    assert blocks == [(a, a + 5), (a + 6, a + 261), (a + 262, a + 300), (a + 1000, a + 1000)]
    stop = threading.Event()
    stop.set()
    assert list(claimed_blocks(ranges, stop, None)) == []
    # Two processes claiming from one Claims get every block exactly once between them.
    many = [(4, a, a + 256 * 300)]
    claims = Claims(302)
    try:
        first = claimed_blocks(many, threading.Event(), claims)
        second = claimed_blocks(many, threading.Event(), claims)
        got = [next(first), next(second)]
        got += list(first) + list(second)
    finally:
        claims.close()
    assert sorted(got) == list(claimed_blocks(many, threading.Event(), None))


def test_claimed_blocks_mark_chunks_done_and_a_resumed_pass_starts_after_them() -> None:
    a = int(ipaddress.IPv4Address("198.18.0.0"))
    many = [(4, a, a + 256 * 300 - 1)]  # 300 blocks: 100 chunks of 3
    claims = Claims(300)
    try:
        assert claims.settled(time.monotonic()) == 0
        walk = claimed_blocks(many, threading.Event(), claims)
        taken = [next(walk) for _ in range(3 * 5 + 1)]  # five chunks, one block of the sixth
        assert claims.settled(time.monotonic()) == 5
        assert claims.settled(time.monotonic() - 3600) == 0  # not done an hour ago
        rest = list(walk)
        assert claims.settled(time.monotonic()) == claims.count
    finally:
        claims.close()
    # A pass resumed after 5 chunks: they count as done long ago; the walk starts at block 15.
    resumed = Claims(300, start=5, tag=1)
    try:
        assert resumed.tag == 1 and resumed.settled(time.monotonic() - 3600) == 5
        again = list(claimed_blocks(many, threading.Event(), resumed))
    finally:
        resumed.close()
    assert again == (taken + rest)[15:]
