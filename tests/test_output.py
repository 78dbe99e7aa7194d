"""Tests of hilos.output: the open_outputs rules, OutputSet, text, JSON Lines and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from hilos.errors import UsageError
from hilos.output import open_outputs
from hilos.output.text import format_latency
from hilos.results import HostResult, PortResult, ScanHostResult

SSH = PortResult(
    22,
    "open",
    "syn-ack",
    service="ssh",
    product="OpenSSH",
    version="9.2p1",
    banner="SSH-2.0-OpenSSH_9.2p1\r\n",
)
HTTPS = PortResult(
    443, "open", "syn-ack", service="http", product="nginx", version="1.22.1", tls=True
)
FILTERED = PortResult(8080, "filtered", "no-response")


def closed(*ports: int) -> tuple[PortResult, ...]:
    return tuple(PortResult(p, "closed", "conn-refused") for p in ports)


def scan_host(
    host: str = "127.0.0.1", *ports: PortResult, rtt: float | None = 0.42
) -> ScanHostResult:
    return ScanHostResult(host, "up", "syn-ack", tuple(sorted(ports, key=lambda p: p.port)), rtt)


# --- opening (the planning rules: test_output_plan.py) ------------------------------------


def test_unopenable_file_is_a_usage_error_and_earlier_files_are_closed(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    bad = tmp_path / "missing-dir" / "x.csv"
    with pytest.raises(UsageError, match="cannot write"):
        open_outputs(
            "sweep",
            None,
            [str(good), str(bad)],
            None,
            show_all=False,
            stdout=io.StringIO(),
            meta={},
        )
    assert good.exists()


# --- OutputSet ----------------------------------------------------------------------------


def test_write_checks_the_result_type() -> None:
    out = open_outputs("sweep", None, None, None, show_all=False, stdout=io.StringIO(), meta={})
    with pytest.raises(TypeError):
        out.write(scan_host())  # type: ignore[arg-type]
    out.close()


def test_close_is_idempotent_and_write_after_close_fails() -> None:
    buf = io.StringIO()
    out = open_outputs("sweep", None, None, None, show_all=False, stdout=buf, meta={})
    out.close()
    out.close()
    assert buf.getvalue().count("hilos done") == 1
    with pytest.raises(ValueError):
        out.write(HostResult("127.0.0.1", "up", "echo-reply", 1.0))


def test_summary_falls_back_to_what_was_seen() -> None:
    buf = io.StringIO()
    with open_outputs("sweep", None, None, None, show_all=False, stdout=buf, meta={}) as out:
        out.write(HostResult("127.0.0.1", "up", "echo-reply", 1.0))
        out.write(HostResult("127.0.0.2", "down", "no-response"))
    assert "hilos done: 2 IP addresses (1 host up) scanned in" in buf.getvalue()


def test_summary_from_caller_and_singulars() -> None:
    buf = io.StringIO()
    out = open_outputs("sweep", None, None, None, show_all=False, stdout=buf, meta={})
    out.close({"addresses": 1, "up": 0, "elapsed": 0.5})
    assert buf.getvalue().endswith(
        "hilos done: 1 IP address (0 hosts up) scanned in 0.50 seconds\n"
    )


def test_keyboard_interrupt_inside_with_closes_as_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    buf = io.StringIO()
    with (
        pytest.raises(KeyboardInterrupt),
        open_outputs(
            "sweep", ["json"], [str(path)], None, show_all=False, stdout=buf, meta={}
        ) as o,
    ):
        o.write(HostResult("127.0.0.1", "up", "echo-reply", 1.0))
        raise KeyboardInterrupt
    assert json.loads(path.read_text())["host"] == "127.0.0.1"
    # stdout gets no trailer after an interruption (the CLI says it on stderr): never
    # "hilos interrupted:" mixed into a report someone may be piping on.
    assert "interrupted" not in buf.getvalue()
    assert buf.getvalue().startswith("127.0.0.1 ")


def test_each_result_is_flushed_before_close(tmp_path: Path) -> None:
    paths = [tmp_path / "r.jsonl", tmp_path / "r.csv", tmp_path / "r.txt"]
    out = open_outputs(
        "sweep", None, [str(p) for p in paths], None, show_all=False, stdout=io.StringIO(), meta={}
    )
    out.write(HostResult("127.0.0.1", "up", "echo-reply", 1.0))
    # Read through a separate file object while ours is still open: the data must be there.
    assert json.loads(paths[0].read_text())["host"] == "127.0.0.1"
    assert "127.0.0.1" in paths[1].read_text().splitlines()[1]
    assert "127.0.0.1" in paths[2].read_text()
    out.close()


def test_files_are_closed_stdout_is_not(tmp_path: Path) -> None:
    buf = io.StringIO()
    out = open_outputs(
        "sweep", ["json"], [str(tmp_path / "r.jsonl")], None, show_all=False, stdout=buf, meta={}
    )
    out.close()
    assert not buf.closed
    assert out.paths == [str(tmp_path / "r.jsonl"), "-"]


# --- text ---------------------------------------------------------------------------------


def _text(kind: str, results: list[object], show_all: bool = False) -> str:
    buf = io.StringIO()
    with open_outputs(kind, None, None, None, show_all=show_all, stdout=buf, meta={}) as out:  # type: ignore[arg-type]
        for r in results:
            out.write(r)  # type: ignore[arg-type]
    return buf.getvalue()


def test_sweep_text_lines_are_aligned_and_down_hosts_hidden() -> None:
    text = _text(
        "sweep",
        [
            HostResult("127.0.0.1", "up", "echo-reply", 0.42),
            HostResult("127.0.0.2", "down", "no-response"),
            HostResult("127.0.0.10", "up", "syn-ack", 12.5),
        ],
    )
    lines = text.splitlines()
    assert lines[0].split() == ["127.0.0.1", "up", "echo-reply", "0.42", "ms"]
    assert lines[1].split() == ["127.0.0.10", "up", "syn-ack", "12.50", "ms"]
    assert lines[0].index("up") == lines[1].index("up")
    assert lines[0].index("ms") == lines[1].index("ms")
    assert "127.0.0.2" not in text


def test_sweep_text_show_all_lists_down_hosts() -> None:
    text = _text("sweep", [HostResult("127.0.0.2", "down", "no-response")], show_all=True)
    assert text.splitlines()[0].split() == ["127.0.0.2", "down", "no-response", "-"]


def test_scan_text_report() -> None:
    text = _text("scan", [scan_host("127.0.0.1", SSH, HTTPS, *closed(1, 2, 3))])
    assert text.splitlines()[:7] == [
        "hilos scan report for 127.0.0.1",
        "Host is up (0.00042s latency).",
        "Not shown: 3 closed tcp ports (conn-refused)",
        "PORT    STATE SERVICE  VERSION",
        "22/tcp  open  ssh      OpenSSH 9.2p1",
        "    banner: SSH-2.0-OpenSSH_9.2p1",
        "443/tcp open  ssl/http nginx 1.22.1",
    ]


def test_scan_text_show_all_lists_closed_ports() -> None:
    text = _text("scan", [scan_host("127.0.0.1", SSH, *closed(1))], show_all=True)
    assert "1/tcp  closed unknown" in text and "Not shown" not in text


def test_scan_text_folds_many_filtered_ports_like_nmap() -> None:
    many = tuple(PortResult(p, "filtered", "no-response") for p in range(100, 130))
    text = _text("scan", [scan_host("127.0.0.1", SSH, *many, *closed(1, 2))])
    assert (
        "Not shown: 30 filtered tcp ports (no-response), 2 closed tcp ports (conn-refused)" in text
    )
    few = _text("scan", [scan_host("127.0.0.1", SSH, FILTERED)])
    assert "8080/tcp filtered" in few


def test_scan_text_mixed_reasons() -> None:
    ports = (*closed(1, 2), PortResult(3, "closed", "reset"))
    text = _text("scan", [scan_host("127.0.0.1", SSH, *ports)])
    assert "Not shown: 3 closed tcp ports (2 conn-refused, 1 reset)" in text


def test_scan_text_host_without_listed_ports() -> None:
    text = _text("scan", [scan_host("127.0.0.1", *closed(1, 2), rtt=None)])
    assert "Host is up.\nAll 2 scanned ports on 127.0.0.1 are in ignored states." in text


def test_scan_text_without_versions_has_no_version_column() -> None:
    text = _text(
        "scan", [scan_host("127.0.0.1", PortResult(80, "open", "syn-ack", service="http"))]
    )
    assert "PORT   STATE SERVICE\n80/tcp open  http\n" in text


def test_scan_text_down_host_only_with_all() -> None:
    down = ScanHostResult("127.0.0.9", "down", "no-response")
    assert "127.0.0.9" not in _text("scan", [down])
    assert "Host is down (no-response)." in _text("scan", [down], show_all=True)


def test_text_file_has_a_header_comment(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    out = open_outputs(
        "scan",
        ["text"],
        [str(path)],
        None,
        show_all=False,
        stdout=io.StringIO(),
        meta={"args": "hilos scan 127.0.0.1", "version": "9.9"},
    )
    out.close()
    first = path.read_text().splitlines()[0]
    assert first.startswith("# hilos 9.9 scan initiated ") and first.endswith(
        " as: hilos scan 127.0.0.1"
    )


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0.42, "0.00042s"), (0.042, "0.000042s"), (12.3, "0.012s"), (1500.0, "1.5s")],
)
def test_format_latency(ms: float, text: str) -> None:
    assert format_latency(ms) == text


def test_hostile_banner_never_reaches_the_terminal() -> None:
    evil = PortResult(
        21,
        "open",
        "syn-ack",
        service="ftp",
        product="\x1b[31mEvil",
        banner="220 ok\x1b]52;c;aGk=\x07",
    )
    text = _text("scan", [scan_host("127.0.0.1", evil)])
    assert "\x1b" not in text and "\x07" not in text
    assert "banner: 220 ok" in text and "Evil" in text


# --- JSON Lines ---------------------------------------------------------------------------


def _jsonl(kind: str, results: list[object], show_all: bool = False) -> list[dict[str, object]]:
    buf = io.StringIO()
    with open_outputs(kind, ["json"], None, None, show_all=show_all, stdout=buf, meta={}) as out:  # type: ignore[arg-type]
        for r in results:
            out.write(r)  # type: ignore[arg-type]
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_sweep_json_exact_keys() -> None:
    objs = _jsonl(
        "sweep",
        [
            HostResult("127.0.0.1", "up", "echo-reply", 0.4212345),
            HostResult("::1", "down", "no-response"),
        ],
    )
    assert objs == [{"host": "127.0.0.1", "status": "up", "reason": "echo-reply", "rtt_ms": 0.421}]
    objs = _jsonl("sweep", [HostResult("::1", "down", "no-response")], show_all=True)
    assert objs == [{"host": "::1", "status": "down", "reason": "no-response", "rtt_ms": None}]


def test_scan_json_exact_keys_and_closed_ports_only_with_all() -> None:
    host = scan_host("::1", SSH, HTTPS, FILTERED, *closed(1))
    (obj,) = _jsonl("scan", [host])
    assert list(obj) == ["host", "status", "ports"]
    ports = obj["ports"]
    assert isinstance(ports, list)
    assert [p["port"] for p in ports] == [22, 443, 8080]
    assert ports[0] == {
        "port": 22,
        "proto": "tcp",
        "state": "open",
        "reason": "syn-ack",
        "service": "ssh",
        "product": "OpenSSH",
        "version": "9.2p1",
        "banner": "SSH-2.0-OpenSSH_9.2p1",
        "tls": False,
    }
    assert ports[1]["tls"] is True
    (obj,) = _jsonl("scan", [host], show_all=True)
    assert [p["port"] for p in obj["ports"]] == [1, 22, 443, 8080]  # type: ignore[union-attr]


def test_json_has_no_summary_object() -> None:
    buf = io.StringIO()
    out = open_outputs("sweep", ["json"], None, None, show_all=False, stdout=buf, meta={})
    out.close({"addresses": 10, "up": 0, "elapsed": 1.0})
    assert buf.getvalue() == ""


def test_json_banner_is_cleaned_and_ascii() -> None:
    port = PortResult(80, "open", "syn-ack", banner="caf\u00e9\x1b[2J\x00 ok")
    (obj,) = _jsonl("scan", [scan_host("127.0.0.1", port)])
    assert obj["ports"][0]["banner"] == "caf\u00e9 ok"  # type: ignore[index]


# --- CSV ----------------------------------------------------------------------------------


def _csv(kind: str, results: list[object], show_all: bool = False) -> list[list[str]]:
    buf = io.StringIO()
    with open_outputs(kind, ["csv"], None, None, show_all=show_all, stdout=buf, meta={}) as out:  # type: ignore[arg-type]
        for r in results:
            out.write(r)  # type: ignore[arg-type]
    return list(csv.reader(io.StringIO(buf.getvalue())))


def test_sweep_csv() -> None:
    rows = _csv(
        "sweep",
        [
            HostResult("127.0.0.1", "up", "echo-reply", 0.42),
            HostResult("127.0.0.1", "up", "localhost-response", None, hostname="localhost"),
        ],
    )
    assert rows == [
        ["host", "hostname", "status", "reason", "rtt_ms"],
        ["127.0.0.1", "", "up", "echo-reply", "0.420"],
        ["127.0.0.1", "localhost", "up", "localhost-response", ""],
    ]


def test_scan_csv_one_row_per_port_and_empty_port_rows() -> None:
    rows = _csv("scan", [scan_host("127.0.0.1", SSH, HTTPS, *closed(1)), scan_host("127.0.0.2")])
    assert rows[0] == [
        "host",
        "hostname",
        "status",
        "port",
        "proto",
        "state",
        "reason",
        "service",
        "product",
        "version",
        "tls",
        "banner",
    ]
    assert rows[1] == [
        "127.0.0.1",
        "",
        "up",
        "22",
        "tcp",
        "open",
        "syn-ack",
        "ssh",
        "OpenSSH",
        "9.2p1",
        "false",
        "SSH-2.0-OpenSSH_9.2p1",
    ]
    assert rows[2][:4] == ["127.0.0.1", "", "up", "443"] and rows[2][10] == "true"
    # A host without a listed port: its status in the status column, the port columns empty
    # (earlier versions wrote "up" in the port's state column).
    assert rows[3] == ["127.0.0.2", "", "up", "", "", "", "", "", "", "", "", ""]
    assert len(rows) == 4


def test_csv_quotes_commas_and_defuses_formulas() -> None:
    port = PortResult(80, "open", "syn-ack", product='=HYPERLINK("x")', banner='a, "b"')
    rows = _csv("scan", [scan_host("127.0.0.1", port)])
    assert rows[1][8] == '\'=HYPERLINK("x")'
    assert rows[1][11] == 'a, "b"'


def test_public_api() -> None:
    import hilos.output as output

    assert sorted(output.__all__) == [
        "FORMATS",
        "OutputError",
        "OutputSet",
        "OutputSpec",
        "Summary",
        "formats_for",
        "open_outputs",
        "plan_outputs",
    ]
    assert all(hasattr(output, name) for name in output.__all__)


def test_oa_writes_five_consistent_files_and_text_to_stdout(tmp_path: Path) -> None:
    from libnmap.parser import NmapParser

    base = tmp_path / "run"
    buf = io.StringIO()
    hosts = [scan_host("127.0.0.1", SSH, HTTPS, *closed(1, 2)), scan_host("::1", SSH, rtt=None)]
    with open_outputs(
        "scan", None, None, str(base), show_all=False, stdout=buf, meta={"ports": (1, 2, 22, 443)}
    ) as out:
        for h in hosts:
            out.write(h)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "run.csv",
        "run.gnmap",
        "run.jsonl",
        "run.nmap",
        "run.xml",
    ]
    assert "hilos scan report for ::1" in buf.getvalue()
    assert (tmp_path / "run.nmap").read_text().splitlines()[1:] == buf.getvalue().splitlines()
    objs = [json.loads(x) for x in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [o["host"] for o in objs] == ["127.0.0.1", "::1"]
    rows = list(csv.DictReader((tmp_path / "run.csv").open(newline="")))
    assert [(r["host"], r["port"]) for r in rows] == [
        ("127.0.0.1", "22"),
        ("127.0.0.1", "443"),
        ("::1", "22"),
    ]
    report = NmapParser.parse_fromfile(str(tmp_path / "run.xml"))
    assert [(h.address, [s.port for s in h.services]) for h in report.hosts] == [
        ("127.0.0.1", [22, 443]),
        ("::1", [22]),
    ]
    gnmap = (tmp_path / "run.gnmap").read_text()
    assert "Host: ::1 ()\tPorts: 22/open/tcp//ssh//OpenSSH 9.2p1/" in gnmap


def test_scan_text_latency_below_clock_resolution_and_unknown() -> None:
    zero = _text("scan", [ScanHostResult("127.0.0.1", "up", "syn-ack", (), 0.0)])
    assert "Host is up (<0.001s latency)." in zero.splitlines()
    unknown = _text("scan", [ScanHostResult("127.0.0.1", "up", "user-set", (), None)])
    assert "Host is up." in unknown.splitlines()
