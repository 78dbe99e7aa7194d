"""Host names, partial hosts and failing outputs in every writer (constructed results only)."""

from __future__ import annotations

import csv
import errno
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from libnmap.parser import NmapParser

from hilos.output import OutputError, open_outputs
from hilos.results import HostResult, PortResult, ScanHostResult

SSH = PortResult(22, "open", "syn-ack", service="ssh")
NAMED = ScanHostResult("127.0.0.1", "up", "localhost-response", (SSH,), None, hostname="localhost")
PARTIAL = ScanHostResult("127.0.0.2", "up", "syn-ack", (SSH,), 0.3, complete=False)


def _render(fmt: str, kind: str, *results: object, path: Path | None = None) -> str:
    buf = io.StringIO()
    paths = [str(path)] if path is not None else None
    with open_outputs(kind, [fmt], paths, None, show_all=False, stdout=buf, meta={}) as out:  # type: ignore[arg-type]
        for r in results:
            out.write(r)  # type: ignore[arg-type]
    return path.read_text() if path is not None else buf.getvalue()


# --- host names ----------------------------------------------------------------------------


def test_text_report_names_the_host_as_nmap_does() -> None:
    text = _render("text", "scan", NAMED)
    assert "hilos scan report for localhost (127.0.0.1)" in text
    sweep = _render("text", "sweep", HostResult("127.0.0.1", "up", "echo-reply", 0.1, "localhost"))
    assert sweep.splitlines()[0].startswith("127.0.0.1 ") and "(localhost)" in sweep


