"""Tests for hilos.probes.tcp_transport: raw TCP probes and their validating receiver (root)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from helpers_tcp import tcp_discover
from hilos.errors import NetworkError
from hilos.probes.tcp_transport import TcpProber, TcpTransport
from hilos.wire.frames import ACK, SYN, build_tcp_segment
from hilos.wire.sockets import can_raw

if TYPE_CHECKING:
    from conftest import Unprivileged


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


@pytest.mark.root
@pytest.mark.timeout(30)
def test_discover_loopback_syn_ack_and_rst(listener: int) -> None:
    seen: list[str] = []
    found = tcp_discover(
        ["127.0.0.1"], timeout=0.3, syn_port=listener, on_reply=lambda r: seen.append(r.host)
    )
    assert found["127.0.0.1"].status == "up" and found["127.0.0.1"].reason == "syn-ack"
    assert seen == ["127.0.0.1"]
    # Nothing listens on 443 here (normally): the RST-ACK / RST answer still means up.
    closed = _free_port()
    found = tcp_discover(["127.0.0.1", "::1"], timeout=0.3, syn_port=closed, ack_port=closed)
    assert {h: r.reason for h, r in found.items()} == {"127.0.0.1": "reset", "::1": "reset"}
    assert all(r.rtt_ms is not None and r.rtt_ms < 100 for r in found.values())


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_raises_privilege_error_naming_the_fix(unprivileged: Unprivileged) -> None:
    code = (
        "import sys\n"
        "from hilos.errors import PrivilegeError\n"
        "from hilos.probes.tcp_transport import TcpTransport\n"
        "from hilos.syn import syn_scan\n"
        "from hilos.wire.sockets import can_raw\n"
        "assert not can_raw()\n"
        "calls = (lambda: TcpTransport(print),\n"
        "         lambda: list(syn_scan(['127.0.0.1'], [80])))\n"
        "for fn in calls:\n"
        "    try:\n"
        "        fn()\n"
        "    except PrivilegeError as exc:\n"
        "        print(exc)\n"
        "    else:\n"
        "        sys.exit('no PrivilegeError')\n"
    )
    proc = unprivileged.run(["-c", code])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "permission denied" in line and "setcap cap_net_raw+ep" in line and "root" in line


def test_prober_sends_the_probe_modules_packets_under_the_wire_policy() -> None:
    """SYN then ACK from SynProbe/AckProbe; a full queue waits and both go again, no route
    leaves the address unanswered, any other errno is a NetworkError."""
    sent: list[tuple[bytes, str]] = []
    errors = [errno.ENOBUFS, 0, 0, errno.EHOSTUNREACH, errno.EMSGSIZE]

    def send4(packet: bytes, dst: str) -> None:
        code = errors.pop(0) if errors else 0
        if code:
            raise OSError(code, os.strerror(code))
        sent.append((packet, dst))

    prober = TcpProber(lambda r: None, syn_port=443, ack_port=80, families=())
    prober.engine.send4 = send4  # type: ignore[method-assign]
    lo = ipaddress.IPv4Address("127.0.0.1")
    prober.probe(lo)
    assert [(p[33], int.from_bytes(p[22:24], "big"), d) for p, d in sent] == [
        (SYN, 443, "127.0.0.1"),
        (ACK, 80, "127.0.0.1"),
    ]
    sport = int.from_bytes(sent[0][0][20:22], "big")
    cookie = prober.engine.cookie
    seed = cookie.host_seed(int(lo))
    assert int.from_bytes(sent[0][0][24:28], "big") == cookie.value(seed, 443, sport)
    assert int.from_bytes(sent[1][0][28:32], "big") == cookie.value(seed, 80, sport)
    prober.probe(lo)  # EHOSTUNREACH: unanswered, no error
    assert len(sent) == 2
    with pytest.raises(NetworkError, match=r"sending TCP probes to 127\.0\.0\.1"):
        prober.probe(lo)
    prober.close()


@pytest.mark.skipif(not can_raw(), reason="needs CAP_NET_RAW")
def test_filter_replies_drops_what_cannot_answer_us_in_the_kernel() -> None:
    """After filter_replies(src): TCP to src on one of our source ports is queued; TCP to
    another local address, or to a port outside the range, never reaches the socket."""
    import time as _time

    from hilos.probes.base import SPORT_BASE

    t = TcpTransport(lambda r: None, families=(4,))
    try:
        rx = next(s for s, kind in t._recv if kind == 4)
        rx.setblocking(False)
        t.filter_replies(0x7F000009)
        while True:  # what arrived before the filter (other loopback traffic) is not the test
            try:
                rx.recv(2048)
            except BlockingIOError:
                break
        tx = t.tx4
        assert tx is not None
        for dst, dport in (
            ("127.0.0.8", SPORT_BASE + 5),
            ("127.0.0.9", 80),
            ("127.0.0.9", SPORT_BASE + 5),
        ):
            seg = build_tcp_segment("127.0.0.1", dst, 40000, dport, 1)
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0, 64, 6, 0,
                             socket.inet_aton("127.0.0.1"), socket.inet_aton(dst))  # fmt: skip
            tx.sendto(ip + seg, (dst, 0))
        _time.sleep(0.05)
        got = []
        while True:
            try:
                got.append(rx.recv(2048))
            except BlockingIOError:
                break
        assert [(socket.inet_ntoa(p[16:20]), int.from_bytes(p[22:24], "big")) for p in got] == [
            ("127.0.0.9", SPORT_BASE + 5)
        ]
    finally:
        t.close()
