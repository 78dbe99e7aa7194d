"""`hilos report`, `hilos diff`, `--format html` and `scan --baseline` from the command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HILOS = [sys.executable, "-m", "hilos"]

OLD = (
    '{"host": "198.18.0.1", "status": "up", "ports": [{"port": 22, "proto": "tcp", '
    '"state": "open", "reason": "syn-ack"}, {"port": 80, "proto": "tcp", "state": "open", '
    '"reason": "syn-ack"}]}\n'
)
NEW = (
    '{"host": "198.18.0.1", "status": "up", "ports": [{"port": 22, "proto": "tcp", '
    '"state": "open", "reason": "syn-ack"}]}\n'
    '{"host": "198.18.0.2", "status": "up", "ports": []}\n'
)


def hilos(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HILOS, *args], capture_output=True, text=True, timeout=120, input=stdin, check=False
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    paths = {}
    for name, text in {"old.jsonl": OLD, "new.jsonl": NEW, "bad.xml": "<nmaprun><host>"}.items():
        (tmp_path / name).write_text(text)
        paths[name] = str(tmp_path / name)
    return paths


def test_diff_exit_status_as_diff(files: dict[str, str]) -> None:
    same = hilos("diff", files["old.jsonl"], files["old.jsonl"])
    assert (same.returncode, same.stdout, same.stderr) == (0, "", "")
    changed = hilos("diff", files["old.jsonl"], files["new.jsonl"])
    assert changed.returncode == 1
    assert changed.stdout.splitlines() == [
        "- 198.18.0.1 80/tcp not listed (was open)",
        "+ 198.18.0.2 up",
    ]
    as_json = hilos("diff", "--format", "json", files["old.jsonl"], files["new.jsonl"])
    assert as_json.returncode == 1
    assert [json.loads(x)["change"] for x in as_json.stdout.splitlines()] == [
        "port-closed",
        "host-up",
    ]


def test_diff_reads_stdin_once(files: dict[str, str]) -> None:
    assert hilos("diff", "-", files["new.jsonl"], stdin=OLD).returncode == 1
    both = hilos("diff", "-", "-", stdin=OLD)
    assert both.returncode == 2 and both.stderr == "hilos: error: stdin (-) can be read once\n"


@pytest.mark.parametrize("command", ["diff", "report"])
def test_missing_or_corrupt_input_is_one_line_and_exit_2(
    command: str, files: dict[str, str], tmp_path: Path
) -> None:
    for bad, words in [(str(tmp_path / "gone.xml"), "no such file"), (files["bad.xml"], "XML")]:
        args = (
            [bad, files["old.jsonl"]]
            if command == "diff"
            else [bad, "-o", str(tmp_path / "r.html")]
        )
        proc = hilos(command, *args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith(f"hilos: error: {bad}: ") and words in proc.stderr
        assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_merges_files_into_one_page(files: dict[str, str], tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    proc = hilos("report", files["old.jsonl"], files["new.jsonl"], "-o", str(page))
    assert proc.returncode == 0 and proc.stdout == ""
    assert proc.stderr == f"hilos: report of 2 hosts (2 up, 2 open ports) written to {page}\n"
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and '"198.18.0.2"' in text
    to_stdout = hilos("report", "-q", files["old.jsonl"], "--title", "Weekly <scan>")
    assert to_stdout.returncode == 0 and to_stdout.stderr == ""
    assert "<title>Weekly &lt;scan&gt;</title>" in to_stdout.stdout


def test_report_to_an_unwritable_place_exits_2(files: dict[str, str], tmp_path: Path) -> None:
    proc = hilos("report", files["old.jsonl"], "-o", str(tmp_path / "no" / "r.html"))
    assert proc.returncode == 2 and proc.stderr.startswith("hilos: error: cannot write ")


@pytest.fixture
def listener() -> Iterator[int]:
    """A listening TCP port on 127.0.0.1 (loopback only)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


def test_scan_writes_an_html_page(listener: int, tmp_path: Path) -> None:
    page = tmp_path / "scan.html"
    args = ["scan", "127.0.0.1", "-p", str(listener), "--type", "connect", "-Pn", "-q"]
    proc = hilos(*args, "--format", "html", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert f"[{listener},&quot;tcp&quot;" not in text  # data is JSON, not HTML-escaped
    assert f'[[{listener},"tcp","open"' in text and "hilos scan report" in text


def test_sweep_writes_an_html_page(tmp_path: Path) -> None:
    page = tmp_path / "sweep.html"
    proc = hilos("sweep", "127.0.0.1", "-q", "-o", str(page))
    assert proc.returncode == 0, proc.stderr
    assert '["127.0.0.1",null,"up"' in page.read_text()


def test_scan_baseline_prints_changes_after_the_report(listener: int, tmp_path: Path) -> None:
    base = tmp_path / "base.jsonl"
    # Before: 127.0.0.1 had port 1 open and not the listener.
    base.write_text(
        '{"host": "127.0.0.1", "status": "up", "ports": [{"port": 1, "proto": "tcp", '
        '"state": "open", "reason": "syn-ack"}]}\n'
    )
    args = ["scan", "127.0.0.1", "-p", f"1,{listener}", "--type", "connect", "-Pn", "-q"]
    text = hilos(*args, "--baseline", str(base))
    assert text.returncode == 0, text.stderr
    report, _, changes = text.stdout.partition(f"\nChanges since {base} (2):\n")
    assert f"{listener}/tcp" in report and "open" in report
    assert changes.splitlines() == [
        "- 127.0.0.1 1/tcp closed (was open)",
        f"+ 127.0.0.1 {listener}/tcp open (was not listed)",
    ]
    data = hilos(*args, "--format", "json", "--baseline", str(base))
    assert data.returncode == 0
    assert [json.loads(x)["host"] for x in data.stdout.splitlines()] == ["127.0.0.1"]
    assert data.stderr.startswith(f"hilos: changes since {base}:\n- 127.0.0.1 1/tcp closed")
    same = tmp_path / "same.jsonl"
    same.write_text(data.stdout)
    quiet = hilos(*args, "--baseline", str(same))
    assert quiet.stdout.endswith(f"\nNo change since {same}.\n")


def test_scan_with_a_bad_baseline_exits_2_before_scanning(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = hilos("scan", "127.0.0.1", "-p", "1", "--baseline", str(tmp_path / "x"), "-o", str(out))
    assert proc.returncode == 2 and proc.stderr == f"hilos: error: {tmp_path / 'x'}: no such file\n"
    assert proc.stdout == "" and not out.exists()
