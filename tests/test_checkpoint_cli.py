"""hilos scan --checkpoint/--resume from the command line: kill -9 at a random moment, resume,
and the outputs equal an uninterrupted run, each host once (loopback connect scans)."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

HILOS = [sys.executable, "-m", "hilos"]


@pytest.fixture
def listeners() -> Iterator[list[int]]:
    """Three listening ports on 127.0.0.1, so the scans find something open."""
    socks = []
    for _ in range(3):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        socks.append(s)
    try:
        yield [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _facts(objs: list[dict[str, object]]) -> set[tuple[object, ...]]:
    return {
        (o["host"], o["status"], p["port"], p["state"])
        for o in objs
        for p in o["ports"]  # type: ignore[attr-defined]
    }


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, listeners: list[int]
) -> None:
    ports = ",".join(str(p) for p in [*range(1, 101), *listeners])
    common = ["127.0.0.1-4", "-p", ports, "--type", "connect", "--seed", "5", "--all", "-q"]
    ref = tmp_path / "ref.jsonl"
    subprocess.run([*HILOS, "scan", *common, "-o", str(ref)], check=True, timeout=60)
    out, xml, ck = tmp_path / "out.jsonl", tmp_path / "out.xml", tmp_path / "scan.checkpoint"
    # 412 probes at 100 a second: five chunks of about a second; killed inside the run.
    args = [*common, "--rate", "100", "--checkpoint", str(ck), "-o", str(out), "-oX", str(xml)]
    proc = subprocess.Popen([*HILOS, "scan", *args], stdout=subprocess.DEVNULL)
    time.sleep(random.uniform(1.2, 3.2))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    saved = json.loads(ck.read_text())  # the run had not finished: its checkpoint is there
    assert saved["finished"] is False and saved["chunks"] >= 4
    resumed = subprocess.run(
        [*HILOS, "scan", "--resume", str(ck)], capture_output=True, text=True, timeout=60
    )
    assert resumed.returncode == 0, resumed.stderr
    got = _lines(out)
    assert len(got) == len({o["host"] for o in got}) == 4  # each host once
    assert _facts(got) == _facts(_lines(ref))
    assert {("127.0.0.1", p) for p in listeners} <= {
        (h, p) for h, _s, p, st in _facts(got) if st == "open"
    }
    root = ET.parse(xml).getroot()  # closed correctly
    assert len(root.findall("host")) == 4 and root.find("runstats") is not None
    # Finished: the checkpoint the user named stays, saying so; --resume of it changes nothing.
    assert json.loads(ck.read_text())["finished"] is True
    again = subprocess.run(
        [*HILOS, "scan", "--resume", str(ck)], capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0 and "finished already" in again.stderr
    assert _lines(out) == got


@pytest.mark.slow
def test_sigterm_keeps_what_was_found_and_resume_finishes(
    tmp_path: Path, listeners: list[int]
) -> None:
    ports = ",".join(str(p) for p in [*range(1, 51), *listeners])
    out, ck = tmp_path / "out.jsonl", tmp_path / "c"
    args = ["127.0.0.1-4", "-p", ports, "--type", "connect", "--rate", "80", "--seed", "2"]
    proc = subprocess.Popen(
        [*HILOS, "scan", *args, "--checkpoint", str(ck), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.6)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    assert f"--resume {ck}" in err
    assert all(o.get("complete") is False for o in _lines(out))
    done = json.loads(ck.read_text())["done"]
    assert done  # the chunks finished before the signal are saved
    resumed = subprocess.run([*HILOS, "scan", "--resume", str(ck), "-q"], timeout=60)
    assert resumed.returncode == 0
    got = {str(o["host"]): o for o in _lines(out)}
    assert len(got) == 4 and not any("complete" in o for o in got.values())
    first = got["127.0.0.1"]["ports"]
    assert {p["port"] for p in first} == set(listeners)  # type: ignore[attr-defined]


def test_cluster_without_the_extra_exits_2_naming_it() -> None:
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from hilos.cli import main\n"
        "sys.exit(main(['scan', '127.0.0.1', '-p', '22', '--type', 'connect',"
        " '--cluster', 'tls://127.0.0.1:8786', '--certs', '/nonexistent']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "hilos[cluster]" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_resume_of_a_missing_checkpoint_is_a_usage_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*HILOS, "scan", "--resume", str(tmp_path / "nope")], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("hilos: error: --resume") and "no such checkpoint" in proc.stderr


@pytest.mark.slow
def test_hosts_stream_out_and_resume_cuts_the_files_where_the_checkpoint_says(
    tmp_path: Path, listeners: list[int]
) -> None:
    # 60 hosts x 3 ports at 45 a second: four chunks; a host is written once its last port
    # is in, so most are written before the end, and the kill lands after some of them.
    ports = ",".join(str(p) for p in listeners)
    common = ["127.0.0.1-60", "-p", ports, "--type", "connect", "--seed", "4", "--all", "-q"]
    ref = tmp_path / "ref.jsonl"
    subprocess.run([*HILOS, "scan", *common, "-o", str(ref)], check=True, timeout=60)
    out, xml, ck = tmp_path / "out.jsonl", tmp_path / "out.xml", tmp_path / "c"
    args = [*common, "--rate", "45", "--checkpoint", str(ck), "-o", str(out), "-oX", str(xml)]
    proc = subprocess.Popen([*HILOS, "scan", *args], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until the checkpoint says hosts were written
        time.sleep(0.1)
        try:
            if json.loads(ck.read_text())["written"]:
                break
        except (OSError, ValueError):
            continue
    time.sleep(random.uniform(0.0, 0.6))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    saved = json.loads(ck.read_text())
    assert saved["finished"] is False and saved["written"]
    # The checkpoint's length of each file holds exactly the hosts it says were written.
    prefix = out.read_bytes()[: saved["offsets"][str(out)]].decode()
    assert sorted(json.loads(x)["host"] for x in prefix.splitlines()) == sorted(saved["written"])
    cut = xml.read_bytes()[: saved["offsets"][str(xml)]] + b"</nmaprun>"
    assert len(ET.fromstring(cut).findall("host")) == len(saved["written"])
    resumed = subprocess.run([*HILOS, "scan", "--resume", str(ck)], timeout=60)
    assert resumed.returncode == 0
    got = _lines(out)
    assert len(got) == len({o["host"] for o in got}) == 60
    assert _facts(got) == _facts(_lines(ref))
    assert len(ET.parse(xml).getroot().findall("host")) == 60


def test_resume_takes_no_targets(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*HILOS, "scan", "127.0.0.1", "--resume", str(tmp_path / "c")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "give no targets" in proc.stderr


def test_cluster_subcommand_contract(tmp_path: Path) -> None:
    bare = subprocess.run([*HILOS, "cluster"], capture_output=True, text=True)
    assert bare.returncode == 2 and bare.stderr.startswith("hilos: error:")
    plain = subprocess.run(
        [*HILOS, "cluster", "scheduler", "--listen", "tcp://127.0.0.1:1"],
        capture_output=True,
        text=True,
    )
    assert plain.returncode == 2 and "--insecure" in plain.stderr
