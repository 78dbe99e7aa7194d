"""The SYN scan: walk/shard logic and retries (simulated network), loopback and lab scans (root)."""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hilos.errors import UsageError
from hilos.lab import Lab
from hilos.probes.base import KIND_RST, KIND_SYN_ACK, SPORT_BASE, SPORT_COUNT
from hilos.probes.tcp_reply import parse_ipv4
from hilos.synscan import SynScanner, _host_ints, syn_scan
from hilos.targets import Permutation, parse_targets
from hilos.wire.frames import ACK, RST, SYN


def ref_checksum(data: bytes) -> int:
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | (data[i + 1] if i + 1 < len(data) else 0)
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


# --- arguments and targets -----------------------------------------------------------------------


def test_host_ints_accepts_strings_objects_and_target_spaces() -> None:
    space = parse_targets(["127.0.0.1-3", "::1"])
    assert list(_host_ints(space)) == [(4, 0x7F000001), (4, 0x7F000002), (4, 0x7F000003), (6, 1)]
    mixed = ["127.0.0.9", ipaddress.ip_address("::2"), ipaddress.ip_address("127.0.0.8")]
    assert list(_host_ints(mixed)) == [(4, 0x7F000009), (6, 2), (4, 0x7F000008)]
    with pytest.raises(UsageError, match="not an IP address"):
        list(_host_ints(["localhost.invalid"]))


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


def test_sender_parts_partition_each_shard() -> None:
    sc = SynScanner([f"127.0.0.{i}" for i in range(1, 40)], [22, 80, 443], seed=5)
    total = sc._total
    whole = list(Permutation(total, 5))
    assert sorted(whole) == list(range(total))
    union: list[int] = []
    for i in range(1, 5):
        shard = list(sc._walk((i, 4)))
        parts = [list(sc._walk((i + 4 * j, 8))) for j in range(2)]  # 2 sender threads
        assert sorted(parts[0] + parts[1]) == sorted(shard)
        union += shard
    assert sorted(union) == list(range(total))  # disjoint, and together the whole job


# --- the engine against a simulated network (no privileges needed) --------------------------------


class FakeNet:
    """Stands in for RawTcpEngine: parses every SYN the scanner sends and answers like a network
    with `open` and `closed` ports, dropping the first probe to each (host, port) in `lossy`."""

    def __init__(self, scanner: SynScanner, open_: set[tuple[str, int]], silent: set[str]) -> None:
        self.scanner = scanner
        self.open = open_
        self.silent = silent
        self.lossy: set[tuple[str, int]] = set()
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
        self.scanner._on_reply(r)
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
def test_simulated_duplicates_scanned_once_and_services_named() -> None:
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.1", "::1", "0:0::1"]
    sc = SimScanner(hosts, [22, 8080], timeout=0.05, open_=set(), silent=set())
    assert sc._nh == 3 and sc._names == ["127.0.0.1", "127.0.0.2", "::1"]
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


# --- the lab (root; the scanner runs inside the lab's scanner namespace) -----------------------

SCAN = r"""
import json, sys, time
from hilos.synscan import syn_scan
a = json.loads(sys.argv[1])
hosts = a["hosts"]
if a.get("cidr"):
    import ipaddress
    hosts = [str(x) for x in ipaddress.ip_network(a["cidr"])]
ports = list(range(1, 65536)) if a["ports"] == "-" else a["ports"]
t = time.monotonic()
out = []
shard = tuple(a["shard"]) if a.get("shard") else None
for r in syn_scan(hosts, ports, seed=a.get("seed"), shard=shard, timeout=a.get("timeout")):
    other = [[p.port, p.state, p.reason] for p in r.ports if p.state != "closed"]
    bad = sum(1 for p in r.ports if p.state == "closed" and p.reason != "reset")
    closed = [p.port for p in r.ports if p.state == "closed"] if len(ports) <= 1024 else None
    out.append({"host": r.host, "status": r.status, "n": len(r.ports), "bad": bad,
                "other": other, "closed": closed})
print(json.dumps({"elapsed": time.monotonic() - t, "hosts": out}))
"""


def lab_scan(
    lab: Lab, timeout: float = 120, **args: Any
) -> tuple[float, dict[str, dict[str, Any]]]:
    proc = lab.run([sys.executable, "-c", SCAN, json.dumps(args)], timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)
    return data["elapsed"], {h["host"]: h for h in data["hosts"]}


