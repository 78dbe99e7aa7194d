"""Tests for hilos.syn.scanner: arguments, retries and shards on a simulated network, loopback."""

from __future__ import annotations

import errno
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from helpers_tcp import ref_checksum
from hilos.errors import NetworkError, UsageError
from hilos.probes.base import KIND_RST, KIND_SYN_ACK, SPORT_BASE, SPORT_COUNT
from hilos.probes.tcp_reply import parse_ipv4
from hilos.syn import SynScanner, syn_scan
from hilos.wire.frames import ACK, RST, SYN

# --- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"retries": -1},
        {"timeout": 0},
        {"shard": (0, 4)},
        {"shard": (5, 4)},
        {"ports": [0]},
        {"ports": [70000]},
    ],
)
def test_bad_arguments_are_usage_errors(kw: dict[str, Any]) -> None:
    ports = kw.pop("ports", [80])
    with pytest.raises(UsageError):
        SynScanner(["127.0.0.1"], ports, **kw)


# --- the engine against a simulated network (no privileges needed) --------------------------------


class FakeNet:
    """Stands in for TcpTransport: parses every SYN the scanner sends and answers like a network
    with `open` and `closed` ports, dropping the first probe to each (host, port) in `lossy`."""

    def __init__(self, scanner: SynScanner, open_: set[tuple[str, int]], silent: set[str]) -> None:
        self.scanner = scanner
        self.open = open_
        self.silent = silent
        self.lossy: set[tuple[str, int]] = set()
        self.errors: list[int] = []  # errno to raise at each next send (0: send normally)
        self.sends: Counter[tuple[str, int]] = Counter()
        self.cookie = scanner._cookie
        self.tx4 = self
        self.tx6 = None
        self.lock = threading.Lock()

    @property
    def idle_at(self) -> float:
        return time.monotonic()

    def start(self) -> FakeNet:
        return self

    def close(self) -> None:
        pass

    def check(self) -> None:
        pass

    def sendto(self, pkt: bytes, addr: tuple[str, int]) -> int:
        if self.errors:
            code = self.errors.pop(0)
            if code:
                raise OSError(code, os.strerror(code))
        assert len(pkt) == 44 and pkt[0] == 0x45 and pkt[9] == 6
        src, dst = pkt[12:16], pkt[16:20]
        assert socket.inet_ntoa(dst) == addr[0]
        tcp = pkt[20:]
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
        assert ref_checksum(pseudo + tcp) == 0, "bad TCP checksum"
        sport, dport, seq, ack, offflags = struct.unpack("!HHIIH", tcp[:14])
        assert offflags == (6 << 12) | SYN and ack == 0
        assert SPORT_BASE <= sport < SPORT_BASE + SPORT_COUNT
        ip = int.from_bytes(dst, "big")
        assert seq == self.cookie.value(self.cookie.host_seed(ip), dport, sport)
        key = (addr[0], dport)
        with self.lock:
            self.sends[key] += 1
            first = self.sends[key] == 1
        if addr[0] in self.silent or (key in self.lossy and first):
            return len(pkt)
        flags = SYN | ACK if key in self.open else RST | ACK
        # The reply goes through the real parser, so the scanner's inlined cookie must match.
        reply = struct.pack(
            "!HHIIHHHH", dport, sport, 1, (seq + 1) & 0xFFFFFFFF, 0x5000 | flags, 0, 0, 0
        )
        ip_hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, dst, src)
        r = parse_ipv4(self.cookie, ip_hdr + reply)
        assert r is not None and r.kind == (KIND_SYN_ACK if key in self.open else KIND_RST)
        self.scanner._state.on_reply(r)
        return len(pkt)


