"""hilos.resume: the job's hash, the atomic checkpoint, the merge, chunked runs on loopback."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hilos.errors import UsageError
from hilos.pipeline import scan
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.resume import (
    Checkpoint,
    ChunkedJob,
    ChunkResult,
    Discovery,
    JobSpec,
    LocalExecutor,
    Merger,
    chunk_count,
    space_cidrs,
)
from hilos.targets import parse_targets


def _spec(**kw: object) -> JobSpec:
    base: dict[str, object] = {"targets": ("127.0.0.1/32",), "ports": (22, 80), "seed": 7}
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


def _port(n: int, state: str = "open") -> PortResult:
    return PortResult(n, state, "syn-ack" if state == "open" else "reset")  # type: ignore[arg-type]


def test_digest_covers_every_field_and_is_stable() -> None:
    spec = _spec()
    assert spec.digest == _spec().digest
    changed = [
        _spec(targets=("127.0.0.2/32",)),
        _spec(ports=(22, 81)),
        _spec(seed=8),
        _spec(rate=10.0),
        _spec(scan_type="syn"),
        _spec(discovery=False),
        _spec(show_all=True),
    ]
    assert len({spec.digest, *(c.digest for c in changed)}) == len(changed) + 1
    assert JobSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    with pytest.raises(UsageError):
        JobSpec.from_json({**spec.to_json(), "bogus": 1})


def test_space_cidrs_keep_excludes() -> None:
    space = parse_targets(["127.0.0.0/29"], exclude=["127.0.0.3"])
    cidrs = space_cidrs(space)
    again = parse_targets(list(cidrs))
    assert [str(a) for a in again] == [str(a) for a in space]
    assert "127.0.0.3" not in {str(a) for a in again}


def test_chunk_count_is_about_a_second_of_probes() -> None:
    assert chunk_count(_spec(rate=100.0, ports=tuple(range(1, 101))), 10) == 10
    assert chunk_count(_spec(rate=1000.0), 1) == 1
    assert chunk_count(_spec(rate=100.0, ports=tuple(range(1, 101))), 10, seconds=5) == 2


def test_merger_counts_a_chunk_once_and_a_port_once() -> None:
    m = Merger()
    first = ChunkResult(1, (ScanHostResult("127.0.0.1", "up", "syn-ack", (_port(22),)),), 2, 1.0)
    assert m.add(first)
    assert not m.add(first)  # the same chunk run twice (a rerun task) adds nothing
    other = ChunkResult(
        2,
        (ScanHostResult("127.0.0.1", "up", "syn-ack", (_port(80, "closed"), _port(22))),),
        2,
        1.0,
    )
    assert m.add(other)
    (host,) = m.hosts()
    assert [(p.port, p.state) for p in host.ports] == [(22, "open"), (80, "closed")]
    assert m.done == {1, 2}


def test_final_lists_discovered_hosts_and_down_ones_with_all() -> None:
    m = Merger()
    m.add(ChunkResult(1, (ScanHostResult("198.18.0.9", "up", "echo-reply", (_port(22),)),), 1, 1))
    found = Discovery(
        (HostResult("198.18.0.9", "up", "echo-reply"), HostResult("198.18.0.2", "up", "reset")),
        (HostResult("198.18.0.3", "down", "no-response"),),
        True,
    )
    hosts = m.final(found, {"198.18.0.9": "nine"}, show_all=False)
    assert [(h.host, h.status, len(h.ports), h.hostname) for h in hosts] == [
        ("198.18.0.2", "up", 0, None),
        ("198.18.0.9", "up", 1, "nine"),
    ]
    with_down = m.final(found, {}, show_all=True)
    assert [h.status for h in with_down] == ["up", "up", "down"]


def test_checkpoint_round_trip_and_atomic_write(tmp_path: Path) -> None:
    path = tmp_path / "job.checkpoint"
    ck = Checkpoint(path, _spec(), {"format": ["json"]}, {"127.0.0.1": "localhost"})
    ck.count = 3
    ck.found = Discovery((HostResult("127.0.0.1", "up", "localhost-response"),), (), True)
    ck.merger.add(ChunkResult(2, (ScanHostResult("127.0.0.1", "up", "x", (_port(22),)),), 1, 1))
    ck.save()
    assert sorted(os.listdir(tmp_path)) == ["job.checkpoint"]  # no temporary file left
    back = Checkpoint.load(path)
    assert back.spec == ck.spec and back.count == 3 and back.merger.done == {2}
    assert back.found == ck.found and back.options == {"format": ["json"]}
    assert back.merger.hosts() == ck.merger.hosts()
    assert back.names == {"127.0.0.1": "localhost"}


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no such checkpoint"),
        ("{not json", "not a readable checkpoint"),
        ('{"format": "other"}', "not a hilos checkpoint"),
    ],
)
def test_load_refuses_missing_or_foreign_files(
    tmp_path: Path, content: str | None, why: str
) -> None:
    path = tmp_path / "c"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=why):
        Checkpoint.load(path)


def test_load_refuses_an_edited_configuration(tmp_path: Path) -> None:
    path = tmp_path / "c"
    Checkpoint(path, _spec()).save()
    data = json.loads(path.read_text())
    data["job"]["ports"] = [22, 80, 443]  # the hash no longer matches
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="does not match its hash"):
        Checkpoint.load(path)


def _facts(hosts: list[ScanHostResult]) -> set[tuple[str, str, int, str]]:
    return {(h.host, h.status, p.port, p.state) for h in hosts for p in h.ports}


def test_local_chunked_job_equals_one_scan(tmp_path: Path) -> None:
    space = parse_targets(["127.0.0.1-3"])
    spec = JobSpec(space_cidrs(space), tuple(range(1, 61)), "connect", rate=60.0, seed=11)
    ck = Checkpoint(tmp_path / "c", spec)
    job = ChunkedJob(ck, LocalExecutor())
    job.run()
    assert ck.count is not None and ck.count >= 3 and job.complete()
    assert json.loads((tmp_path / "c").read_text())["finished"] is True
    got = job.final()
    one = list(scan(["127.0.0.1-3"], list(range(1, 61)), scan_type="connect", seed=11))
    assert _facts(got) == _facts(one)
    assert len(got) == len(one) == 3
    job.finish()
    assert not (tmp_path / "c").exists()


def test_a_resumed_job_runs_only_the_missing_chunks(tmp_path: Path) -> None:
    space = parse_targets(["127.0.0.1-2"])
    spec = JobSpec(space_cidrs(space), tuple(range(1, 41)), "connect", rate=40.0, seed=3)
    ran: list[int] = []

    class Counting(LocalExecutor):
        def __init__(self, stop: bool) -> None:
            super().__init__()
            self.stop = stop

        def chunks(self, spec, found, count, numbers):  # type: ignore[no-untyped-def]
            for result in super().chunks(spec, found, count, numbers):
                ran.append(result.number)
                yield result
                if self.stop:
                    raise KeyboardInterrupt  # stop after the first chunk, as Ctrl-C would

    ck = Checkpoint(tmp_path / "c", spec)
    with pytest.raises(KeyboardInterrupt):
        ChunkedJob(ck, Counting(stop=True)).run()
    saved = Checkpoint.load(tmp_path / "c")
    assert saved.count is not None and saved.count >= 2
    assert saved.merger.done == {1} == set(ran)
    ran.clear()
    resumed = ChunkedJob(saved, Counting(stop=False))
    resumed.run()
    assert resumed.complete() and ran == list(range(2, saved.count + 1))
    one = list(scan(["127.0.0.1-2"], list(range(1, 41)), scan_type="connect", seed=3))
    assert _facts(resumed.final()) == _facts(one)


def test_a_chunked_sweep_finds_every_host_once(tmp_path: Path) -> None:
    from hilos.sweep import Sweeper

    space = parse_targets(["127.0.0.1-40"])
    spec = JobSpec(space_cidrs(space), (), "", discovery=False, rate=10.0, seed=5, kind="sweep")
    written: list[str] = []

    def on_hosts(hosts: list[ScanHostResult]) -> dict[str, int]:
        written.extend(h.host for h in hosts)
        return {}

    job = ChunkedJob(Checkpoint(tmp_path / "c", spec), LocalExecutor(), on_hosts=on_hosts)
    job.run()
    assert job.ckpt.count == 4  # 40 addresses at 10 a second: a second each
    assert job.final() == []  # every host was final with its chunk, and went out then
    assert sorted(written) == sorted({*written})
    assert set(written) == {h.host for h in Sweeper(space) if h.status == "up"}


def test_written_hosts_leave_the_merger_and_a_rerun_does_not_bring_them_back() -> None:
    m = Merger()
    h = ScanHostResult("127.0.0.1", "up", "x", (_port(22), _port(80, "closed")))
    m.add(ChunkResult(1, (h,), 2, 1.0))
    assert m.complete("127.0.0.1", 2)
    m.drop([m.host("127.0.0.1")])
    assert m.hosts() == [] and m.written == {"127.0.0.1": "up"}
    m.add(ChunkResult(2, (h,), 2, 1.0))  # a chunk run twice brings the host again
    assert m.hosts() == []
    found = Discovery((HostResult("127.0.0.1", "up", "x"),), (), True)
    # Merger.final still names discovery's host; ChunkedJob.final leaves out the written ones.
    assert [x.host for x in m.final(found, {}, show_all=False)] == ["127.0.0.1"]