def test_xml_hostnames_element(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    _render("xml", "scan", NAMED, path=path)
    (name,) = ET.parse(path).getroot().findall("host/hostnames/hostname")
    assert name.attrib == {"name": "localhost", "type": "user"}
    assert NmapParser.parse_fromfile(str(path)).hosts[0].hostnames == ["localhost"]


def test_grepable_host_field_has_the_name() -> None:
    lines = _render("grep", "scan", NAMED).splitlines()[1:]  # after the header
    assert lines[0] == "Host: 127.0.0.1 (localhost)\tStatus: Up"
    unnamed = _render("grep", "scan", PARTIAL.__class__("127.0.0.3", "up", ports=(SSH,)))
    assert unnamed.splitlines()[1].startswith("Host: 127.0.0.3 ()\t")


def test_json_hostname_key_only_for_named_targets() -> None:
    obj = json.loads(_render("json", "scan", NAMED))
    assert list(obj) == ["host", "hostname", "status", "ports"]
    assert obj["hostname"] == "localhost"
    obj = json.loads(_render("json", "sweep", HostResult("::1", "up", "echo-reply", 0.1, "ip6")))
    assert obj["hostname"] == "ip6"


def test_csv_hostname_column() -> None:
    rows = list(csv.DictReader(io.StringIO(_render("csv", "scan", NAMED))))
    assert [(r["host"], r["hostname"], r["status"], r["port"]) for r in rows] == [
        ("127.0.0.1", "localhost", "up", "22")
    ]


def test_a_hostile_name_is_cleaned_everywhere(tmp_path: Path) -> None:
    evil = ScanHostResult("127.0.0.1", "up", ports=(SSH,), hostname="x\x1b[2J)\tStatus: Down")
    assert "\x1b" not in _render("text", "scan", evil)
    grep = _render("grep", "scan", evil).splitlines()[1]
    assert grep.count("\t") == 1 and grep.endswith("Status: Up")
    path = tmp_path / "e.xml"
    _render("xml", "scan", evil, path=path)
    ET.parse(path)  # still well-formed


# --- hosts an interrupted scan had not finished ---------------------------------------------


def test_partial_host_marked_in_json_only_when_partial() -> None:
    objs = [json.loads(x) for x in _render("json", "scan", PARTIAL, NAMED).splitlines()]
    assert objs[0]["complete"] is False
    assert "complete" not in objs[1]


def test_partial_host_commented_in_text_xml_and_grepable(tmp_path: Path) -> None:
    text = _render("text", "scan", PARTIAL, NAMED)
    first, second = text.split("\n\n")[:2]
    assert "not completed" in first and "not completed" not in second
    path = tmp_path / "p.xml"
    _render("xml", "scan", PARTIAL, NAMED, path=path)
    raw = path.read_text()
    assert raw.count("not completed") == 1
    assert raw.index("not completed") < raw.index('addr="127.0.0.2"')
    assert len(NmapParser.parse_fromfile(str(path)).hosts) == 2
    grep = _render("grep", "scan", PARTIAL)
    assert grep.splitlines()[1].startswith("# 127.0.0.2: scan not completed")


# --- failing outputs -----------------------------------------------------------------------


class _Full(io.StringIO):
    """A stream on a full disk: a flush with data pending fails as on /dev/full."""

    def flush(self) -> None:
        if self.getvalue():
            raise OSError(errno.ENOSPC, "No space left on device")


def test_full_stdout_is_one_output_error_and_files_still_close(tmp_path: Path) -> None:
    xml_path = tmp_path / "a.xml"
    out = open_outputs(
        "scan", ["xml", "text"], [str(xml_path)], None, show_all=False, stdout=_Full(), meta={}
    )
    with pytest.raises(OutputError) as info:
        out.write(NAMED)
    assert str(info.value) == "writing stdout: No space left on device"
    out.close(error="failed")  # no second error from the broken output
    root = ET.parse(xml_path).getroot()  # the file is a closed document
    finished = root.find("runstats/finished")
    assert finished is not None
    assert finished.get("errormsg") == "writing stdout: No space left on device"


def test_dev_full_file_fails_at_open_with_the_path() -> None:
    with pytest.raises(OutputError, match=r"^writing /dev/full: No space left on device$"):
        open_outputs(
            "scan", ["xml"], ["/dev/full"], None, show_all=False, stdout=io.StringIO(), meta={}
        )


def test_failed_close_gives_the_reason_of_the_exception_being_handled(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    out = open_outputs(
        "scan", ["xml"], [str(path)], None, show_all=False, stdout=io.StringIO(), meta={}
    )
    try:
        raise RuntimeError("the receiver thread died")
    except RuntimeError:
        out.close(error="failed")
    finished = ET.parse(path).getroot().find("runstats/finished")
    assert finished is not None and finished.get("errormsg") == "the receiver thread died"


def test_failed_run_writes_no_interrupted_trailer_on_stdout(tmp_path: Path) -> None:
    buf = io.StringIO()
    path = tmp_path / "r.nmap"
    out = open_outputs(
        "scan", ["text", "text"], [str(path), "-"], None, show_all=False, stdout=buf, meta={}
    )
    out.write(NAMED)
    out.close(error="no route")
    assert "interrupted" not in buf.getvalue() and "hilos done" not in buf.getvalue()
    assert path.read_text().splitlines()[-1].startswith("# hilos failed (no route): 1 IP")


# --- sweeps in nmap's formats (nmap -sn -oX / -oG) -------------------------------------------


def test_sweep_xml_has_hosts_without_ports(tmp_path: Path) -> None:
    path = tmp_path / "s.xml"
    up = HostResult("127.0.0.1", "up", "echo-reply", 0.2, "localhost")
    _render("xml", "sweep", up, path=path)
    root = ET.parse(path).getroot()
    assert root.find("scaninfo") is None  # nmap -sn writes none
    (host,) = root.findall("host")
    assert host.find("ports") is None and host.find("times") is not None
    assert host.find("status").attrib["reason"] == "echo-reply"  # type: ignore[union-attr]
    report = NmapParser.parse_fromfile(str(path))
    assert [(h.address, h.status, h.hostnames) for h in report.hosts] == [
        ("127.0.0.1", "up", ["localhost"])
    ]


def test_sweep_grepable_is_one_status_line_per_host() -> None:
    text = _render("grep", "sweep", HostResult("127.0.0.1", "up", "echo-reply", 0.2))
    assert text.splitlines()[1:-1] == ["Host: 127.0.0.1 ()\tStatus: Up"]


def test_failed_close_during_an_interrupt_says_interrupted(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    out = open_outputs(
        "scan", ["xml"], [str(path)], None, show_all=False, stdout=io.StringIO(), meta={}
    )
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        out.close(error="failed")
    finished = ET.parse(path).getroot().find("runstats/finished")
    assert finished is not None and finished.get("errormsg") == "interrupted"


def test_output_error_is_in_the_error_tree() -> None:
    # One root: `except HilosError` in a library user's code catches a full disk too, and the
    # CLI maps it without importing the writers.
    import hilos.errors as errors
    from hilos.errors import HilosError

    assert OutputError is errors.OutputError and issubclass(OutputError, HilosError)
    assert "OutputError" in (errors.__doc__ or "")
    broken = OutputError("-", BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert (
        broken.broken_pipe and broken.name == "-" and str(broken) == "writing stdout: Broken pipe"
    )
