"""The default checkpoint of a scan or sweep run in one piece (hilos.resume.onepiece, cli.keep):
where it lives, what it holds, gone when the run completes, written on a signal, and kill -9
then --resume gives the uninterrupted run's result, each host once. Loopback only."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
import xml.dom.minidom
from pathlib import Path

import pytest

from hilos.cli import build_parser, keep
from hilos.errors import UsageError
from hilos.resume.onepiece import HostLog, RunCheckpoint, is_run_checkpoint
from hilos.targets import parse_targets

HILOS = [sys.executable, "-m", "hilos"]
# 40 loopback hosts x 5 ports at 60 probes a second: about three and a half seconds, hosts
# completing one after another all along.
SLOW = ["127.0.0.1-40", "-p", "1-5", "--type", "connect", "--rate", "60"]


def _args(*argv: str) -> object:
    return build_parser().parse_args(list(argv))


def _keeper(tmp_path: Path, *argv: str) -> keep.Keeper:
    args = _args(*argv)
    return keep.Keeper.for_run(args, args.command, parse_targets(args.targets), None)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the state


def test_the_hosts_written_come_back_as_intervals_after_a_round_trip() -> None:
    log = HostLog([(100, 200), (300, 400)])
    log.new.extend(["0.0.0.101", "0.0.0.102", "0.0.0.103", "0.0.1.44", "::1", "fd18::5"])
    log.fold(5)  # the sixth stays pending
    assert log.count == 5 and log.new == ["fd18::5"]
    again = HostLog([(100, 200), (300, 400)])
    again.load(json.loads(json.dumps(log.to_json())))
    assert again.intervals() == ([(101, 103), (300, 300)], [(1, 1)])


@pytest.mark.parametrize("v6", [False, True])
def test_a_burst_of_hosts_folds_alike_with_numpy_or_without(v6: bool) -> None:
    import numpy  # noqa: F401  (loaded, as a SYN scan has it: the vector path)

    rng = random.Random(5)
    addrs = [f"10.0.{i >> 8}.{i & 255}" for i in rng.sample(range(4096), 1500)]
    if v6:
        addrs.append("fd18::9")  # a mixed burst goes through the loop
    fast = HostLog([(0x0A000000, 0x0A000FFF)])
    fast.new.extend(addrs)
    fast.fold(len(addrs))
    slow = HostLog([(0x0A000000, 0x0A000FFF)])
    for a in addrs:  # one at a time: below the burst size, the loop
        slow.new.append(a)
        slow.fold(1)
    assert fast.intervals() == slow.intervals()
    assert fast.count == slow.count == len(addrs) and not fast.new
    assert sum(b - a + 1 for a, b in fast.intervals()[0]) == 1500


def test_a_range_too_wide_for_a_bitmap_keeps_a_set() -> None:
    log = HostLog([(0, (1 << 32) - 1)])
    assert log.bits is None
    log.new.extend(["10.0.0.1", "10.0.0.2"])
    log.fold(2)
    data = json.loads(json.dumps(log.to_json()))
    assert "bits" not in data
    again = HostLog([(0, (1 << 32) - 1)])
    again.load(data)
    assert again.intervals()[0] == [(0x0A000001, 0x0A000002)]


def test_a_checkpoint_holds_the_job_and_resumes_with_what_was_not_written(
    tmp_path: Path,
) -> None:
    space = parse_targets(["127.0.0.1-8", "::1", "localhost"])
    ck = RunCheckpoint(tmp_path / "c", "scan", space, {"ports": "22"}, 7, [])
    with ck.lock:
        ck.wrote(["127.0.0.2", "127.0.0.3", "::1"])
    ck.save()
    assert is_run_checkpoint(ck.path)
    back = RunCheckpoint.load(ck.path)
    assert (back.kind, back.options, back.seed, back.digest) == (
        "scan",
        {"ports": "22"},
        7,
        ck.digest,
    )
    rest = back.remaining()
    assert [str(a) for a in rest] == ["127.0.0.1", *(f"127.0.0.{i}" for i in range(4, 9))]
    assert rest.hostname("127.0.0.1") == "localhost"  # the names given stay with the hosts


def test_a_checkpoint_whose_job_was_edited_is_refused(tmp_path: Path) -> None:
    ck = RunCheckpoint(tmp_path / "c", "sweep", parse_targets(["127.0.0.1"]), {}, None)
    ck.save()
    text = ck.path.read_text().replace('"kind":"sweep"', '"kind":"scan"')
    ck.path.write_text(text)
    with pytest.raises(UsageError, match="does not match"):
        RunCheckpoint.load(ck.path)
    chunked_format = tmp_path / "old"
    chunked_format.write_text('{"format":"hilos-checkpoint/1"}')
    assert not is_run_checkpoint(chunked_format)


# ---------------------------------------------------------------- where it lives


def test_the_checkpoint_sits_beside_the_first_output_file(tmp_path: Path) -> None:
    k = _keeper(tmp_path, "scan", "127.0.0.1", "-o", str(tmp_path / "out.jsonl"), "-oX", "x")
    assert k.ckpt is not None and k.ckpt.path == tmp_path / "out.jsonl.checkpoint"
    k = _keeper(tmp_path, "sweep", "127.0.0.1", "-oA", str(tmp_path / "base"))
    assert k.ckpt is not None and k.ckpt.path == tmp_path / "base.checkpoint"
    # A device is no place for it (root would write into /dev): the next output file.
    k = _keeper(tmp_path, "scan", "127.0.0.1", "-o", "/dev/null", "-oX", str(tmp_path / "x"))
    assert k.ckpt is not None and k.ckpt.path == tmp_path / "x.checkpoint"


def test_with_only_stdout_it_goes_to_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    k = _keeper(tmp_path, "scan", "127.0.0.1", "-p", "22")
    assert k.ckpt is not None
    assert k.ckpt.path.parent == tmp_path / "state" / "hilos"
    assert k.ckpt.path.name == f"scan-{k.ckpt.digest[:16]}.checkpoint"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    k = _keeper(tmp_path, "sweep", "127.0.0.1")
    assert k.ckpt is not None
    assert k.ckpt.path.parent == tmp_path / "home" / ".local" / "state" / "hilos"


@pytest.mark.parametrize(
    "extra",
    [["--no-checkpoint"], ["--shard", "1/2"], ["--baseline", "old.jsonl"]],
)
def test_some_runs_keep_none(tmp_path: Path, extra: list[str]) -> None:
    assert _keeper(tmp_path, "scan", "127.0.0.1", "-o", "o.jsonl", *extra).ckpt is None


# ---------------------------------------------------------------- runs


def _run(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HILOS, *argv], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def test_a_completed_run_removes_its_checkpoint(tmp_path: Path) -> None:
    state = Path(os.environ["XDG_STATE_HOME"]) / "hilos"
    before = set(state.iterdir()) if state.exists() else set()
    done = _run("scan", "127.0.0.1", "-p", "1-20", "--type", "connect", "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (set(state.iterdir()) if state.exists() else set()) == before
    done = _run("sweep", "127.0.0.1-3", "-q", "-o", "h.jsonl", "-oX", "h.xml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl", "h.xml"]


def _written(ck: Path, proc: subprocess.Popen[str], deadline: float = 20.0) -> None:
    """Until the checkpoint counts a host written (the kill then lands inside the run)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert proc.poll() is None, "the run ended before it could be killed"
        try:
            if json.loads(ck.read_text())["written"]["count"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("no host written in time")


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _canon(path: Path) -> list[str]:
    return sorted(json.dumps(o, sort_keys=True) for o in _lines(path))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["scan", "sweep"])
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path, kind: str) -> None:
    argv = (
        [kind, *SLOW]
        if kind == "scan"
        else ["sweep", "127.0.0.1-80", "--method", "tcp", "--rate", "30"]
    )
    ref = _run(*argv, "-q", "--no-checkpoint", "-o", "ref.jsonl", cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr
    ck = tmp_path / "out.jsonl.checkpoint"
    proc = subprocess.Popen(
        [*HILOS, *argv, "-q", "-o", "out.jsonl", "-oX", "out.xml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _written(ck, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    first = {o["host"] for o in _lines(tmp_path / "out.jsonl")}
    assert first  # the kill landed after some hosts were written
    resumed = _run(kind, "--resume", str(ck), "-q", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    hosts = [o["host"] for o in _lines(tmp_path / "out.jsonl")]
    assert len(hosts) == len(set(hosts))  # nothing twice
    assert _canon(tmp_path / "out.jsonl") == _canon(tmp_path / "ref.jsonl")
    doc = xml.dom.minidom.parse(str(tmp_path / "out.xml"))  # closed once, well formed
    assert len(doc.getElementsByTagName("host")) == len(hosts)
    assert not ck.exists()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("kind", ["scan", "sweep"])
def test_a_signal_saves_the_checkpoint_and_names_it(
    tmp_path: Path, kind: str, sig: signal.Signals
) -> None:
    state = tmp_path / "state"
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    argv = [*SLOW] if kind == "scan" else ["127.0.0.1-80", "--method", "tcp", "--rate", "30"]
    proc = subprocess.Popen(
        [*HILOS, kind, *argv],  # every output on stdout: the checkpoint in the state dir
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + sig, err
    (ck,) = (state / "hilos").iterdir()
    assert f"hilos: continue with: hilos {kind} --resume {ck}\n" in err
    written = json.loads(ck.read_text())["written"]["count"]
    resumed = subprocess.run(
        [*HILOS, kind, "--resume", str(ck), "-q"],  # the saved options: text on stdout
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert not ck.exists()
    rest = set(re.findall(r"\b127\.0\.0\.\d+\b", resumed.stdout))
    # The resumed run reports every host the first had not written before the signal.
    assert len(rest) == (40 if kind == "scan" else 80) - written


def test_resume_of_a_scan_checkpoint_as_a_sweep_is_refused(tmp_path: Path) -> None:
    ck = RunCheckpoint(tmp_path / "c", "scan", parse_targets(["127.0.0.1"]), {}, None)
    ck.save()
    done = _run("sweep", "--resume", str(ck.path), cwd=tmp_path)
    assert done.returncode == 2
    assert "hilos scan --resume" in done.stderr


class _Out:
    """Outputs that take hosts into a list; the `n`-th write is cut by Ctrl-C halfway."""

    def __init__(self, path: Path, n: int) -> None:
        self.path, self.n, self.calls = path, n, 0

    def write(self, host: object, flush: bool = True) -> None:
        self.calls += 1
        with self.path.open("a") as f:
            f.write(f"{host.host}\n" if self.calls != self.n else "half a li")  # type: ignore[attr-defined]
        if self.calls == self.n:
            raise KeyboardInterrupt


def test_an_interrupt_inside_a_write_keeps_the_last_consistent_save(tmp_path: Path) -> None:
    from hilos.results import ScanHostResult

    out_file = tmp_path / "out.txt"
    out_file.write_text("")
    ck = RunCheckpoint(tmp_path / "c", "scan", parse_targets(["127.0.0.1-9"]), {}, None)
    ck.files = [str(out_file)]
    keeper = keep.Keeper("scan", ck)
    keeper.start()
    out = _Out(out_file, 3)
    hosts = [ScanHostResult(f"127.0.0.{i}", "up", "user-set", ()) for i in (1, 2, 3)]
    keeper.write(out, hosts[0])  # type: ignore[arg-type]
    keeper.write(out, hosts[1])  # type: ignore[arg-type]
    ck.save()  # the timer's save: two hosts, the file's length after them
    with pytest.raises(KeyboardInterrupt):
        keeper.write(out, hosts[2])  # type: ignore[arg-type]
    keeper.stop()  # no save: the file holds part of a host the checkpoint cannot name
    back = RunCheckpoint.load(ck.path)
    assert back.offsets == {str(out_file): len("127.0.0.1\n127.0.0.2\n")}
    assert [str(a) for a in back.remaining()] == [f"127.0.0.{i}" for i in range(3, 10)]


def test_a_big_batch_goes_into_the_bitmap_at_once(tmp_path: Path) -> None:
    """A dense sweep's batches are folded as they are written (no million strings kept until
    the next save), and a save still pairs the hosts with the outputs' lengths."""
    import numpy  # noqa: F401  (the fast fold needs it loaded, as a dense sweep has)

    space = parse_targets(["127.0.0.0/16"])
    ck = RunCheckpoint(tmp_path / "c", "sweep", space, {}, None, [])
    batch = [f"127.0.{i >> 8}.{i & 255}" for i in range(0, 10_000, 2)]
    with ck.lock:
        ck.wrote(batch)
        assert ck.log.new == [] and ck.written() == 5000
        ck.wrote(["127.0.255.255"])  # small: kept until the save
        assert ck.log.new == ["127.0.255.255"]
    ck.save()
    back = RunCheckpoint.load(ck.path)
    assert back.written() == 5001
    rest = {str(a) for a in back.remaining()}
    assert len(rest) == 65536 - 5001 and "127.0.0.1" in rest and "127.0.0.2" not in rest
