"""Tests of hilos.bench.workloads: real loopback connects, lazy round-robin items, defaults."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hilos import bench
from hilos.errors import UsageError
from hilos.targets import parse_targets

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def listener() -> Iterator[int]:
    """An open TCP port on 127.0.0.1 (loopback only, by the project's safety rule)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(64)
        yield srv.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_scan_workload_connects_for_real(listener: int, closed_port: int) -> None:
    workload = bench.connect_workload("scan", ["127.0.0.1"], [listener, closed_port], timeout=1.0)
    assert workload.tasks == 2
    result = bench.run_bench(workload, (1, 2), repeat=1)
    assert dict(result.outcomes) == {"open": 1, "closed": 1}
    assert result.first_error is None


def test_sweep_workload_counts_rst_as_up(closed_port: int) -> None:
    workload = bench.connect_workload("sweep", ["127.0.0.1"], [closed_port], tasks=10)
    result = bench.run_bench(workload, (1, 4), repeat=1)
    assert dict(result.outcomes) == {"up": 10}


def test_connect_work_is_lazy_and_round_robin() -> None:
    space = parse_targets(["127.0.0.0/8"])
    huge = bench.connect_workload("scan", space, range(1, 1025))
    assert huge.tasks == 2**24 * 1024  # counted, never listed
    assert next(iter(huge.items())) == ("127.0.0.0", 1)
    small = bench.connect_workload("scan", ["127.0.0.1"], [7, 9], tasks=5)
    assert list(small.items()) == [("127.0.0.1", p) for p in (7, 9, 7, 9, 7)]
    assert list(small.items()) == list(small.items())  # a fresh iterable per run


def test_make_workload_uses_the_project_parsers() -> None:
    scan = bench.make_workload("scan", targets=["127.0.0.1"])
    assert scan.tasks == 1024  # default ports 1-1024
    sweep = bench.make_workload("sweep", targets=["127.0.0.1"], ports="22")
    assert sweep.tasks == bench.DEFAULT_TASKS["sweep"]
    assert bench.make_workload("cpu").tasks == bench.DEFAULT_TASKS["cpu"]
    with pytest.raises(UsageError):
        bench.make_workload("scan", ports="0")
    with pytest.raises(UsageError):
        bench.make_workload("nope")
