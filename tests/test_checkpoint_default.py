"""A scan or sweep keeps a checkpoint only when asked (--checkpoint, --resume, --cluster: then
FILE.checkpoint next to the first output file unless --no-checkpoint); gone when the run ends;
UDP, --baseline and --shard runs refuse one. Loopback only."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hilos.cli import build_parser, chunked
from hilos.errors import UsageError
from hilos.resume import JobSpec
from hilos.resume.job import measured_pace

HILOS = [sys.executable, "-m", "hilos"]
# 4 hosts x 103 ports at 100 a second: about four seconds, five chunks of about a second.
SLOW = ["127.0.0.1-4", "-p", "1-103", "--type", "connect", "--rate", "100", "--seed", "3"]


def _args(*argv: str) -> object:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["scan", "127.0.0.1", "-o", "out.jsonl"], False),  # one piece unless asked: faster
        (["scan", "127.0.0.1", "-oA", "base"], False),
        (["sweep", "127.0.0.1", "-o", "hosts.txt"], False),
        (["scan", "127.0.0.1"], False),  # stdout only: nothing to keep a checkpoint beside
        (["scan", "127.0.0.1", "-o", "-"], False),
        (["scan", "127.0.0.1", "-o", "out.jsonl", "--no-checkpoint"], False),
        (["scan", "127.0.0.1", "--checkpoint", "c"], True),
    ],
)
def test_a_run_is_chunked_only_when_asked(argv: list[str], want: bool) -> None:
    assert chunked.wanted(_args(*argv)) is want  # type: ignore[arg-type]


def test_no_checkpoint_with_a_checkpoint_is_refused() -> None:
    both = _args("scan", "127.0.0.1", "--checkpoint", "c", "--no-checkpoint")
    with pytest.raises(UsageError):
        chunked.wanted(both)  # type: ignore[arg-type]


def test_chunks_are_sized_from_the_measured_discovery_rate() -> None:
    syn = JobSpec(("198.18.0.0/16",), tuple(range(1, 101)), "syn")
    assert measured_pace(syn, 65_536, 0.5) == pytest.approx(131_072.0)
    assert measured_pace(syn, 65_536, 60.0) == 20_000.0  # never below the default guess
    assert measured_pace(JobSpec(syn.targets, syn.ports, "syn", rate=500.0), 65_536, 0.5) is None
    assert measured_pace(JobSpec(syn.targets, syn.ports, "connect"), 65_536, 0.5) is None


def _wait_for_chunks(ck: Path, proc: subprocess.Popen[str], deadline: float = 20.0) -> None:
    """Until the checkpoint counts a chunk (the kill then lands inside the run)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert proc.poll() is None, "the scan ended before it could be killed"
        try:
            if json.loads(ck.read_text())["done"]:
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError("no chunk counted in time")


def _facts(path: Path) -> set[tuple[object, ...]]:
    objs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(o["host"], p["port"], p["state"]) for o in objs for p in o["ports"]}


@pytest.mark.slow
def test_kill_9_of_a_checkpointed_scan_resumes_from_its_checkpoint(
    tmp_path: Path,
) -> None:
    ref = tmp_path / "ref.jsonl"
    subprocess.run(
        [*HILOS, "scan", *SLOW, "--all", "-q", "--no-checkpoint", "-o", str(ref)],
        check=True,
        timeout=60,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ref.jsonl"]
    out = tmp_path / "out.jsonl"
    ck = tmp_path / "out.jsonl.checkpoint"
    proc = subprocess.Popen(
        [*HILOS, "scan", *SLOW, "--all", "-q", "-o", str(out), "--checkpoint", str(ck)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_chunks(ck, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    resumed = subprocess.run(
        [*HILOS, "scan", "--resume", str(ck)], capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    assert _facts(out) == _facts(ref)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == len({o["host"] for o in lines}) == 4
    # Finished: the checkpoint the user named stays, marked so, with the outputs.
    assert json.loads(ck.read_text())["finished"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.jsonl",
        "out.jsonl.checkpoint",
        "ref.jsonl",
    ]


@pytest.mark.slow
def test_sigterm_of_a_checkpointed_scan_names_its_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "out.xml"
    proc = subprocess.Popen(
        [*HILOS, "scan", *SLOW, "-oX", str(out), "--checkpoint", f"{out}.checkpoint"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_chunks(tmp_path / "out.xml.checkpoint", proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert f"hilos scan --resume {out}.checkpoint" in err


def test_no_checkpoint_runs_in_one_piece(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [*HILOS, "scan", *SLOW, "--no-checkpoint", "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert "--resume" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_udp_scan_with_an_output_file_keeps_no_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "u.jsonl"
    proc = subprocess.run(
        [*HILOS, "scan", "127.0.0.1", "--type", "udp", "-p", "9", "-q", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u.jsonl"]
    asked = subprocess.run(
        [*HILOS, "scan", "127.0.0.1", "--type", "udp", "-p", "9", "--checkpoint", "c"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert asked.returncode == 2
    assert asked.stderr.startswith("hilos: error:") and asked.stderr.count("\n") == 1


def test_no_checkpoint_with_checkpoint_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*HILOS, "scan", "127.0.0.1", "-p", "9", "--checkpoint", "c", "--no-checkpoint"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("hilos: error: --no-checkpoint")
    assert proc.stderr.count("\n") == 1


def test_sweep_chunks_split_the_space_without_parsing_addresses() -> None:
    from hilos.resume.chunks import _shard_space
    from hilos.targets import parse_targets

    space = parse_targets(["127.0.0.0/26", "::1", "127.1.0.0/30"])
    assert _shard_space(space, 1, 1, 9) is space  # one chunk: the space itself, ranges kept
    parts = [_shard_space(space, k, 4, 9) for k in range(1, 5)]
    seen = [str(a) for part in parts for a in part]
    assert len(seen) == len(set(seen)) == space.size  # disjoint, and every address once
    assert set(seen) == {str(a) for a in space}
    assert {str(a) for a in parts[1]} == {str(a) for a in space.shard(2, 4, seed=9)}


def test_a_scan_chunk_walks_discovery_hosts_as_parse_targets_reads_them() -> None:
    from hilos.resume.chunks import _hosts_space
    from hilos.targets import parse_targets

    hosts = ["127.0.0.5", "::1", "127.0.0.1", "::ffff:127.0.0.9", "127.0.0.5"]
    assert [str(a) for a in _hosts_space(hosts)] == [str(a) for a in parse_targets(hosts)]
