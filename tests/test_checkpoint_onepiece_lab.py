"""The default checkpoint in the lab: a sweep and a SYN scan killed with -9 at a random moment,
then `--resume`, equal an uninterrupted run, each host once, JSON Lines and XML whole."""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
import xml.dom.minidom
from pathlib import Path
from typing import Any

import pytest

from hilos.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.root, pytest.mark.slow]

HILOS = [sys.executable, "-m", "hilos"]
JOBS = {
    # About three seconds each: hosts are written all along (the sweep) or at the end (the
    # SYN scan's walk interleaves every host's ports), so the kill lands before, between or
    # after writes.
    "sweep": ["sweep", "198.18.0.0/16", "--rate", "20000"],
    "scan": ["scan", "198.18.0.0/24", "-p", "1-120", "--type", "syn", "-Pn", "--rate", "10000"],
}


def _facts(path: Path) -> set[tuple[object, ...]]:
    out: set[tuple[object, ...]] = set()
    for line in path.read_text().splitlines():
        o = json.loads(line)
        out.add((o["host"], o["status"]))
        out.update((o["host"], p["port"], p["state"]) for p in o.get("ports", ()))
    return out


def _hosts(path: Path) -> list[str]:
    return [json.loads(line)["host"] for line in path.read_text().splitlines()]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", sorted(JOBS))
