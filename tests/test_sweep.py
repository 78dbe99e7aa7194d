"""Tests for hilos.sweep on loopback: the API, method selection, frames, memory of a lazy /8."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING

import pytest

from hilos.errors import UsageError
from hilos.probes import tcp
from hilos.probes.icmp import LinkTx
from hilos.probes.ratelimit import TokenBucket
from hilos.results import HostResult
from hilos.sweep import DEFAULT_TIMEOUT, MIN_WAIT, Sweeper, sweep
from hilos.sweep.engines import IcmpDiscovery, TcpDiscovery
from hilos.sweep.frames import FrameSender
from hilos.targets import parse_targets

if TYPE_CHECKING:
    from conftest import Unprivileged

LO = int(ipaddress.IPv4Address("127.0.0.1"))


def _verifies(data: bytes) -> bool:
    total = int.from_bytes(data + b"\x00" * (len(data) % 2), "big") % 0xFFFF
    return total == 0


@pytest.mark.parametrize(
    "kw",
    [
        {"method": "ping"},
        {"timeout": 0},
        {"timeout": -1.0},
        {"retries": -1},
        {"rate": 0},
        {"threads": 0},
    ],
)
def test_bad_arguments_are_usage_errors(kw: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Sweeper(["127.0.0.1"], **kw)  # type: ignore[arg-type]


def test_defaults_documented() -> None:
    s = Sweeper(["127.0.0.1"])
    assert s.retries == 1 and s.timeout is None and s.rate > 0
    assert s._wait() == DEFAULT_TIMEOUT  # nothing heard yet: the full wait
    for _ in range(20):
        s._record(LO, "echo-reply", 2.0)
    assert s._wait() == MIN_WAIT  # 2 ms round trips: the floor
    s2 = Sweeper(["127.0.0.1"])
    for i in range(50):
        s2._record(LO + i, "echo-reply", 80.0 + (i % 2))
    assert 0.16 <= s2._wait() <= 0.2  # srtt ~80 ms, small variation: about 2 x srtt
    s3 = Sweeper(["127.0.0.1"])
    s3._record(LO, "echo-reply", 5000.0)
    assert s3._wait() == DEFAULT_TIMEOUT
    assert Sweeper(["127.0.0.1"], timeout=2.5)._wait() == 2.5


def test_plain_iterables_are_deduplicated_and_reiterable() -> None:
    s = Sweeper(iter(["127.0.0.2", "127.0.0.1", "127.0.0.2", ipaddress.ip_address("::1")]))
    assert s.size == 3
    keys = list(s._targets.iter_keys())
    assert keys == list(s._targets.iter_keys())  # a second pass sees the same addresses
    assert len(keys) == 3


@pytest.mark.root
@pytest.mark.timeout(30)
def test_loopback_v4_v6_up_with_reasons_and_rtt() -> None:
    notices: list[str] = []
    t0 = time.monotonic()
    found = {r.host: r for r in sweep(["127.0.0.1", "::1"], on_notice=notices.append)}
    elapsed = time.monotonic() - t0
    assert set(found) == {"127.0.0.1", "::1"}
    for r in found.values():
        assert r.status == "up" and r.reason in {"echo-reply", "syn-ack", "rst"}
        assert r.rtt_ms is not None and r.rtt_ms >= 0
    assert len(notices) == 1 and "ICMP echo" in notices[0] and "raw" in notices[0]
    assert elapsed < 3.0  # everything answered: no waiting for a timeout


@pytest.mark.root
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("method", "reasons"), [("icmp", {"echo-reply"}), ("tcp", {"rst", "syn-ack"})]
)
def test_forced_method(method: str, reasons: set[str]) -> None:
    notices: list[str] = []
    res = list(
        sweep(parse_targets(["127.0.0.1-4"]), method=method, on_notice=notices.append)  # type: ignore[arg-type]
    )
    assert sorted(r.host for r in res) == [f"127.0.0.{i}" for i in range(1, 5)]
    assert {r.reason for r in res} <= reasons
    assert ("TCP" in notices[0]) == (method == "tcp")


@pytest.mark.root
@pytest.mark.timeout(30)
def test_randomized_order_finds_the_same() -> None:
    res = list(sweep(parse_targets(["127.0.1.0/28"]), method="icmp", randomize=True, seed=7))
    assert len(res) == 16 and len({r.host for r in res}) == 16


@pytest.mark.root
@pytest.mark.timeout(30)
def test_cancel_stops_early() -> None:
    sweeper = Sweeper(parse_targets(["127.2.0.0/16"]), method="icmp", rate=2000)
    got: list[HostResult] = []
    t0 = time.monotonic()
    for r in sweeper:
        got.append(r)
        if len(got) == 50:
            sweeper.cancel()
    assert 50 <= len(got) < 65536
    assert time.monotonic() - t0 < 10
    # A summary counts the addresses actually probed, not the space's size (issue 9).
    assert len(got) <= sweeper.probed < 65536


@pytest.mark.root
@pytest.mark.timeout(30)
def test_finished_sweep_probed_every_address() -> None:
    sweeper = Sweeper(parse_targets(["127.3.0.0/28"]), method="icmp", timeout=0.3)
    assert sum(1 for _ in sweeper) == 16
    assert sweeper.probed == 16


@pytest.mark.root
@pytest.mark.timeout(60)
def test_lazy_slash8_cancelled_early_stays_small() -> None:
    """A /8 (16.7M addresses) is never a list: cancel after a while, memory stays flat."""
    code = (
        "import threading, time\n"
        "from hilos.sweep import Sweeper\n"
        "from hilos.targets import parse_targets\n"
        "s = Sweeper(parse_targets(['127.0.0.0/8']), method='icmp', rate=50000, all_hosts=True)\n"
        "threading.Timer(3.0, s.cancel).start()\n"
        "n = sum(1 for _ in s)\n"
        # VmHWM, not ru_maxrss: Linux carries the parent's peak RSS into ru_maxrss across
        # fork+exec, so under a big pytest process ru_maxrss reports pytest's memory.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(n, int(hwm.split()[1]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True
    )
    found, maxrss_kb = (int(x) for x in proc.stdout.split())
    assert 1000 < found < 16_777_216  # it ran, and it stopped early
    assert maxrss_kb < 100 * 1024, f"max RSS {maxrss_kb} kB"


@pytest.mark.root
@pytest.mark.timeout(30)
def test_frames_are_the_tcp_engines_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The frame path builds exactly hilos.probes.tcp's probes (plus the IP checksum the kernel
    would add) and ICMP echoes whose cookies the echo receiver recomputes."""
    monkeypatch.setattr(tcp, "send_tick", lambda: 17618)
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
    icmp = IcmpDiscovery(99, TokenBucket(None), sink, {4})
    tcpe = TcpDiscovery(TokenBucket(None), sink, {4})
    try:
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
    assert struct.unpack_from("!I", echo, 38)[0] == hash((99, target)) & 0xFFFFFFFF
    cookie = tcpe.prober.engine.cookie
    template = tcp.SynTemplate4("127.0.0.1")
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
    rst = tcp.build_ipv4_packet(
        "198.18.7.9",
        "127.0.0.1",
        struct.pack("!HHIIBBHHH", 80, 17618, c_ack, 0, 0x50, 0x04, 0, 0, 0),
    )
    reply = tcp.parse_ipv4(cookie, rst)
    assert reply is not None and reply.addr == target and reply.kind == tcp.KIND_RST


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_falls_back_with_a_notice(unprivileged: Unprivileged) -> None:
    """As nobody (no raw sockets, ping_group_range closed): TCP connect, said once, no crash."""
    proc = unprivileged.run(["-m", "hilos", "sweep", "127.0.0.1", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "sweep: using" in line]
    assert len(notes) == 1
    assert "TCP connect" in notes[0] and "not privileged" in notes[0]
    assert '"host": "127.0.0.1", "status": "up"' in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_forced_icmp_is_a_clear_error(unprivileged: Unprivileged) -> None:
    """--method icmp without any way to send echo requests: exit 2 (checked up front, like
    --type syn), one line naming the fix."""
    proc = unprivileged.run(["-m", "hilos", "sweep", "127.0.0.1", "--method", "icmp"])
    if proc.returncode == 0:  # this machine's ping_group_range lets nobody ping
        assert "unprivileged ping socket" in proc.stderr
        return
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ping_group_range" in lines[0] and "root" in lines[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "argv",
    [
        ["sweep"],
        ["sweep", "127.0.0.1/33"],
        ["sweep", "127.0.0.1", "--rate", "0"],
        ["sweep", "127.0.0.1", "--method", "arp"],
        ["sweep", "127.0.0.1", "--timeout", "-1"],
        ["sweep", "127.0.0.1", "-o", "/nonexistent-dir/x.json"],
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hilos", *argv],
        capture_output=True, text=True, timeout=25, check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hilos: error: "), proc.stderr
    assert proc.stdout == ""


@pytest.mark.root
@pytest.mark.timeout(60)
def test_interrupted_sweep_summary_counts_probed_addresses() -> None:
    # 65536 addresses at 2000/s: interrupted after ~1.5 s, having probed a few thousand. The
    # summary said "65536 IP addresses" before (issue 9 item 3).
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilos", "sweep", "127.5.0.0/16", "--rate", "2000", "--method",
         "icmp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    m = re.search(r"(\d+) IP address", err + out)
    assert m is not None, err
    up = sum(1 for line in out.splitlines() if " up " in line)
    assert up <= int(m.group(1)) < 65536
