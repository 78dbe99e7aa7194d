"""hilos.report readers: every format detected from content, strings cleaned, bad files refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from helpers_report import host, port
from hilos.errors import InputError, UsageError
from hilos.output import open_outputs
from hilos.report import detect_format, load_scan, load_scans, merge_runs, parse_scan
from hilos.report.model import ScanRun

NMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<?xml-stylesheet href="file:///usr/share/nmap/nmap.xsl" type="text/xsl"?>
<nmaprun scanner="nmap" args="nmap -sT -sV -p 22,80 198.18.0.1-2" start="1700000000"
 version="7.93" xmloutputversion="1.05">
<scaninfo type="connect" protocol="tcp" numservices="2" services="22,80"/>
<hosthint><status state="up" reason="unknown-response" reason_ttl="0"/>
<address addr="198.18.0.1" addrtype="ipv4"/></hosthint>
<host starttime="1700000000" endtime="1700000001"><status state="up" reason="echo-reply"/>
<address addr="198.18.0.1" addrtype="ipv4"/><address addr="02:00:00:00:00:01" addrtype="mac"/>
<hostnames><hostname name="h1.lab.test" type="PTR"/></hostnames>
<ports><extraports state="closed" count="1"/>
<port protocol="tcp" portid="22"><state state="open" reason="syn-ack" reason_ttl="0"/>
<service name="ssh" product="OpenSSH" version="9.2p1" extrainfo="protocol 2.0" method="probed"
 conf="10"/></port>
<port protocol="tcp" portid="443"><state state="open" reason="syn-ack" reason_ttl="0"/>
<service name="http" product="Apache httpd" tunnel="ssl" method="probed" conf="10"/>
<script id="banner" output="hello"/></port>
</ports><times srtt="1500" rttvar="700" to="100000"/></host>
<host><status state="down" reason="no-response"/><address addr="198.18.0.2" addrtype="ipv4"/>
</host>
<runstats><finished time="1700000012" elapsed="12.00" exit="success"/>
<hosts up="1" down="1" total="2"/></runstats>
</nmaprun>
"""

MASSCAN_JSON = """[
{   "ip": "198.18.0.1",   "timestamp": "1700000000", "ports": [ {"port": 22, "proto": "tcp",
 "status": "open", "reason": "syn-ack", "ttl": 63} ] }
,
{   "ip": "198.18.0.1",   "timestamp": "1700000000", "ports": [ {"port": 80, "proto": "tcp",
 "service": {"name": "http", "banner": "HTTP/1.0 200 OK\\r\\nServer: x"} } ] }
,
{   "ip": "198.18.0.2",   "timestamp": "1700000000", "ports": [ {"port": 22, "proto": "tcp",
 "status": "open", "reason": "syn-ack", "ttl": 63} ] },
]
"""

MASSCAN_LIST = """#masscan
open tcp 22 198.18.0.1 1700000000
open tcp 80 198.18.0.1 1700000000
banner tcp 22 198.18.0.1 1700000001 ssh SSH-2.0-OpenSSH_9.2p1
open tcp 22 198.18.0.2 1700000000
# end
"""

HILOS_JSONL = (
    '{"host": "198.18.0.1", "status": "up", "ports": [{"port": 22, "proto": "tcp", '
    '"state": "open", "reason": "syn-ack", "service": "ssh", "product": "OpenSSH", '
    '"version": "9.2p1", "banner": "SSH-2.0-OpenSSH_9.2p1", "tls": false}]}\n'
    '{"host": "198.18.0.9", "status": "up", "reason": "echo-reply", "rtt_ms": 0.5}\n'
)


def write(tmp_path: Path, name: str, text: str | bytes) -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (NMAP_XML, "xml"),
        (MASSCAN_JSON, "masscan-json"),
        (MASSCAN_LIST, "masscan-list"),
        ("open tcp 22 198.18.0.1 1700000000\n", "masscan-list"),
        (HILOS_JSONL, "hilos-jsonl"),
        ('{"ip": "198.18.0.1", "ports": []}\n', "masscan-json"),
        ("", "hilos-jsonl"),
    ],
)
def test_format_is_detected_from_content(text: str, fmt: str) -> None:
    assert detect_format(text) == fmt


def test_the_extension_is_not_looked_at(tmp_path: Path) -> None:
    run = load_scan(write(tmp_path, "scan.jsonl", NMAP_XML))
    assert run.tool == "nmap" and run.format == "nmap-xml"


