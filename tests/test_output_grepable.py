"""Tests of the grepable (nmap -oG style) writer."""

from __future__ import annotations

import io
import re

from hilos.output import open_outputs
from hilos.results import PortResult, ScanHostResult

SSH = PortResult(22, "open", "syn-ack", service="ssh", product="OpenSSH", version="9.2p1")
HTTP = PortResult(80, "open", "syn-ack", service="http", product="nginx", version="1.22.1")
HTTPS = PortResult(443, "open", "syn-ack", service="http", product="nginx", tls=True)


def grep_output(results: list[ScanHostResult], show_all: bool = False) -> list[str]:
    buf = io.StringIO()
    meta = {"args": "hilos scan 127.0.0.1", "version": "9.9"}
    with open_outputs("scan", ["grep"], None, None, show_all=show_all, stdout=buf, meta=meta) as o:
        for r in results:
            o.write(r)
        o.close({"addresses": 256, "up": 61, "elapsed": 1.23})
    return buf.getvalue().splitlines()


def test_layout_matches_nmap() -> None:
    closed = tuple(PortResult(p, "closed", "conn-refused") for p in range(1000, 1003))
    lines = grep_output([ScanHostResult("198.18.0.1", "up", "syn-ack", (SSH, HTTP, *closed))])
    assert re.fullmatch(r"# hilos 9\.9 scan initiated .+ as: hilos scan 127\.0\.0\.1", lines[0])
    assert lines[1] == "Host: 198.18.0.1 ()\tStatus: Up"
    assert lines[2] == (
        "Host: 198.18.0.1 ()\tPorts: 22/open/tcp//ssh//OpenSSH 9.2p1/, "
        "80/open/tcp//http//nginx 1.22.1/\tIgnored State: closed (3)"
    )
    assert re.fullmatch(
        r"# hilos done at .+ -- 256 IP addresses \(61 hosts up\) scanned in 1\.23 seconds",
        lines[3],
    )
    assert len(lines) == 4


def test_tls_and_separators_in_versions() -> None:
    odd = PortResult(8080, "open", "syn-ack", service="http-proxy", product="a/b", version="1,2")
    lines = grep_output([ScanHostResult("::1", "up", "syn-ack", (HTTPS, odd))])
    assert lines[2] == (
        "Host: ::1 ()\tPorts: 443/open/tcp//ssl|http//nginx/, 8080/open/tcp//http-proxy//a|b 1;2/"
    )


def test_down_hosts_only_with_all_and_closed_ports_listed_with_all() -> None:
    down = ScanHostResult("198.18.0.9", "down", "no-response")
    assert not any("198.18.0.9" in line for line in grep_output([down]))
    assert "Host: 198.18.0.9 ()\tStatus: Down" in grep_output([down], show_all=True)
    one_closed = ScanHostResult("198.18.0.1", "up", "syn-ack", (PortResult(1, "closed", "reset"),))
    assert "Host: 198.18.0.1 ()\tPorts: 1/closed/tcp/////" in grep_output([one_closed], True)
    assert "Host: 198.18.0.1 ()\tIgnored State: closed (1)" in grep_output([one_closed])


def test_interrupted_trailer() -> None:
    buf = io.StringIO()
    try:
        with open_outputs("scan", ["grep"], None, None, show_all=False, stdout=buf, meta={}) as o:
            o.write(ScanHostResult("198.18.0.1", "up", "syn-ack", (SSH,)))
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    last = buf.getvalue().splitlines()[-1]
    assert last.startswith("# hilos interrupted at ") and "1 IP address (1 host up)" in last
