"""hilos.output.html: --format html keeps the results and writes the report page at close."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from helpers_report import host, port
from hilos.output import open_outputs, plan_outputs
from hilos.results import HostResult


def page_hosts(text: str) -> list[list[object]]:
    data = re.search(r'<script type="application/json" id="scan-data">(.*?)</script>', text)
    assert data is not None
    hosts: list[list[object]] = json.loads(data.group(1))["hosts"]
    return hosts


def test_scan_page_written_at_close(tmp_path: Path) -> None:
    path = tmp_path / "r.html"
    out = open_outputs(
        "scan",
        None,
        [str(path)],
        None,
        show_all=False,
        stdout=io.StringIO(),
        meta={"args": "hilos scan 198.18.0.1-2 <x>", "start": 1700000000.0},
    )
    out.write(host("198.18.0.1", port(22, service="ssh"), port(23, "closed", reason="reset")))
    out.write(host("198.18.0.2", status="down"))
    assert path.read_text() == ""  # nothing until the run ends: a page is one document
    out.close({"addresses": 2, "up": 1, "elapsed": 0.5})
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</html>\n")
    assert "<b>2</b><span>targets</span>" in text and "hilos scan 198.18.0.1-2 &lt;x&gt;" in text
    # Closed ports and down hosts left out unless --all, as in JSON Lines.
    assert [(h[0], [p[0] for p in h[4]]) for h in page_hosts(text)] == [("198.18.0.1", [22])]  # type: ignore[union-attr]


def test_sweep_page_and_interrupted_run(tmp_path: Path) -> None:
    path = tmp_path / "s.html"
    out = open_outputs(
        "sweep", ["html"], [str(path)], None, show_all=True, stdout=io.StringIO(), meta={}
    )
    out.write(HostResult("198.18.0.1", "up", "echo-reply", 0.3))
    out.write(HostResult("198.18.0.9", "down", "no-response"))
    out.close(error="interrupted")
    text = path.read_text()
    assert [(h[0], h[2]) for h in page_hosts(text)] == [
        ("198.18.0.1", "up"),
        ("198.18.0.9", "down"),
    ]
    assert "did not finish" in text


def test_html_by_extension_and_not_in_oa() -> None:
    first = plan_outputs("scan", None, ["a.html"], None)[0]
    assert (first.format, first.path) == ("html", "a.html")
    assert all(s.format != "html" for s in plan_outputs("scan", None, None, "base"))