def test_nmap_xml(tmp_path: Path) -> None:
    run = load_scan(write(tmp_path, "n.xml", NMAP_XML))
    assert run.tool == "nmap"
    assert run.args == "nmap -sT -sV -p 22,80 198.18.0.1-2"
    assert (run.start, run.end, run.elapsed, run.targets) == (1700000000, 1700000012, 12.0, 2)
    assert run.complete
    assert [h.host for h in run.hosts] == ["198.18.0.1", "198.18.0.2"]  # hosthint ignored
    up, down = run.hosts
    assert (up.status, up.hostname, up.rtt_ms, down.status) == ("up", "h1.lab.test", 1.5, "down")
    ssh, https = up.ports
    assert (ssh.port, ssh.state, ssh.service, ssh.product, ssh.version) == (
        22,
        "open",
        "ssh",
        "OpenSSH",
        "9.2p1",
    )
    assert (https.port, https.tls, https.banner) == (443, True, "hello")


def test_cut_short_xml_keeps_complete_hosts(tmp_path: Path) -> None:
    cut = NMAP_XML[: NMAP_XML.index('<host><status state="down"') + 30]
    run = load_scan(write(tmp_path, "cut.xml", cut))
    assert not run.complete
    assert [h.host for h in run.hosts] == ["198.18.0.1"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><nmaprun>&a;</nmaprun>', "ENTITY"),
        ("<html><body>hi</body></html>", "not a scan"),
        ("<nmaprun><host></nmaprun>", "not well-formed"),
        ("<nmaprun", "not well-formed"),
        ("<nmaprun><host>\n", "not well-formed"),
        ("not a scan at all\n", "not a scan file"),
        ('{"host": "198.18.0.1", "status": "up"}\n{"host": \n', "line 2"),
        ('{"host": "not-an-ip", "status": "up"}\n', "not an IP address"),
        ('{"host": "198.18.0.1", "status": "sideways"}\n', "host status"),
        (
            '{"host": "198.18.0.1", "status": "up", "ports": [{"port": 99999, "state": "open"}]}\n',
            "out of range",
        ),
        ('[{"ip": "198.18.0.1", "ports": [', "not masscan JSON"),
        ("#masscan\nopen tcp x 198.18.0.1 0\n", "line 2"),
    ],
)
def test_corrupt_content_is_one_input_error(tmp_path: Path, text: str, words: str) -> None:
    path = write(tmp_path, "bad.xml", text)
    with pytest.raises(InputError) as info:
        load_scan(path)
    message = str(info.value)
    assert message.startswith(path) and words in message and "\n" not in message
    assert isinstance(info.value, UsageError)  # the CLI exits 2


def test_missing_directory_and_binary_files(tmp_path: Path) -> None:
    for path, words in [
        (str(tmp_path / "nope.xml"), "no such file"),
        (str(tmp_path), "is a directory"),
        (write(tmp_path, "bin", b"\x89PNG\r\n\x1a\n\xff\xfe\x00"), "not a text file"),
    ]:
        with pytest.raises(InputError, match=words):
            load_scan(path)


def test_masscan_json_with_banner_records() -> None:
    run = parse_scan(MASSCAN_JSON)
    assert run.tool == "masscan" and run.format == "masscan-json"
    one = next(h for h in run.hosts if h.host == "198.18.0.1")
    assert [(p.port, p.state) for p in one.ports] == [(22, "open"), (80, "open")]
    assert one.ports[1].service == "http"
    assert one.ports[1].banner == "HTTP/1.0 200 OK Server: x"  # CR LF cleaned to one space
    assert parse_scan('{"ip": "198.18.0.5", "ports": [{"port": 8080}]}\n').open_ports == 1


def test_masscan_list_with_banner_lines() -> None:
    run = parse_scan(MASSCAN_LIST)
    assert {(h.host, p.port) for h in run.hosts for p in h.open_ports} == {
        ("198.18.0.1", 22),
        ("198.18.0.1", 80),
        ("198.18.0.2", 22),
    }
    ssh = run.hosts[0].ports[0]
    assert (ssh.service, ssh.banner) == ("ssh", "SSH-2.0-OpenSSH_9.2p1")


def test_hilos_jsonl_scan_and_sweep_lines() -> None:
    run = parse_scan(HILOS_JSONL)
    assert run.tool == "hilos" and run.targets is None
    scanned, swept = run.hosts
    assert scanned.ports[0].product == "OpenSSH"
    assert (swept.host, swept.ports, swept.rtt_ms, swept.reason) == (
        "198.18.0.9",
        (),
        0.5,
        "echo-reply",
    )


def test_empty_file_is_a_scan_without_hosts(tmp_path: Path) -> None:
    run = load_scan(write(tmp_path, "empty.jsonl", ""))
    assert run.hosts == () and run.tool == "hilos"


