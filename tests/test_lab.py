"""The practice lab (hilos.lab core, netns, build): namespaces, daemons, status."""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hilos import lab as labmod
from hilos.errors import LabError
from hilos.lab import DEAD_HOST, UNREACHABLE, Lab
from hilos.lab.netns import alive

UNREACH_NET = ipaddress.ip_network(UNREACHABLE)


def test_bad_names_and_no_root_are_lab_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LabError, match="bad lab name"):
        Lab.up("../etc")
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="root"):
        Lab.up("nonroot")


# --- The lab itself (root) ----------------------------------------------------------------------

PROBE = r"""
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

def check(c):
    kind, addr, port, timeout = c
    if kind == "ping":
        r = subprocess.run(["ping", "-c1", "-W%g" % timeout, addr], capture_output=True)
        return "up" if r.returncode == 0 else "down"
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
            return "open"
        except ConnectionRefusedError:
            return "closed"
        except (TimeoutError, socket.timeout):
            return "filtered"
        except OSError as e:
            return "error %s" % e

with ThreadPoolExecutor(48) as ex:
    print(json.dumps(list(ex.map(check, json.loads(sys.argv[1])))))
"""


def probe(lab: Lab, checks: list[tuple[str, str, int, float]]) -> list[str]:
    """Run ("tcp"|"ping", addr, port, timeout) checks in parallel inside the scanner namespace."""
    out = lab.run([sys.executable, "-c", PROBE, json.dumps(checks)], timeout=30)
    assert out.returncode == 0, out.stderr
    result: list[str] = json.loads(out.stdout)
    return result


def ping(lab: Lab, addr: str, *args: str) -> subprocess.CompletedProcess[str]:
    return lab.run(["ping", "-c1", "-W1", *args, addr], timeout=20)


def _root_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout


@pytest.mark.lab
def test_up_status_down_round_trip_leaves_nothing(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rtt_ms=5, dense=5, sparse=3, ipv6=1)
    st = Lab.status(lab.name)
    assert st.up and st.hosts == 9 and st.truth_path == str(lab.truth_path)
    assert json.loads(lab.truth_path.read_text()) == lab.truth
    state = json.loads((labmod.STATE_ROOT / lab.name / "state.json").read_text())
    pids = list(state["pids"].values())
    assert len(pids) == 4 and all(alive(p) for p in pids)  # labsvc, labudp, labdns, delayer
    resolver = Path("/etc/netns", lab.scanner_ns)
    assert (resolver / "resolv.conf").exists() and (resolver / "nsswitch.conf").exists()
    namespaces = [lab.scanner_ns, lab.router_ns, lab.hosts_ns]
    assert all(Path("/run/netns", ns).exists() for ns in namespaces)
    assert not re.search(r": (scan0|up0|down0|hosts0|dly0|dly1)[@:]", _root_links())
    assert Lab.attach(lab.name).truth == lab.truth

    lab.down()
    assert not Lab.status(lab.name).up
    assert not any(Path("/run/netns", ns).exists() for ns in namespaces)
    assert not any(alive(p) for p in pids)
    assert not (labmod.STATE_ROOT / lab.name).exists()
    assert not resolver.exists()
    assert labmod.teardown(lab.name) is False  # idempotent
    with pytest.raises(LabError, match="not up"):
        Lab.attach(lab.name)


