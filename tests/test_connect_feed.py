"""hilos.connect.feed: interleaved hosts, shards that partition the walk, answers and partials."""

from __future__ import annotations

from hilos.connect.feed import HostFeed
from hilos.connect.hosts import CLOSED, OPEN
from hilos.results import HostResult
from hilos.wire.ratelimit import TokenBucket

ADDRS = [f"127.0.0.{i}" for i in range(1, 6)]


def feed_of(addrs: list[str], nports: int, **kw: object) -> HostFeed:
    args: dict[str, object] = {"bucket": None, "max_active": 256, "shard": None, **kw}
    f = HostFeed(tuple(range(1, nports + 1)), **args)  # type: ignore[arg-type]
    for a in addrs:
        f.add(a)
    f.source_done()
    return f


def drain(f: HostFeed, step: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    while got := f.take(step):
        out.extend((h.addr, p_i) for h, p_i, attempt in got if attempt == 0)
    return out


def test_every_probe_once_interleaving_hosts() -> None:
    f = feed_of(ADDRS[:3], 40)
    first = f.take(12)
    assert {h.addr for h, _, _ in first} == set(ADDRS[:3])  # a step spreads over every host
    rest = drain(f, 12)
    pairs = [(h.addr, p) for h, p, _ in first] + rest
    assert sorted(pairs) == sorted((a, p) for a in ADDRS[:3] for p in range(40))
    assert f.exhausted() and f.total == 120


def test_max_active_hosts_caps_the_interleaving() -> None:
    f = feed_of(ADDRS, 100, max_active=2)
    assert {h.addr for h, _, _ in f.take(50)} == set(ADDRS[:2])


def test_shards_partition_the_walk() -> None:
    seen: list[tuple[str, int]] = []
    expected = 0
    for i in range(1, 4):
        f = HostFeed(tuple(range(1, 31)), bucket=None, max_active=256, shard=(i, 3))
        f.prepare_shard(ADDRS, 7, None)
        expected += f.total
        seen.extend(drain(f, 16))
        assert f.exhausted()
    assert len(seen) == len(set(seen)) == expected == len(ADDRS) * 30


def test_shard_probes_only_hosts_in_only_but_walks_them_all() -> None:
    whole = HostFeed(tuple(range(1, 31)), bucket=None, max_active=256, shard=(1, 2))
    whole.prepare_shard(ADDRS, 7, None)
    part = HostFeed(tuple(range(1, 31)), bucket=None, max_active=256, shard=(1, 2))
    part.prepare_shard(ADDRS, 7, {ADDRS[0]})
    full = drain(whole, 16)
    assert drain(part, 16) == [p for p in full if p[0] == ADDRS[0]]  # same order, same shard


def test_record_emits_a_host_when_every_port_answered() -> None:
    f = feed_of(ADDRS[:2], 2)
    h = f.hosts[0]
    f.record([(h, 0, OPEN)])
    assert f.out.empty() and f.done == 1
    f.record([(h, 0, CLOSED), (h, 1, CLOSED)])  # a late duplicate answer is ignored
    r = f.out.get_nowait()
    assert r is not None and [p.state for p in r.ports] == ["open", "closed"]
    assert f.done == 2 and f.hosts_done == 1


def test_partial_keeps_answered_ports_of_unfinished_hosts() -> None:
    f = feed_of(ADDRS[:2], 3)
    h = f.hosts[1]
    f.record([(h, 2, CLOSED)])
    (r,) = f.partial()
    assert r.host == ADDRS[1] and [p.port for p in r.ports] == [3]


def test_discovered_hosts_are_fed_too() -> None:
    f = HostFeed((80,), bucket=None, max_active=256, shard=None)
    f.add(HostResult("127.0.0.1", "up", "echo-reply", 0.3))
    assert [(h.addr, h.found is not None) for h, _, _ in f.take(4)] == [("127.0.0.1", True)]


def test_bucket_grants_part_of_a_step() -> None:
    f = feed_of(ADDRS[:1], 1000, bucket=TokenBucket(100.0, burst=8))
    assert 1 <= len(f.take(64)) <= 8  # a worker never waits for tokens holding the lock
