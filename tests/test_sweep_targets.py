"""Tests for hilos.sweep.targets: the targets as re-iterable int ranges."""

from __future__ import annotations

import ipaddress
import itertools

from hilos.sweep import Sweeper
from hilos.sweep.targets import PIECE, Targets
from hilos.targets import parse_targets


def test_plain_iterables_are_deduplicated_and_reiterable() -> None:
    s = Sweeper(iter(["127.0.0.2", "127.0.0.1", "127.0.0.2", ipaddress.ip_address("::1")]))
    assert s.size == 3
    keys = list(s._targets.iter_keys())
    assert keys == list(s._targets.iter_keys())  # a second pass sees the same addresses
    assert len(keys) == 3


def test_spaces_go_out_in_aligned_pieces_and_count_their_blocks() -> None:
    """Ranges of at most PIECE addresses on PIECE boundaries (a cancelled sweep counts what it
    probed by them), IPv6 as it is; block_count counts the IPv4 parts inside one /24."""
    t = Targets(parse_targets(["127.9.15.250-127.9.32.5", "::1"]), randomize=False, seed=None)
    ranges = list(t.ranges())
    v4 = [(a, b) for fam, a, b in ranges if fam == 4]
    first, last = (
        int(ipaddress.IPv4Address("127.9.15.250")),
        int(ipaddress.IPv4Address("127.9.32.5")),
    )
    assert v4[0][0] == first and v4[-1][1] == last
    assert all(b - a < PIECE and a // PIECE == b // PIECE for a, b in v4)
    assert all(b + 1 == c for (_, b), (c, _) in itertools.pairwise(v4))
    assert (6, 1, 1) in ranges
    assert t.block_count() == (last >> 8) - (first >> 8) + 1
    assert sum(1 for _ in t.iter_keys()) == t.size == last - first + 2


def test_random_order_is_a_permutation_fixed_by_the_seed() -> None:
    space = parse_targets(["127.0.0.0/26"])
    a = [k for _, k, _ in Targets(space, randomize=True, seed=5).ranges()]
    b = [k for _, k, _ in Targets(space, randomize=True, seed=5).ranges()]
    assert a == b and sorted(a) == list(range(min(a), min(a) + 64)) and a != sorted(a)