@pytest.mark.lab
def test_down_cleans_up_after_a_crash(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(dense=4)
    state = json.loads((labmod.STATE_ROOT / lab.name / "state.json").read_text())
    # A crash: the state file is gone and a process died; down must still find everything.
    os.kill(state["pids"]["labsvc"], 9)
    (labmod.STATE_ROOT / lab.name / "state.json").unlink()
    st = Lab.status(lab.name)
    assert not st.up and st.partial
    assert labmod.teardown(lab.name) is True
    assert not any(Path("/run/netns", ns).exists() for ns in (lab.scanner_ns, lab.hosts_ns))
    assert not Path("/etc/netns", lab.scanner_ns).exists()


@pytest.mark.lab
def test_scanner_namespace_reaches_only_the_lab(lab: Lab) -> None:
    routes4 = lab.run(["ip", "-4", "route"]).stdout
    routes6 = lab.run(["ip", "-6", "route"]).stdout
    assert "default" not in routes4 and "default" not in routes6
    assert "198.18.0.0/16 via 198.19.0.1" in routes4
    assert "fd18:0:0:100::/64 via fd18:ff::1" in routes6


@pytest.mark.lab
def test_ping_live_and_dead(lab: Lab) -> None:
    assert ping(lab, "198.18.0.1").returncode == 0
    dead = ping(lab, DEAD_HOST)
    assert dead.returncode != 0 and "Unreachable" not in dead.stdout


@pytest.mark.lab
def test_unreachable_block_says_so(lab: Lab) -> None:
    out = ping(lab, "198.18.254.77")
    assert out.returncode != 0
    assert "Destination Host Unreachable" in out.stdout


@pytest.mark.lab
def test_icmp_silent_host_answers_tcp(lab: Lab) -> None:
    assert ping(lab, "198.18.0.2").returncode != 0
    assert probe(lab, [("tcp", "198.18.0.2", 22, 2.0), ("tcp", "198.18.0.2", 80, 2.0)]) == [
        "open",
        "open",
    ]


@pytest.mark.lab
def test_filtered_times_out_closed_is_refused(lab: Lab) -> None:
    start = time.monotonic()
    got = probe(lab, [("tcp", "198.18.0.1", 445, 0.5), ("tcp", "198.18.0.1", 81, 2.0)])
    assert got == ["filtered", "closed"]
    assert time.monotonic() - start < 10


@pytest.mark.lab
def test_ipv6_hosts_answer(lab: Lab) -> None:
    v6 = [h for h in lab.truth["hosts"] if h["family"] == 6]
    assert len(v6) == 6
    assert lab.run(["ping", "-6", "-c1", "-W1", "fd18:0:0:100::1"], timeout=10).returncode == 0
    assert probe(lab, [("tcp", "fd18:0:0:100::1", 22, 2.0)]) == ["open"]


@pytest.mark.lab
def test_truth_matches_what_answers(lab: Lab) -> None:
    rng = random.Random(11)
    hosts = lab.truth["hosts"]
    live = {h["addr"] for h in hosts}
    checks: list[tuple[str, str, int, float]] = []
    expect: list[str] = []
    with_ports = [h for h in hosts if h["ports"]]
    for h in rng.sample(with_ports, 12) + [h for h in hosts if h["addr"] == "198.18.0.3"]:
        for port, info in h["ports"].items():
            checks.append(("tcp", h["addr"], int(port), 1.0))
            expect.append("open" if info["state"] == "open" else "filtered")
        closed = next(p for p in (1, 81, 8082, 65000) if str(p) not in h["ports"])
        checks.append(("tcp", h["addr"], closed, 2.0))
        expect.append("closed")
    for h in rng.sample(hosts, 12):
        checks.append(("ping", h["addr"], 0, 1.0))
        expect.append("up" if h["icmp"] else "down")
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    dead = []
    while len(dead) < 6:
        addr = str(ipaddress.IPv4Address(base + rng.randrange(1, 254 * 256)))
        if addr not in live and ipaddress.ip_address(addr) not in UNREACH_NET:
            dead.append(addr)
    for addr in dead:
        checks += [("ping", addr, 0, 1.0), ("tcp", addr, 80, 0.5)]
        expect += ["down", "filtered"]
    assert probe(lab, checks) == expect


def _rtts(out: str) -> list[float]:
    return [float(x) for x in re.findall(r"time=([\d.]+) ms", out)]


@pytest.mark.lab
def test_rtt_40(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(rtt_ms=40)
    out = lab.run(["ping", "-c3", "-i0.2", "-W2", "198.18.0.1"], timeout=20)
    rtts = _rtts(out.stdout)
    assert len(rtts) == 3, out.stdout
    assert all(35 <= r <= 60 for r in rtts), rtts
    assert probe(lab, [("tcp", "198.18.0.1", 22, 3.0), ("tcp", "198.18.0.1", 81, 3.0)]) == [
        "open",
        "closed",
    ]
    six = lab.run(["ping", "-6", "-c1", "-W2", "fd18:0:0:100::1"], timeout=20)
    assert all(35 <= r <= 60 for r in _rtts(six.stdout)) and _rtts(six.stdout)
    # Bulk TCP through the delayer: the 10 MB flood service arrives whole.
    flood = lab.run([sys.executable, "-c", FLOOD_READER], timeout=30)
    assert flood.returncode == 0 and int(flood.stdout) == 10 * 1024 * 1024


FLOOD_READER = r"""
import socket
s = socket.create_connection(("198.18.0.3", 19), timeout=10)
n = 0
while chunk := s.recv(1 << 16):
    n += len(chunk)
print(n)
"""


@pytest.mark.lab
def test_loss_50_loses_some_pings(make_lab: Callable[..., Lab]) -> None:
    lab = make_lab(loss_percent=50)
    out = lab.run(["ping", "-c30", "-i0.01", "-W1", "198.18.0.1"], timeout=20)
    got = re.search(r"(\d+) received", out.stdout)
    assert got is not None, out.stdout
    # Each ping survives both directions with p = 0.25: 30 pings all arriving is ~1e-18.
    assert int(got.group(1)) < 24


@pytest.mark.lab
def test_up_refuses_an_existing_lab(lab: Lab) -> None:
    with pytest.raises(LabError, match="already exists"):
        Lab.up(lab.name)


def test_bad_lab_name_is_still_a_lab_error() -> None:
    # Library callers catch LabError; the CLI needs to know it is the user's input (exit 2).
    from hilos.errors import UsageError

    with pytest.raises(LabError) as info:
        Lab.status("bad name!")
    assert isinstance(info.value, UsageError)
