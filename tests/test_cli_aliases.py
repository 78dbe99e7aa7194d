"""nmap's spellings on the hilos command line (`-sS`, `-oX FILE`, `-T4`, `--open`, ...) and the
help texts: parsed and normalised in-process, end to end against 127.0.0.1 only."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

HILOS = [sys.executable, "-m", "hilos"]


def hilos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HILOS, *args], capture_output=True, text=True, timeout=timeout)


def parsed(*argv: str) -> Any:
    """The options after parsing and normalisation, as the handler sees them."""
    from hilos.cli import build_parser
    from hilos.cli.aliases import normalise

    args = build_parser().parse_args(list(argv))
    normalise(args)
    return args


def planned(args: Any) -> list[tuple[str, str]]:
    from hilos.output import plan_outputs

    plan = plan_outputs(
        args.command, args.format, args.output, args.output_all, explicit=args.nmap_outputs
    )
    return [(s.format, s.path) for s in plan]


def test_o_letter_options_are_nmaps_not_o_plus_a_file_named_x() -> None:
    args = parsed("scan", "127.0.0.1", "-oX", "a.xml", "-oG", "a.gnmap", "-oN", "a.txt")
    assert planned(args) == [
        ("xml", "a.xml"),
        ("grep", "a.gnmap"),
        ("text", "a.txt"),
        ("text", "-"),
    ]
    # the flag decides, whatever the extension (as nmap); pairs of --format/-o are unchanged
    args = parsed("scan", "127.0.0.1", "-oJ", "r.txt", "--format", "csv", "-o", "r.csv")
    assert planned(args) == [("json", "r.txt"), ("csv", "r.csv"), ("text", "-")]
    assert planned(parsed("sweep", "127.0.0.1", "-oJ", "-")) == [("json", "-")]


def test_format_and_extension_that_disagree_are_a_usage_error() -> None:
    proc = hilos("scan", "127.0.0.1", "-p", "1", "--format", "xml", "-o", "a.jsonl")
    assert proc.returncode == 2
    assert proc.stderr.startswith("hilos: error: -o a.jsonl pairs with --format xml")


def test_scan_type_aliases() -> None:
    assert parsed("scan", "127.0.0.1", "-sS").type == "syn"
    assert parsed("scan", "127.0.0.1", "-sT").type == "connect"
    assert parsed("scan", "127.0.0.1").type == "auto"


@pytest.mark.parametrize(
    ("argv", "rate", "timeout", "retries"),
    [
        ([], None, None, None),
        (["-T3"], None, None, None),
        (["-T4"], None, 0.5, 2),
        (["-T5"], None, 0.25, 1),
        (["-T2"], 2.5, 2.0, 1),
        (["-T0"], 1 / 300, 5.0, 1),
        (["-T2", "--timeout", "3", "--retries", "0"], 2.5, 3.0, 0),  # explicit wins
        (["-T4", "--rate", "50"], 50.0, 0.5, 2),
        (["--max-rate", "100"], 100.0, None, None),
        (["-T1", "--min-rate", "10"], 10.0, 5.0, 1),  # the template's pace, lifted
        (["--min-rate", "10"], None, None, None),  # no cap: already at least 10/s
        (["--max-retries", "3"], None, None, 3),
    ],
)
def test_timing_templates_and_rate_aliases(
    argv: list[str], rate: float | None, timeout: float | None, retries: int | None
) -> None:
    args = parsed("scan", "127.0.0.1", *argv)
    assert (args.rate, args.timeout, args.retries) == (rate, timeout, retries)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--rate", "5", "--min-rate", "10"], "--min-rate 10 is above --rate 5"),
        (["--rate", "5", "--max-rate", "10"], "disagree"),
        (["-F", "-p", "22"], "-F is --top-ports 100"),
        (["--open", "--all"], "--open"),
        (["-p", ""], "empty port specification"),
        (["-p", " "], "empty port specification"),
        (["-sn", "-p", "22"], "-sn does host discovery only"),
        (["-T", "6"], "invalid choice"),
        (["-oX", ""], "needs a file name"),
    ],
)
def test_contradictions_exit_2_with_one_line(argv: list[str], needle: str) -> None:
    proc = hilos("scan", "127.0.0.1", *argv)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("hilos: error: ")
    assert needle in proc.stderr


def test_fast_and_accepted_flags() -> None:
    args = parsed("scan", "127.0.0.1", "-F", "-n", "--reason", "--excludefile", "ex.txt")
    assert args.top_ports == 100 and args.exclude_file == "ex.txt"
    assert parsed("sweep", "127.0.0.1", "-n", "--reason", "-sn").command == "sweep"


def test_scan_sn_runs_the_sweep() -> None:
    from hilos.cli import sweep

    args = parsed("scan", "127.0.0.1", "-sn")
    assert args.handler is sweep.run and args.command == "sweep" and args.method == "auto"
    proc = hilos("scan", "-sn", "127.0.0.1", "--format", "json", "-q")
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["host"] == "127.0.0.1" and obj["status"] == "up" and "rtt_ms" in obj  # a sweep


def test_verbose_says_the_timing_on_stderr() -> None:
    proc = hilos("scan", "127.0.0.1", "-p", "1", "-sT", "-T4", "-v", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert (
        "hilos: scan: rate default, timeout 0.5 s, retries 2, threads default (-T4 aggressive)"
        in (proc.stderr)
    )
    assert "scan type requested: connect" in proc.stderr
    assert "options:" not in proc.stderr
    assert "options:" in hilos("scan", "127.0.0.1", "-p", "1", "-sT", "-d").stderr
    quiet = hilos("scan", "127.0.0.1", "-p", "1", "-sT", "-v", "-q", "--format", "json")
    assert quiet.stderr == ""


def test_every_option_says_its_default_and_help_lists_the_aliases() -> None:
    from hilos.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    choices: dict[str, Any] = sub.choices  # type: ignore[assignment]
    for command, wanted in {
        "sweep": ["--exclude", "--method", "--timeout", "--retries", "--threads"],
        "scan": ["--exclude", "--type", "--timeout", "--retries", "--threads"],
    }.items():
        actions = {s: a for a in choices[command]._actions for s in a.option_strings}
        for flag in wanted:
            assert "default" in (actions[flag].help or ""), (command, flag)
        for action in choices[command]._actions:
            assert action.help, (command, action.option_strings)
    text = hilos("scan", "--help").stdout
    for alias in ("-sS", "-sT", "-sn", "-oX", "-oN", "-oG", "-oJ", "-oA", "-T 0-5", "--open",
                  "-F", "--min-rate", "--max-rate", "--max-retries", "--excludefile",
                  "--reason", "-n", "-v", "-d", "4 aggressive"):  # fmt: skip
        assert alias in text, alias


def test_retries_help_states_the_enforced_maximum() -> None:
    from hilos.validate import MAX_RETRIES

    text = hilos("scan", "--help").stdout
    assert f"0-{MAX_RETRIES}" in text
    proc = hilos("scan", "127.0.0.1", "-p", "1", "--retries", str(MAX_RETRIES + 1))
    assert proc.returncode == 2 and str(MAX_RETRIES) in proc.stderr


def test_verbose_turns_on_progress_lines_for_logs() -> None:
    from hilos.output.progress import Progress

    try:
        parsed("scan", "127.0.0.1", "-v")
        assert Progress.log_every == 5.0
        parsed("scan", "127.0.0.1")
        assert Progress.log_every is None
    finally:
        Progress.log_every = None


@pytest.fixture
def listener() -> Iterator[int]:
    """An open TCP port on 127.0.0.1 only."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        yield srv.getsockname()[1]


def test_open_lists_only_open_ports_and_hosts(listener: int) -> None:
    proc = hilos(
        "scan", "127.0.0.1", "127.0.0.99", "-Pn", "-sT", "--open", "--format", "json",
        "-p", f"{listener},{listener + 1}",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(o["host"], [p["port"] for p in o["ports"]]) for o in objs] == [
        ("127.0.0.1", [listener])
    ]  # 127.0.0.99 has no listener there: no open port, not listed
