"""A hash-consed byte-trie of IPv4 addresses: octet patterns too fragmented for intervals.

``*.*.*.1`` is 16.7 million intervals but four trie nodes; the trie gives size, index access,
membership and ascending runs without expanding anything (``Lazy`` is the TargetSpace family).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise

from hilos.targets.intervals import Interval

__all__ = ["Lazy", "Trie", "trie_runs"]

#
# A node at level k covers 256**k values; its segments (lo, hi, child) say which values of its top
# byte are present and what set of the lower k-1 bytes follows each. Nodes are hash-consed, so
# equal subtrees are one object: ``*.*.*.1`` is four nodes. Union and difference recurse over
# pairs of nodes with memoisation, so their cost is bounded by the node counts, not the addresses.


class _Node:
    __slots__ = ("count", "cum", "full", "level", "los", "segs")
    count: int
    cum: list[int]
    full: bool
    level: int
    los: list[int]
    segs: tuple[tuple[int, int, _Node], ...]

    def __init__(self, level: int, segs: tuple[tuple[int, int, _Node], ...], full: bool) -> None:
        self.level = level
        self.segs = segs
        self.full = full
        self.los = [lo for lo, _, _ in segs]
        cum: list[int] = []
        total = 0 if segs else 1  # a level-0 node is one value
        for lo, hi, child in segs:
            cum.append(total)
            total += (hi - lo + 1) * child.count
        self.cum = cum
        self.count = total


class Trie:
    """Builds and combines hash-consed IPv4 byte-tries (levels 4..0, 8 bits a level)."""

    def __init__(self) -> None:
        self._table: dict[tuple[object, ...], _Node] = {}
        self._memo: dict[tuple[str, int, int], _Node | None] = {}
        full = [_Node(0, (), True)]
        for level in range(1, 5):
            full.append(_Node(level, ((0, 255, full[level - 1]),), True))
        self.full = full

    def node(self, level: int, segs: Iterable[tuple[int, int, _Node]]) -> _Node | None:
        merged: list[tuple[int, int, _Node]] = []
        for lo, hi, child in segs:
            if merged and merged[-1][2] is child and merged[-1][1] + 1 == lo:
                merged[-1] = (merged[-1][0], hi, child)
            else:
                merged.append((lo, hi, child))
        if not merged:
            return None
        if len(merged) == 1 and merged[0][:2] == (0, 255) and merged[0][2].full:
            return self.full[level]
        key = (level, *((lo, hi, id(child)) for lo, hi, child in merged))
        found = self._table.get(key)
        if found is None:
            found = self._table[key] = _Node(level, tuple(merged), False)
        return found

    def from_intervals(self, ivs: Sequence[Interval], level: int = 4) -> _Node | None:
        """A trie of sorted disjoint intervals (relative to 0) within [0, 256**level)."""
        if not ivs:
            return None
        if ivs[0] == (0, (1 << (8 * level)) - 1):
            return self.full[level]
        span = 1 << (8 * (level - 1))
        segs: list[tuple[int, int, _Node]] = []
        part: list[Interval] = []
        part_chunk = -1

        def flush() -> None:
            if part:
                child = self.from_intervals(part, level - 1)
                assert child is not None
                segs.append((part_chunk, part_chunk, child))
                part.clear()

        for a, b in ivs:
            while a <= b:
                chunk = a // span
                chunk_end = (chunk + 1) * span - 1
                if a == chunk * span and b >= chunk_end:
                    flush()
                    last = (b + 1) // span - 1
                    segs.append((chunk, last, self.full[level - 1]))
                    a = (last + 1) * span
                else:
                    end = min(b, chunk_end)
                    if chunk != part_chunk:
                        flush()
                        part_chunk = chunk
                    part.append((a - chunk * span, end - chunk * span))
                    a = end + 1
        flush()
        return self.node(level, segs)

    def from_octets(self, octets: Sequence[Sequence[Interval]]) -> _Node | None:
        node: _Node | None = self.full[0]
        for level, ranges in zip(range(1, 5), reversed(octets), strict=True):
            assert node is not None
            child = node
            node = self.node(level, ((lo, hi, child) for lo, hi in ranges))
        return node

    @staticmethod
    def _overlay(
        sa: Sequence[tuple[int, int, _Node]], sb: Sequence[tuple[int, int, _Node]]
    ) -> Iterator[tuple[int, int, _Node | None, _Node | None]]:
        points = sorted(
            {lo for lo, _, _ in sa}
            | {hi + 1 for _, hi, _ in sa}
            | {lo for lo, _, _ in sb}
            | {hi + 1 for _, hi, _ in sb}
        )
        ia = ib = 0
        for x, y in pairwise(points):
            while ia < len(sa) and sa[ia][1] < x:
                ia += 1
            while ib < len(sb) and sb[ib][1] < x:
                ib += 1
            ca = sa[ia][2] if ia < len(sa) and sa[ia][0] <= x else None
            cb = sb[ib][2] if ib < len(sb) and sb[ib][0] <= x else None
            if ca is not None or cb is not None:
                yield x, y - 1, ca, cb

    def union(self, a: _Node | None, b: _Node | None) -> _Node | None:
        if a is None:
            return b
        if b is None or a is b or a.full:
            return a
        if b.full:
            return b
        key = ("|", id(a), id(b))
        if key not in self._memo:
            segs = []
            for lo, hi, ca, cb in self._overlay(a.segs, b.segs):
                child = self.union(ca, cb)
                assert child is not None
                segs.append((lo, hi, child))
            self._memo[key] = self.node(a.level, segs)
        return self._memo[key]

    def difference(self, a: _Node | None, b: _Node | None) -> _Node | None:
        if a is None or b is None:
            return a
        if a is b or b.full:
            return None
        key = ("-", id(a), id(b))
        if key not in self._memo:
            segs = []
            for lo, hi, ca, cb in self._overlay(a.segs, b.segs):
                child = self.difference(ca, cb) if ca is not None else None
                if child is not None:
                    segs.append((lo, hi, child))
            self._memo[key] = self.node(a.level, segs)
        return self._memo[key]


def trie_runs(root: _Node) -> Iterator[Interval]:
    """Ascending, coalesced runs of consecutive values of a level-4 trie."""

    def raw(node: _Node, base: int) -> Iterator[Interval]:
        span = 1 << (8 * (node.level - 1))
        for lo, hi, child in node.segs:
            if child.full:
                yield base + lo * span, base + (hi + 1) * span - 1
            else:
                for value in range(lo, hi + 1):
                    yield from raw(child, base + value * span)

    pending: Interval | None = None
    for a, b in raw(root, 0):
        if pending is not None and a == pending[1] + 1:
            pending = (pending[0], b)
        else:
            if pending is not None:
                yield pending
            pending = (a, b)
    if pending is not None:
        yield pending


class Lazy:
    """A v4 byte-trie used when the set is too fragmented to flatten."""

    __slots__ = ("root", "size")

    def __init__(self, root: _Node) -> None:
        self.root = root
        self.size = root.count

    def at(self, i: int) -> int:
        node = self.root
        value = 0
        while node.level:
            j = bisect_right(node.cum, i) - 1
            lo, _, child = node.segs[j]
            q, i = divmod(i - node.cum[j], child.count)
            value = (value << 8) | (lo + q)
            node = child
        return value

    def contains(self, x: int) -> bool:
        node = self.root
        while node.level:
            byte = (x >> (8 * (node.level - 1))) & 0xFF
            j = bisect_right(node.los, byte) - 1
            if j < 0 or byte > node.segs[j][1]:
                return False
            node = node.segs[j][2]
        return True

    def runs(self) -> Iterator[Interval]:
        return trie_runs(self.root)

    def run_count(self) -> int:
        return sum(1 for _ in self.runs())
