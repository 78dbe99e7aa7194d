"""Target specifications parsed into a compact, lazy TargetSpace; keyed permutations and shards.

Accepted target forms (each may also appear in ``-iL`` files and in ``--exclude`` lists):

    198.18.0.1  fd18::1                     single addresses
    198.18.0.0/24  fd18:0:0:100::/64        CIDR blocks (host bits are ignored: 198.18.0.5/24 is
                                            the whole /24, network and broadcast included, as nmap)
    198.18.0.1-200  198.18.0.1-198.18.3.7   ranges: last-octet or full; IPv6 too: fd18::1-fd18::ff
    fd18::1-ff                              (an IPv6 range whose end replaces the last group)
    198.18.0-3.1-254  198.18.*.1            nmap octet ranges: per octet N, N-M, N-, -M, * or a
    198.18.1,3,5.1-10                       comma list of those (a cartesian product)
    localhost  example.test                 host names, resolved with getaddrinfo (every address
                                            returned, both families); a target name that does
                                            not resolve is a warning (nmap's habit), an
                                            exclusion that does not is an error (ResolveError)
    ::ffff:198.18.0.1                       IPv4-mapped IPv6 addresses are their IPv4 address
                                            (the part of a v6 block inside ::ffff:0:0/96 too)

From Python, a spec may also be an int (``2130706433`` is 127.0.0.1, as ``ipaddress.ip_address``
reads it) or an ``ipaddress`` address or network object, and a lone str is one spec, not a list.
Target and exclusion files are read line by line: a line longer than ``MAX_LINE`` bytes or a NUL
byte (``-iL /dev/zero``, a binary file) is refused with a TargetError naming the line.

The set is kept as sorted, merged, disjoint integer intervals per family, with exclusions
subtracted by interval arithmetic: memory is O(number of specs), never O(addresses), and the
space has an exact size, ascending iteration, index access (for keyed random order) and membership.
An octet pattern whose product is not a few intervals (``*.*.*.1`` is 16.7 million of them) is
kept instead as a small byte-trie (a product of per-octet range lists, shared subtrees) that gives
the same four operations without expanding anything.

Random order: ``Permutation`` walks a cyclic multiplicative group modulo a prime p > n (as zmap
does): one multiply and one modulo per index, O(1) memory, every index exactly once.

Example::

    space = parse_targets(["127.0.0.0/30", "::1"], exclude=["127.0.0.3"])
    list(space)                    # [IPv4Address('127.0.0.0'), ..., IPv6Address('::1')]
    for addr in space.iter_permuted(seed=7): ...
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv4Address, IPv6Address
from itertools import islice, pairwise, repeat
from typing import IO

from hilos.errors import InvalidArgument, ResolveError, TargetError, TooLargeError, UsageError
from hilos.ports import exclude_ports, parse_ports, service_name, service_port, top_ports

__all__ = [
    "MAX_LINE",
    "IPAddress",
    "Permutation",
    "TargetSpace",
    "exclude_ports",
    "parse_ports",
    "parse_shard",
    "parse_targets",
    "random_seed",
    "service_name",
    "service_port",
    "top_ports",
]

IPAddress = IPv4Address | IPv6Address

_V4_MAX = (1 << 32) - 1
_V6_MAX = (1 << 128) - 1
# ::ffff:0:0/96, IPv4-mapped IPv6 addresses: taken as the IPv4 address they carry (as nmap does).
_MAPPED = 0xFFFF << 32

#: the longest line (in bytes) of a target or exclusion file; nmap's -iL reads specs of a few
#: dozen characters, so a longer line is a wrong file (a binary, /dev/zero), not a target list.
MAX_LINE = 4096

# An octet pattern that expands to at most this many intervals (summed over all patterns) is
# expanded into plain intervals; a larger one is kept as a byte-trie. Likewise a trie result with
# at most this many runs is flattened back into interval arrays (faster index access). 65536
# intervals cost about 1.5 MB in the v4 arrays.
_EXPAND_LIMIT = 1 << 16

Interval = tuple[int, int]


# --------------------------------------------------------------------------------------------
# Interval arithmetic


def _merge(ivs: Iterable[Interval]) -> list[Interval]:
    """Sort and merge overlapping or adjacent inclusive intervals."""
    out: list[Interval] = []
    for a, b in sorted(ivs):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _subtract(inc: Sequence[Interval], exc: Sequence[Interval]) -> list[Interval]:
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


# --------------------------------------------------------------------------------------------
# Byte-trie for IPv4 sets that are not a few intervals (large octet patterns)
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


class _Trie:
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


def _trie_runs(root: _Node) -> Iterator[Interval]:
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


# --------------------------------------------------------------------------------------------
# Per-family representations


class _Flat:
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


class _Lazy:
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
        return _trie_runs(self.root)

    def run_count(self) -> int:
        return sum(1 for _ in self.runs())


_Family = _Flat | _Lazy


# --------------------------------------------------------------------------------------------
# The target space


def _unmapped(addr: IPAddress) -> IPAddress:
    """``::ffff:a.b.c.d`` as IPv4 a.b.c.d; any other address unchanged."""
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _v4(x: int) -> IPv4Address:
    return IPv4Address(x)


def _v6(x: int) -> IPv6Address:
    return IPv6Address(x)


class TargetSpace:
    """A de-duplicated set of IPv4 and IPv6 addresses: IPv4 first, each family ascending.

    Holds sorted merged intervals (or, for fragmented octet patterns, a byte-trie), never a list
    of addresses. ``size`` is the exact count, always; ``len()`` is the same but raises
    TooLargeError (a UsageError, also an OverflowError) when the count exceeds sys.maxsize (an IPv6
    /64 is 2**64 addresses): use ``size`` for such spaces. ``hostname(addr)`` is the name a target
    was given as (``localhost``), or None.

    >>> space = parse_targets(["127.0.0.1-3"])
    >>> space.size, str(space[1]), IPv4Address("127.0.0.2") in space
    (3, '127.0.0.2', True)
    """

    __slots__ = ("_v4", "_v6", "names", "size", "warnings")

    def __init__(
        self,
        v4: _Family,
        v6: _Flat,
        names: dict[IPAddress, str] | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        self._v4 = v4
        self._v6 = v6
        self.size: int = v4.size + v6.size
        #: address -> the host name it was resolved from (only for targets given as names)
        self.names: dict[IPAddress, str] = dict(names or {})
        #: the warnings that were passed to on_warning while parsing (names that did not resolve)
        self.warnings: tuple[str, ...] = tuple(warnings)

    @classmethod
    def from_intervals(
        cls, v4: Iterable[Interval] = (), v6: Iterable[Interval] = ()
    ) -> TargetSpace:
        """A space from integer intervals (inclusive, any order, may overlap)."""
        return cls(_Flat(_merge(v4), True), _Flat(_merge(v6), False))

    @property
    def size_v4(self) -> int:
        return self._v4.size

    @property
    def size_v6(self) -> int:
        return self._v6.size

    def __len__(self) -> int:
        if self.size > sys.maxsize:
            raise TooLargeError(
                f"target space has {self.size} addresses, more than len() can return; use .size"
            )
        return self.size

    def hostname(self, addr: IPAddress | str) -> str | None:
        """The host name ``addr`` was given as (a target that was a name), or None.

        Only names are stored (a dict of the resolved addresses), so a CIDR block costs nothing.
        """
        if isinstance(addr, str):
            try:
                addr = ipaddress.ip_address(addr)
            except ValueError:
                return None
        if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return self.names.get(addr)

    def __bool__(self) -> bool:
        return self.size > 0

    def __repr__(self) -> str:
        return (
            f"TargetSpace(size={self.size}, v4={self._v4.size}, v6={self._v6.size}, "
            f"runs={self._v4.run_count() if isinstance(self._v4, _Flat) else 'lazy'}"
            f"+{self._v6.run_count()})"
        )

    def int_at(self, i: int) -> tuple[int, int]:
        """(version, integer address) of the i-th address: the hot-path form of ``space[i]``."""
        n4 = self._v4.size
        if i < n4:
            return 4, self._v4.at(i)
        return 6, self._v6.at(i - n4)

    def __getitem__(self, i: int) -> IPAddress:
        if not isinstance(i, int) or isinstance(i, bool):
            raise TypeError(f"TargetSpace indices must be integers, not {type(i).__name__}")
        if i < 0:
            i += self.size
        if not 0 <= i < self.size:
            raise IndexError(f"target index {i} out of range (size {self.size})")
        n4 = self._v4.size
        if i < n4:
            return IPv4Address(self._v4.at(i))
        return IPv6Address(self._v6.at(i - n4))

    def __contains__(self, addr: object) -> bool:
        if isinstance(addr, str):
            try:
                addr = ipaddress.ip_address(addr)
            except ValueError:
                return False
        if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped  # parsing maps these to IPv4 as well
        if isinstance(addr, IPv4Address):
            return self._v4.contains(int(addr))
        if isinstance(addr, IPv6Address):
            return self._v6.contains(int(addr))
        return False

    def __iter__(self) -> Iterator[IPAddress]:
        for a, b in self._v4.runs():
            yield from map(_v4, range(a, b + 1))
        for a, b in self._v6.runs():
            yield from map(_v6, range(a, b + 1))

    def iter_ranges(self) -> Iterator[tuple[IPAddress, IPAddress]]:
        """(first, last) address of each maximal run of consecutive addresses, ascending."""
        for a, b in self._v4.runs():
            yield IPv4Address(a), IPv4Address(b)
        for a, b in self._v6.runs():
            yield IPv6Address(a), IPv6Address(b)

    def _map(self, indices: Iterator[int]) -> Iterator[IPAddress]:
        n4 = self._v4.size
        at4, at6 = self._v4.at, self._v6.at
        for i in indices:
            yield IPv4Address(at4(i)) if i < n4 else IPv6Address(at6(i - n4))

    def iter_permuted(self, seed: int) -> Iterator[IPAddress]:
        """Every address once, in the keyed pseudo-random order of ``Permutation(size, seed)``."""
        return self._map(iter(Permutation(self.size, seed)))

    def shard(self, i: int, count: int, *, seed: int | None = None) -> Iterator[IPAddress]:
        """Shard ``i`` (1-based) of ``count``: disjoint shards whose union is the whole space.

        Without a seed, shard i takes every count-th address in ascending order starting at the
        i-th; with a seed, every count-th step of the keyed permutation (the same seed on every
        machine gives the same split).
        """
        _check_shard(i, count)
        if seed is None:
            return self._map(iter(range(i - 1, self.size, count)))
        return self._map(Permutation(self.size, seed).shard(i, count))


# --------------------------------------------------------------------------------------------
# Parsing


_V4_CHARS = re.compile(r"[0-9.,*-]+")
_OCTET_ITEM = re.compile(r"([0-9]*)-([0-9]*)|([0-9]+)|\*")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?")
_PREFIX = re.compile(r"[0-9]{1,3}")


class _Bad(Exception):
    """Internal: a spec is invalid; the message is the reason, the caller adds the spec."""


@dataclass(frozen=True, slots=True)
class _Pattern:
    """An nmap octet pattern: the cartesian product of four sorted, merged octet range lists."""

    octets: tuple[tuple[Interval, ...], ...]

    def interval_count(self) -> int:
        # Trailing full octets (0-255) make each combination of the others one interval.
        last = 3
        while last >= 0 and self.octets[last] == ((0, 255),):
            last -= 1
        if last < 0:
            return 1
        count = len(self.octets[last])
        for ranges in self.octets[:last]:
            count *= sum(hi - lo + 1 for lo, hi in ranges)
        return count

    def intervals(self) -> Iterator[Interval]:
        last = 3
        while last >= 0 and self.octets[last] == ((0, 255),):
            last -= 1
        if last < 0:
            yield 0, _V4_MAX
            return
        shift = 8 * (3 - last)

        def prefixes(k: int) -> Iterator[int]:
            if k == 0:
                yield 0
                return
            for p in prefixes(k - 1):
                for lo, hi in self.octets[k - 1]:
                    for v in range(lo, hi + 1):
                        yield (p << 8) | v

        for p in prefixes(last):
            for lo, hi in self.octets[last]:
                base = p << (8 * (4 - last))
                yield base | (lo << shift), base | (((hi + 1) << shift) - 1)


@dataclass(slots=True)
class _Collected:
    v4: list[Interval] = field(default_factory=list)
    v6: list[Interval] = field(default_factory=list)
    patterns: list[_Pattern] = field(default_factory=list)


Resolver = Callable[[str], Sequence[str]]


def _resolve(name: str) -> list[str]:
    """Every address ``name`` resolves to (getaddrinfo), without IPv6 scope suffixes."""
    infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
    out: dict[str, None] = {}
    for _family, _type, _proto, _canon, sockaddr in infos:
        out.setdefault(str(sockaddr[0]).split("%", 1)[0], None)
    return list(out)


def _octet(text: str) -> int:
    if len(text) > 1 and text[0] == "0":
        raise _Bad(f"octet {text!r} has a leading zero (ambiguous: octal?)")
    if len(text) > 3 or int(text) > 255:
        raise _Bad(f"octet {text} is out of range 0-255")
    return int(text)


def _parse_pattern(token: str) -> _Pattern | Interval:
    parts = token.split(".")
    if len(parts) != 4:
        raise _Bad(f"expected 4 dot-separated octets, got {len(parts)}")
    octets: list[tuple[Interval, ...]] = []
    for part in parts:
        if not part:
            raise _Bad("empty octet")
        ranges: list[Interval] = []
        for item in part.split(","):
            m = _OCTET_ITEM.fullmatch(item)
            if m is None:
                raise _Bad(f"cannot parse octet {item!r} (expected N, N-M, N-, -M or *)")
            if m.group(3) is not None:
                v = _octet(m.group(3))
                ranges.append((v, v))
            elif item == "*":
                ranges.append((0, 255))
            else:
                lo = _octet(m.group(1)) if m.group(1) else 0
                hi = _octet(m.group(2)) if m.group(2) else 255
                if lo > hi:
                    raise _Bad(f"octet range {item!r} starts after it ends")
                ranges.append((lo, hi))
        octets.append(tuple(_merge(ranges)))
    pattern = _Pattern(tuple(octets))
    if all(len(r) == 1 and r[0][0] == r[0][1] for r in octets[:3]) and len(octets[3]) == 1:
        # 198.18.0.1-200 and single addresses: one interval.
        base = (octets[0][0][0] << 24) | (octets[1][0][0] << 16) | (octets[2][0][0] << 8)
        return base | octets[3][0][0], base | octets[3][0][1]
    return pattern


def _parse_v6(token: str) -> Interval:
    if "%" in token:
        raise _Bad("scoped IPv6 addresses (with %zone) are not supported")
    if "/" in token:
        addr, _, prefix = token.partition("/")
        if not _PREFIX.fullmatch(prefix) or int(prefix) > 128:
            raise _Bad(f"prefix length {prefix!r} is not 0-128")
        try:
            net = ipaddress.IPv6Network(f"{addr}/{int(prefix)}", strict=False)
        except ValueError as exc:
            raise _Bad(str(exc)) from None
        return int(net.network_address), int(net.broadcast_address)
    first, dash, last = token.partition("-")
    try:
        start = int(IPv6Address(first))
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    if not dash:
        return start, start
    if ":" in last:
        try:
            end = int(IPv6Address(last))
        except ValueError as exc:
            raise _Bad(str(exc)) from None
    elif re.fullmatch(r"[0-9A-Fa-f]{1,4}", last):
        end = (start & ~0xFFFF) | int(last, 16)
    else:
        raise _Bad(f"range end {last!r} is neither an IPv6 address nor a hex group")
    if start > end:
        raise _Bad("range starts after it ends")
    return start, end


def _parse_v4_cidr(addr: str, prefix: str) -> Interval:
    if not _PREFIX.fullmatch(prefix) or int(prefix) > 32:
        raise _Bad(f"prefix length {prefix!r} is not 0-32")
    try:
        net = ipaddress.IPv4Network(f"{addr}/{int(prefix)}", strict=False)
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    return int(net.network_address), int(net.broadcast_address)


def _parse_v4_range(first: str, last: str) -> Interval:
    try:
        start, end = int(IPv4Address(first)), int(IPv4Address(last))
    except ValueError as exc:
        raise _Bad(str(exc)) from None
    if start > end:
        raise _Bad("range starts after it ends")
    return start, end


class _Parser:
    """Collects the intervals and patterns of many tokens, resolving names as it goes."""

    def __init__(
        self, kind: str, resolver: Resolver, warn: Callable[[str], None], strict: bool = False
    ) -> None:
        self.kind = kind  # "target" or "exclusion", for messages
        self.resolver = resolver
        self.warn = warn
        self.strict = strict  # a name that does not resolve raises ResolveError
        self.out = _Collected()
        self.names: dict[IPAddress, str] = {}

    def add(self, token: str, where: str = "") -> None:
        try:
            self._add(token)
        except _Bad as exc:
            raise TargetError(f"invalid {self.kind} {token!r}{where}: {exc}") from None
        except ResolveError as exc:
            if not where:
                raise
            raise ResolveError(f"{exc}{where}") from None

    def _add_v6(self, iv: Interval) -> None:
        """An IPv6 interval; its part inside ::ffff:0:0/96 goes to IPv4 (mapped addresses)."""
        a, b = iv
        lo, hi = max(a, _MAPPED), min(b, _MAPPED + _V4_MAX)
        if lo > hi:
            self.out.v6.append(iv)
            return
        self.out.v4.append((lo - _MAPPED, hi - _MAPPED))
        if a < lo:
            self.out.v6.append((a, lo - 1))
        if hi < b:
            self.out.v6.append((hi + 1, b))

    def _add(self, token: str) -> None:
        if ":" in token:
            self._add_v6(_parse_v6(token))
            return
        if "/" in token:
            addr, _, prefix = token.partition("/")
            if _V4_CHARS.fullmatch(addr):
                self.out.v4.append(_parse_v4_cidr(addr, prefix))
                return
            if not _PREFIX.fullmatch(prefix) or int(prefix) > 128:
                raise _Bad(f"prefix length {prefix!r} is not 0-32 (IPv4) or 0-128 (IPv6)")
            found = self._lookup(addr)
            # NAME/24 means the name's IPv4 block: the same /24 of its IPv6 address would be
            # 2**104 addresses. A prefix above 32, or a name without IPv4, means IPv6.
            v4 = [a for a in found if a.version == 4] if int(prefix) <= 32 else []
            v6 = [a for a in found if a.version == 6] if not v4 else []
            self.out.v4.extend(_parse_v4_cidr(str(a), prefix) for a in v4)
            for a in v6:
                self._add_v6(_parse_v6(f"{a}/{prefix}"))
            return
        if _V4_CHARS.fullmatch(token):
            if token.count(".") == 6 and token.count("-") == 1:
                first, _, last = token.partition("-")
                if first.count(".") == 3:
                    self.out.v4.append(_parse_v4_range(first, last))
                    return
            parsed = _parse_pattern(token)
            if isinstance(parsed, _Pattern):
                self.out.patterns.append(parsed)
            else:
                self.out.v4.append(parsed)
            return
        for resolved in self._lookup(token):
            value = int(resolved)
            if resolved.version == 4:
                self.out.v4.append((value, value))
            else:
                self._add_v6((value, value))

    def _lookup(self, name: str) -> list[IPAddress]:
        if len(name) > 253 or not _HOSTNAME.fullmatch(name):
            raise _Bad("not an address, range, CIDR block or host name")
        try:
            found = [_unmapped(ipaddress.ip_address(a)) for a in self.resolver(name)]
        except (OSError, UnicodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._unresolved(f"cannot resolve {self.kind} {name!r}: {reason}")
            return []
        if not found:
            self._unresolved(f"{self.kind} {name!r} resolved to no address")
        for address in found:
            self.names.setdefault(address, name)
        return found

    def _unresolved(self, message: str) -> None:
        # Skipping an exclusion would scan what the user asked to leave alone: always an error.
        # A target is skipped with a warning (nmap's habit) unless the caller wants it strict.
        if self.strict or self.kind == "exclusion":
            raise ResolveError(message)
        self.warn(f"{message}; skipped")


def _split_spec(text: str) -> Iterator[str]:
    """Split a spec string on whitespace and commas, keeping commas inside octet patterns.

    ``a.example,198.18.1,3,5.1-10,fd18::1`` -> ``a.example``, ``198.18.1,3,5.1-10``, ``fd18::1``:
    a comma piece made only of octet characters continues the previous IPv4 piece while that piece
    still lacks octets, or when it has no dot itself (``198.18.0.1,5`` = last octet 1 and 5).
    """
    for word in text.split():
        current: str | None = None
        for piece in word.split(","):
            if not piece:
                continue  # "a,,b" and a trailing comma are harmless
            if (
                current is not None
                and _V4_CHARS.fullmatch(current)
                and _V4_CHARS.fullmatch(piece)
                and (current.count(".") < 3 or "." not in piece)
            ):
                current = f"{current},{piece}"
                continue
            if current is not None:
                yield current
            current = piece
        if current is not None:
            yield current


def _lines(stream: IO[bytes] | IO[str], label: str, what: str) -> Iterator[str]:
    """The lines of a target file, each read with a bound: a line over MAX_LINE bytes (a file
    without newlines, /dev/zero) or a NUL byte (a binary file) is refused, never buffered whole."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        number += 1
        line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        if "\0" in line:
            raise TargetError(
                f"{what} file {label!r} line {number} holds a NUL byte: not a text file of targets"
            )
        if len(raw) > MAX_LINE and not line.endswith("\n"):
            raise TargetError(
                f"{what} file {label!r} line {number} is longer than {MAX_LINE} bytes: "
                "not a file of targets (one or a few specs a line)"
            )
        yield line


