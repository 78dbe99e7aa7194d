"""The sweep's targets as re-iterable int ranges, in probing order (nothing per address kept)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Iterator

from hilos.probes.icmp_echo import V6_TAG
from hilos.sweep.base import Address, Range
from hilos.targets import TargetSpace

__all__ = ["PIECE", "Targets"]

PIECE = 4096  # addresses per range handed to the engines (a multiple of 256: whole /24s)


def _key_of(addr: Address) -> tuple[int, int]:
    ip = ipaddress.ip_address(addr) if isinstance(addr, str) else addr
    return ip.version, int(ip)


class Targets:
    """Re-iterable (family, first, last) int ranges of the targets, in probing order."""

    def __init__(
        self, targets: TargetSpace | Iterable[Address], randomize: bool, seed: int | None
    ) -> None:
        self._space: TargetSpace | None = None
        self._list: list[tuple[int, int]] | None = None
        self.seed = seed if seed is not None else random.getrandbits(32)
        self.randomize = randomize
        if isinstance(targets, TargetSpace):
            self._space = targets
            self.size = targets.size
            self.families = {
                fam for fam, n in ((4, targets.size_v4), (6, targets.size_v6)) if n > 0
            }
        else:
            # A plain iterable may be a one-shot iterator; retries need a second look, so keep
            # the ints (de-duplicated, order kept). Use a TargetSpace for big spaces.
            seen: dict[tuple[int, int], None] = {}
            for a in targets:
                seen[_key_of(a)] = None
            self._list = list(seen)
            if randomize:
                random.Random(self.seed).shuffle(self._list)
            self.size = len(self._list)
            self.families = {fam for fam, _ in self._list}

    def ranges(self) -> Iterator[Range]:
        if self._list is not None:
            for fam, a in self._list:
                yield fam, a, a
            return
        space = self._space
        assert space is not None
        if self.randomize:
            for ip in space.iter_permuted(self.seed):
                a = int(ip)
                yield ip.version, a, a
            return
        for first, last in space.iter_ranges():
            # In aligned pieces of at most PIECE addresses: the engines count progress per
            # range, so a cancelled sweep of a /16 knows it probed 4096, not 65536 (summaries).
            fam, a, b = first.version, int(first), int(last)
            while a <= b:
                end = min(b, a | (PIECE - 1))
                yield fam, a, end
                a = end + 1

    def block_count(self) -> int:
        """How many IPv4 blocks ranges() makes (a range's part inside one /24; only IPv4 goes
        out as frames), cheaply: the size when every range is one address (lists, random)."""
        if self._list is not None or self.randomize:
            return self.size
        return sum((b >> 8) - (a >> 8) + 1 for fam, a, b in self.ranges() if fam == 4)

    def iter_keys(self) -> Iterator[int]:
        for fam, first, last in self.ranges():
            tag = V6_TAG if fam == 6 else 0
            for a in range(first, last + 1):
                yield a + tag
