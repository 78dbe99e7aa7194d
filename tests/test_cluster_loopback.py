"""hilos scan --cluster on loopback: a TLS scheduler and workers as processes, connect scans of
127.0.0.0/8 addresses; equal to one machine, exact after a worker or the client dies, and the
scheduler refuses clients without our certificates."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from cluster_support import HILOS, Cluster, make_cluster, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def listeners() -> Iterator[list[int]]:
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = make_cluster(tmp_path, workers=3, rate=50)  # 12 chunks of ~1.2 s: ~5 s a scan
    try:
        yield c
    finally:
        c.stop()


def _facts(path: Path) -> tuple[list[str], set[tuple[object, ...]]]:
    objs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    facts = {(o["host"], o["status"], p["port"], p["state"]) for o in objs for p in o["ports"]}
    return [o["host"] for o in objs], facts


def _scan_args(listeners: list[int]) -> list[str]:
    ports = ",".join(str(p) for p in [*range(1, 121), *listeners])
    return ["127.0.0.1-6", "-p", ports, "--type", "connect", "--seed", "9", "--all", "-q"]


def _reference(tmp_path: Path, listeners: list[int]) -> set[tuple[object, ...]]:
    ref = tmp_path / "ref.jsonl"
    subprocess.run([*HILOS, "scan", *_scan_args(listeners), "-o", str(ref)], check=True)
    hosts, facts = _facts(ref)
    assert len(hosts) == 6
    return facts


def test_cluster_scan_equals_one_machine(
    tmp_path: Path, cluster: Cluster, listeners: list[int]
) -> None:
    out = tmp_path / "c.jsonl"
    proc = subprocess.run(
        [*HILOS, "scan", *_scan_args(listeners), "--cluster", cluster.address, "--certs",
         str(cluster.certs), "-o", str(out)],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    hosts, facts = _facts(out)
    assert sorted(hosts) == sorted(set(hosts)) and len(hosts) == 6  # each host once
    assert facts == _reference(tmp_path, listeners)
    assert not Path(f"{out}.checkpoint").exists()  # finished: the checkpoint went


def test_a_worker_killed_mid_scan_costs_nothing(
    tmp_path: Path, cluster: Cluster, listeners: list[int]
) -> None:
    out = tmp_path / "c.jsonl"
    client = subprocess.Popen(
        [*HILOS, "scan", *_scan_args(listeners), "--cluster", cluster.address, "--certs",
         str(cluster.certs), "-o", str(out)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(2.5)  # discovery is instant on loopback: the workers are mid-chunk
    assert client.poll() is None
    cluster.kill("w2")
    _, err = client.communicate(timeout=90)
    assert client.returncode == 0, err
    hosts, facts = _facts(out)
    assert len(hosts) == len(set(hosts)) == 6
    assert facts == _reference(tmp_path, listeners)


def test_a_killed_client_resumes_exactly(
    tmp_path: Path, cluster: Cluster, listeners: list[int]
) -> None:
    out, ck = tmp_path / "c.jsonl", tmp_path / "c.checkpoint"
    client = subprocess.Popen(
        [*HILOS, "scan", *_scan_args(listeners), "--cluster", cluster.address, "--certs",
         str(cluster.certs), "-o", str(out), "--checkpoint", str(ck)],
    )  # fmt: skip
    wait_for(ck, "chunks")
    time.sleep(1.0)
    assert client.poll() is None
    client.send_signal(signal.SIGKILL)
    client.wait(timeout=10)
    saved = json.loads(ck.read_text())
    assert saved["finished"] is False and len(saved["done"]) < saved["chunks"]
    resumed = subprocess.run(
        [*HILOS, "scan", "--resume", str(ck)], capture_output=True, text=True, timeout=90
    )
    assert resumed.returncode == 0, resumed.stderr
    hosts, facts = _facts(out)
    assert len(hosts) == len(set(hosts)) == 6
    assert facts == _reference(tmp_path, listeners)
    assert json.loads(ck.read_text())["finished"] is True  # named by the user: it stays


def _connect(address: str, security: object) -> str:
    """'joined' or the error a client gets, in a child process (no state left here)."""
    code = (
        "import pickle, sys\n"
        "from distributed import Client\n"
        "sec = pickle.loads(sys.stdin.buffer.read())\n"
        "try:\n"
        f"    Client({address!r}, security=sec, timeout=8).close(); print('joined')\n"
        "except Exception as e:\n"
        "    print('refused', type(e).__name__)\n"
    )
    import pickle

    proc = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(security), capture_output=True,
        timeout=60,
    )  # fmt: skip
    return proc.stdout.decode().strip()


def test_the_scheduler_refuses_clients_without_our_certificates(
    tmp_path: Path, cluster: Cluster
) -> None:
    from distributed.security import Security

    assert _connect(cluster.address, cluster.security()) == "joined"
    other = tmp_path / "other"
    subprocess.run([*HILOS, "cluster", "certs", str(other)], check=True, capture_output=True)
    assert _connect(cluster.address, cluster.security(other)).startswith("refused")
    # TLS that trusts the scheduler but shows no client certificate of its own.
    no_cert = Security(tls_ca_file=str(cluster.certs / "ca.pem"), require_encryption=True)
    assert _connect(cluster.address, no_cert).startswith("refused")
    # Plain TCP to the TLS listener.
    plain = cluster.address.replace("tls://", "tcp://")
    assert _connect(plain, None).startswith("refused")


def _scheduler_tasks(cluster: Cluster) -> int:
    code = (
        "import pickle, sys\n"
        "from distributed import Client\n"
        "sec = pickle.loads(sys.stdin.buffer.read())\n"
        f"with Client({cluster.address!r}, security=sec, timeout=8) as c:\n"
        "    print(c.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))\n"
    )
    import pickle

    proc = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(cluster.security()),
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return int(proc.stdout.decode().split()[-1])


def test_ctrl_c_cancels_the_clusters_tasks_and_keeps_what_was_found(
    tmp_path: Path, cluster: Cluster, listeners: list[int]
) -> None:
    out, ck = tmp_path / "c.jsonl", tmp_path / "c.checkpoint"
    client = subprocess.Popen(
        [*HILOS, "scan", *_scan_args(listeners), "--cluster", cluster.address, "--certs",
         str(cluster.certs), "-o", str(out), "--checkpoint", str(ck)],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(ck, "done")  # some chunks are in
    assert client.poll() is None
    client.send_signal(signal.SIGINT)
    _, err = client.communicate(timeout=30)
    assert client.returncode == 130, err
    assert json.loads(ck.read_text())["finished"] is False  # -q: no hint, but the checkpoint
    hosts, _facts_found = _facts(out)
    assert hosts and len(hosts) == len(set(hosts))  # what the chunks done found, each once
    deadline = time.monotonic() + 20
    while _scheduler_tasks(cluster) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _scheduler_tasks(cluster) == 0  # nothing of the job left on the cluster