def _file_tokens(path: str, what: str) -> Iterator[tuple[str, str]]:
    """(token, " (FILE line N)") for every spec of a target or exclusion file; "-" is stdin."""
    stream: IO[bytes] | IO[str]
    try:
        if path == "-":
            # The byte stream when there is one: readline(limit) on it is bounded in bytes.
            stream = getattr(sys.stdin, "buffer", None) or sys.stdin
        else:
            stream = open(path, "rb")  # noqa: SIM115 (closed in the finally below)
    except OSError as exc:
        raise TargetError(f"cannot read {what} file {path!r}: {exc.strerror or exc}") from exc
    label = "stdin" if path == "-" else path
    try:
        for number, line in enumerate(_lines(stream, label, what), 1):
            text = line.split("#", 1)[0]
            for token in _split_spec(text):
                yield token, f" ({label} line {number})"
    except OSError as exc:
        raise TargetError(f"cannot read {what} file {path!r}: {exc.strerror or exc}") from exc
    except UnicodeError as exc:
        raise TargetError(f"cannot read {what} file {path!r}: {exc}") from exc
    finally:
        if path != "-":
            stream.close()


Spec = str | int | IPv4Address | IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network
_SINGLE = (str, int, IPv4Address, IPv6Address, ipaddress.IPv4Network, ipaddress.IPv6Network)


