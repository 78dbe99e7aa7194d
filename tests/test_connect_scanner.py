"""hilos.connect end to end on loopback: exact states, retries, shards, EMFILE, rate, cancel."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilos.connect import ConnectScanner, connect_scan
from hilos.errors import UsageError
from hilos.results import HostResult, ScanHostResult

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def listeners(n: int, addr: str = "127.0.0.1") -> Iterator[list[int]]:
    """`n` listening sockets on ephemeral ports of `addr`; yields their ports."""
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((addr, 0))
            s.listen(64)
            socks.append(s)
        yield sorted(s.getsockname()[1] for s in socks)
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def black_hole(addr: str = "127.0.0.1") -> Iterator[int]:
    """A port whose SYNs are dropped: a listener with a full accept queue (backlog 0, never
    accepting) makes Linux drop new SYNs, so the port looks filtered without any firewall."""
    lst = socket.socket()
    lst.bind((addr, 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex((addr, port))
            fillers.append(c)
        time.sleep(0.02)
        yield port
    finally:
        for c in fillers:
            c.close()
        lst.close()


def states(result: ScanHostResult) -> dict[int, str]:
    return {p.port: p.state for p in result.ports}


def scan_one(addr: str, ports: list[int] | range, **kw: object) -> ScanHostResult:
    (result,) = list(ConnectScanner([addr], list(ports), **kw).results())  # type: ignore[arg-type]
    return result


def test_open_and_closed_exact_on_loopback() -> None:
    with listeners(5) as opened:
        lo, hi = opened[0] - 50, opened[-1] + 50
        result = scan_one("127.0.0.1", range(lo, hi + 1))
    got = states(result)
    assert len(got) == hi - lo + 1  # every port answered exactly once
    assert {p for p, s in got.items() if s == "open"} == set(opened)
    assert all(s == "closed" for p, s in got.items() if p not in opened)
    assert result.status == "up" and result.reason == "syn-ack"
    assert [p.port for p in result.ports] == sorted(got)  # ports sorted by number
    assert {p.reason for p in result.ports} == {"syn-ack", "conn-refused"}


def test_full_ephemeral_range_has_no_self_connect_ghosts() -> None:
    # Scanning local closed ports inside the ephemeral range can make a socket connect to
    # itself (TCP simultaneous open); those must not show up as open ports.
    text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
    lo, hi = (int(x) for x in text.split())
    with listeners(2) as opened:
        result = scan_one("127.0.0.1", range(lo, hi + 1))
    open_ports = {p.port for p in result.ports if p.state == "open"}
    assert open_ports == {p for p in opened if lo <= p <= hi}


def test_filtered_port_no_response_after_retries() -> None:
    with black_hole() as port:
        t0 = time.monotonic()
        result = scan_one("127.0.0.1", [port, port + 1], timeout=0.2, retries=2)
        elapsed = time.monotonic() - t0
    got = {p.port: (p.state, p.reason) for p in result.ports}
    assert got[port] == ("filtered", "no-response")
    assert got[port + 1][0] == "closed"
    assert 0.55 <= elapsed < 5  # three tries of 0.2 s each, not more


def test_retries_zero_is_one_try() -> None:
    with black_hole() as port:
        t0 = time.monotonic()
        result = scan_one("127.0.0.1", [port], timeout=0.2, retries=0)
        assert time.monotonic() - t0 < 1.0
    assert result.ports[0].state == "filtered"
    assert result.status == "down" and result.reason == "no-response"


def test_several_hosts_interleaved_and_streamed() -> None:
    with listeners(1, "127.0.0.2") as two, listeners(1, "127.0.0.3") as three:
        ports = sorted({*two, *three, 1, 2, 3})
        results = {r.host: r for r in connect_scan(["127.0.0.2", "127.0.0.3"], ports)}
    assert set(results) == {"127.0.0.2", "127.0.0.3"}
    assert {p.port for p in results["127.0.0.2"].open_ports} == set(two)
    assert {p.port for p in results["127.0.0.3"].open_ports} == set(three)


def test_ipv6_loopback() -> None:
    try:
        with listeners(2, "::1") as opened:
            result = scan_one("::1", [*opened, 1, 2])
    except OSError:
        pytest.skip("no IPv6 loopback here")
    assert {p.port for p in result.open_ports} == set(opened)
    assert states(result)[1] == "closed"


def test_discovered_hosts_keep_reason_and_rtt() -> None:
    found = HostResult("127.0.0.1", "up", "echo-reply", 0.25)
    (result,) = list(connect_scan([found], [1]))
    assert (result.status, result.reason, result.rtt_ms) == ("up", "echo-reply", 0.25)


def test_shards_are_disjoint_and_union_to_the_whole() -> None:
    with listeners(3) as opened:
        ports = list(range(opened[0] - 300, opened[0] + 300)) + opened[1:]
        ports = sorted(set(ports))
        whole = states(scan_one("127.0.0.1", ports))
        parts = []
        for i in range(1, 5):
            results = list(ConnectScanner(["127.0.0.1"], ports, shard=(i, 4), seed=7).results())
            parts.append(states(results[0]) if results else {})
    seen: dict[int, str] = {}
    for part in parts:
        assert not set(part) & set(seen), "shards overlap"
        seen.update(part)
    assert seen == whole


def test_window_shrinks_on_emfile_and_loses_nothing() -> None:
    # A child process with only 40 descriptors and a window of 4096 scans 2000 closed ports,
    # 3 open ones and 60 that never answer (which keep descriptors busy): EMFILE must shrink
    # the window, and every port still gets exactly its state.
    code = """
