"""Tests of hilos.targets.walk: the keyed Permutation, its shards, --shard and seeds."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hilos.errors import UsageError
from hilos.targets import (
    Permutation,
    parse_shard,
    random_seed,
)
from hilos.targets.walk import is_prime


@given(st.integers(0, 10**5), st.integers(-(2**63), 2**63))
@settings(max_examples=40, deadline=None)
def test_permutation_is_a_permutation(n: int, seed: int) -> None:
    perm = Permutation(n, seed)
    out = list(perm)
    assert len(out) == n == len(perm)
    assert sorted(out) == list(range(n))


@given(st.integers(0, 5000), st.integers(0, 2**32), st.integers(1, 12))
@settings(max_examples=100, deadline=None)
def test_permutation_shards_are_disjoint_and_exact(n: int, seed: int, count: int) -> None:
    perm = Permutation(n, seed)
    seen: list[int] = []
    for i in range(1, count + 1):
        seen.extend(perm.shard(i, count))
    assert len(seen) == n
    assert sorted(seen) == list(range(n))


@given(st.integers(1000, 10**5), st.integers(-(2**40), 2**40), st.integers(-(2**40), 2**40))
@settings(max_examples=30, deadline=None)
def test_permutation_seeds(n: int, seed: int, other: int) -> None:
    assume(seed != other)
    first = list(itertools.islice(Permutation(n, seed), 50))
    assert first == list(itertools.islice(Permutation(n, seed), 50))
    assert first != list(itertools.islice(Permutation(n, other), 50))


def test_permutation_small_sizes() -> None:
    for n in range(0, 40):
        for seed in range(5):
            assert sorted(Permutation(n, seed)) == list(range(n))


def test_permutation_huge_n_is_lazy() -> None:
    n = 2**64 * 1000  # a v6 /64 times a thousand ports
    perm = Permutation(n, 1)
    head = list(itertools.islice(perm, 1000))
    assert len(set(head)) == 1000 and all(0 <= x < n for x in head)
    shard = list(itertools.islice(perm.shard(3, 7), 10))
    assert all(0 <= x < n for x in shard)


def test_permutation_group_is_correct() -> None:
    # the generator must be a primitive root: its powers reach every residue 1..p-1
    for n in (1, 2, 10, 97, 1000, 65535):
        perm = Permutation(n, 3)
        p, g = perm.prime, perm.generator
        assert p > n and is_prime(p)
        x, seen = 1, set()
        for _ in range(p - 1):
            x = x * g % p
            seen.add(x)
        assert len(seen) == p - 1


def test_is_prime_against_a_sieve() -> None:
    limit = 20000
    sieve = [True] * limit
    sieve[0] = sieve[1] = False
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = [False] * len(range(i * i, limit, i))
    assert [is_prime(i) for i in range(limit)] == sieve
    # Carmichael numbers and a strong pseudoprime to several bases
    for composite in (561, 1105, 1729, 3215031751, 3825123056546413051):
        assert not is_prime(composite)
    assert is_prime(2**61 - 1) and is_prime(2**89 - 1)


def test_permutation_speed() -> None:
    # The SYN scanner walks hosts x ports indices on its hot path: it needs > 200k indices/s.
    n = 200_000
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in Permutation(n, 11):
            pass
        best = min(best, time.perf_counter() - start)
    rate = n / best
    print(f"Permutation: {best / n * 1e9:.0f} ns/index, {rate / 1e6:.2f} M indices/s")
    assert rate > 200_000


def test_permutation_rejects_negative_n() -> None:
    with pytest.raises(ValueError):
        Permutation(-1, 0)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3 / 3 ", (3, 3))]
)
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "1", "a/b", "-1/4", "1/4/5", "", "1.5/4"])
def test_parse_shard_errors(text: str) -> None:
    with pytest.raises(UsageError, match="invalid shard"):
        parse_shard(text)


def test_random_seed() -> None:
    seeds = {random_seed() for _ in range(5)}
    assert len(seeds) == 5
    assert all(0 <= s < 2**63 for s in seeds)


def test_len_of_a_huge_permutation_is_a_hilos_error() -> None:
    from hilos.errors import TooLargeError

    perm = Permutation(2**64, seed=1)
    with pytest.raises(TooLargeError, match=r"use \.n"):
        len(perm)
    assert perm.n == 2**64 and len(Permutation(5, seed=1)) == 5


@pytest.mark.parametrize("n", [-1, 2.5, "10", True])
def test_permutation_of_a_bad_size_is_invalid_argument(n: object) -> None:
    from hilos.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        Permutation(n, seed=1)  # type: ignore[arg-type]