def _spec_text(spec: object, kind: str) -> str:
    """One spec as text: ints are addresses (ipaddress.ip_address's reading), objects their str."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, bool) or not isinstance(spec, _SINGLE):
        raise TargetError(
            f"invalid {kind} {spec!r}: expected a string, an int or an ipaddress address or "
            f"network, not {type(spec).__name__}"
        )
    if isinstance(spec, int):
        try:
            return str(ipaddress.ip_address(spec))
        except ValueError:
            raise TargetError(
                f"invalid {kind} {spec}: an integer address must be 0 to 2**128-1"
            ) from None
    return str(spec)


def _spec_tokens(specs: Iterable[Spec] | Spec, kind: str = "target") -> Iterator[str]:
    if isinstance(specs, _SINGLE) and not isinstance(specs, bool):
        specs = [specs]  # a lone spec, not an iterable of its characters
    elif isinstance(specs, (bytes, bytearray)) or not isinstance(specs, Iterable):
        raise TargetError(
            f"invalid {kind}s {specs!r}: expected a spec string or an iterable of specs"
        )
    for spec in specs:
        yield from _split_spec(_spec_text(spec, kind))


def _build_v4(inc: _Collected, exc: _Collected) -> _Family:
    patterns = inc.patterns + exc.patterns
    if sum(p.interval_count() for p in patterns) <= _EXPAND_LIMIT:
        ivs = _merge([*inc.v4, *(iv for p in inc.patterns for iv in p.intervals())])
        ex = _merge([*exc.v4, *(iv for p in exc.patterns for iv in p.intervals())])
        return _Flat(_subtract(ivs, ex), True)
    trie = _Trie()
    root = trie.from_intervals(_merge(inc.v4))
    for p in inc.patterns:
        root = trie.union(root, trie.from_octets(p.octets))
    minus = trie.from_intervals(_merge(exc.v4))
    for p in exc.patterns:
        minus = trie.union(minus, trie.from_octets(p.octets))
    root = trie.difference(root, minus)
    if root is None:
        return _Flat([], True)
    # Count before collecting: giving up after collecting _EXPAND_LIMIT tuples would cost ~8 MB.
    if sum(1 for _ in islice(_trie_runs(root), _EXPAND_LIMIT + 1)) > _EXPAND_LIMIT:
        return _Lazy(root)
    return _Flat(list(_trie_runs(root)), True)


def parse_targets(
    specs: Iterable[Spec] | Spec,
    *,
    exclude: Iterable[Spec] | Spec = (),
    input_file: str | None = None,
    exclude_file: str | None = None,
    on_warning: Callable[[str], None] | None = None,
    resolver: Resolver | None = None,
    strict: bool = False,
) -> TargetSpace:
    """Parse target specs (and ``-iL`` / exclusion files) into a TargetSpace.

    ``specs`` is an iterable of specs or one spec (a lone str is one spec). ``exclude`` strings
    are comma-separated lists of any target form. Files hold specs separated by whitespace or
    commas, with ``#`` comments; ``-`` reads stdin. Target names that do not resolve are reported
    to ``on_warning`` (and kept in ``space.warnings``) and skipped, or raise ResolveError with
    ``strict=True``; an exclusion that does not resolve always raises ResolveError (skipping it
    would scan what was meant to be left out). An empty result is not an error here: the caller
    decides. ``resolver`` replaces getaddrinfo (tests).

    >>> parse_targets(["127.0.0.0/30"], exclude=["127.0.0.0,127.0.0.3"]).size
    2

    Raises TargetError (a UsageError) naming the bad spec, e.g.
    ``invalid target '198.18.0.300': octet 300 is out of range 0-255``.
    """
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if on_warning is not None:
            on_warning(message)

    resolve = resolver or _resolve
    inc = _Parser("target", resolve, warn, strict)
    for token in _spec_tokens(specs):
        inc.add(token)
    if input_file is not None:
        for token, where in _file_tokens(input_file, "target"):
            inc.add(token, where)
    exc = _Parser("exclusion", resolve, warn)
    for token in _spec_tokens(exclude, "exclusion"):
        exc.add(token)
    if exclude_file is not None:
        for token, where in _file_tokens(exclude_file, "exclusion"):
            exc.add(token, where)

    v4 = _build_v4(inc.out, exc.out)
    v6 = _Flat(_subtract(_merge(inc.out.v6), _merge(exc.out.v6)), False)
    space = TargetSpace(v4, v6, warnings=warnings)
    space.names.update((a, n) for a, n in inc.names.items() if a in space)
    return space


# --------------------------------------------------------------------------------------------
# Keyed permutation (zmap's cyclic group walk)


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


def _is_prime(n: int) -> bool:
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
        if _is_prime(p):
            rest = p - 1
            factors = []
            for q in _small_primes():
                if rest % q == 0:
                    factors.append(q)
                    while rest % q == 0:
                        rest //= q
                if q * q > rest:
                    break
            if rest == 1 or _is_prime(rest):
                if rest > 1:
                    factors.append(rest)
                return p, tuple(factors)
        p += 1


def _check_shard(i: int, count: int) -> None:
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
        _check_shard(i, count)
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
