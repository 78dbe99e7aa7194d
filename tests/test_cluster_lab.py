"""The cluster in the lab: vantage points, a scheduler in vantage 1, workers in vantages 1-3, a
SYN scan of the lab's /24 x top 100 ports equal to one machine's, and a local SYN scan killed
with -9 and resumed. Everything listens on lab addresses inside the lab's namespaces."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from cluster_support import HILOS, Cluster, free_port, wait_for
from hilos.lab import Lab
from hilos.lab.vantage import vantage_address, vantage_ns

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SCAN = ["198.18.0.0/24", "--top-ports", "100", "--type", "syn", "--seed", "21", "-q"]


@pytest.fixture(scope="module")
def vlab(make_lab_module: Callable[..., Lab]) -> Lab:
    return make_lab_module(dense=40, vantage=3)


@pytest.fixture(scope="module")
def make_lab_module() -> Iterator[Callable[..., Lab]]:
    """A lab with vantage points for this module (the session lab has none)."""
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root and the lab (run as root)")
    from hilos.lab import teardown

    name = f"hv{os.getpid() % 100000}"
    teardown(name)
    made: list[Lab] = []

    def factory(**kw: object) -> Lab:
        kw.setdefault("sparse", 0)
        kw.setdefault("ipv6", 2)
        lab = Lab.up(name, **kw)  # type: ignore[arg-type]
        made.append(lab)
        return lab

    try:
        yield factory
    finally:
        teardown(name)


def _in(lab: Lab, k: int) -> list[str]:
    return ["ip", "netns", "exec", vantage_ns(lab.name, k)]


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_vantage_points_reach_each_other_and_the_hosts_only(vlab: Lab) -> None:
    for k in (1, 2, 3):
        ping = subprocess.run([*_in(vlab, k), "ping", "-c1", "-W2", "198.18.0.1"], check=False)
        assert ping.returncode == 0
    peer = subprocess.run([*_in(vlab, 3), "ping", "-c1", "-W2", vantage_address(1)], check=False)
    assert peer.returncode == 0
    routes = subprocess.run(
        [*_in(vlab, 2), "ip", "route"], capture_output=True, text=True, check=True
    ).stdout
    assert "default" not in routes


def test_cluster_syn_scan_equals_one_machine(vlab: Lab, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    subprocess.run([*HILOS, "cluster", "certs", str(certs)], check=True, capture_output=True)
    address = f"tls://{vantage_address(1)}:{free_port()}"
    cluster = Cluster(certs, address, _in(vlab, 1))
    cluster.start_scheduler()
    try:
        for k in (1, 2, 3):
            cluster.prefix = _in(vlab, k)
            cluster.start_worker(f"w{k}", rate=4000)
        cluster.prefix = _in(vlab, 1)
        cluster.wait_for_workers(3)
        out, ref = tmp_path / "c.jsonl", tmp_path / "one.jsonl"
        proc = subprocess.run(
            [*_in(vlab, 1), *HILOS, "scan", *SCAN, "--cluster", address, "--certs", str(certs),
             "-o", str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    finally:
        cluster.stop()
    one = subprocess.run(
        [*_in(vlab, 2), *HILOS, "scan", *SCAN, "-o", str(ref)], capture_output=True, timeout=120
    )
    assert one.returncode == 0
    got, want = _jsonl(out), _jsonl(ref)
    assert len(got) == len({o["host"] for o in got}) >= 40
    # Host for host and port for port: the same JSON objects (the order of hosts aside).
    key = lambda o: str(o["host"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)


def test_local_syn_scan_killed_and_resumed(vlab: Lab, tmp_path: Path) -> None:
    ref, out, ck = tmp_path / "ref.jsonl", tmp_path / "out.jsonl", tmp_path / "c"
    one = subprocess.run([*_in(vlab, 1), *HILOS, "scan", *SCAN, "-o", str(ref)], timeout=120)
    assert one.returncode == 0
    # ~42 live hosts x 100 ports at 1,000 a second: four or five chunks of about a second.
    args = [*SCAN, "--rate", "1000", "--checkpoint", str(ck), "-o", str(out)]
    proc = subprocess.Popen([*_in(vlab, 1), *HILOS, "scan", *args], stdout=subprocess.DEVNULL)
    wait_for(ck, "chunks")  # discovery is over: the scan's chunks are running
    time.sleep(random.uniform(0.0, 2.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    saved = json.loads(ck.read_text())
    assert saved["finished"] is False and saved["chunks"] >= 4
    resumed = subprocess.run(
        [*_in(vlab, 1), *HILOS, "scan", "--resume", str(ck)], capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    got = _jsonl(out)
    assert len(got) == len({o["host"] for o in got})
    key = lambda o: str(o["host"])  # noqa: E731
    assert sorted(got, key=key) == sorted(_jsonl(ref), key=key)
    assert json.loads(ck.read_text())["finished"] is True  # named by the user: it stays


def test_sweep_killed_and_resumed(vlab: Lab, tmp_path: Path) -> None:
    common = ["198.18.0.0/16", "--seed", "8", "-q"]
    ref, out, ck = tmp_path / "ref.jsonl", tmp_path / "out.jsonl", tmp_path / "c"
    one = subprocess.run([*_in(vlab, 2), *HILOS, "sweep", *common, "-o", str(ref)], timeout=120)
    assert one.returncode == 0
    # 65,536 addresses at 16,384 a second: four chunks; each host goes out with its chunk.
    args = [*common, "--rate", "16384", "--checkpoint", str(ck), "-o", str(out)]
    proc = subprocess.Popen([*_in(vlab, 2), *HILOS, "sweep", *args], stdout=subprocess.DEVNULL)
    wait_for(ck, "done")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    saved = json.loads(ck.read_text())
    assert saved["finished"] is False and saved["chunks"] == 4
    resumed = subprocess.run(
        [*_in(vlab, 2), *HILOS, "sweep", "--resume", str(ck)], capture_output=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    got = _jsonl(out)
    assert len(got) == len({o["host"] for o in got})
    # Which probe answers first (and so the reason) may differ from run to run; who is up not.
    assert {(o["host"], o["status"]) for o in got} == {
        (o["host"], o["status"]) for o in _jsonl(ref)
    }
