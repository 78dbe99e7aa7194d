"""Tests of `hilos lab` (hilos.cli.lab): names, defaults in --help, status and run in the lab."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from hilos.cli import main

if TYPE_CHECKING:
    from hilos.lab import Lab


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--name", "bad name!"],
        ["down", "--name", "bad name!"],
        ["up", "--name", "../etc"],
        ["run", "--name", "x" * 25, "--", "true"],
    ],
)
def test_cli_bad_lab_name_is_a_usage_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lab", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hilos: error: bad lab name")
    assert "letters, digits" in err


@pytest.mark.parametrize("action", ["up", "down", "status", "run"])
def test_cli_lab_options_say_their_defaults(
    action: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() turns argparse's SystemExit into the exit status (a759b26: --help to a full disk).
    assert main(["lab", action, "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--name NAME lab name (prefix of its namespaces; default hilos)" in out
    if action == "up":
        assert "--rtt MS added round-trip time in ms (default 0)" in out
        assert "--loss PERCENT" in out and "packets lost" in out and "(default 0)" in out
        for option, default in (("--seed", 1), ("--dense", 60), ("--sparse", 500), ("--ipv6", 6)):
            assert re.search(rf"{option} \w+ [^-]*\(default {default}\)", out), option


def test_cli_lab_run_without_a_command_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["lab", "run", "--name", "nosuchlab", "--"]) == 2
    err = capsys.readouterr().err
    assert err == "hilos: error: lab run: give a command, e.g. `hilos lab run -- ping 198.18.0.1`\n"


def test_cli_lab_needs_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hilos: error: ") and "ACTION" in err


@pytest.mark.lab
def test_cli_status_and_run(lab: Lab) -> None:
    hilos = [sys.executable, "-m", "hilos", "lab"]
    st = subprocess.run([*hilos, "status", "--name", lab.name], capture_output=True, text=True,
                        timeout=30)  # fmt: skip
    assert st.returncode == 0, st.stderr
    assert str(lab.truth_path) in st.stdout and "is up" in st.stdout
    run = subprocess.run([*hilos, "run", "--name", lab.name, "--", "sh", "-c", "exit 7"],
                         timeout=30)  # fmt: skip
    assert run.returncode == 7
    live = subprocess.run([*hilos, "run", "--name", lab.name, "--", "ping", "-c1", "-W1",
                           "198.18.0.1"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert live.returncode == 0 and "1 received" in live.stdout