class SimScanner(SynScanner):
    def __init__(self, *a: Any, open_: set[tuple[str, int]], silent: set[str], **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.net = FakeNet(self, open_, silent)

    def _make_engine(self) -> Any:
        return self.net


@pytest.mark.timeout(60)
def test_simulated_states_retries_and_streaming() -> None:
    hosts = [f"127.0.0.{i}" for i in range(1, 21)]
    ports = [21, 22, 80, 443, 8080]
    open_ = {("127.0.0.1", 22), ("127.0.0.5", 80), ("127.0.0.5", 443), ("127.0.0.20", 8080)}
    silent = {"127.0.0.7", "127.0.0.8"}
    sc = SimScanner(hosts, ports, retries=2, timeout=0.05, seed=3, open_=open_, silent=silent)
    sc.net.lossy = {("127.0.0.3", 21), ("127.0.0.5", 443)}
    progress: list[Any] = []
    sc._on_progress = progress.append
    results = {r.host: r for r in sc.results()}
    assert sorted(results) == sorted(hosts)
    for h in hosts:
        r = results[h]
        assert [p.port for p in r.ports] == ports
        for p in r.ports:
            if h in silent:
                assert (p.state, p.reason) == ("filtered", "no-response")
            elif (h, p.port) in open_:
                assert (p.state, p.reason) == ("open", "syn-ack")
            else:
                assert (p.state, p.reason) == ("closed", "reset")
        assert r.status == ("down" if h in silent else "up")
    # Retries resend only what has not answered: silent hosts 3 times, a lost probe twice.
    for (h, port), n in sc.net.sends.items():
        if h in silent:
            assert n == 3
        elif (h, port) in sc.net.lossy:
            assert n == 2
        else:
            assert n == 1
    assert sum(sc.net.sends.values()) == 100 + 2 * 10 + 2
    assert progress and progress[-1].done == 100 and progress[-1].hosts_done == 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize("lossy", [False, True])
def test_silent_hosts_are_resent_only_after_loss_is_seen(
    monkeypatch: pytest.MonkeyPatch, lossy: bool
) -> None:
    """-Pn over a mostly empty space: without evidence of loss the hosts that answered nothing
    get no resends (a second pass would double the scan); once a resend is answered, they do."""
    monkeypatch.setattr("hilos.syn.send.FEW_SILENT", 5)
    hosts = [f"127.0.1.{i}" for i in range(1, 41)]
    ports = [22, 80, 443]
    live = {"127.0.1.1", "127.0.1.2"}
    silent = set(hosts) - live
    open_ = {("127.0.1.1", 22)}
    sc = SimScanner(hosts, ports, retries=1, timeout=0.05, seed=5, open_=open_, silent=silent)
    if lossy:
        sc.net.lossy = {("127.0.1.2", 80)}
    results = {r.host: r for r in sc.results()}
    assert sorted(results) == sorted(hosts)
    assert results["127.0.1.2"].ports[1].state == "closed"
    assert [p.state for p in results["127.0.1.1"].ports] == ["open", "closed", "closed"]
    for h in silent:
        assert results[h].status == "down"
        assert {p.state for p in results[h].ports} == {"filtered"}
        assert all(sc.net.sends[h, p] == (2 if lossy else 1) for p in ports)


@pytest.mark.timeout(60)
def test_simulated_duplicates_scanned_once_and_services_named() -> None:
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.1", "::1", "0:0::1"]
    sc = SimScanner(hosts, [22, 8080], timeout=0.05, open_=set(), silent=set())
    assert sc._hosts.names == ["127.0.0.1", "127.0.0.2", "::1"]
    sc4 = SimScanner(
        hosts[:3], [22, 8080], timeout=0.05, open_={("127.0.0.1", 22)}, silent={"127.0.0.2"}
    )
    results = {r.host: r for r in sc4.results()}
    assert sorted(results) == ["127.0.0.1", "127.0.0.2"]
    assert sum(sc4.net.sends.values()) == 2 + 2 * 2  # the silent host's 2 ports are retried once
    ssh = results["127.0.0.1"].ports[0]
    assert (ssh.port, ssh.state, ssh.service) == (22, "open", "ssh")
    # closed ports of known numbers are named too, as nmap's `8080/tcp closed http-proxy`
    assert results["127.0.0.1"].ports[1].service == "http-proxy"
    assert [p.service for p in results["127.0.0.2"].ports] == ["ssh", "http-proxy"]


@pytest.mark.timeout(60)
def test_simulated_shards_are_disjoint_and_complete() -> None:
    hosts = [f"127.0.0.{i}" for i in range(1, 31)]
    ports = [22, 80, 443]
    open_ = {(h, 80) for h in hosts[::3]}
    full = {
        (r.host, p.port): p.state
        for r in SimScanner(hosts, ports, seed=9, timeout=0.05, open_=open_, silent=set()).results()
        for p in r.ports
    }
    assert len(full) == 90
    union: dict[tuple[str, int], str] = {}
    for i in range(1, 5):
        sc = SimScanner(hosts, ports, seed=9, shard=(i, 4), timeout=0.05, open_=open_, silent=set())
        part = {(r.host, p.port): p.state for r in sc.results() for p in r.ports}
        assert set(part) == set(sc.net.sends)  # a host reports exactly its probes in the shard
        assert not set(part) & set(union)
        union.update(part)
    assert union == full


# --- loopback (root) -----------------------------------------------------------------------------


@pytest.fixture
def listeners() -> Iterator[tuple[list[int], list[int]]]:
    """Three listening ports and three ports nobody listens on (bound, then closed)."""
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        socks.append(s)
    closed = []
    for _ in range(3):
        c = socket.socket()
        c.bind(("127.0.0.1", 0))
        closed.append(c.getsockname()[1])
        c.close()
    try:
        yield [s.getsockname()[1] for s in socks], closed
    finally:
        for s in socks:
            s.close()


@pytest.mark.root
@pytest.mark.timeout(60)
def test_loopback_exact_open_and_closed(listeners: tuple[list[int], list[int]]) -> None:
    opened, closed = listeners
    ports = sorted(opened + closed)
    (r,) = list(syn_scan(["127.0.0.1"], ports, seed=1))
    assert r.host == "127.0.0.1" and r.status == "up"
    states = {p.port: (p.state, p.reason) for p in r.ports}
    assert states == {
        **{p: ("open", "syn-ack") for p in opened},
        **{p: ("closed", "reset") for p in closed},
    }
    (r6,) = list(syn_scan(["::1"], closed, seed=1))
    assert {p.port: p.state for p in r6.ports} == {p: "closed" for p in closed}


@pytest.mark.root
def test_no_hosts_or_ports_yields_nothing() -> None:
    assert list(syn_scan([], [80])) == []
    assert list(syn_scan(["127.0.0.1"], [])) == []


@pytest.mark.timeout(60)
def test_send_errors_follow_the_wire_policy() -> None:
    """hilos.wire.senders' policy: a full queue waits and sends again, a local firewall's EPERM
    leaves the probe unanswered (resent by the retry pass), anything else is a NetworkError."""
    hosts = ["127.0.0.1", "127.0.0.2"]
    sc = SimScanner(hosts, [22], timeout=0.05, seed=1, open_=set(), silent=set())
    sc.net.errors = [errno.ENOBUFS, errno.ENOBUFS, 0, errno.EPERM]
    results = {r.host: r for r in sc.results()}
    assert {h: [p.state for p in r.ports] for h, r in results.items()} == {
        "127.0.0.1": ["closed"],
        "127.0.0.2": ["closed"],
    }
    assert sum(sc.net.sends.values()) == 2  # the EPERM probe went out with the retry pass
    bad = SimScanner(hosts, [22], timeout=0.05, open_=set(), silent=set())
    bad.net.errors = [errno.EMSGSIZE]
    with pytest.raises(NetworkError, match="sending SYN probes"):
        list(bad.results())


@pytest.mark.timeout(60)
def test_ready_says_whether_another_host_waits() -> None:
    """ready() is what lets the CLI hold its flush through a burst of finished hosts."""
    hosts = [f"127.0.2.{i}" for i in range(1, 31)]
    sc = SimScanner(hosts, [22, 80], retries=0, timeout=0.05, seed=2, open_=set(), silent=set())
    seen = []
    for _ in sc.results():
        seen.append(sc.ready())
        time.sleep(0.002)  # let the others finish: they are then all waiting
    assert len(seen) == 30 and any(seen) and seen[-1] is False


@pytest.mark.timeout(60)
def test_results_end_with_the_scan_not_a_poll_later() -> None:
    """The senders' end mark stops results() at once (it waited up to 0.1 s for a poll)."""
    waits = []
    for _ in range(5):
        sc = SimScanner(["127.0.2.1"], [22], retries=0, timeout=0.05, open_=set(), silent=set())
        it = sc.results()
        next(it)
        while not sc._finished.is_set():
            time.sleep(0.001)
        t = time.monotonic()
        assert list(it) == [] and not sc.ready()
        waits.append(time.monotonic() - t)
    assert min(waits) < 0.05, waits
