"""hilos.report.html: escaping, and the page in headless Chromium (filters, hostile text)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest

from helpers_report import browse, dump_dom, host, port, run_of
from hilos.report.html import render_html, script_json
from hilos.report.page import SCRIPT

PWN = "document.title='pwned';document.body.setAttribute('data-pwned','1')"
HOSTILE = {
    "banner": f"<script>{PWN}</script>",
    "product": f'"><img src=x onerror="{PWN}">',
    "service": f"</script><script>{PWN}</script>",
    "hostname": f'<svg onload="{PWN}">',
    "args": f"hilos scan <script>{PWN}</script> \x1b]0;title\x07",
}


def rows(dom: str) -> list[list[str]]:
    """The table's rows as the browser rendered them: [host, port, state, service, ...]."""
    body = dom.split('<tbody id="rows">', 1)[1].split("</tbody>", 1)[0]
    out = []
    for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)
        out.append([re.sub(r"<[^>]+>", " ", c).strip() for c in cells])
    return out


def sample_run() -> object:
    return run_of(
        host(
            "198.18.0.1",
            port(22, service="ssh", product="OpenSSH", version="9.2p1", banner="SSH-2.0-OpenSSH"),
            port(80, service="http", product="nginx"),
            port(135, "filtered", reason="no-response", service="msrpc"),
            hostname="h1.lab.test",
            rtt_ms=0.4,
        ),
        host("198.18.0.2", port(22, service="ssh"), port(443, service="https", tls=True)),
        host("198.18.0.10", port(8080, service="http")),
        host("198.18.0.3"),
        targets=4,
        elapsed=1.25,
        args="hilos scan 198.18.0.1-4",
    )


def hostile_run() -> object:
    return run_of(
        host(
            "198.18.0.3",
            port(
                23,
                service=HOSTILE["service"],
                product=HOSTILE["product"],
                banner=HOSTILE["banner"] + "\u2028\x1b[2Jtail",
            ),
            hostname=HOSTILE["hostname"],
        ),
        args=HOSTILE["args"],
        source="<b>bold</b>.jsonl",
    )


def test_script_json_cannot_end_the_script_element() -> None:
    text = script_json({"a": "</script><!-- & \u2028\u2029 é"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text and text.isascii()
    assert json.loads(text) == {"a": "</script><!-- & \u2028\u2029 é"}


def test_every_hostile_string_is_escaped_in_the_markup() -> None:
    page = render_html(hostile_run())  # type: ignore[arg-type]
    assert page.count("<script") == 2  # the JSON data block and the page's own script
    assert "<img" not in page and "<svg onload" not in page and "<b>bold" not in page
    assert "&lt;script&gt;" in page  # the command line, shown as text
    assert "\x1b" not in page and "\u2028" not in page


def test_the_policy_allows_only_the_pages_own_script() -> None:
    page = render_html(sample_run())  # type: ignore[arg-type]
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    assert f"script-src &#x27;sha256-{digest}&#x27;" in page
    assert "default-src &#x27;none&#x27;" in page
    assert f"<script>{SCRIPT}</script>" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page


def test_summary_and_charts() -> None:
    page = render_html(sample_run())  # type: ignore[arg-type]
    for text in (
        "<b>4</b><span>targets</span>",
        "<b>4</b><span>hosts up</span>",
        "<b>5</b><span>open ports</span>",
        "<b>1.25 s</b><span>scan time</span>",
        "hilos scan 198.18.0.1-4",
        "Most common open services",
        "Open ports per host",
    ):
        assert text in page, text
    ssh_bar = re.search(r">ssh<title>ssh</title></text><rect[^>]*/><text[^>]*>(\d+)<", page)
    assert ssh_bar is not None and ssh_bar.group(1) == "2"


@pytest.fixture(scope="module")
def sample_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "sample.html"
    path.write_text(render_html(sample_run()), encoding="utf-8")  # type: ignore[arg-type]
    return path


def test_browser_renders_every_port(sample_page: Path) -> None:
    dom = dump_dom(sample_page)
    assert "data-render-ms=" in dom  # the page's script ran under its own policy
    got = [(r[0].split()[0], r[1], r[2]) for r in rows(dom)]
    assert got == [  # sorted by address: .10 after .3
        ("198.18.0.1", "22/tcp", "open"),
        ("198.18.0.1", "80/tcp", "open"),
        ("198.18.0.1", "135/tcp", "filtered"),
        ("198.18.0.2", "22/tcp", "open"),
        ("198.18.0.2", "443/tcp", "open"),
        ("198.18.0.3", "\u2014", ""),
        ("198.18.0.10", "8080/tcp", "open"),
    ]
    assert "rows 1\u20137 of 7" in dom


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("filter=ssh", {("198.18.0.1", "22/tcp"), ("198.18.0.2", "22/tcp")}),
        ("filter=nginx", {("198.18.0.1", "80/tcp")}),
        ("service=http", {("198.18.0.1", "80/tcp"), ("198.18.0.10", "8080/tcp")}),
        (
            "port=22,443",
            {("198.18.0.1", "22/tcp"), ("198.18.0.2", "22/tcp"), ("198.18.0.2", "443/tcp")},
        ),
        ("state=filtered", {("198.18.0.1", "135/tcp")}),
        ("filter=h1.lab&state=open&port=80", {("198.18.0.1", "80/tcp")}),
        ("filter=nothing-matches", set()),
    ],
)
def test_browser_filters_from_the_location_hash(
    sample_page: Path, fragment: str, expected: set[tuple[str, str]]
) -> None:
    dom = dump_dom(sample_page, fragment)
    assert {(r[0].split()[0], r[1]) for r in rows(dom)} == expected


