"""Tests for `hilos sweep` as a command: privilege fallbacks, bad input, interrupted summaries."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from conftest import Unprivileged


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_falls_back_with_a_notice(unprivileged: Unprivileged) -> None:
    """As nobody (no raw sockets, ping_group_range closed): TCP connect, said once, no crash."""
    proc = unprivileged.run(["-m", "hilos", "sweep", "127.0.0.1", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "sweep: using" in line]
    assert len(notes) == 1
    assert "TCP connect" in notes[0] and "not privileged" in notes[0]
    assert '"host": "127.0.0.1", "status": "up"' in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_forced_icmp_is_a_clear_error(unprivileged: Unprivileged) -> None:
    """--method icmp without any way to send echo requests: exit 2 (checked up front, like
    --type syn), one line naming the fix."""
    proc = unprivileged.run(["-m", "hilos", "sweep", "127.0.0.1", "--method", "icmp"])
    if proc.returncode == 0:  # this machine's ping_group_range lets nobody ping
        assert "unprivileged ping socket" in proc.stderr
        return
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ping_group_range" in lines[0] and "root" in lines[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "argv",
    [
        ["sweep"],
        ["sweep", "127.0.0.1/33"],
        ["sweep", "127.0.0.1", "--rate", "0"],
        ["sweep", "127.0.0.1", "--method", "arp"],
        ["sweep", "127.0.0.1", "--timeout", "-1"],
        ["sweep", "127.0.0.1", "-o", "/nonexistent-dir/x.json"],
    ],
)
def test_bad_input_exits_2_with_one_line(argv: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hilos", *argv],
        capture_output=True, text=True, timeout=25, check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hilos: error: "), proc.stderr
    assert proc.stdout == ""


@pytest.mark.root
@pytest.mark.timeout(60)
def test_interrupted_sweep_summary_counts_probed_addresses() -> None:
    # 65536 addresses at 2000/s: interrupted after ~1.5 s, having probed a few thousand. The
    # summary said "65536 IP addresses" before (issue 9 item 3).
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilos", "sweep", "127.5.0.0/16", "--rate", "2000", "--method",
         "icmp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    m = re.search(r"(\d+) IP address", err + out)
    assert m is not None, err
    up = sum(1 for line in out.splitlines() if " up " in line)
    assert up <= int(m.group(1)) < 65536
