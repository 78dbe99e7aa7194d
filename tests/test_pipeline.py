"""hilos.pipeline: discovery + scan + naming as one library call (the CLI's scan is a thin layer);
host states as nmap reports them, shards, bounds, early end, partial hosts (issue 9)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from hilos.connect import ConnectScanner
from hilos.errors import UsageError
from hilos.pipeline import MAX_RETRIES, MAX_V6_ADDRESSES, Scan, scan
from hilos.sweep import Sweeper
from hilos.syn import SynScanner
from hilos.targets import parse_targets
from hilos.targets.ports import service_name

if TYPE_CHECKING:
    from hilos.lab import Lab

HILOS = [sys.executable, "-m", "hilos"]
IS_ROOT = os.geteuid() == 0


def hilos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HILOS, *args], capture_output=True, text=True, timeout=timeout)


def jsonl(text: str) -> dict[str, dict[str, Any]]:
    return {d["host"]: d for d in (json.loads(line) for line in text.splitlines() if line)}


@pytest.fixture
def opened() -> Iterator[list[int]]:
    socks = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
    yield sorted(s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()


def closed_known_port() -> int:
    """A port with a name in the port table that nothing on 127.0.0.1 listens on."""
    for port in (23, 25, 110, 143, 389, 1433, 3306, 5432, 5900, 6379):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) != 0 and service_name(port):
                return port
    pytest.skip("every candidate port is in use here")


# ----------------------------------------------------------------------------- library, loopback


def test_localhost_by_name_keeps_the_name_and_closed_ports_get_table_names(
    opened: list[int],
) -> None:
    closed = closed_known_port()
    job = scan(["localhost"], [opened[0], closed], scan_type="connect", timeout=1.0)
    hosts = {h.host: h for h in job}
    assert "127.0.0.1" in hosts
    for h in hosts.values():
        assert h.hostname == "localhost" and h.status == "up" and h.complete
    ports = {p.port: p for p in hosts["127.0.0.1"].ports}
    assert ports[opened[0]].state == "open"
    assert (ports[closed].state, ports[closed].service) == ("closed", service_name(closed))
    assert job.summary.up == len(hosts) and job.stats.up == len(hosts)
    assert job.summary.addresses == job.targets.size


def test_no_discovery_reports_user_set(opened: list[int]) -> None:
    (host,) = scan(["127.0.0.1"], opened, discovery=False, timeout=1.0)
    assert (host.status, host.reason, host.hostname) == ("up", "user-set", None)
    assert [p.state for p in host.ports] == ["open", "open"]


@pytest.mark.timeout(60)
def test_cancelled_scan_returns_unfinished_hosts_marked_incomplete(opened: list[int]) -> None:
    # 3000 ports at 400 connects/s: about 7 s; cancelled after 0.8 s.
    job = scan(["127.0.0.1"], range(1, 3001), scan_type="connect", rate=400, timeout=1.0)
    timer = threading.Timer(0.8, job.cancel)
    timer.start()
    t0 = time.monotonic()
    finished = list(job)
    assert time.monotonic() - t0 < 5
    rest = job.drain()
    assert finished == []
    (host,) = rest
    assert host.host == "127.0.0.1" and host.status == "up" and host.complete is False
    assert 0 < len(host.ports) < 3000
    assert job.summary.addresses == 1


def test_retries_are_bounded_everywhere() -> None:
    too_many = MAX_RETRIES + 1
    with pytest.raises(UsageError, match=str(MAX_RETRIES)):
        scan(["127.0.0.1"], [80], retries=too_many)
    with pytest.raises(UsageError, match=str(MAX_RETRIES)):
        Sweeper(parse_targets(["127.0.0.1"]), retries=1_000_000)
    with pytest.raises(UsageError, match=str(MAX_RETRIES)):
        SynScanner(["127.0.0.1"], [80], retries=1_000_000)
    with pytest.raises(UsageError, match=str(MAX_RETRIES)):
        ConnectScanner(["127.0.0.1"], [80], retries=1_000_000)


def test_huge_ipv6_space_refused_up_front_with_the_allowed_size() -> None:
    # Refused when the objects are made: nothing is sent (and nothing calls len() on 2**64).
    space = parse_targets(["fd18::/64"])
    for make in (
        lambda: Sweeper(space),
        lambda: scan(space, [80]),
        lambda: scan(space, [80], scan_type="syn", discovery=False),
    ):
        with pytest.raises(UsageError, match=str(MAX_V6_ADDRESSES)) as info:
            make()
        assert "2^24" in str(info.value)
    # The largest allowed space is accepted.
    assert Sweeper(parse_targets(["fd18::/104"])).size == MAX_V6_ADDRESSES


def test_threads_beyond_the_descriptor_limit_exit_2_up_front() -> None:
    out = hilos("scan", "127.0.0.1", "-p", "80", "--type", "connect", "--threads", "100000")
    assert out.returncode == 2, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hilos: error:") and "at most" in lines[0]
    assert out.stdout == ""  # before any output
    low = subprocess.run(
        ["prlimit", "--nofile=128:128", *HILOS, "scan", "127.0.0.1", "-p", "80", "--type",
         "connect", "--threads", "40"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert low.returncode == 2 and "RLIMIT_NOFILE 128" in low.stderr, low.stderr


@pytest.mark.parametrize("argv", [["scan", "-p", "80"], ["sweep"]])
def test_cli_retries_above_the_maximum_exit_2(argv: list[str]) -> None:
    out = hilos(argv[0], "127.0.0.1", *argv[1:], "--retries", "1000000")
    assert out.returncode == 2 and str(MAX_RETRIES) in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1


# ----------------------------------------------------------------------------- SYN, root


@pytest.mark.skipif(not IS_ROOT, reason="SYN scans need root")
@pytest.mark.timeout(60)
def test_syn_scan_ends_once_every_probe_is_answered(opened: list[int]) -> None:
    # Before: (retries+1) x timeout = 20 s whatever the answers.
    t0 = time.monotonic()
    out = hilos("scan", "127.0.0.1", "-p", str(opened[0]), "--type", "syn", "--timeout", "10",
                "--format", "json", "-q")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 < 3
    (host,) = jsonl(out.stdout).values()
    assert [(p["port"], p["state"]) for p in host["ports"]] == [(opened[0], "open")]


@pytest.mark.skipif(not IS_ROOT, reason="SYN scans need root")
@pytest.mark.timeout(60)
def test_syn_scan_with_the_most_retries_costs_nothing_when_answered(opened: list[int]) -> None:
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        scanner = SynScanner(["127.0.0.1"], opened, timeout=10, retries=MAX_RETRIES)
        (host,) = scanner.results()
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t0 < 3
    assert [p.state for p in host.ports] == ["open", "open"]
    assert peak < 8 << 20


# ----------------------------------------------------------------------------- the lab


def lab_scan(lab: Lab, *args: str, timeout: float = 120) -> dict[str, dict[str, Any]]:
    out = lab.run([*HILOS, "scan", *args, "--format", "json", "-q"], timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return jsonl(out.stdout)


LIB_SCAN = """
import json, sys
from hilos.pipeline import scan
a = json.loads(sys.argv[1])
for h in scan(a["targets"], a["ports"], **a["kw"]):
    print(json.dumps({"host": h.host, "status": h.status, "reason": h.reason, "rtt_ms": h.rtt_ms,
                      "ports": [{"port": p.port, "state": p.state} for p in h.ports]}))
