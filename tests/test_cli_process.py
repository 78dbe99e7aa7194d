"""hilos.cli.process end to end: stop signals, full disks, closed and broken pipes, failures.

Every run targets 127.0.0.0/8 only, as a subprocess (`python -m hilos`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HILOS = [sys.executable, "-m", "hilos"]


def hilos(*args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HILOS, *args], capture_output=True, text=True, timeout=timeout, **kw)


def valid_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def closed_xml(path: Path) -> ET.Element:
    root = ET.parse(path).getroot()  # raises on "Premature end of data"
    assert root.tag == "nmaprun" and root.find("runstats/finished") is not None
    return root


# --------------------------------------------------------------------------- stop signals
@pytest.mark.timeout(60)
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_scan_stopped_by_signal_writes_what_it_found(tmp_path: Path, sig: int, code: int) -> None:
    js, xm = tmp_path / "a.jsonl", tmp_path / "a.xml"
    # A paced connect scan of the whole port range (about 30 s) stopped after 1.5 s.
    proc = subprocess.Popen(
        [*HILOS, "scan", "127.0.0.1", "-p-", "--type", "connect", "--rate", "2000", "--all",
         "-oJ", str(js), "-oX", str(xm)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "interrupted" in err
    assert "hilos interrupted:" not in out
    hosts = valid_jsonl(js)
    answered = sum(len(h["ports"]) for h in hosts)
    assert answered >= 500  # about 2000/s for 1.5 s, kept
    root = closed_xml(xm)
    finished = root.find("runstats/finished")
    assert finished is not None and finished.get("errormsg") == "interrupted"
    assert sum(len(h.findall("ports/port")) for h in root.findall("host")) == answered


@pytest.mark.timeout(60)
def test_sweep_stopped_by_sigterm_exits_143_with_results(tmp_path: Path) -> None:
    js = tmp_path / "s.jsonl"
    proc = subprocess.Popen(
        [*HILOS, "sweep", "127.0.0.0/12", "--rate", "3000", "--method", "tcp", "-oJ", str(js)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    ups = valid_jsonl(js)
    assert ups and all(h["status"] == "up" for h in ups)


# ----------------------------------------------------------------------------- full disks
def test_output_file_on_a_full_disk_is_one_error_line(tmp_path: Path) -> None:
    xm = tmp_path / "ok.xml"
    proc = hilos("scan", "127.0.0.1", "-p", "1", "-sT", "-oX", str(xm), "-oJ", "/dev/full")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["hilos: error: writing /dev/full: No space left on device"]
    assert "interrupted" not in proc.stdout
    closed_xml(xm)  # the other output is closed properly


def test_stdout_on_a_full_disk_is_one_error_line(tmp_path: Path) -> None:
    xm = tmp_path / "ok.xml"
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*HILOS, "scan", "127.0.0.1", "-p", "1", "-sT", "-oX", str(xm)],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
        )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["hilos: error: writing stdout: No space left on device"]
    finished = closed_xml(xm).find("runstats/finished")
    assert finished is not None
    assert finished.get("errormsg") == "writing stdout: No space left on device"


def test_closed_stdout_is_no_traceback(tmp_path: Path) -> None:
    xm = tmp_path / "ok.xml"
    proc = subprocess.run(
        [*HILOS, "scan", "127.0.0.1", "-p", "1", "-sT", "-oX", str(xm)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60,
        preexec_fn=lambda: os.close(1),  # `hilos ... >&-`
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "AttributeError" not in proc.stderr
    closed_xml(xm)


# ----------------------------------------------------------------------- a reader leaving
@pytest.fixture
def banner_listeners() -> Iterator[int]:
    """One port that greets on 127.0.0.1-40 (our own listeners), for banner scans of many hosts."""
    first = socket.socket()
    first.bind(("127.0.0.1", 0))
    port = first.getsockname()[1]
    socks = [first]
    for i in range(2, 41):
        s = socket.socket()
        s.bind((f"127.0.0.{i}", port))
        socks.append(s)
    stop = threading.Event()

    def serve(s: socket.socket) -> None:
        s.listen(64)
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = s.accept()
            except OSError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.sendall(b"SSH-2.0-hilos-test\r\n")

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in socks]
    for t in threads:
        t.start()
    yield port
    stop.set()
    for t in threads:
        t.join(2)
    for s in socks:
        s.close()


@pytest.mark.timeout(120)
def test_banners_into_head_exit_quietly(banner_listeners: int) -> None:
    # `hilos scan ... --banners | head -1`: the pool's generator used to be closed while a
    # worker was listed but not started ("Exception ignored ... cannot join thread").
    for _ in range(5):
        proc = subprocess.Popen(
            [*HILOS, "scan", "127.0.0.1-40", "-Pn", "-p", str(banner_listeners), "-sT",
             "--banners"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith(b"hilos scan report for")
        proc.stdout.close()  # the reader goes away, as head does
        err = proc.stderr.read().decode()
        proc.wait(timeout=30)
        assert err == "", err
        assert proc.returncode == 0


# ------------------------------------------------------------------------------- failures
def test_runtime_failure_prints_no_interrupted_and_names_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hilos import cli
    from hilos.errors import NetworkError
    from hilos.results import HostResult
    from hilos.sweep import Sweeper

    def failing(self: Sweeper) -> Iterator[list[HostResult]]:
        yield [HostResult("127.0.0.1", "up", "syn-ack", 0.1)]
        raise NetworkError("sendto: Network is unreachable")

    monkeypatch.setattr(Sweeper, "batches", failing)  # what the CLI iterates
    text = tmp_path / "s.nmap"
    code = cli.main(["sweep", "127.0.0.1", "--method", "tcp", "-oN", str(text), "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.splitlines() == ["hilos: error: sendto: Network is unreachable"]
    assert "interrupted" not in out and json.loads(out)["host"] == "127.0.0.1"
    assert (
        text.read_text()
        .splitlines()[-1]
        .startswith("# hilos failed (sendto: Network is unreachable)")
    )


@pytest.mark.parametrize(
    "argv", [[], ["--version"], ["scan", "--help"], ["demo", "--tasks", "2", "--sleep", "0"]]
)
def test_any_output_to_a_full_disk_is_one_line_exit_1(argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*HILOS, *argv], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60
        )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["hilos: error: writing stdout: No space left on device"]


def test_the_command_line_exits_without_the_interpreters_teardown() -> None:
    """python -m hilos ends with os._exit once everything is written (a million probes'
    objects are not freed one by one), keeping the exit code and every byte of output."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "hilos", "scan", "127.0.0.1", "-p", "1", "-p"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("hilos: error:")
    code = (
        "import runpy, sys, os; calls = []; real = os._exit\n"
        "os._exit = lambda c: (calls.append(c), sys.stdout.write(f'exit {c}'), real(c))\n"
        "sys.argv = ['hilos', 'scan', '127.0.0.1', '-p', '9', '--type', 'connect', '-q',\n"
        "            '--format', 'json']\n"
        "runpy.run_module('hilos', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith("exit 0") and '"host": "127.0.0.1"' in proc.stdout
