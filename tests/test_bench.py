"""Tests of hilos.bench and `hilos bench`: rows, speed-ups, knee, connect workloads, the PNG."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilos import bench
from hilos.bench import BenchRow
from hilos.cli import main
from hilos.errors import HilosError, UsageError
from hilos.targets import parse_targets

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


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- library ---------------------------------------------------------------------------------


def test_parse_thread_counts() -> None:
    assert bench.parse_thread_counts("8,2,4") == (1, 2, 4, 8)
    assert bench.parse_thread_counts(" 1, 1 ,16") == (1, 16)
    for bad, message in [
        ("0", "out of range"),
        ("4097", "out of range"),
        ("x", "not an integer"),
        ("1,,2", "empty entry"),
        ("", "empty entry"),
    ]:
        with pytest.raises(UsageError, match=message):
            bench.parse_thread_counts(bad)


def _row(threads: int, speedup: float) -> BenchRow:
    return BenchRow(threads, 1 / speedup, (1 / speedup,), speedup, speedup, speedup / threads, 0)


@pytest.mark.parametrize(
    ("speedups", "knee"),
    [
        ({1: 1.0, 2: 2.0, 4: 3.9, 8: 7.7}, None),  # still climbing: no knee in range
        ({1: 1.0, 2: 0.95, 4: 1.02, 8: 0.98}, 1),  # the GIL: flat from the start
        ({1: 1.0, 2: 1.9, 4: 3.4, 8: 3.9, 16: 3.95}, 8),  # saturates
        ({1: 1.0, 2: 1.8, 4: 3.0, 8: 2.5}, 4),  # more threads even hurt
        ({1: 1.0, 2: 1.9, 4: 3.7, 8: 4.0}, 4),  # the last doubling bought < 30 %
        ({1: 1.0}, 1),
    ],
)
def test_find_knee(speedups: dict[int, float], knee: int | None) -> None:
    rows = [_row(t, s) for t, s in speedups.items()]
    assert bench.find_knee(rows) == knee
    assert bench.find_knee(list(reversed(rows))) == knee


def test_sleep_bound_speedup_is_near_linear() -> None:
    workload = bench.demo_workload(tasks=32, sleep=0.02)
    result = bench.run_bench(workload, (8, 2), repeat=1)
    assert [r.threads for r in result.rows] == [1, 2, 8]  # 1 added: it is the baseline
    base = result.row(1)
    assert base.speedup == 1.0 and base.efficiency == 1.0
    assert 32 * 0.02 <= base.wall < 32 * 0.02 * 2
    assert result.row(8).speedup >= 5
    assert result.row(2).speedup >= 1.6
    for row in result.rows:
        assert row.efficiency == pytest.approx(row.speedup / row.threads)
        assert row.tasks_per_s == pytest.approx(32 / row.wall)
        assert row.errors == 0
    assert result.outcomes == ()  # sleep tasks return no state worth counting


def test_median_of_repetitions() -> None:
    result = bench.run_bench(bench.demo_workload(tasks=4, sleep=0.01), (1, 2), repeat=3)
    for row in result.rows:
        assert len(row.walls) == 3
        assert row.wall == sorted(row.walls)[1]


def test_cpu_bound_speedup_stays_flat() -> None:
    result = bench.run_bench(bench.cpu_workload(tasks=100), (1, 4), repeat=3)
    # Only one thread runs Python bytecode at a time: four threads cannot be twice as fast.
    assert result.row(4).speedup < 2.0
    assert all(row.errors == 0 for row in result.rows)


def test_scan_workload_connects_for_real(listener: int, closed_port: int) -> None:
    workload = bench.connect_workload("scan", ["127.0.0.1"], [listener, closed_port], timeout=1.0)
    assert workload.tasks == 2
    result = bench.run_bench(workload, (1, 2), repeat=1)
    assert dict(result.outcomes) == {"open": 1, "closed": 1}
    assert result.first_error is None


def test_sweep_workload_counts_rst_as_up(closed_port: int) -> None:
    workload = bench.connect_workload("sweep", ["127.0.0.1"], [closed_port], tasks=10)
    result = bench.run_bench(workload, (1, 4), repeat=1)
    assert dict(result.outcomes) == {"up": 10}


def test_connect_work_is_lazy_and_round_robin() -> None:
    space = parse_targets(["127.0.0.0/8"])
    huge = bench.connect_workload("scan", space, range(1, 1025))
    assert huge.tasks == 2**24 * 1024  # counted, never listed
    assert next(iter(huge.items())) == ("127.0.0.0", 1)
    small = bench.connect_workload("scan", ["127.0.0.1"], [7, 9], tasks=5)
    assert list(small.items()) == [("127.0.0.1", p) for p in (7, 9, 7, 9, 7)]
    assert list(small.items()) == list(small.items())  # a fresh iterable per run


def test_make_workload_uses_the_project_parsers() -> None:
    scan = bench.make_workload("scan", targets=["127.0.0.1"])
    assert scan.tasks == 1024  # default ports 1-1024
    sweep = bench.make_workload("sweep", targets=["127.0.0.1"], ports="22")
    assert sweep.tasks == bench.DEFAULT_TASKS["sweep"]
    assert bench.make_workload("cpu").tasks == bench.DEFAULT_TASKS["cpu"]
    with pytest.raises(UsageError):
        bench.make_workload("scan", ports="0")
    with pytest.raises(UsageError):
        bench.make_workload("nope")


def test_plot_is_a_valid_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    result = bench.run_bench(bench.demo_workload(tasks=8, sleep=0.005), (2, 4), repeat=1)
    path = tmp_path / "speedup.png"
    bench.write_plot(result, str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(str(path))
    assert image.shape[0] > 300 and image.shape[1] > 500
    assert image.std() > 0.05  # not a blank canvas


def test_plot_to_an_unwritable_place_is_one_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    result = bench.run_bench(bench.demo_workload(tasks=2, sleep=0.0), (1,), repeat=1)
    with pytest.raises(HilosError, match="cannot write"):
        bench.write_plot(result, str(tmp_path / "missing-dir" / "x.png"))


# -- command line ----------------------------------------------------------------------------


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
