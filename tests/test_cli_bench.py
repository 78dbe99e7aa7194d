"""Tests of `hilos bench` (hilos.cli.bench): the table, the chart, one-line errors."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilos.cli import main

pytestmark = pytest.mark.timeout(120)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROW = re.compile(r"^\s+(\d+)\s+(\d+\.\d+)\s+(\d+\.\d)\s+(\d+\.\d\d)x\s+(\d+)%(  <- knee)?$")


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hilos", "bench", *args],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def _rows(stdout: str) -> list[tuple[int, float, float, float, int, bool]]:
    rows = []
    for line in stdout.splitlines():
        if m := ROW.match(line):
            rows.append(
                (int(m[1]), float(m[2]), float(m[3]), float(m[4]), int(m[5]), m[6] is not None)
            )
    return rows


@pytest.fixture
def listener() -> Iterator[int]:
    """An open TCP port on 127.0.0.1 (loopback only, by the project's safety rule)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        yield srv.getsockname()[1]


def test_cli_table_has_a_row_per_thread_count() -> None:
    proc = _bench(
        "--workload",
        "demo",
        "--threads",
        "1,2,4",
        "--tasks",
        "8",
        "--sleep",
        "0.01",
        "--repeat",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("workload demo: 8 tasks, each sleep(0.01 s); median of 1")
    assert lines[1].split() == ["threads", "wall", "s", "tasks/s", "speed-up", "efficiency"]
    rows = _rows(proc.stdout)
    assert [r[0] for r in rows] == [1, 2, 4]
    assert rows[0][3] == 1.00 and rows[0][4] == 100
    assert lines[2 + len(rows)].startswith("knee: ")


def test_cli_sleep_bound_at_8_threads() -> None:
    proc = _bench("--threads", "8", "--tasks", "32", "--sleep", "0.02", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    rows = {r[0]: r for r in _rows(proc.stdout)}
    assert set(rows) == {1, 8}
    assert rows[8][3] >= 5


def test_cli_scan_on_loopback(listener: int) -> None:
    proc = _bench(
        "--workload", "scan", "--ports", f"{listener},1-20", "--threads", "1,2", "--repeat", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert [r[0] for r in _rows(proc.stdout)] == [1, 2]
    outcomes = next(ln for ln in proc.stdout.splitlines() if ln.startswith("outcomes"))
    assert "open 1" in outcomes and "closed" in outcomes


def test_cli_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = tmp_path / "bench.png"
    proc = _bench(
        "--threads", "2", "--tasks", "4", "--sleep", "0.01", "--repeat", "1", "--plot", str(path)
    )
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert f"plot: {path}" in proc.stdout


def test_cli_plot_without_matplotlib_is_one_line_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    path = tmp_path / "x.png"
    code = main(["bench", "--tasks", "1000", "--sleep", "1", "--plot", str(path)])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err == "hilos: error: --plot needs matplotlib: pip install 'hilos[plot]'\n"
    assert captured.out == ""  # refused before measuring anything
    assert not path.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "--threads: 0 is out of range 1-4096"),
        (["--threads", "2,x"], "--threads: not an integer: 'x'"),
        (["--workload", "gpu"], "invalid choice"),
        (["--workload", "scan", "--ports", "70000"], "70000"),
        (["--repeat", "0"], "must be at least 1"),
        (["--workload", "scan", "--target", "300.1.1.1"], "300"),
    ],
)
def test_cli_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    proc = _bench(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("hilos: error: ")
    assert message in proc.stderr


def test_cli_help_points_to_the_lab() -> None:
    proc = _bench("--help")
    assert proc.returncode == 0
    assert "hilos lab run -- hilos bench --workload scan --target 198.18.0.0/28" in proc.stdout
    assert "127.0.0.1" in proc.stdout


@pytest.mark.parametrize(
    ("where", "message"),
    [("nonexistent/x.png", "does not exist"), ("", "is a directory")],
)
def test_cli_plot_to_a_bad_path_is_refused_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str, message: str
) -> None:
    # `bench --plot /nonexistent/x.png` used to fail only after the whole run.
    path = tmp_path / where if where else tmp_path
    code = main(["bench", "--tasks", "1000", "--sleep", "1", "--plot", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("hilos: error: --plot ") and message in captured.err
    assert captured.err.count("\n") == 1
    assert captured.out == ""  # nothing measured
