"""The batched sweep of 127.0.0.0/8: exact counts where every address answers (a namespace
of the test's own with only lo up), the index <-> address maps, which sweeps it serves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hilos.sweep import Sweeper
from hilos.sweep.dense import DenseSweep
from hilos.sweep.dense_ranges import dense_ranges
from hilos.targets import parse_targets
from hilos.wire.cookie import Cookie
from hilos.wire.ratelimit import TokenBucket

SRC = str(Path(__file__).parents[1] / "src")


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh network namespace with only lo up (every 127/8 address answers there)."""
    name = f"hilos-t{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.mark.root
@pytest.mark.slow
def test_dense_sweep_of_a_16_finds_every_address(netns: str, tmp_path: Path) -> None:
    out = tmp_path / "up.jsonl"
    cmd = [sys.executable, "-m", "hilos", "sweep", "127.0.0.0/16", "-q", "-oJ", str(out)]
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.run(["ip", "netns", "exec", netns, *cmd], env=env, timeout=120,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    hosts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(hosts) == 65536
    assert len({h["host"] for h in hosts}) == 65536
    assert {h["status"] for h in hosts} == {"up"}
    assert {h["reason"] for h in hosts} == {"echo-reply"}


@pytest.mark.root
@pytest.mark.parametrize("method", ["icmp", "tcp", "auto"])
def test_batched_sweep_on_loopback_per_method(method: str) -> None:
    space = parse_targets(["127.0.3.0/25", "127.0.9.7-127.0.9.20"])
    sweeper = Sweeper(space, method=method, timeout=1.0)  # type: ignore[arg-type]
    found = list(sweeper)
    assert "(batched)" in sweeper.notice
    assert len(found) == len({r.host for r in found}) == 128 + 14
    want = {"icmp": {"echo-reply"}, "auto": {"echo-reply"}, "tcp": {"reset"}}[method]
    assert {r.reason for r in found} == want
    assert sweeper.up == 142


@pytest.mark.root
def test_batched_sweep_in_random_order_with_all_hosts() -> None:
    space = parse_targets(["127.0.4.0/23"])
    found = list(Sweeper(space, method="icmp", randomize=True, seed=5, all_hosts=True))
    assert sorted(r.host for r in found) == sorted(str(a) for a in space)
    assert {r.status for r in found} == {"up"}


def test_dense_ranges_serves_only_loopback_ipv4() -> None:
    assert dense_ranges(parse_targets(["10.0.0.0/24"])) is None
    assert dense_ranges(parse_targets(["127.0.0.1", "::1"])) is None
    assert dense_ranges(["127.0.0.1"]) is None  # a plain list keeps the old engines
    if os.geteuid() == 0:
        got = dense_ranges(parse_targets(["127.0.0.9", "127.0.0.0/29"]))
        assert got == [(0x7F000000, 0x7F000007), (0x7F000009, 0x7F000009)]


@pytest.mark.root
def test_index_and_address_maps_and_down_list() -> None:
    ranges = [(0x7F000000, 0x7F0000FF), (0x7F000300, 0x7F000302), (0x7F100000, 0x7F100009)]
    dense = DenseSweep(ranges, "icmp", Cookie(1), TokenBucket(None), lambda a, r, t: [],  # type: ignore
                       lambda rs: None, lambda s: None, None)  # fmt: skip
    try:
        assert dense.size == 256 + 3 + 10
        idx = np.arange(dense.size, dtype=np.int64)
        addrs = dense.addrs(idx)
        want = [a for lo, hi in ranges for a in range(lo, hi + 1)]
        assert addrs.tolist() == want
        probe = np.array([0x7EFFFFFF, 0x7F000100, 0x7F000301, 0x7F10000A, 0x7F100009], np.int64)
        assert dense.indices(probe).tolist() == [257, 268]
        dense.reason[:] = 1
        dense.reason[[3, 258]] = 0
        assert list(dense.down()) == [0x7F000003, 0x7F000302]
    finally:
        dense.close()


def test_up_results_text_and_names() -> None:
    from hilos.results import HostResult
    from hilos.sweep.base import up_results

    keys = [0x7F000001, 0xC6120A0B, 0xFFFFFFFF]
    got = up_results(keys, ["echo-reply", "syn-ack", "reset"], [0.5, None, 1.25])
    assert got == [
        HostResult("127.0.0.1", "up", "echo-reply", 0.5),
        HostResult("198.18.10.11", "up", "syn-ack", None),
        HostResult("255.255.255.255", "up", "reset", 1.25),
    ]
    named = up_results(keys[:1], ["echo-reply"], [None], hostname={"127.0.0.1": "lo"}.get)
    assert named[0].hostname == "lo"