def test_browser_pages_a_long_table(tmp_path: Path) -> None:
    many = run_of(*(host(f"198.18.{i // 250}.{i % 250 + 1}", port(22)) for i in range(1200)))
    page = tmp_path / "many.html"
    page.write_text(render_html(many), encoding="utf-8")  # type: ignore[arg-type]
    dom = dump_dom(page)
    assert len(rows(dom)) == 500 and "rows 1\u2013500 of 1200" in dom
    assert len(rows(dump_dom(page, "size=all"))) == 1200


def test_browser_shows_hostile_strings_as_text(tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(render_html(hostile_run()), encoding="utf-8")  # type: ignore[arg-type]
    dom = dump_dom(page)
    assert "data-render-ms=" in dom
    assert "pwned" not in dom.split("</title>")[0]  # document.title untouched
    body = re.search(r"<body[^>]*>", dom)
    assert body is not None and "data-pwned" not in body.group(0)  # no payload ran
    assert "<img" not in dom and "<svg onload" not in dom
    (row,) = rows(dom)
    # Each hostile string is in its cell, as the text it is.
    assert "&lt;script&gt;document.title=" in row[5]
    assert "&lt;/script&gt;&lt;script&gt;" in row[3]
    assert '"&gt;&lt;img src=x onerror=' in row[4]
    assert "&lt;svg onload=" in row[0]


def test_browser_screenshot(tmp_path: Path, sample_page: Path) -> None:
    shot = tmp_path / "shot.png"
    browse(sample_page, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


@pytest.mark.parametrize(
    ("fragment", "first"),
    [
        ("sort=-port", ("198.18.0.10", "8080/tcp")),
        ("sort=port", ("198.18.0.3", "\u2014")),  # the host without ports first
        ("sort=-host", ("198.18.0.10", "8080/tcp")),
        ("sort=service&state=open", ("198.18.0.1", "80/tcp")),
    ],
)
def test_browser_sorts_from_the_location_hash(
    sample_page: Path, fragment: str, first: tuple[str, str]
) -> None:
    table = rows(dump_dom(sample_page, fragment))
    assert (table[0][0].split()[0], table[0][1]) == first


def detail_box(dom: str) -> str:
    box = dom.split('<div id="detail"', 1)[1].split("</div>", 1)[0]
    return box


def test_browser_shows_a_hosts_details(sample_page: Path) -> None:
    assert "hidden" in detail_box(dump_dom(sample_page)).split(">", 1)[0]
    box = detail_box(dump_dom(sample_page, "host=198.18.0.1"))
    assert "hidden" not in box.split(">", 1)[0]
    assert "<h2>198.18.0.1 (h1.lab.test)</h2>" in box and "rtt 0.4 ms" in box
    cells = re.findall(r"<td[^>]*>(.*?)</td>", box)
    assert cells[:8] == [
        "22/tcp",
        "open",
        "syn-ack",
        "ssh",
        "OpenSSH",
        "9.2p1",
        "",
        "SSH-2.0-OpenSSH",
    ]


def test_browser_details_of_a_hostile_host_are_text(tmp_path: Path) -> None:
    page = tmp_path / "hostile.html"
    page.write_text(render_html(hostile_run()), encoding="utf-8")  # type: ignore[arg-type]
    dom = dump_dom(page, "host=198.18.0.3")
    box = detail_box(dom)
    assert "&lt;svg onload=" in box and "&lt;script&gt;document.title=" in box
    assert "<img" not in dom and "pwned" not in dom.split("</title>")[0]
