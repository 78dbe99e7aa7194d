"""The SYN scan's walk: (host x port) indices in a keyed random order, cut into shards and parts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hilos.errors import UsageError
from hilos.targets import Permutation
from hilos.validate import MAX_RETRIES

__all__ = ["Plan", "check_args"]


class Plan:
    """Index ``h * nports + p`` stands for (host h, port p); the walk visits them in the order of
    a keyed `Permutation` (reproducible with `seed`). ``shard=(i, n)`` takes every n-th step of
    that walk, so shards are disjoint and together the whole job; `skip[h]` set leaves host h
    out of the walk without changing which indices a shard holds.
    """

    __slots__ = ("nports", "seed", "shard", "skip", "total")

    def __init__(
        self,
        nhosts: int,
        nports: int,
        seed: int,
        shard: tuple[int, int] | None,
        skip: bytearray | None = None,
    ) -> None:
        self.nports = nports
        self.total = nhosts * nports
        self.seed = seed
        self.shard = shard
        self.skip = skip

    def walk(self, part: tuple[int, int] | None = None) -> Iterator[int]:
        """The indices of `part` (a shard of the whole walk; default: this scan's shard)."""
        perm = Permutation(self.total, self.seed)
        if part is None:
            part = self.shard or (1, 1)
        skip = self.skip
        if skip is not None:
            np_ = self.nports
            return (i for i in perm.shard(*part) if not skip[i // np_])
        return perm.shard(*part)

    def parts(self, count: int) -> list[tuple[int, int]]:
        """`count` parts of this scan's shard (i, n): shards (i + n*j, n*count), j < count;
        disjoint, and together exactly shard (i, n)."""
        i, n = self.shard or (1, 1)
        return [(i + n * j, n * count) for j in range(count)]

    def expected(self, nhosts: int) -> list[int]:
        """Per host, how many of its probes this shard's walk holds (one cheap extra walk; a
        cyclic-group step is a multiplication): a host is final once all of *these* are."""
        expected = [0] * nhosts
        np_ = self.nports
        for idx in self.walk():
            expected[idx // np_] += 1
        return expected


def check_args(
    ports: Sequence[int], retries: int, timeout: float | None, shard: tuple[int, int] | None
) -> None:
    """A SYN scan's arguments, checked before anything is opened (UsageError)."""
    if not 0 <= retries <= MAX_RETRIES:
        raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries}")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"timeout must be positive: {timeout}")
    if shard is not None and not (shard[1] >= 1 and 1 <= shard[0] <= shard[1]):
        raise UsageError(f"invalid shard {shard[0]}/{shard[1]}: expected 1 <= I <= N")
    for p in ports:
        if not 0 < p < 65536:
            raise UsageError(f"port out of range: {p}")
