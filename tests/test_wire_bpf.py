"""The reply filter in the real kernel: hand-made frames on lo, only replies to our address and
ports come through (AF_PACKET with the Ethernet offset, and a raw ICMP socket)."""

from __future__ import annotations

import socket
import struct
import time

import numpy as np
import pytest

from hilos.wire.bpf import Program, attach, reply_filter
from hilos.wire.checksum import checksum
from hilos.wire.rx import RxBatch, grow_rcvbuf, raw_drops

pytestmark = pytest.mark.root

OURS = 0x7F4D0009  # 127.77.0.9
OTHER = 0x7F4D0005
ETH = b"\0" * 12 + b"\x08\x00"  # lo takes Ethernet frames with zero MACs


def _ip(mark: int, proto: int, src: int, dst: int, payload: bytes, *, frag: int = 0,
        opts: bytes = b"") -> bytes:  # fmt: skip
    ihl = 5 + len(opts) // 4
    head = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), mark, frag, 64,
                       proto, 0, src.to_bytes(4, "big"), dst.to_bytes(4, "big")) + opts  # fmt: skip
    return head[:10] + struct.pack("!H", checksum(head)) + head[12:] + payload


def _icmp(kind: int) -> bytes:
    body = struct.pack("!BBHHH", kind, 0, 0, 7, 9) + b"x" * 8
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def _l4(dport: int) -> bytes:
    return struct.pack("!HHIIBBHHH", 80, dport, 1, 2, 5 << 4, 0x12, 1024, 0, 0)


ACCEPTED = {
    1: _ip(1, 1, OTHER, OURS, _icmp(0)),  # echo reply to us
    2: _ip(2, 1, OTHER, OURS, _icmp(3)),  # unreachable to us
    3: _ip(3, 6, OTHER, OURS, _l4(40000)),  # TCP to the first port of our range
    4: _ip(4, 6, OTHER, OURS, _l4(40100)),  # ... and the last
    5: _ip(5, 6, OTHER, OURS, _l4(40050), opts=b"\x01\x01\x01\x00"),  # IP options (ihl 6)
}
FOREIGN = {
    11: _ip(11, 1, OTHER, OURS, _icmp(8)),  # an echo request (ours, looping back)
    12: _ip(12, 1, OTHER, OURS + 1, _icmp(0)),  # a reply to another address
    13: _ip(13, 6, OTHER, OURS, _l4(39999)),  # TCP below our ports
    14: _ip(14, 6, OTHER, OURS, _l4(40101)),  # ... above
    15: _ip(15, 6, OTHER, OURS, _l4(40000), frag=0x2000),  # a first fragment (MF)
    16: _ip(16, 6, OTHER, OURS, _l4(40000), frag=0x0010),  # a later fragment
    17: _ip(17, 17, OTHER, OURS, _l4(40000)),  # UDP: not asked for
    18: _ip(18, 47, OTHER, OURS, _l4(40000)),  # GRE
    19: _ip(19, 1, OTHER, OURS, _icmp(13)),  # a timestamp request
}


def _send(frames: list[bytes]) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as tx:
        tx.bind(("lo", 0))
        for f in frames:
            tx.send(f)


def _send_ip(packets: list[bytes]) -> None:
    """Locally sent IP packets (an AF_PACKET frame from 127/8 would be a martian on input)."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as tx:
        for p in packets:
            tx.sendto(p, (socket.inet_ntoa(p[16:20]), 0))


def _marks(rx: RxBatch, link: int, expect: int) -> set[int]:
    seen: set[int] = set()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and len(seen) < expect:
        n = rx.recv(0.05)
        lens = rx.lens(n)
        for k in range(n):
            pkt = bytes(rx.pkts[k, : lens[k]])
            seen.add(int.from_bytes(pkt[link + 4 : link + 6], "big"))
    time.sleep(0.1)  # anything foreign would have arrived by now too
    n = rx.recv(0.0)
    seen.update(int.from_bytes(bytes(rx.pkts[k, link + 4 : link + 6]), "big") for k in range(n))
    return seen


def test_reply_filter_on_a_packet_socket_drops_every_foreign_frame() -> None:
    prog = reply_filter(OURS, icmp_types=(0, 3, 11), tcp_ports=(40000, 40100), link=14)
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        attach(sock, prog)  # before bind: nothing unfiltered is queued
        sock.bind(("lo", 0x0800))
        assert grow_rcvbuf(sock, 1 << 20) >= 1 << 20
        rx = RxBatch(sock, 64, 128)
        arp = b"\0" * 12 + b"\x08\x06" + bytes(28)
        _send([ETH + p for p in [*FOREIGN.values(), *ACCEPTED.values()]] + [arp])
        assert _marks(rx, 14, len(ACCEPTED)) == set(ACCEPTED)


def test_reply_filter_on_a_raw_icmp_socket() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        attach(sock, reply_filter(OURS, icmp_types=(0,)))
        rx = RxBatch(sock, 64, 128)
        while rx.recv(0.0):  # what arrived before the filter
            pass
        _send_ip([ACCEPTED[1], FOREIGN[11], FOREIGN[12], ACCEPTED[2]])
        assert _marks(rx, 0, 1) == {1}
        assert raw_drops(sock) == 0


def test_program_assembles_forward_jumps_only() -> None:
    p = Program()
    p.load(0, 1)
    p.jeq(1, "end", None)
    p.ret(0)
    p.ret(1, label="end")
    code = p.assemble()
    assert len(code) == 32
    assert struct.unpack_from("=HBBI", code, 8) == (0x15, 1, 0, 1)
    back = Program()
    back.ret(0, label="start")
    back.ja("start")
    with pytest.raises(ValueError):
        back.assemble()


def test_rx_batch_reads_many_datagrams_at_once() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        for k in range(10):
            a.send(bytes([k]) * (k + 1))
        rx = RxBatch(b, 8, 16)
        n = rx.recv(1.0)
        assert n == 8
        assert rx.lens(n).tolist() == list(range(1, 9))
        assert rx.pkts[7, :8].tolist() == [7] * 8
        assert rx.recv(1.0) == 2
        assert rx.recv(0.01) == 0
        assert np.all(rx.pkts[0, :9] == 8)