def test_kill_9_at_a_random_moment_then_resume(lab: Lab, tmp_path: Path, kind: str) -> None:
    argv = [*HILOS, *JOBS[kind], "-q"]
    ns = ["ip", "netns", "exec", lab.scanner_ns]  # execs hilos itself: the kill reaches it
    ref = tmp_path / "ref.jsonl"
    done = lab.run([*argv, "--no-checkpoint", "-o", str(ref)], timeout=60)
    assert done.returncode == 0, done.stderr
    out, ck = tmp_path / "out.jsonl", tmp_path / "out.jsonl.checkpoint"
    delay = random.uniform(0.3, 2.5)
    proc = subprocess.Popen(
        [*ns, *argv, "-o", str(out), "-oX", str(tmp_path / "out.xml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    if not ck.exists():
        pytest.skip(f"killed after {delay:.2f} s, before the run started")
    resumed = lab.run([*HILOS, kind, "--resume", str(ck), "-q"], timeout=60)
    assert resumed.returncode == 0, (delay, resumed.stderr)
    hosts = _hosts(out)
    assert len(hosts) == len(set(hosts)), f"a host twice (killed after {delay:.2f} s)"
    assert _facts(out) == _facts(ref), f"killed after {delay:.2f} s"
    doc = xml.dom.minidom.parse(str(tmp_path / "out.xml"))
    assert len(doc.getElementsByTagName("host")) == len(hosts)
    assert not ck.exists()


RATE = 10000
# About three seconds of probes each: 256 addresses x 120 ports, or the 60 live ones x 400.
SYN = ["scan", "198.18.0.0/24", "--type", "syn", "--rate", str(RATE)]


def _sent(stderr: str) -> int:
    found = re.findall(r"sent (\d+) packets", stderr)
    assert found, stderr
    return int(found[-1])


def _sent_at(state: dict[str, object]) -> int:
    """Packets a saved scan state had sent (TCP beside UDP: both scans')."""
    if "sent" in state:
        return int(state["sent"])  # type: ignore[call-overload]
    return sum(_sent_at(part) for part in state.values())  # type: ignore[arg-type]


def _kill_and_resume(
    lab: Lab, tmp_path: Path, argv: list[str], after: tuple[float, float]
) -> tuple[int, int, dict[str, Any], float]:
    """`argv` (hilos KIND ...) run whole, then run again, killed -9 at a random moment in
    `after` (seconds) and resumed: the resumed output must equal the whole one, each host
    once. Returns (packets the whole run sent, packets the resumed run sent, the checkpoint
    as the killed run left it, its age at the kill)."""
    ns = ["ip", "netns", "exec", lab.scanner_ns]
    ref = tmp_path / "ref.jsonl"
    done = lab.run([*argv, "--no-checkpoint", "-o", str(ref)], timeout=120)
    assert done.returncode == 0, done.stderr
    out, ck = tmp_path / "out.jsonl", tmp_path / "out.jsonl.checkpoint"
    proc = subprocess.Popen([*ns, *argv, "-q", "-o", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(random.uniform(*after))
    proc.send_signal(signal.SIGKILL)
    killed_at = time.time()
    proc.wait(timeout=10)
    saved = json.loads(ck.read_text())
    resumed = lab.run([*HILOS, argv[len(HILOS)], "--resume", str(ck)], timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    hosts = _hosts(out)
    assert len(hosts) == len(set(hosts))
    assert _facts(out) == _facts(ref)
    age = killed_at - saved["saved"]
    assert age <= 1.0, "saved every half second"
    return _sent(done.stderr), _sent(resumed.stderr), saved, age


@pytest.mark.timeout(240)
@pytest.mark.parametrize("pn", [True, False], ids=["-Pn", "discovery"])
def test_a_resumed_syn_scan_sends_again_only_what_followed_the_last_save(
    lab: Lab, tmp_path: Path, pn: bool
) -> None:
    """The default checkpoint keeps the SYN scan's own state (hilos.syn.resume): after kill -9
    the resumed scan sends only what is left, so the probes sent twice are those sent after
    the last save (the save interval), plus about one timeout before it."""
    argv = [*HILOS, *SYN, *(["-Pn", "-p", "1-120"] if pn else ["-p", "1-400"])]
    whole, again, saved, age = _kill_and_resume(lab, tmp_path, argv, (1.3, 2.2))
    engine = saved["engine"]
    if engine is None:
        # Killed while discovery ran, or the scan still started: nothing of it to keep.
        assert not pn
        pytest.skip("killed before the scan had a state to save")
    at_save = sum(_sent_at(stage["state"]) for stage in engine["stages"] if stage["state"])
    # The killed run sent at most --rate per second after its last save.
    twice = at_save + RATE * age + again - whole
    assert twice <= RATE * (age + 0.3) + 300, (twice, age, at_save, whole)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["sweep", "scan"])
def test_a_resumed_sweep_goes_on_after_the_chunks_done(lab: Lab, tmp_path: Path, kind: str) -> None:
    """The default checkpoint keeps where the sweep's pass stands (hilos.sweep.resume), also
    a scan's discovery: after kill -9 the resumed sweep skips the chunks whose answers were in
    at the last save. (At --rate 20000 the /16's 196,608 probes take ~10 s.)"""
    ports = ["-p", "22,80", "--type", "syn"] if kind == "scan" else []
    argv = [*HILOS, kind, "198.18.0.0/16", *ports, "--rate", "20000"]
    whole, again, saved, _age = _kill_and_resume(lab, tmp_path, argv, (1.6, 3.0))
    state = saved["engine"]
    if kind == "scan":  # killed in discovery: its sweep's state (the scan's packets differ)
        assert state is not None and state["discovery"]["chunk"] >= 1, state
        return
    assert state is not None and state["pass"] == 0 and state["chunk"] >= 1, state
    # 256 blocks of the /16 in 128 chunks: 512 addresses a chunk, 3 probes an address.
    assert again <= whole - 3 * 512 * state["chunk"] + 64, (state, again, whole)


UDP = {
    # The lab /24's live hosts x the top 100 UDP ports at --rate 1000: about 6 s.
    "udp": ["-sU", "--top-ports", "100", "--rate", "1000"],
    # TCP beside UDP (udp.combined): each keeps its state; hosts one has reported while the
    # other still scans them are not written yet, and come back from the reporting one's.
    "syn,udp": ["-sS", "-sU", "-p", "U:53,161,123,T:1-200", "--rate", "2000"],
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", sorted(UDP))
def test_a_resumed_udp_scan_sends_again_only_what_followed_the_last_save(
    lab: Lab, tmp_path: Path, kind: str
) -> None:
    """The UDP scan's state (hilos.udp.resume) in the default checkpoint, killed mid-scan and
    resumed; alone and beside a SYN scan."""
    rate = int(UDP[kind][-1])
    argv = [*HILOS, "scan", "198.18.0.0/24", *UDP[kind]]
    whole, again, saved, age = _kill_and_resume(lab, tmp_path, argv, (2.0, 4.0))
    engine = saved["engine"]
    assert engine is not None and "stages" in engine, engine
    at_save = sum(_sent_at(stage["state"]) for stage in engine["stages"] if stage["state"])
    twice = at_save + rate * age + again - whole
    assert twice <= rate * (age + 0.5) + 100, (twice, age, at_save)