def test_hostile_strings_are_cleaned() -> None:
    line = json.dumps(
        {
            "host": "198.18.0.3",
            "status": "up",
            "hostname": "evil\x1b]0;title\x07.test",
            "ports": [
                {
                    "port": 23,
                    "state": "open",
                    "reason": "syn-ack",
                    "service": "tel\x00net",
                    "banner": "\x1b[2J<script>alert(1)</script>\r\nline2\x9b31m",
                }
            ],
        }
    )
    run = parse_scan(line + "\n")
    h = run.hosts[0]
    assert h.hostname == "evil.test"
    assert h.ports[0].service == "telnet"
    # Control characters and escapes go; markup stays as text (the HTML page escapes it).
    assert h.ports[0].banner == "<script>alert(1)</script> line2"


def _through_hilos_writers(tmp_path: Path) -> list[str]:
    results = [
        host(
            "198.18.0.1",
            port(22, service="ssh", product="OpenSSH", version="9.2p1", banner="SSH-2.0-x"),
            port(443, service="https", tls=True),
            port(135, "filtered", reason="no-response"),
            port(23, "closed", reason="conn-refused"),
            rtt_ms=0.25,
        ),
        host("fd18:0:0:100::1", port(80, service="http")),
    ]
    paths = [str(tmp_path / "h.jsonl"), str(tmp_path / "h.xml")]
    out = open_outputs(
        "scan",
        ["json", "xml"],
        paths,
        None,
        show_all=False,
        stdout=io.StringIO(),
        meta={"args": "hilos scan 198.18.0.1", "start": 1700000000.0, "ports": (22, 23)},
    )
    for r in results:
        out.write(r)
    out.close({"addresses": 2, "up": 2, "elapsed": 1.5})
    return paths


def test_hilos_files_read_back_as_written(tmp_path: Path) -> None:
    jsonl, xml = (load_scan(p) for p in _through_hilos_writers(tmp_path))
    assert xml.tool == "hilos" and xml.args == "hilos scan 198.18.0.1" and xml.targets == 2
    assert xml.elapsed == 1.5
    for run in (jsonl, xml):
        first = run.hosts[0]
        # Closed ports are left out by both writers (as nmap does): the rest reads back.
        assert [(p.port, p.state) for p in first.ports] == [
            (22, "open"),
            (135, "filtered"),
            (443, "open"),
        ]
        ssh = first.ports[0]
        assert (ssh.service, ssh.product, ssh.version, ssh.banner) == (
            "ssh",
            "OpenSSH",
            "9.2p1",
            "SSH-2.0-x",
        )
        assert first.ports[2].tls and run.hosts[1].host == "fd18:0:0:100::1"


def test_load_scans_merges_by_address(tmp_path: Path) -> None:
    a = write(tmp_path, "a.xml", NMAP_XML)
    b = write(tmp_path, "b.txt", MASSCAN_LIST)
    run = load_scans([a, b])
    assert run.tool == "nmap+masscan" and run.sources == (a, b)
    one = next(h for h in run.hosts if h.host == "198.18.0.1")
    assert [p.port for p in one.open_ports] == [22, 80, 443]
    assert next(h for h in run.hosts if h.host == "198.18.0.2").status == "up"
    with pytest.raises(InputError):
        load_scans([])


def test_merge_keeps_open_and_counts_overlapping_targets_once() -> None:
    old = ScanRun((host("198.18.0.1", port(22)),), targets=4, elapsed=1.0)
    new = ScanRun((host("198.18.0.1", port(22, "closed")),), targets=4, elapsed=2.0)
    merged = merge_runs([old, new])
    assert merged.hosts[0].ports[0].state == "open"
    assert (merged.targets, merged.elapsed) == (4, 3.0)
    other = ScanRun((host("198.18.0.2"),), targets=4)
    assert merge_runs([old, other]).targets == 8


MASSCAN_XML = """<?xml version="1.0"?>
<!-- masscan v1.3 scan -->
<nmaprun scanner="masscan" start="1700000000" version="1.0-BETA"  xmloutputversion="1.03">
<scaninfo type="syn" protocol="tcp" />
<host endtime="1700000001"><address addr="198.18.0.1" addrtype="ipv4"/><ports><port protocol="tcp"
 portid="22"><state state="open" reason="syn-ack" reason_ttl="63"/></port></ports></host>
<runstats>
<finished time="1700000011" timestr="2023-11-14 22:13:31" elapsed="11" />
<hosts up="1" down="0" total="1" />
</runstats>
</nmaprun>
"""


def test_masscan_xml_hosts_are_up() -> None:
    # masscan -oX writes no <status>: a host it lists answered.
    run = parse_scan(MASSCAN_XML)
    assert (run.tool, run.format, run.hosts_up, run.open_ports) == ("masscan", "masscan-xml", 1, 1)