def expected_other(truth: dict[str, Any], host: str, ports: list[int]) -> dict[int, str]:
    """Non-closed ports of `host` among `ports` per the truth file (dead: all filtered)."""
    live = {h["addr"]: h for h in truth["hosts"]}
    h = live.get(host)
    if h is None:
        return {p: "filtered" for p in ports}
    wanted = set(ports)
    return {int(p): v["state"] for p, v in h["ports"].items() if int(p) in wanted}


def check_exact(truth: dict[str, Any], got: dict[str, Any], host: str, ports: list[int]) -> None:
    r = got[host]
    assert r["n"] == len(ports) and r["bad"] == 0, host
    other = {p: s for p, s, _ in r["other"]}
    assert other == expected_other(truth, host, ports), host
    unreachable = ipaddress.ip_address(host) in ipaddress.ip_network("198.18.254.0/24")
    for port, state, reason in r["other"]:
        if state == "open":
            assert reason == "syn-ack"
        elif unreachable:
            # The router answers host-unreachable, rate-limited (icmp_ratelimit): the rest of
            # the probes go unanswered. Both are filtered.
            assert reason in ("host-unreach", "no-response")
        else:
            assert reason == "no-response", (host, port, reason)


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lab_full_range_exact(lab: Lab) -> None:
    hosts = ["198.18.0.1", "198.18.0.2", "198.18.0.4", "fd18:0:0:100::1", "198.18.0.254"]
    elapsed, got = lab_scan(lab, hosts=hosts, ports="-", seed=11)
    assert sorted(got) == sorted(hosts)
    allports = list(range(1, 65536))
    for h in hosts:
        check_exact(lab.truth, got, h, allports)
    assert got["198.18.0.254"]["status"] == "down" and got["198.18.0.1"]["status"] == "up"
    assert elapsed < 60


_FULL16: dict[str, Any] = {}


def _scan16(lab: Lab) -> dict[str, dict[str, Any]]:
    if "r" not in _FULL16:
        elapsed, got = lab_scan(lab, hosts=[], cidr="198.18.0.0/16", ports=[22, 80, 443], seed=3)
        _FULL16["r"], _FULL16["elapsed"] = got, elapsed
    return _FULL16["r"]  # type: ignore[no-any-return]


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_lab_slash16_three_ports_exact(lab: Lab) -> None:
    got = _scan16(lab)
    assert len(got) == 65536
    for h in got:
        check_exact(lab.truth, got, h, [22, 80, 443])
    # Up: the host answered on some port, i.e. a live host with not all three ports filtered.
    answering = {
        h["addr"]
        for h in lab.truth["hosts"]
        if h["family"] == 4
        and any(h["ports"].get(str(p), {}).get("state") != "filtered" for p in (22, 80, 443))
    }
    assert "198.18.0.4" not in answering and "198.18.0.1" in answering
    assert {h for h, r in got.items() if r["status"] == "up"} == answering
    unreach = [r for h, r in got.items() if h.startswith("198.18.254.")]
    assert any(reason == "host-unreach" for r in unreach for _p, _s, reason in r["other"])
    assert _FULL16["elapsed"] < 60


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_lab_shards_disjoint_and_union_equal(lab: Lab) -> None:
    full = _scan16(lab)

    def flat(res: dict[str, dict[str, Any]]) -> dict[tuple[str, int], str]:
        out = {(h, p): "closed" for h, r in res.items() for p in r["closed"]}
        out.update({(h, p): s for h, r in res.items() for p, s, _ in r["other"]})
        assert len(out) == sum(r["n"] for r in res.values())
        return out

    whole = flat(full)
    assert len(whole) == 3 * 65536
    union: dict[tuple[str, int], str] = {}
    for i in range(1, 5):
        _el, got = lab_scan(
            lab, hosts=[], cidr="198.18.0.0/16", ports=[22, 80, 443], seed=3, shard=[i, 4]
        )
        part = flat(got)
        assert 0.2 < len(part) / len(whole) < 0.3
        assert not set(part) & set(union)  # disjoint
        union.update(part)
    assert union == whole  # together exactly the unsharded result


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_lab_rtt40_full_range_exact(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rtt_ms=40)
    hosts = ["198.18.0.1", "198.18.0.2"]
    elapsed, got = lab_scan(lab, hosts=hosts, ports="-", seed=2)
    for h in hosts:
        check_exact(lab.truth, got, h, list(range(1, 65536)))
    assert elapsed < 60
