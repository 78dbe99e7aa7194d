"""Tests for hilos.sweep.sweeper on loopback: the API, method selection, waits, a lazy /8."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import time

import pytest

from hilos.errors import UsageError
from hilos.results import HostResult
from hilos.sweep import DEFAULT_TIMEOUT, MIN_WAIT, Sweeper, sweep
from hilos.targets import parse_targets

LO = int(ipaddress.IPv4Address("127.0.0.1"))


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


def test_hosts_that_answered_echo_are_known_whatever_answered_first() -> None:
    """The loss check probes hosts that answer echo: a host whose TCP answer came first
    (every probe kind goes at once) is one of them too."""
    s = Sweeper(["127.0.0.1", "127.0.0.2"])
    s._record(LO, "syn-ack", 1.0)
    s._record(LO, "echo-reply", 1.0)
    s._record(LO + 1, "reset", 1.0)
    assert s._answered == {LO: "syn-ack", LO + 1: "reset"}  # the first answer is the reason
    assert s._echoed == {LO}


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


@pytest.mark.root
@pytest.mark.timeout(30)
def test_loopback_v4_v6_up_with_reasons_and_rtt() -> None:
    notices: list[str] = []
    t0 = time.monotonic()
    found = {r.host: r for r in sweep(["127.0.0.1", "::1"], on_notice=notices.append)}
    elapsed = time.monotonic() - t0
    assert set(found) == {"127.0.0.1", "::1"}
    for r in found.values():
        assert r.status == "up" and r.reason in {"echo-reply", "syn-ack", "reset"}
        assert r.rtt_ms is not None and r.rtt_ms >= 0
    assert len(notices) == 1 and "ICMP echo" in notices[0] and "raw" in notices[0]
    assert elapsed < 3.0  # everything answered: no waiting for a timeout


@pytest.mark.root
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("method", "reasons"), [("icmp", {"echo-reply"}), ("tcp", {"reset", "syn-ack"})]
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
