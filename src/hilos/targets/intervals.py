"""Sets of integer addresses as sorted, merged, disjoint inclusive intervals (one per family).

Memory is O(number of intervals), never O(addresses): exclusions are subtracted by interval
arithmetic and ``Flat`` answers index access and membership by bisection over cumulative counts.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["MAPPED", "V4_MAX", "Flat", "Interval", "merge", "subtract"]

Interval = tuple[int, int]

V4_MAX = (1 << 32) - 1
# ::ffff:0:0/96, IPv4-mapped IPv6 addresses: taken as the IPv4 address they carry (as nmap does).
MAPPED = 0xFFFF << 32


def merge(ivs: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or adjacent inclusive intervals."""
    out: list[Interval] = []
    for a, b in sorted(ivs):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def subtract(inc: Sequence[Interval], exc: Sequence[Interval]) -> list[Interval]:
    """inc minus exc; both sorted, merged and disjoint."""
    out: list[Interval] = []
    j = 0
    for a, b in inc:
        while j < len(exc) and exc[j][1] < a:
            j += 1
        k = j
        while a <= b and k < len(exc) and exc[k][0] <= b:
            ea, eb = exc[k]
            if ea > a:
                out.append((a, ea - 1))
            a = max(a, eb + 1)
            k += 1
        if a <= b:
            out.append((a, b))
    return out


class Flat:
    """Sorted disjoint intervals in arrays, with cumulative counts for index access."""

    __slots__ = ("cum", "ends", "size", "starts")

    def __init__(self, ivs: Sequence[Interval], v4: bool) -> None:
        starts = [a for a, _ in ivs]
        ends = [b for _, b in ivs]
        cum: list[int] = []
        total = 0
        for a, b in ivs:
            cum.append(total)
            total += b - a + 1
        self.size = total
        # v4 values and counts fit in 64 bits: arrays use 8 bytes a value instead of ~36.
        self.starts: Sequence[int] = array("Q", starts) if v4 else starts
        self.ends: Sequence[int] = array("Q", ends) if v4 else ends
        self.cum: Sequence[int] = array("Q", cum) if v4 else cum

    def at(self, i: int) -> int:
        j = bisect_right(self.cum, i) - 1
        return self.starts[j] + i - self.cum[j]

    def contains(self, x: int) -> bool:
        j = bisect_right(self.starts, x) - 1
        return j >= 0 and x <= self.ends[j]

    def runs(self) -> Iterator[Interval]:
        return zip(self.starts, self.ends, strict=True)

    def run_count(self) -> int:
        return len(self.starts)
