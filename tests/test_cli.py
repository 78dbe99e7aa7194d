"""Tests of hilos.cli itself: the command registry, main(), bare usage, lazy imports."""

from __future__ import annotations

import subprocess
import sys

HILOS = [sys.executable, "-m", "hilos"]


def hilos(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HILOS, *args], capture_output=True, text=True, timeout=timeout)


def test_bare_hilos_prints_usage_and_exits_0() -> None:
    proc = hilos()
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: hilos") and "scan" in proc.stdout
    assert proc.stderr == ""


def test_every_subcommand_module_registers_its_own_run() -> None:
    from hilos import cli

    parser = cli.build_parser()
    argv = {
        "demo": ["demo"],
        "sweep": ["sweep", "127.0.0.1"],
        "scan": ["scan", "127.0.0.1"],
        "lab": ["lab", "status"],
        "bench": ["bench"],
        "cluster": ["cluster", "certs", "d"],
        "report": ["report", "a.xml"],
        "diff": ["diff", "a.xml", "b.jsonl"],
    }
    assert [m.__name__.rsplit(".", 1)[1] for m in cli.COMMANDS] == list(argv)
    for module in cli.COMMANDS:
        args = parser.parse_args(argv[module.__name__.rsplit(".", 1)[1]])
        assert args.handler is module.run


def test_the_parser_loads_no_engine_output_or_lab() -> None:
    # `hilos --help` must start fast: the commands import the library inside run().
    code = (
        "import sys; from hilos.cli import build_parser; build_parser(); "
        "heavy = ('hilos.sweep', 'hilos.syn', 'hilos.connect', 'hilos.pipeline', "
        "'hilos.output', 'hilos.lab', 'hilos.bench', 'hilos.services', 'hilos.wire'); "
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
