"""The walk order: a keyed permutation of indices (zmap's cyclic group), shards, seeds.

``Permutation`` visits every index of range(n) once in a keyed pseudo-random order with one
multiply and one modulo a step and O(1) memory; ``shard`` splits that walk between machines.
"""

from __future__ import annotations

import os
import random
import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from itertools import repeat

from hilos.errors import InvalidArgument, TooLargeError, UsageError

__all__ = ["Permutation", "check_shard", "is_prime", "parse_shard", "random_seed"]


@lru_cache(maxsize=1)
def _small_primes(limit: int = 1024) -> tuple[int, ...]:
    sieve = bytearray([1]) * limit
    sieve[0:2] = b"\x00\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytes(len(range(i * i, limit, i)))
    return tuple(i for i in range(limit) if sieve[i])


# Miller-Rabin with the first 13 prime bases is deterministic below 3.3e24 (Sorenson & Webster
# 2015); above that, 40 bases leave an error probability far below 4**-40.
_MR_BASES = _small_primes()[:40]


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in _small_primes()[:40]:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    bases = _MR_BASES[:13] if n < 3_317_044_064_679_887_385_961_981 else _MR_BASES
    for a in bases:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@lru_cache(maxsize=64)
def _group_prime(n: int) -> tuple[int, tuple[int, ...]]:
    """The smallest prime p > n whose p-1 factors as small primes (< 1024) times at most one
    large prime, with those prime factors: enough to test primitive roots without hard factoring.
    """
    p = max(n, 2) + 1
    while True:
        if is_prime(p):
            rest = p - 1
            factors = []
            for q in _small_primes():
                if rest % q == 0:
                    factors.append(q)
                    while rest % q == 0:
                        rest //= q
                if q * q > rest:
                    break
            if rest == 1 or is_prime(rest):
                if rest > 1:
                    factors.append(rest)
                return p, tuple(factors)
        p += 1


def check_shard(i: int, count: int) -> None:
    if count < 1 or not 1 <= i <= count:
        raise UsageError(f"invalid shard {i}/{count}: expected I/N with 1 <= I <= N")


class Permutation:
    """Every index of range(n) exactly once, in a keyed pseudo-random order, O(1) memory.

    Walks the cyclic group of integers 1..p-1 under multiplication modulo a prime p > n (zmap's
    method): x -> x*g mod p with g a primitive root chosen from the seed, starting at a seeded
    point; values above n are skipped (p is the first suitable prime after n, so few are).
    The same (n, seed) always gives the same order.

    >>> sorted(Permutation(10, seed=1)) == list(range(10))
    True
    """

    __slots__ = ("generator", "n", "prime", "seed", "start")

    def __init__(self, n: int, seed: int) -> None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgument(f"Permutation size must be a whole number >= 0, not {n!r}")
        self.n = n
        self.seed = seed
        # A string seed is hashed with SHA-512 by random.Random; an int seed would be abs()'d,
        # making seeds 5 and -5 give the same order.
        rng = random.Random(f"hilos.Permutation:{seed}")
        p, factors = _group_prime(n)
        while True:
            g = rng.randrange(2, p)
            if all(pow(g, (p - 1) // q, p) != 1 for q in factors):
                break
        self.prime = p
        self.generator = g
        self.start = rng.randrange(1, p)

    def __len__(self) -> int:
        if self.n > sys.maxsize:
            raise TooLargeError(
                f"permutation of {self.n} indices: more than len() can return; use .n"
            )
        return self.n

    def __iter__(self) -> Iterator[int]:
        return self.shard(1, 1)

    def shard(self, i: int, count: int) -> Iterator[int]:
        """Shard ``i`` (1-based) of ``count``: every count-th step of the walk, from step i-1.

        Shards are disjoint, their union is range(n), and their sizes differ by at most the
        few skipped values.
        """
        check_shard(i, count)
        p = self.prime
        steps = (p - 2 - (i - 1)) // count + 1 if i - 1 <= p - 2 else 0
        x = self.start * pow(self.generator, i - 1, p) % p
        return self._walk(x, pow(self.generator, count, p), steps)

    def _walk(self, x: int, step: int, steps: int) -> Iterator[int]:
        n, p = self.n, self.prime
        # repeat() is measurably faster than range() but needs a C ssize_t count.
        for _ in repeat(None, steps) if steps <= sys.maxsize else range(steps):
            if x <= n:
                yield x - 1
            x = x * step % p


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` (1-based) into (I, N); UsageError unless 1 <= I <= N."""
    m = re.fullmatch(r"\s*([0-9]{1,9})\s*/\s*([0-9]{1,9})\s*", text)
    if m is None:
        raise UsageError(f"invalid shard {text!r}: expected I/N, e.g. 1/4")
    i, count = int(m.group(1)), int(m.group(2))
    if count < 1 or not 1 <= i <= count:
        raise UsageError(f"invalid shard {text!r}: expected I/N with 1 <= I <= N")
    return i, count


def random_seed() -> int:
    """A fresh random seed for ``--randomize`` without ``--seed`` (63 bits from os.urandom)."""
    return int.from_bytes(os.urandom(8), "big") >> 1
