"""Reports and diffs of real files: hilos, nmap and masscan scanning the same lab hosts.

Every scanner runs INSIDE the lab's scanner namespace (lab.run = ip netns exec); the targets are
the lab's fixed hosts 198.18.0.1-4, reachable only from there.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from helpers_report import dump_dom
from hilos.report import load_scan, load_scans
from hilos.report.diff import diff_runs
from hilos.report.html import render_html
from test_report_html import rows

if TYPE_CHECKING:
    from hilos.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow]

TARGETS = "198.18.0.1-4"
PORTS = "21,22,80,135,443,1110,2222,8080"
HOSTS = ("198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4")
Files = dict[str, Path]


def _masscan(lab: Lab, out: Path, flag: str, port: int) -> subprocess.Popen[str]:
    # masscan writes its own Ethernet frames: the router's MAC, as benchmarks/bench_syn.py does.
    lab.run(["ping", "-c1", "-W1", "198.18.0.1"], timeout=10)
    neigh = lab.run(["ip", "neigh", "show", "198.19.0.1"], timeout=10).stdout.split()
    assert "lladdr" in neigh, neigh
    mac = neigh[neigh.index("lladdr") + 1]
    cmd = [
        "masscan",
        "198.18.0.1-198.18.0.4",  # masscan's range syntax
        "-p",
        PORTS,
        "--rate",
        "2000",
        "--wait",
        "1",
        "--adapter",
        "scan0",
        "--adapter-ip",
        "198.19.0.2",
        "--adapter-port",
        str(port),
        "--router-mac",
        mac,
        flag,
        str(out),
    ]
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.scanner_ns, "timeout", "90", *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


@pytest.fixture(scope="module")
def scans(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Files:
    """hilos (JSON Lines + XML, with banners), nmap -sT and -sV, masscan -oJ, -oL and -oX."""
    for tool in ("nmap", "masscan"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run scripts/system-deps")
    d = tmp_path_factory.mktemp("lab-scans")
    f = {
        name: d / name
        for name in (
            "hilos.jsonl",
            "hilos.xml",
            "nmap.xml",
            "nmap-sv.xml",
            "masscan.json",
            "masscan.txt",
            "masscan.xml",
        )
    }
    masscans = [
        _masscan(lab, f["masscan.json"], "-oJ", 40000),
        _masscan(lab, f["masscan.txt"], "-oL", 40100),
        _masscan(lab, f["masscan.xml"], "-oX", 40200),
    ]
    hilos = lab.run(
        [
            sys.executable,
            "-m",
            "hilos",
            "scan",
            TARGETS,
            "-p",
            PORTS,
            "--banners",
            "-q",
            "--format",
            "json",
            "-o",
            str(f["hilos.jsonl"]),
            "--format",
            "xml",
            "-o",
            str(f["hilos.xml"]),
        ],
        timeout=120,
    )
    assert hilos.returncode == 0, hilos.stderr
    for out, extra in ((f["nmap.xml"], []), (f["nmap-sv.xml"], ["-sV", "--version-light"])):
        nmap = lab.run(
            ["nmap", "-n", "-sT", *extra, "-p", PORTS, TARGETS, "-oX", str(out)], timeout=180
        )
        assert nmap.returncode == 0, nmap.stderr
    for proc in masscans:
        # 124: cut by timeout(1) after a stall (see bench_syn.py); what it wrote is kept.
        assert proc.wait(timeout=120) in (0, 124)
    return f


def open_ports(path: Path) -> set[tuple[str, int]]:
    return {(h.host, p.port) for h in load_scan(str(path)).hosts for p in h.open_ports}


def test_every_file_is_read(scans: Files) -> None:
    expected = {
        "hilos.jsonl": "hilos",
        "hilos.xml": "hilos",
        "nmap.xml": "nmap",
        "nmap-sv.xml": "nmap",
        "masscan.json": "masscan",
        "masscan.txt": "masscan",
        "masscan.xml": "masscan",
    }
    for name, tool in expected.items():
        run = load_scan(str(scans[name]))
        assert run.tool == tool, name
        assert {h.host for h in run.hosts if h.status == "up"} <= set(HOSTS), name
    truth = open_ports(scans["hilos.jsonl"])
    assert ("198.18.0.1", 22) in truth and ("198.18.0.4", 1110) in truth
    assert open_ports(scans["hilos.xml"]) == truth
    assert open_ports(scans["nmap.xml"]) == truth == open_ports(scans["nmap-sv.xml"])
    nmap = load_scan(str(scans["nmap.xml"]))
    assert nmap.args is not None and nmap.args.startswith("nmap -n -sT") and nmap.targets == 4


def test_masscan_finds_only_what_the_others_found(scans: Files) -> None:
    # masscan drops answers now and then in this lab (see bench_syn.py): a subset, never more.
    truth = open_ports(scans["hilos.jsonl"])
    for name in ("masscan.json", "masscan.txt", "masscan.xml"):
        found = open_ports(scans[name])
        assert found and found <= truth, name


@pytest.mark.parametrize("other", ["nmap.xml", "nmap-sv.xml", "hilos.xml"])
def test_hilos_and_nmap_scans_of_the_same_hosts_show_no_change(scans: Files, other: str) -> None:
    # Both ways round, JSON Lines against XML: no host, port or service change.
    hilos = load_scan(str(scans["hilos.jsonl"]))
    theirs = load_scan(str(scans[other]))
    assert diff_runs(hilos, theirs) == []
    assert diff_runs(theirs, hilos) == []


def test_diff_cli_between_tools(scans: Files) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hilos",
            "diff",
            str(scans["nmap-sv.xml"]),
            str(scans["hilos.jsonl"]),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def _page(scans: Files, tmp_path: Path, names: list[str]) -> Callable[[str], list[list[str]]]:
    page = tmp_path / "lab.html"
    page.write_text(render_html(load_scans([str(scans[n]) for n in names])), encoding="utf-8")
    return lambda fragment: rows(dump_dom(page, fragment))


def test_every_open_port_of_a_lab_scan_is_in_the_browser_table(
    scans: Files, tmp_path: Path
) -> None:
    table = _page(scans, tmp_path, ["hilos.jsonl"])
    shown = {(r[0].split()[0], int(r[1].split("/")[0])) for r in table("state=open&size=all")}
    assert shown == open_ports(scans["hilos.jsonl"])
    ssh = table("filter=openssh&size=all")
    assert ssh and all("OpenSSH" in r[4] for r in ssh)
    assert {r[0].split()[0] for r in table("port=1110")} == {"198.18.0.4"}


def test_merged_report_of_every_tool(scans: Files, tmp_path: Path) -> None:
    table = _page(scans, tmp_path, list(scans))
    shown = {(r[0].split()[0], int(r[1].split("/")[0])) for r in table("state=open&size=all")}
    assert shown == open_ports(scans["hilos.jsonl"])


def test_the_lab_hostile_hosts_page(lab: Lab, tmp_path: Path) -> None:
    # 198.18.0.3 answers with terminal escapes (23) and echoes the probe back (27017).
    page = tmp_path / "hostile.html"
    proc = lab.run(
        [
            sys.executable,
            "-m",
            "hilos",
            "scan",
            "198.18.0.3",
            "-p",
            "22,23,27017",
            "--banners",
            "-q",
            "--format",
            "html",
            "-o",
            str(page),
        ],
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    text = page.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\x07" not in text
    dom = dump_dom(page, "size=all")
    assert "\x1b" not in dom and "\x9b" not in dom
    assert {r[1] for r in rows(dom)} >= {"22/tcp", "23/tcp", "27017/tcp"}