"""


def lib_scan(lab: Lab, targets: list[str], ports: list[int], **kw: Any) -> dict[str, Any]:
    """hilos.pipeline.scan run in the lab's scanner namespace: {host: its result as a dict}."""
    arg = json.dumps({"targets": targets, "ports": ports, "kw": kw})
    out = lab.run([sys.executable, "-c", LIB_SCAN, arg], timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return jsonl(out.stdout)


def pairs(result: dict[str, dict[str, Any]]) -> dict[tuple[str, int], str]:
    return {(h, p["port"]): p["state"] for h, d in result.items() for p in d["ports"]}


@pytest.mark.lab
@pytest.mark.timeout(180)
@pytest.mark.parametrize("scan_type", ["syn", "connect"])
def test_lab_live_host_with_only_filtered_ports_is_up(lab: Lab, scan_type: str) -> None:
    host = next(
        h for h in lab.truth["hosts"]
        if h["family"] == 4 and h["icmp"]
        and any(v["state"] == "filtered" for v in h["ports"].values())
    )  # fmt: skip
    ports = [int(p) for p, v in host["ports"].items() if v["state"] == "filtered"][:3]
    got = lib_scan(lab, [host["addr"]], ports, scan_type=scan_type, timeout=0.5)
    d = got[host["addr"]]
    # Up, with discovery's reason (its first answer: echo, or the SYN/ACK probes) and RTT.
    assert d["status"] == "up" and d["reason"] in ("echo-reply", "syn-ack", "reset")
    assert d["rtt_ms"] is not None
    assert {p["state"] for p in d["ports"]} == {"filtered"}
    assert sorted(p["port"] for p in d["ports"]) == sorted(ports)


@pytest.mark.lab
@pytest.mark.timeout(180)
@pytest.mark.parametrize("scan_type", ["syn", "connect"])
def test_lab_no_discovery_silent_address_is_up_user_set(lab: Lab, scan_type: str) -> None:
    live = {h["addr"] for h in lab.truth["hosts"]}
    silent = next(f"198.18.0.{i}" for i in range(200, 250) if f"198.18.0.{i}" not in live)
    got = lib_scan(lab, [silent], [80], scan_type=scan_type, timeout=0.3, discovery=False)
    d = got[silent]
    assert (d["status"], d["reason"]) == ("up", "user-set")
    assert [(p["port"], p["state"]) for p in d["ports"]] == [(80, "filtered")]
    # Without -Pn it is down: listed only with --all.
    assert lab_scan(lab, silent, "-p", "80", "--type", scan_type, "--timeout", "0.3") == {}
    down = lab_scan(lab, silent, "-p", "80", "--type", scan_type, "--timeout", "0.3", "--all")
    assert down[silent]["status"] == "down"


def check_shards(lab: Lab, args: list[str], count: int = 3) -> None:
    args = [*args, "--all"]  # closed ports too: every (host, port) pair of the walk is compared
    whole = pairs(lab_scan(lab, *args))
    assert whole
    union: dict[tuple[str, int], str] = {}
    for i in range(1, count + 1):
        part = pairs(lab_scan(lab, *args, "--shard", f"{i}/{count}"))
        assert not set(part) & set(union), "shards overlap"
        union.update(part)
    assert union == whole


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("scan_type", ["syn", "connect"])
@pytest.mark.parametrize("discovery", [True, False])
def test_lab_shards_disjoint_and_complete(lab: Lab, scan_type: str, discovery: bool) -> None:
    if scan_type == "connect" and not discovery:
        # -Pn connect: every dead address's ports wait out the timeout, so a smaller space.
        args = ["198.18.0.0/28", "-p", "1-40", "--timeout", "0.3", "-Pn"]
    else:
        args = ["198.18.0.0/24", "-p", "1-200", *([] if discovery else ["-Pn"])]
    check_shards(lab, [*args, "--seed", "7", "--type", scan_type])


@pytest.mark.lab
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("scan_type", ["syn", "connect"])
def test_lab_shards_with_loss(make_lab: Callable[..., Lab], scan_type: str) -> None:
    lab = make_lab(loss_percent=5)
    check_shards(
        lab, ["198.18.0.0/24", "-p", "1-100", "--seed", "7", "--type", scan_type, "--retries", "4"]
    )


@pytest.mark.lab
@pytest.mark.timeout(60)
def test_lab_huge_ipv6_space_exits_2_naming_the_limit(lab: Lab) -> None:
    for cmd in (["scan", "fd18::/64", "-p", "80"], ["sweep", "fd18::/64"]):
        out = lab.run([*HILOS, *cmd], timeout=30)
        assert out.returncode == 2, out.stderr
        assert "2^24" in out.stderr and len(out.stderr.splitlines()) == 1


def test_scan_object_is_iterated_once() -> None:
    job = Scan(["127.0.0.1"], [1], timeout=0.2)
    list(job)
    with pytest.raises(RuntimeError):
        list(job)


PROGRESS = """
import json, sys, threading, time
from hilos.pipeline import scan
job = scan(["198.18.0.0/22"], [22, 80], scan_type=sys.argv[1], timeout=0.3)
seen = []
stop = threading.Event()
def watch():
    while not stop.is_set():
        st = job.stats
        seen.append([st.phase, st.done, st.total, st.up])
        time.sleep(0.01)
t = threading.Thread(target=watch)
t.start()
hosts = list(job)
stop.set()
t.join()
s = job.summary
print(json.dumps({"seen": seen, "up": sum(h.status == "up" for h in hosts),
                  "summary": [s.addresses, s.up]}))
"""


@pytest.mark.lab
@pytest.mark.timeout(120)
@pytest.mark.parametrize("scan_type", ["syn", "connect"])
def test_lab_progress_during_discovery_and_hosts_up_counted(lab: Lab, scan_type: str) -> None:
    out = lab.run([sys.executable, "-c", PROGRESS, scan_type], timeout=100)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    seen = data["seen"]
    # The SYN path used to show nothing while discovery ran, and "0 up" all scan long.
    assert any(phase == "discovery" and total == 1024 for phase, _d, total, _up in seen)
    assert any(phase == "scan" and up > 0 for phase, _d, _t, up in seen)
    assert data["up"] > 0 and data["summary"] == [1024, data["up"]]


def test_finish_without_discovery_equals_replace() -> None:
    """-Pn: every host up with reason user-set; the direct construction keeps every field."""
    from dataclasses import replace

    from hilos.results import PortResult, ScanHostResult

    job = Scan(["127.0.0.1"], [1], timeout=0.2, discovery=False)
    h = ScanHostResult("127.0.0.1", "down", "no-response", (PortResult(1, "filtered", "x"),),
                       1.5, "lo.example", False)  # fmt: skip
    assert job._finish(h) == replace(h, status="up", reason="user-set")


# ------------------------------------------------------------------------ staged (hilos.staged)


class _FakeSweeper:
    """Finds 198.18.0.1-2 in its first pass and 198.18.0.3 only after `late` is set."""

    late = threading.Event()

    def __init__(self, *_: object, **__: object) -> None:
        self.cancelled = False
        self.sent: float | None = None

    def first_answers_due(self) -> float | None:
        return self.sent

    def __iter__(self) -> Iterator[Any]:
        from hilos.results import HostResult

        yield HostResult("198.18.0.1", "up", "echo-reply")
        yield HostResult("198.18.0.2", "up", "reset")
        self.sent = time.monotonic()
        _FakeSweeper.late.wait(5)
        yield HostResult("198.18.0.3", "up", "echo-reply")

    def cancel(self) -> None:
        self.cancelled = True

    def drain(self) -> list[Any]:
        return []


def test_raw_scan_starts_on_the_first_pass_hosts_and_scans_late_ones_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hilos import pipeline
    from hilos.results import PortResult, ScanHostResult

    made: list[list[str]] = []

    class Fake:
        def __init__(self, hosts: list[str]) -> None:
            made.append(list(hosts))
            self.hosts = list(hosts)
            if len(made) == 1:
                _FakeSweeper.late.set()  # discovery finds the last host while this one runs

        def results(self) -> Iterator[ScanHostResult]:
            for h in self.hosts:
                yield ScanHostResult(h, "up", "syn-ack", (PortResult(22, "open", "syn-ack"),))

        def cancel(self) -> None:
            pass

    _FakeSweeper.late.clear()
    monkeypatch.setattr(pipeline, "Sweeper", _FakeSweeper)
    monkeypatch.setattr(pipeline.scanners, "tcp_scanner", lambda _t, hosts, *a, **k: Fake(hosts))
    job = scan(["198.18.0.0/30"], [22], scan_type="syn")
    got = [(h.host, h.status, h.reason) for h in job]
    assert made == [["198.18.0.1", "198.18.0.2"], ["198.18.0.3"]]
    # Each host keeps discovery's reason, whichever scan it was in.
    assert got == [
        ("198.18.0.1", "up", "echo-reply"),
        ("198.18.0.2", "up", "reset"),
        ("198.18.0.3", "up", "echo-reply"),
    ]
