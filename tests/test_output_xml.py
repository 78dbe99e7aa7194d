"""Tests of the nmap XML writer: python-libnmap reads our documents back, also interrupted ones."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from libnmap.objects import NmapHost, NmapReport
from libnmap.parser import NmapParser

from hilos.output import open_outputs
from hilos.output.xml import compress_ports
from hilos.results import PortResult, ScanHostResult

SSH = PortResult(
    22,
    "open",
    "syn-ack",
    service="ssh",
    product="OpenSSH",
    version="9.2p1",
    banner="SSH-2.0-OpenSSH_9.2p1",
)
HTTP = PortResult(80, "open", "syn-ack", service="http", product="nginx", version="1.22.1")
HTTPS = PortResult(443, "open", "syn-ack", service="https", product="nginx", tls=True)
BARE = PortResult(8443, "open", "syn-ack")  # nothing known but the state
FILTERED = PortResult(9100, "filtered", "no-response", service="jetdirect")
CLOSED = tuple(PortResult(p, "closed", "conn-refused") for p in (1, 2, 3, 7))

V4 = ScanHostResult(
    "198.18.0.1", "up", "syn-ack", (*CLOSED, SSH, HTTP, HTTPS, BARE, FILTERED), 0.42
)
V6 = ScanHostResult("fd18::1", "up", "syn-ack", (*CLOSED[:2], SSH), 1.5)
DOWN = ScanHostResult("198.18.0.9", "down", "no-response")


def write_xml(
    path: Path, results: list[ScanHostResult], show_all: bool = False, **meta: object
) -> None:
    meta.setdefault("args", "hilos scan -p 1-9999 198.18.0.0/24")
    meta.setdefault("ports", tuple(range(1, 10000)))
    with open_outputs(
        "scan", ["xml"], [str(path)], None, show_all=show_all, stdout=io.StringIO(), meta=meta
    ) as out:
        for r in results:
            out.write(r)
        out.close({"addresses": 256, "up": 2, "elapsed": 1.25})


def host_of(report: NmapReport, addr: str) -> NmapHost:
    (host,) = [h for h in report.hosts if h.address == addr]
    return host


def assert_same_host(
    host: NmapHost, result: ScanHostResult, listed: tuple[PortResult, ...]
) -> None:
    assert host.address == result.host
    assert host.status == result.status
    assert sorted(s.port for s in host.services) == sorted(p.port for p in listed)
    for p in listed:
        svc = host.get_service(p.port, "tcp")
        assert svc is not None
        assert svc.state == p.state
        assert svc.reason == p.reason
        assert svc.protocol == "tcp"
        assert svc.service == (p.service or ("unknown" if p.product or p.tls else ""))
        assert svc.service_dict.get("product") == p.product
        assert svc.service_dict.get("version") == p.version
        assert svc.tunnel == ("ssl" if p.tls else "")
        banners = [s["output"] for s in svc.scripts_results if s["id"] == "banner"]
        assert banners == ([p.banner] if p.banner else [])


def test_libnmap_reads_v4_and_v6_hosts_without_closed_ports(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    write_xml(path, [V4, V6, DOWN], scan_type="syn")
    report = NmapParser.parse_fromfile(str(path))
    assert [h.address for h in report.hosts] == ["198.18.0.1", "fd18::1"]  # down host not listed
    v4, v6 = host_of(report, "198.18.0.1"), host_of(report, "fd18::1")
    assert v4.ipv4 == "198.18.0.1" and v6.ipv6 == "fd18::1"
    assert_same_host(v4, V4, tuple(p for p in V4.ports if p.state != "closed"))
    assert_same_host(v6, V6, (SSH,))
    assert v4.extraports_state == {
        "state": {"state": "closed", "count": "4"},
        "count": {"state": "closed", "count": "4"},
    }
    assert v4.extraports_reasons == [
        {"reason": "conn-refused", "count": "4", "proto": "tcp", "ports": "1-3,7"}
    ]
    assert report.scan_type == "syn"
    assert report.numservices == 9999
    assert report.hosts_up == 2 and report.hosts_down == 254 and report.hosts_total == 256
    assert report.elapsed == 1.25
    assert "256 IP addresses (2 hosts up) scanned in 1.25 seconds" in report.summary
    assert report.commandline == "hilos scan -p 1-9999 198.18.0.0/24"
    assert report.is_consistent()


def test_libnmap_reads_closed_ports_and_down_hosts_with_all(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    write_xml(path, [V4, V6, DOWN], show_all=True)
    report = NmapParser.parse_fromfile(str(path))
    assert_same_host(host_of(report, "198.18.0.1"), V4, V4.ports)
    assert_same_host(host_of(report, "fd18::1"), V6, V6.ports)
    down = host_of(report, "198.18.0.9")
    assert down.status == "down" and down.services == []
    assert report.scan_type == "connect"


def test_service_method_and_confidence(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    write_xml(path, [V4])
    svc = {p.get("portid"): p.find("service") for p in ET.parse(path).getroot().iter("port")}
    assert svc["22"] is not None and svc["22"].get("method") == "probed"
    assert svc["22"].get("conf") == "10"
    assert svc["9100"] is not None and svc["9100"].get("method") == "table"
    assert svc["9100"].get("conf") == "3"
    assert svc["8443"] is None


def test_many_filtered_ports_fold_into_extraports(tmp_path: Path) -> None:
    filtered = tuple(PortResult(p, "filtered", "no-response") for p in range(2000, 2030))
    host = ScanHostResult("198.18.0.2", "up", "syn-ack", (SSH, *filtered))
    path = tmp_path / "scan.xml"
    write_xml(path, [host])
    parsed = NmapParser.parse_fromfile(str(path)).hosts[0]
    assert [s.port for s in parsed.services] == [22]
    assert parsed.extraports_state["state"] == {"state": "filtered", "count": "30"}


def test_hostile_strings_are_escaped_and_cleaned(tmp_path: Path) -> None:
    evil = PortResult(
        21,
        "open",
        "syn-ack",
        service="ftp",
        product="Evil <\"&'> \u00e9\u4e2d",
        version="1.0]]>",
        banner="220 <x>&amp;\x00\x1b[31m\x07\udcff\ufffe</nmaprun>",
    )
    host = ScanHostResult("198.18.0.3", "up", "syn-ack", (evil,))
    path = tmp_path / "scan.xml"
    write_xml(path, [host], args="hilos scan -- \x1b]0;t\x07 'x'")
    raw = path.read_bytes()
    assert raw.isascii()
    svc = NmapParser.parse_fromfile(str(path)).hosts[0].get_service(21)
    assert svc.service_dict["product"] == "Evil <\"&'> \u00e9\u4e2d"
    assert svc.service_dict["version"] == "1.0]]>"
    assert svc.scripts_results[0]["output"] == "220 <x>&amp;</nmaprun>"
    assert ET.parse(path).getroot().get("args") == "hilos scan --  'x'"


def test_interrupted_run_still_parses(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    with (
        pytest.raises(KeyboardInterrupt),
        open_outputs(
            "scan", ["xml"], [str(path)], None, show_all=False, stdout=io.StringIO(), meta={}
        ) as out,
    ):
        out.write(V4)
        raise KeyboardInterrupt
    report = NmapParser.parse_fromfile(str(path))
    assert [h.address for h in report.hosts] == ["198.18.0.1"]
    finished = ET.parse(path).getroot().find("runstats/finished")
    assert finished is not None
    assert finished.get("exit") == "error" and finished.get("errormsg") == "interrupted"


def test_killed_run_keeps_every_host_written(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    script = textwrap.dedent(
        f"""
        import io, os, signal
        from hilos.output import open_outputs
        from hilos.results import PortResult, ScanHostResult
        out = open_outputs("scan", ["xml"], [{str(path)!r}], None, show_all=False,
                           stdout=io.StringIO(), meta={{}})
        for i in range(1, 4):
            out.write(ScanHostResult(f"198.18.0.{{i}}", "up", "syn-ack",
                                     (PortResult(22, "open", "syn-ack", service="ssh"),)))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL
    text = path.read_text()
    assert "</nmaprun>" not in text
    report = NmapParser.parse_fromstring(text, incomplete=True)
    assert [h.address for h in report.hosts] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert all(h.get_service(22).open() for h in report.hosts)


