"""TargetSpace: the de-duplicated, ordered set of addresses a scan walks, kept as intervals.

IPv4 first, then IPv6, each ascending; exact size, index access (for keyed random order and
shards), membership and runs, in memory proportional to the number of specs.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Iterator, Sequence
from ipaddress import IPv4Address, IPv6Address

from hilos.errors import TooLargeError
from hilos.targets.intervals import Flat, Interval, merge
from hilos.targets.trie import Lazy
from hilos.targets.walk import Permutation, check_shard

__all__ = ["Family", "IPAddress", "TargetSpace", "unmapped"]

IPAddress = IPv4Address | IPv6Address
Family = Flat | Lazy


def unmapped(addr: IPAddress) -> IPAddress:
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
        v4: Family,
        v6: Flat,
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
        return cls(Flat(merge(v4), True), Flat(merge(v6), False))

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
            f"runs={self._v4.run_count() if isinstance(self._v4, Flat) else 'lazy'}"
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
        check_shard(i, count)
        if seed is None:
            return self._map(iter(range(i - 1, self.size, count)))
        return self._map(Permutation(self.size, seed).shard(i, count))
