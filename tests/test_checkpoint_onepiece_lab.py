"""The default checkpoint in the lab: a sweep and a SYN scan killed with -9 at a random moment,
then `--resume`, equal an uninterrupted run, each host once, JSON Lines and XML whole."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
import xml.dom.minidom
from pathlib import Path

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