def test_header_is_written_at_open(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    out = open_outputs(
        "scan",
        ["xml"],
        [str(path)],
        None,
        show_all=False,
        stdout=io.StringIO(),
        meta={"ports": "1-1024,8080", "scan_type": "connect", "version": "9.9", "start": 1.7e9},
    )
    text = path.read_text()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n')
    report = NmapParser.parse_fromstring(text, incomplete=True)
    assert report.version == "9.9" and report.started == 1_700_000_000
    assert report.numservices == 1025
    out.close()
    root = ET.parse(path).getroot()
    assert root.get("scanner") == "hilos"
    scaninfo = root.find("scaninfo")
    assert scaninfo is not None and scaninfo.get("services") == "1-1024,8080"


def test_times_follow_rfc6298_from_one_sample(tmp_path: Path) -> None:
    path = tmp_path / "scan.xml"
    slow = ScanHostResult("198.18.0.4", "up", "syn-ack", (SSH,), 250.0)
    write_xml(path, [V4, slow])
    times = [h.find("times") for h in ET.parse(path).getroot().iter("host")]
    assert times[0] is not None and times[0].attrib == {
        "srtt": "420",
        "rttvar": "210",
        "to": "100000",
    }
    assert times[1] is not None and times[1].attrib == {
        "srtt": "250000",
        "rttvar": "125000",
        "to": "750000",
    }


@pytest.mark.parametrize(
    ("ports", "spec"),
    [
        ([], ""),
        ([80], "80"),
        ([3, 1, 2, 2], "1-3"),
        ([1, 2, 3, 22, 80, 81, 443], "1-3,22,80-81,443"),
        (range(1, 65536), "1-65535"),
    ],
)
def test_compress_ports(ports: list[int], spec: str) -> None:
    assert compress_ports(ports) == spec
