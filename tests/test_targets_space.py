"""Tests of hilos.targets.space: TargetSpace access, size, order, memory, shards and names.

Nothing here sends a packet; non-loopback addresses appear only as text and integers.
"""

from __future__ import annotations

import ipaddress
import itertools
import tracemalloc
from ipaddress import IPv4Address, IPv6Address

import pytest

from hilos.errors import UsageError
from hilos.targets import (
    TargetSpace,
    parse_targets,
)


def addrs(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


def test_ipv6_slash_64_size_and_len_overflow() -> None:
    space = parse_targets(["fd18:0:0:100::/64"])
    assert space.size == 2**64
    assert bool(space)
    with pytest.raises(OverflowError, match=r"use \.size"):
        len(space)
    assert space[2**64 - 1] == IPv6Address("fd18:0:0:100:ffff:ffff:ffff:ffff")
    assert IPv6Address("fd18:0:0:100::1234") in space
    assert IPv6Address("fd18:0:0:101::") not in space
    first = list(itertools.islice(space, 3))
    assert first == addrs("fd18:0:0:100::", "fd18:0:0:100::1", "fd18:0:0:100::2")


def test_getitem_contains_and_types() -> None:
    space = parse_targets(["127.0.0.1-3", "::1"])
    assert space[-1] == IPv6Address("::1") and space[-4] == IPv4Address("127.0.0.1")
    for bad in (4, -5):
        with pytest.raises(IndexError):
            space[bad]
    with pytest.raises(TypeError):
        space["1"]  # type: ignore[index]
    assert "127.0.0.2" in space and "::1" in space
    assert "127.0.0.9" not in space and "not an address" not in space and 5 not in space
    assert space.int_at(0) == (4, int(IPv4Address("127.0.0.1")))
    assert space.int_at(3) == (6, 1)


def test_from_intervals() -> None:
    space = TargetSpace.from_intervals(v4=[(5, 9), (1, 6)], v6=[(1, 1)])
    assert space.size == 10 and space[0] == IPv4Address(1) and space[-1] == IPv6Address(1)


def test_repr_mentions_size() -> None:
    assert "size=4" in repr(parse_targets(["127.0.0.0/30"]))


def test_lazy_slash_8() -> None:
    space = parse_targets(["1.0.0.0/8"])
    assert len(space) == 2**24
    first = list(itertools.islice(space, 1000))
    assert first == [IPv4Address(int(IPv4Address("1.0.0.0")) + i) for i in range(1000)]
    assert parse_targets(["10.0.0.0/8"]).size == 2**24
    assert parse_targets(["198.18.0.0/15"]).size == 2**17


def test_iterating_a_million_of_a_slash_8_stays_small() -> None:
    space = parse_targets(["1.0.0.0/8"])
    tracemalloc.start()
    try:
        count = sum(1 for _ in itertools.islice(space, 10**6))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10**6
    assert peak < 2 * 1024 * 1024


def test_permuted_slash_8_stays_small() -> None:
    space = parse_targets(["1.0.0.0/8"])
    tracemalloc.start()
    try:
        seen = sum(1 for _ in itertools.islice(space.iter_permuted(9), 10**5))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 10**5 and peak < 2 * 1024 * 1024


def test_fragmented_pattern_is_not_materialized() -> None:
    tracemalloc.start()
    try:
        space = parse_targets(["*.*.*.1"], exclude=["0-100.*.*.*", "200.0.0.0/8"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024
    assert space.size == (256 - 101 - 1) * 65536
    assert space[0] == IPv4Address("101.0.0.1")
    assert space[1] == IPv4Address("101.0.1.1")
    assert space[-1] == IPv4Address("255.255.255.1")
    assert space[99 * 65536] == IPv4Address("201.0.0.1")
    assert "101.7.9.1" in space and "101.7.9.2" not in space and "200.1.1.1" not in space
    head = list(itertools.islice(space, 3))
    assert head == addrs("101.0.0.1", "101.0.1.1", "101.0.2.1")
    assert "lazy" in repr(space)


def test_fragmented_pattern_with_v6_and_names() -> None:
    space = parse_targets(["*.*.*.1", "::1", "1.2.3.4"], exclude=["1.*.*.*"])
    assert space.size == 255 * 65536 + 1
    assert space[-1] == IPv6Address("::1")
    assert "1.2.3.4" not in space and "2.2.3.1" in space


def test_iter_permuted_is_a_reproducible_permutation() -> None:
    space = parse_targets(["198.18.0.0/22", "fd18::/120"])
    a = list(space.iter_permuted(42))
    assert sorted(a, key=lambda x: (x.version, int(x))) == list(space)
    assert a == list(space.iter_permuted(42))
    assert a != list(space.iter_permuted(43))
    assert a != list(space)


def test_target_space_shards() -> None:
    space = parse_targets(["198.18.0.0/24", "::1"])
    for seed in (None, 5):
        shards = [list(space.shard(i, 3, seed=seed)) for i in (1, 2, 3)]
        union = [x for s in shards for x in s]
        assert len(union) == len(set(union)) == space.size
        assert set(union) == set(space)
    assert list(space.shard(1, 1)) == list(space)
    with pytest.raises(UsageError):
        list(space.shard(4, 3))


def test_len_of_a_huge_space_is_a_hilos_error_and_size_stays_exact() -> None:
    from hilos.errors import HilosError, TooLargeError

    space = parse_targets(["::/0"])
    with pytest.raises(TooLargeError, match=r"use \.size") as info:
        len(space)
    assert isinstance(info.value, HilosError) and isinstance(info.value, OverflowError)
    assert space.size == 2**128


def test_hostname_accessor_with_localhost() -> None:
    space = parse_targets(["localhost", "127.0.0.0/30"])
    assert space.hostname(IPv4Address("127.0.0.1")) == "localhost"
    assert space.hostname("127.0.0.1") == "localhost"
    assert space.hostname("127.0.0.2") is None
    assert space.hostname("not an address") is None
    assert set(space.names.values()) == {"localhost"}  # a block adds no per-address entries