import resource, socket, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
from hilos.connect import ConnectScanner
holes = [int(p) for p in sys.argv[1].split(",")]
ls = [socket.socket() for _ in range(3)]
for s in ls:
    s.bind(("127.0.0.1", 0)); s.listen(8)
opened = sorted(s.getsockname()[1] for s in ls)
ports = sorted(set(range(opened[0] - 1000, opened[0] + 1000)) | set(opened) | set(holes))
hog = []  # leave the scanner about 12 free descriptors: fewer than the 60 silent probes
try:
    while True:
        hog.append(socket.socket())
except OSError:
    pass
for s in hog[:12]:
    s.close()
sc = ConnectScanner(["127.0.0.1"], ports, window=4096, timeout=0.3, retries=0)
(r,) = list(sc.results())
got = {p.port: p.state for p in r.ports}
assert len(got) == len(ports), (len(got), len(ports))
assert {p for p, s in got.items() if s == "open"} == set(opened), got
assert {p for p, s in got.items() if s == "filtered"} == set(holes) - set(opened)
print("ok", sc.resource_waits)
"""
    with contextlib.ExitStack() as stack:
        holes = [stack.enter_context(black_hole()) for _ in range(60)]
        out = subprocess.run(
            [sys.executable, "-c", code, ",".join(map(str, holes))],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 0, out.stderr
    word, waits = out.stdout.split()
    assert word == "ok" and int(waits) > 0  # EMFILE did happen, and shrank the window


def test_rate_caps_new_connections() -> None:
    t0 = time.monotonic()
    result = scan_one("127.0.0.1", range(1, 601), rate=1000.0)
    elapsed = time.monotonic() - t0
    assert len(result.ports) == 600
    assert elapsed >= 0.45  # 600 connects at 1000/s, less one burst


def test_cancel_stops_and_partial_keeps_answers() -> None:
    with black_hole() as port:
        sc = ConnectScanner(["127.0.0.1"], [port, *range(1, 200)], timeout=5.0, retries=0)
        sc.start()
        deadline = time.monotonic() + 5
        while sc.stats.done < 199 and time.monotonic() < deadline:
            time.sleep(0.01)
        sc.cancel()
        t0 = time.monotonic()
        assert list(sc.results()) == []  # the host never completed
        assert time.monotonic() - t0 < 2.0
        (partial,) = sc.partial()
    assert len(partial.ports) == 199  # every answered port, the silent one left out
    assert port not in {p.port for p in partial.ports}


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        ConnectScanner(["127.0.0.1"], [])
    with pytest.raises(UsageError):
        ConnectScanner(["127.0.0.1"], [1], retries=-1)


def test_stats_count_every_answer() -> None:
    sc = ConnectScanner(["127.0.0.1", "127.0.0.2"], range(1, 101))
    assert sc.stats.elapsed == 0.0 and sc.stats.rate == 0.0  # not started
    assert len(list(sc.results())) == 2
    st = sc.stats
    assert (st.done, st.total, st.hosts_done, st.hosts_total) == (200, 200, 2, 2)
    assert st.rate > 0 and st.window >= 2
