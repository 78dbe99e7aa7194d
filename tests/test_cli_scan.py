"""`hilos scan` end to end: usage errors, outputs, Ctrl-C, EMFILE; exact states in the lab."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from hilos.sanitize import BANNER_DATA_LIMIT, clean
from hilos.targets.ports import service_name
from hilos.wire.sockets import can_raw

if TYPE_CHECKING:
    from hilos.lab import Lab

HILOS = [sys.executable, "-m", "hilos"]


def hilos(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HILOS, *args], capture_output=True, text=True, timeout=timeout, **kw)


def jsonl(text: str) -> dict[str, dict[str, Any]]:
    return {d["host"]: d for d in (json.loads(line) for line in text.splitlines() if line)}


@pytest.fixture
def opened() -> Iterator[list[int]]:
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
    yield sorted(s.getsockname()[1] for s in socks)
    for s in socks:
        s.close()


# ------------------------------------------------------------------------------ usage errors
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["-p", "0"], "0"),
        (["-p", "70000"], "70000"),
        (["-p", "5-1"], "5-1"),
        (["-p", "22,abc"], "abc"),
        (["--exclude-ports", "99999", "-p", "1-10"], "99999"),
        (["--shard", "5/4"], "5/4"),
        (["--shard", "x"], "x"),
    ],
)
def test_bad_port_and_shard_specs_exit_2_one_line(args: list[str], needle: str) -> None:
    out = hilos("scan", "127.0.0.1", *args, "--type", "connect")
    assert out.returncode == 2, out
    assert out.stderr.startswith("hilos: error: ")
    assert out.stderr.count("\n") == 1 and needle in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("target", ["300.1.2.3", "127.0.0.1/33", "127.0.0.5-1"])
def test_bad_target_exits_2_one_line(target: str) -> None:
    out = hilos("scan", target, "-p", "1", "--type", "connect")
    assert out.returncode == 2
    assert out.stderr.startswith("hilos: error: ") and out.stderr.count("\n") == 1


def test_no_target_exits_2() -> None:
    out = hilos("scan", "-p", "1")
    assert out.returncode == 2 and out.stderr.startswith("hilos: error: ")


@pytest.mark.root
def test_syn_unprivileged_exits_2_naming_the_fix() -> None:
    # Root without CAP_NET_RAW (dropped from the bounding set) is "unprivileged" for raw sockets.
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    out = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", *HILOS, "scan", "127.0.0.1", "-p", "1",
         "--type", "syn"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1
    assert "CAP_NET_RAW" in out.stderr and "root" in out.stderr


@pytest.mark.root
def test_auto_unprivileged_says_connect_once() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    out = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", *HILOS, "scan", "127.0.0.1", "-p", "1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("connect scan") == 1


# ------------------------------------------------------------------------------ on loopback
def test_connect_scan_json_on_loopback(opened: list[int]) -> None:
    spec = f"{opened[0] - 20}-{opened[-1] + 20}"
    out = hilos("scan", "127.0.0.1", "-p", spec, "--type", "connect", "--format", "json")
    assert out.returncode == 0, out.stderr
    (host,) = jsonl(out.stdout).values()
    assert host["status"] == "up"
    assert [p["port"] for p in host["ports"]] == opened  # closed ports only with --all
    for p in host["ports"]:
        assert p["state"] == "open" and p["proto"] == "tcp"
        assert p["service"] == service_name(p["port"])  # nothing learned: the table's name


def test_all_lists_closed_ports_too(opened: list[int]) -> None:
    out = hilos(
        "scan", "127.0.0.1", "-p", f"{opened[0]},1-9", "--type", "connect", "--format", "json",
        "--all",
    )  # fmt: skip
    (host,) = jsonl(out.stdout).values()
    assert {p["port"]: p["state"] for p in host["ports"]} == {
        **{i: "closed" for i in range(1, 10)},
        opened[0]: "open",
    }


def test_shards_split_the_scan_disjointly(opened: list[int]) -> None:
    spec = f"1-1500,{','.join(map(str, opened))}"
    base = ["scan", "127.0.0.1", "127.0.0.2", "-p", spec, "--type", "connect", "--all",
            "--format", "json", "--seed", "5"]  # fmt: skip
    whole = {
        (h, p["port"], p["state"])
        for h, d in jsonl(hilos(*base).stdout).items()
        for p in d["ports"]
    }
    parts: list[set[tuple[str, int, str]]] = []
    for i in range(1, 4):
        out = hilos(*base, "--shard", f"{i}/3")
        assert out.returncode == 0, out.stderr
        parts.append(
            {(h, p["port"], p["state"]) for h, d in jsonl(out.stdout).items() for p in d["ports"]}
        )
    assert sum(len(p) for p in parts) == len(whole)  # disjoint
    assert set().union(*parts) == whole  # and together the whole scan


def test_emfile_under_prlimit_64_is_complete_and_exact(opened: list[int]) -> None:
    # Around our own listeners: other ports of this machine belong to others.
    spec = f"{opened[0] - 1500}-{opened[0] + 1499},{','.join(map(str, opened))}"
    out = subprocess.run(
        ["prlimit", "--nofile=64", *HILOS, "scan", "127.0.0.1", "-p", spec,
         "--type", "connect", "--format", "json", "--all"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (host,) = jsonl(out.stdout).values()
    states = {p["port"]: p["state"] for p in host["ports"]}
    assert len(states) == len(set(range(opened[0] - 1500, opened[0] + 1500)) | set(opened))
    # (other programs may listen in that range too: only ours are checked)
    assert set(opened) <= {p for p, s in states.items() if s == "open"}


def test_ctrl_c_keeps_every_result_and_files_well_formed(tmp_path: Path) -> None:
    # A paced scan (about 37 s) interrupted after ~1.5 s: what was found is in the files.
    js, xm = tmp_path / "a.jsonl", tmp_path / "a.xml"
    proc = subprocess.Popen(
        [*HILOS, "scan", "127.0.0.1", "127.0.0.2", "-p", "10000-65535", "--type", "connect",
         "--rate", "3000",
         "--all", "--format", "json", "-o", str(js), "--format", "xml", "-o", str(xm)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    hosts = jsonl(js.read_text())  # every line valid JSON
    answered = sum(len(h["ports"]) for h in hosts.values())
    assert answered >= 1000  # about 3000/s for 1.5 s, all kept
    assert answered < 2 * 55536
    # Hosts the scan had not finished say so (issue 9 item 10).
    assert hosts and all(h.get("complete") is False for h in hosts.values())
    assert "2 IP addresses" in err and "65536" not in err
    root = ET.parse(xm).getroot()  # the XML is closed and parseable
    assert root.tag == "nmaprun"
    xml_ports = sum(len(h.findall("ports/port")) for h in root.findall("host"))
    assert xml_ports == answered


# ------------------------------------------------------------------------------ in the lab
def truth_states(lab: Lab, hosts: list[str], lo: int, hi: int) -> dict[str, dict[int, str]]:
    by = {h["addr"]: h for h in lab.truth["hosts"]}
    return {
        a: {int(p): v["state"] for p, v in by[a]["ports"].items() if lo <= int(p) <= hi}
        for a in hosts
    }


def scan_states(stdout: str) -> dict[str, dict[int, str]]:
    return {
        h: {p["port"]: p["state"] for p in d["ports"] if p["state"] != "closed"}
        for h, d in jsonl(stdout).items()
    }


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_full_range_several_hosts_exact(lab: Lab) -> None:
    hosts = ["198.18.0.1", "198.18.0.2", "198.18.0.4"]
    out = lab.run(
        [*HILOS, "scan", *hosts, "-p-", "--type", "connect", "--format", "json", "-q"], timeout=90
    )
    assert out.returncode == 0, out.stderr
    assert scan_states(out.stdout) == truth_states(lab, hosts, 1, 65535)
    # closed = refused, counted for every port
    for d in jsonl(out.stdout).values():
        assert d["status"] == "up"


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_dense_24_with_discovery_exact(lab: Lab) -> None:
    out = lab.run(
        [*HILOS, "scan", "198.18.0.0/24", "-p", "1-1024", "--type", "connect", "--format",
         "json", "-q"],
        timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    live = [h["addr"] for h in lab.truth["hosts"] if h["addr"].startswith("198.18.0.")]
    assert scan_states(out.stdout) == truth_states(lab, live, 1, 1024)


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_ipv6_exact(lab: Lab) -> None:
    v6 = [h["addr"] for h in lab.truth["hosts"] if h["family"] == 6]
    out = lab.run(
        [*HILOS, "scan", *v6, "-p", "1-10000", "--type", "connect", "--format", "json", "-q"],
        timeout=90,
    )
    assert out.returncode == 0, out.stderr
    assert scan_states(out.stdout) == truth_states(lab, v6, 1, 10000)


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_unreachable_block_is_filtered_host_unreach(lab: Lab) -> None:
    out = lab.run(
        [*HILOS, "scan", "198.18.254.7", "-Pn", "-p", "22,80", "--type", "connect", "--format",
         "json", "--all", "-q"],
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (host,) = jsonl(out.stdout).values()
    assert {(p["state"], p["reason"]) for p in host["ports"]} == {("filtered", "host-unreach")}


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_services_named_on_standard_and_unusual_ports(lab: Lab) -> None:
    hosts = ["198.18.0.1", "198.18.0.4", "fd18:0:0:100::1"]
    by = {h["addr"]: h for h in lab.truth["hosts"]}
    ports = sorted({int(p) for a in hosts for p in by[a]["ports"]})
    t0 = time.monotonic()
    out = lab.run(
        [*HILOS, "scan", *hosts, "-p", ",".join(map(str, ports)), "--type", "connect",
         "--banners", "--format", "json", "-q"],
        timeout=90,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 < 15
    got = jsonl(out.stdout)
    for a in hosts:
        ports_got = {p["port"]: p for p in got[a]["ports"]}
        for port, want in by[a]["ports"].items():
            p = ports_got[int(port)]
            assert p["state"] == want["state"], (a, port)
            if want["state"] != "open":
                continue
            for key in ("service", "product", "version", "tls"):
                assert p[key] == want[key], (a, port, key, p)


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_hostile_banners(lab: Lab) -> None:
    by = {h["addr"]: h for h in lab.truth["hosts"]}["198.18.0.3"]["ports"]
    kinds = {int(p): v for p, v in by.items()}
    t0 = time.monotonic()
    out = lab.run(
        [*HILOS, "scan", "198.18.0.3", "-p", ",".join(map(str, kinds)), "--type", "connect",
         "--banners", "--format", "text", "-o", "/dev/null", "--format", "json", "-q"],
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 < 10  # a 10 MB flood and a silent server hold nothing up
    (host,) = jsonl(out.stdout).values()
    for p in host["ports"]:
        want = kinds[p["port"]]
        banner = p["banner"]
        if banner is not None:
            assert len(banner) <= BANNER_DATA_LIMIT
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in banner)
        if want["banner"] and want["service"] is None:  # flood, escape: kept, cleaned
            assert banner is not None
            assert banner.startswith(clean(want["banner"], BANNER_DATA_LIMIT)[:20])
        if want["banner"] is None and want["service"] is None:  # silent: nothing learned
            assert banner is None and p["product"] is None


@pytest.mark.lab
@pytest.mark.timeout(120)
def test_lab_emfile_low_ulimit_exact(lab: Lab) -> None:
    out = lab.run(
        ["prlimit", "--nofile=64", *HILOS, "scan", "198.18.0.1", "198.18.0.4", "-p-",
         "--type", "connect", "--format", "json", "-q"],
        timeout=100,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    hosts = ["198.18.0.1", "198.18.0.4"]
    assert scan_states(out.stdout) == truth_states(lab, hosts, 1, 65535)


@pytest.mark.skipif(not can_raw(), reason="needs CAP_NET_RAW")
def test_a_syn_scan_closes_with_the_packets_per_second_it_achieved() -> None:
    """The raw scan's closing line on stderr: packets sent, time, packets/s, the --rate asked;
    -q leaves it out."""
    proc = hilos("scan", "127.0.0.1", "-p", "1-300", "--type", "syn", "--rate", "100000",
                 "--format", "json", "--timeout", "0.2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    line = [s for s in proc.stderr.splitlines() if s.startswith("hilos: sent ")]
    assert len(line) == 1 and "packets/s; --rate 100000); " in line[0], proc.stderr
    assert line[0].endswith(" replies dropped by the kernel")
    assert int(line[0].split()[2]) >= 300
    quiet = hilos("scan", "127.0.0.1", "-p", "1-3", "--type", "syn", "-q", "--format", "json")
    assert "packets/s" not in quiet.stderr
