"""Tests of `hilos sweep` (hilos.cli.sweep) run as a command; the sweep itself: test_sweep_*."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from hilos.cli import main

if TYPE_CHECKING:
    from conftest import Unprivileged


@pytest.mark.root
@pytest.mark.timeout(60)
def test_unprivileged_icmp_sweep_is_a_usage_error(unprivileged: Unprivileged) -> None:
    proc = unprivileged.run(["-m", "hilos", "sweep", "127.0.0.1", "--method", "icmp"])
    if proc.returncode == 0:
        pytest.skip("this machine's ping_group_range lets nobody ping")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("hilos: error: --method icmp") and "ping_group_range" in line


def test_sweep_without_targets_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep"]) == 2
    assert capsys.readouterr().err == (
        "hilos: error: no targets given (addresses, CIDR ranges, names or -iL FILE)\n"
    )


def test_sweep_with_every_target_excluded_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", "127.0.0.1", "--exclude", "127.0.0.0/8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hilos: error: no targets left to sweep") and err.count("\n") == 1


def test_sweep_summary_on_stderr_when_stdout_is_not_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sweep", "127.0.0.1", "--method", "tcp", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert '"host": "127.0.0.1"' in out
    last = err.splitlines()[-1]  # after the notice of the probes chosen
    assert last.startswith("hilos: 1 addresses, 1 up, ") and last.endswith(" s")
    assert main(["sweep", "127.0.0.1", "--method", "tcp"]) == 0  # text: its own summary
    assert "addresses, 1 up" not in capsys.readouterr().err
