"""`hilos demo` (hilos.cli.demo) end to end: the tutorial's words, counts, timing, Ctrl-C."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import pytest

from hilos.cli import build_parser

pytestmark = pytest.mark.timeout(60)

FINAL = re.compile(r"^All workers completed their tasks after (\d+\.\d\d) seconds$")


def _demo(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hilos", "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _check_lines(lines: list[str], tasks: int) -> None:
    """Every line is whole (the lock works); each task starts once, then finishes once."""
    working = [int(m[1]) for line in lines if (m := re.fullmatch(r"Working on (\d+)", line))]
    finished = [int(m[1]) for line in lines if (m := re.fullmatch(r"Finished (\d+)", line))]
    assert sorted(working) == list(range(tasks))
    assert sorted(finished) == list(range(tasks))
    for item in range(tasks):
        assert lines.index(f"Working on {item}") < lines.index(f"Finished {item}")
    assert len(working) + len(finished) == len(lines)


def test_defaults_match_the_contract() -> None:
    args = build_parser().parse_args(["demo"])
    assert (args.threads, args.tasks, args.sleep) == (2, 10, 1.0)


@pytest.mark.parametrize(("threads", "low", "high"), [(2, 0.95, 1.6), (10, 0.19, 0.6)])
def test_words_counts_and_timing(threads: int, low: float, high: float) -> None:
    proc = _demo("--threads", str(threads), "--tasks", "10", "--sleep", "0.2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    final = FINAL.match(lines[-1])
    assert final, lines[-1]
    _check_lines(lines[:-1], 10)
    # 10 tasks of 0.2 s: 5 rounds on 2 threads (about 1.0 s), one round on 10 (about 0.2 s).
    assert low <= float(final[1]) <= high


def test_at_most_threads_tasks_run_at_once() -> None:
    proc = _demo("--threads", "3", "--tasks", "9", "--sleep", "0.1")
    assert proc.returncode == 0
    running = peak = 0
    for line in proc.stdout.splitlines()[:-1]:
        running += 1 if line.startswith("Working") else -1
        peak = max(peak, running)
    assert peak == 3


def test_zero_tasks_and_zero_sleep() -> None:
    proc = _demo("--tasks", "0")
    assert proc.returncode == 0
    assert FINAL.match(proc.stdout.strip())
    proc = _demo("--threads", "4", "--tasks", "200", "--sleep", "0")
    assert proc.returncode == 0
    _check_lines(proc.stdout.splitlines()[:-1], 200)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "must be at least 1"),
        (["--threads", "5000"], "--threads must be at most 4096"),
        (["--tasks", "-1"], "must not be negative"),
        (["--sleep", "x"], "not a number"),
    ],
)
def test_bad_options_exit_2_with_one_line(args: list[str], message: str) -> None:
    proc = _demo(*args)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("hilos: error: ")
    assert message in proc.stderr


def test_ctrl_c_stops_quickly_with_exit_130() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hilos",
            "demo",
            "--threads",
            "2",
            "--tasks",
            "100",
            "--sleep",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # wait until the workers are really running
        assert first.startswith("Working on")
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        # wait(), then read: communicate() would skip what readline() already buffered.
        proc.wait(timeout=10)
        stopped = time.monotonic() - sent
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert stopped < 2.5
    assert "hilos: interrupted" in err and "Traceback" not in err
    lines = [first.rstrip("\n"), *out.splitlines()]
    assert not any(FINAL.match(line) for line in lines)
    # The tasks running at Ctrl-C were allowed to finish (0.5 s < the 1 s grace).
    started = {line.split()[-1] for line in lines if line.startswith("Working on")}
    finished = {line.split()[-1] for line in lines if line.startswith("Finished")}
    assert started == finished and 0 < len(started) < 100
