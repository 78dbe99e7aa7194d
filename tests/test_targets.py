"""Tests of hilos.targets: target specs, TargetSpace, Permutation and shards.

Parsing only: nothing here sends a packet. Addresses outside loopback appear only as strings and
integers (198.18.0.0/15, fd18::/16 and a few /8s written as text).
"""

from __future__ import annotations

import io
import ipaddress
import itertools
import sys
import time
import tracemalloc
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hilos import targets as targets_mod
from hilos.errors import TargetError, UsageError
from hilos.targets import (
    Permutation,
    TargetSpace,
    parse_shard,
    parse_targets,
    random_seed,
)


def addrs(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


def fake_resolver(table: dict[str, list[str]]) -> targets_mod.Resolver:
    def resolve(name: str) -> list[str]:
        if name not in table:
            raise OSError(-2, "Name or service not known")
        return table[name]

    return resolve


# --------------------------------------------------------------------------- single forms


def test_single_addresses() -> None:
    space = parse_targets(["127.0.0.1", "::1"])
    assert list(space) == addrs("127.0.0.1", "::1")
    assert len(space) == space.size == 2
    assert (space.size_v4, space.size_v6) == (1, 1)


def test_cidr_includes_network_and_broadcast() -> None:
    space = parse_targets(["198.18.0.0/24"])
    assert len(space) == 256
    assert space[0] == IPv4Address("198.18.0.0")
    assert space[255] == IPv4Address("198.18.0.255")


def test_cidr_host_bits_are_ignored() -> None:
    assert list(parse_targets(["198.18.0.5/30"])) == addrs(
        "198.18.0.4", "198.18.0.5", "198.18.0.6", "198.18.0.7"
    )
    assert len(parse_targets(["198.18.0.5/32"])) == 1
    assert parse_targets(["0.0.0.0/0"]).size == 2**32


def test_ipv6_cidr() -> None:
    space = parse_targets(["fd18::/120"])
    assert len(space) == 256
    assert space[1] == IPv6Address("fd18::1")
    assert space[-1] == IPv6Address("fd18::ff")


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


def test_ranges() -> None:
    assert len(parse_targets(["198.18.0.1-200"])) == 200
    full = parse_targets(["198.18.0.1-198.18.3.7"])
    assert len(full) == 3 * 256 + 7
    assert full[0] == IPv4Address("198.18.0.1") and full[-1] == IPv4Address("198.18.3.7")
    v6 = parse_targets(["fd18::1-fd18::ff"])
    assert len(v6) == 255 and v6[-1] == IPv6Address("fd18::ff")
    short = parse_targets(["fd18::1:10-1f"])
    assert next(iter(short)) == IPv6Address("fd18::1:10") and len(short) == 16


def test_octet_ranges() -> None:
    space = parse_targets(["198.18.0-3.1-254"])
    assert len(space) == 4 * 254
    assert space[0] == IPv4Address("198.18.0.1")
    assert space[254] == IPv4Address("198.18.1.1")
    assert IPv4Address("198.18.2.0") not in space
    assert IPv4Address("198.18.2.255") not in space
    assert IPv4Address("198.18.3.254") in space


def test_octet_wildcard() -> None:
    space = parse_targets(["198.18.*.1"])
    assert list(space) == [IPv4Address(f"198.18.{i}.1") for i in range(256)]


def test_octet_lists_are_a_cartesian_product() -> None:
    space = parse_targets(["198.18.1,3,5.1-10"])
    expected = [IPv4Address(f"198.18.{c}.{d}") for c in (1, 3, 5) for d in range(1, 11)]
    assert list(space) == expected
    assert len(space) == 30


def test_octet_open_ended_items() -> None:
    assert list(parse_targets(["198.18.0.253-"])) == addrs(
        "198.18.0.253", "198.18.0.254", "198.18.0.255"
    )
    assert list(parse_targets(["198.18.0.-2"])) == addrs("198.18.0.0", "198.18.0.1", "198.18.0.2")
    assert len(parse_targets(["198.18.0,1.-"])) == 512


def test_duplicates_and_overlaps_are_merged() -> None:
    space = parse_targets(["198.18.0.0/24", "198.18.0.10-20", "198.18.0.5", "198.18.0-1.0-255"])
    assert len(space) == 512
    assert list(space.iter_ranges()) == [(IPv4Address("198.18.0.0"), IPv4Address("198.18.1.255"))]


def test_v4_before_v6_each_ascending() -> None:
    space = parse_targets(["::1", "127.0.0.3", "127.0.0.1", "fd18::"])
    assert list(space) == addrs("127.0.0.1", "127.0.0.3", "::1", "fd18::")


def test_commas_and_whitespace_in_one_string() -> None:
    space = parse_targets(["127.0.0.1,127.0.0.2  ::1", "198.18.0.1,5"])
    assert list(space) == addrs("127.0.0.1", "127.0.0.2", "198.18.0.1", "198.18.0.5", "::1")


# --------------------------------------------------------------------------- names


def test_names_are_resolved_with_the_resolver() -> None:
    resolve = fake_resolver({"lab.test": ["198.18.0.7", "fd18::7"]})
    space = parse_targets(["lab.test"], resolver=resolve)
    assert list(space) == addrs("198.18.0.7", "fd18::7")
    assert space.names[IPv4Address("198.18.0.7")] == "lab.test"


def test_unresolvable_name_is_a_warning() -> None:
    warnings: list[str] = []
    space = parse_targets(
        ["nosuch.test", "127.0.0.1"], on_warning=warnings.append, resolver=fake_resolver({})
    )
    assert list(space) == addrs("127.0.0.1")
    assert len(warnings) == 1 and "nosuch.test" in warnings[0]
    assert space.warnings == tuple(warnings)


def test_unresolvable_name_without_callback_is_kept_in_warnings() -> None:
    space = parse_targets(["nosuch.test"], resolver=fake_resolver({}))
    assert not space and len(space.warnings) == 1


def test_localhost_resolves_with_getaddrinfo() -> None:
    space = parse_targets(["localhost"])
    assert space.size >= 1
    assert set(space) <= set(addrs("127.0.0.1", "::1"))


def test_name_with_prefix() -> None:
    space = parse_targets(["lab.test/30"], resolver=fake_resolver({"lab.test": ["198.18.0.5"]}))
    assert len(space) == 4 and space[0] == IPv4Address("198.18.0.4")


def test_name_with_prefix_prefers_the_matching_family() -> None:
    resolve = fake_resolver({"dual.test": ["198.18.0.5", "fd18::5"], "six.test": ["fd18::5"]})
    assert list(parse_targets(["dual.test/31"], resolver=resolve)) == addrs(
        "198.18.0.4", "198.18.0.5"
    )
    assert parse_targets(["dual.test/120"], resolver=resolve).size_v6 == 256
    assert parse_targets(["six.test/120"], resolver=resolve).size == 256
    assert parse_targets(["six.test/24"], resolver=resolve).size == 2**104
    with pytest.raises(TargetError, match="prefix length"):
        parse_targets(["dual.test/129"], resolver=resolve)


def test_names_in_exclusions() -> None:
    resolve = fake_resolver({"gw.test": ["198.18.0.1"]})
    space = parse_targets(["198.18.0.0/30"], exclude=["gw.test"], resolver=resolve)
    assert IPv4Address("198.18.0.1") not in space and len(space) == 3


# --------------------------------------------------------------------------- files


def test_input_file(tmp_path: Path) -> None:
    f = tmp_path / "targets.txt"
    f.write_text("# lab hosts\n127.0.0.1 127.0.0.2   # two\n\n  ::1\n127.0.0.1,127.0.0.5\n")
    space = parse_targets([], input_file=str(f))
    assert list(space) == addrs("127.0.0.1", "127.0.0.2", "127.0.0.5", "::1")


def test_input_file_with_positional_targets(tmp_path: Path) -> None:
    f = tmp_path / "t"
    f.write_text("127.0.0.2\n")
    assert list(parse_targets(["127.0.0.1"], input_file=str(f))) == addrs("127.0.0.1", "127.0.0.2")


def test_input_file_from_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("127.0.0.9\n::1 # loopback\n"))
    assert list(parse_targets([], input_file="-")) == addrs("127.0.0.9", "::1")


def test_input_file_error_names_the_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.txt"
    f.write_text("127.0.0.1\n\n198.18.0.300\n")
    with pytest.raises(
        TargetError, match=r"invalid target '198\.18\.0\.300' \(.*bad\.txt line 3\)"
    ):
        parse_targets([], input_file=str(f))


def test_missing_input_file(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="cannot read target file"):
        parse_targets([], input_file=str(tmp_path / "nope"))
    with pytest.raises(TargetError, match="cannot read exclusion file"):
        parse_targets(["127.0.0.1"], exclude_file=str(tmp_path))


def test_exclude_file(tmp_path: Path) -> None:
    f = tmp_path / "ex"
    f.write_text("198.18.0.0-99 # first hundred\n198.18.0.200/29\n")
    space = parse_targets(["198.18.0.0/24"], exclude_file=str(f))
    assert len(space) == 256 - 100 - 8
    assert IPv4Address("198.18.0.100") in space
    assert IPv4Address("198.18.0.203") not in space


# --------------------------------------------------------------------------- exclusions


def test_exclude_comma_lists_of_any_form() -> None:
    space = parse_targets(
        ["198.18.0.0/24", "fd18::/120"],
        exclude=["198.18.0.0,198.18.0.255", "198.18.0.10-19,fd18::/121", "198.18.0,3,5.1"],
    )
    assert space.size_v4 == 256 - 2 - 10 - 1
    assert space.size_v6 == 256 - 128
    assert IPv4Address("198.18.0.1") not in space
    assert IPv4Address("198.18.0.2") in space
    assert IPv6Address("fd18::80") in space and IPv6Address("fd18::7f") not in space


def test_everything_excluded_is_an_empty_space() -> None:
    space = parse_targets(["127.0.0.0/30"], exclude=["127.0.0.0/24"])
    assert space.size == 0 and len(space) == 0 and not space
    assert list(space) == [] and list(space.iter_permuted(3)) == []
    with pytest.raises(IndexError):
        space[0]


def test_no_targets_is_empty() -> None:
    assert parse_targets([]).size == 0
    assert parse_targets([""]).size == 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "spec",
    [
        "198.18.0.300",
        "198.18.0",
        "198.18.0.1.2",
        "198.18.0.1-198.18.0.0",
        "198.18.0.5-1",
        "198.18.0.01",
        "198.18..1",
        "198.18.0.1/33",
        "198.18.0.1/x",
        "198.18.0.1/",
        "fd18::g",
        "fd18::1/129",
        "fd18::ff-fd18::1",
        "fd18::1-xyz",
        "fe80::1%eth0",
        "1234",
        "-foo",
        "foo..bar!",
        "198.18.0.1-2-3",
        "198.18.0.0/24,5",
    ],
)
def test_invalid_targets(spec: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_targets([spec])
    message = str(info.value)
    assert isinstance(info.value, UsageError)
    assert message.startswith("invalid target '")
    assert "\n" not in message


def test_invalid_target_message_names_the_spec() -> None:
    with pytest.raises(TargetError, match=r"^invalid target '198\.18\.0\.300': .*0-255"):
        parse_targets(["198.18.0.300"])
    with pytest.raises(TargetError, match=r"^invalid exclusion '1\.2\.3'"):
        parse_targets(["127.0.0.1"], exclude=["1.2.3"])


# --------------------------------------------------------------------------- access


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


# --------------------------------------------------------------------------- fragmented patterns


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


# Small universes for brute-force comparison: 198.18.0.0/22 (1024 addresses) and fd18::/118.
_BASE4 = int(IPv4Address("198.18.0.0"))
_BASE6 = int(IPv6Address("fd18::"))
_SPAN = 1024


@st.composite
def _v4_spec(draw: st.DrawFn) -> tuple[str, set[int]]:
    """A random v4 spec inside 198.18.0.0/22 and its address set computed with ipaddress."""
    kind = draw(st.sampled_from(["addr", "cidr", "range", "last", "pattern"]))
    a = _BASE4 + draw(st.integers(0, _SPAN - 1))
    if kind == "addr":
        return str(IPv4Address(a)), {a}
    if kind == "cidr":
        prefix = draw(st.integers(22, 32))
        net = ipaddress.ip_network(f"{IPv4Address(a)}/{prefix}", strict=False)
        return f"{IPv4Address(a)}/{prefix}", {int(x) for x in net}
    if kind == "range":
        b = draw(st.integers(a, _BASE4 + _SPAN - 1))
        return f"{IPv4Address(a)}-{IPv4Address(b)}", set(range(a, b + 1))
    if kind == "last":
        last = draw(st.integers(a & 0xFF, 255))
        return f"{IPv4Address(a)}-{last}", set(range(a, (a & ~0xFF) + last + 1))
    thirds = sorted(draw(st.sets(st.integers(0, 3), min_size=1, max_size=4)))
    fourth = draw(
        st.lists(st.tuples(st.integers(0, 255), st.integers(0, 40)), min_size=1, max_size=3)
    )
    items = [f"{lo}-{min(255, lo + w)}" for lo, w in fourth]
    values = {v for lo, w in fourth for v in range(lo, min(255, lo + w) + 1)}
    spec = f"198.18.{','.join(map(str, thirds))}.{','.join(items)}"
    return spec, {_BASE4 + (t << 8) + v for t in thirds for v in values}


@st.composite
def _v6_spec(draw: st.DrawFn) -> tuple[str, set[int]]:
    a = _BASE6 + draw(st.integers(0, _SPAN - 1))
    if draw(st.booleans()):
        prefix = draw(st.integers(118, 128))
        net = ipaddress.ip_network(f"{IPv6Address(a)}/{prefix}", strict=False)
        return f"{IPv6Address(a)}/{prefix}", {int(x) for x in net}
    b = draw(st.integers(a, _BASE6 + _SPAN - 1))
    return f"{IPv6Address(a)}-{IPv6Address(b)}", set(range(a, b + 1))


_spec = st.one_of(_v4_spec(), _v6_spec())


def _check_against(space: TargetSpace, v4: set[int], v6: set[int]) -> None:
    expected = [IPv4Address(x) for x in sorted(v4)] + [IPv6Address(x) for x in sorted(v6)]
    assert space.size == len(expected)
    got = list(space)
    assert got == expected  # ascending, unique, exactly the set
    for i in sorted({0, len(expected) // 2, len(expected) - 1}):
        if expected:
            assert space[i] == expected[i]
    for x in range(_BASE4 - 2, _BASE4 + _SPAN + 2, 7):
        assert (IPv4Address(x) in space) == (x in v4)
    for x in range(_BASE6 - 2, _BASE6 + _SPAN + 2, 7):
        assert (IPv6Address(x) in space) == (x in v6)
    runs = list(space.iter_ranges())
    assert sum(int(b) - int(a) + 1 for a, b in runs) == space.size
    assert all(
        int(b1) + 1 < int(a2)
        for (_, b1), (a2, _) in itertools.pairwise(runs)
        if a2.version == b1.version
    )


@given(st.lists(_spec, max_size=6), st.lists(_spec, max_size=4))
@settings(max_examples=150, deadline=None)
def test_random_specs_match_brute_force(
    inc: list[tuple[str, set[int]]], exc: list[tuple[str, set[int]]]
) -> None:
    v4: set[int] = set()
    v6: set[int] = set()
    for spec, values in inc:
        (v6 if ":" in spec else v4).update(values)
    for spec, values in exc:
        (v6 if ":" in spec else v4).difference_update(values)
    space = parse_targets([s for s, _ in inc], exclude=[",".join(s for s, _ in exc)])
    _check_against(space, v4, v6)


@given(st.lists(_v4_spec(), min_size=1, max_size=5), st.lists(_v4_spec(), max_size=4))
@settings(max_examples=100, deadline=None)
def test_trie_path_matches_brute_force(
    inc: list[tuple[str, set[int]]], exc: list[tuple[str, set[int]]]
) -> None:
    # With the limit at 0 every octet pattern takes the byte-trie path, and flattening is refused.
    v4: set[int] = set()
    for _, values in inc:
        v4 |= values
    for _, values in exc:
        v4 -= values
    assume(any("," in s or (s.count(".") == 3 and "/" not in s) for s, _ in inc))
    original = targets_mod._EXPAND_LIMIT
    targets_mod._EXPAND_LIMIT = 0
    try:
        space = parse_targets([s for s, _ in inc], exclude=[s for s, _ in exc])
    finally:
        targets_mod._EXPAND_LIMIT = original
    _check_against(space, v4, set())


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)), min_size=1, max_size=12))
@settings(max_examples=100, deadline=None)
def test_random_cidrs_anywhere_count_like_ipaddress(nets: list[tuple[int, int]]) -> None:
    specs = [f"{IPv4Address(a)}/{p}" for a, p in nets]
    networks = [ipaddress.ip_network(s, strict=False) for s in specs]
    expected = sum(n.num_addresses for n in ipaddress.collapse_addresses(networks))
    space = parse_targets(specs)
    assert space.size == expected
    runs = list(space.iter_ranges())
    assert runs == sorted(runs)
    first = min(n.network_address for n in networks)
    assert space[0] == first


# --------------------------------------------------------------------------- random order


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
        assert p > n and targets_mod._is_prime(p)
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
    assert [targets_mod._is_prime(i) for i in range(limit)] == sieve
    # Carmichael numbers and a strong pseudoprime to several bases
    for composite in (561, 1105, 1729, 3215031751, 3825123056546413051):
        assert not targets_mod._is_prime(composite)
    assert targets_mod._is_prime(2**61 - 1) and targets_mod._is_prime(2**89 - 1)


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


# --------------------------------------------------------------------------- shard and seed helpers


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


def test_public_names() -> None:
    exported: Sequence[str] = targets_mod.__all__
    for name in exported:
        assert hasattr(targets_mod, name), name


# --------------------------------------------------------------------------- issue 9


def test_len_of_a_huge_space_is_a_hilos_error_and_size_stays_exact() -> None:
    from hilos.errors import HilosError, TooLargeError

    space = parse_targets(["::/0"])
    with pytest.raises(TooLargeError, match=r"use \.size") as info:
        len(space)
    assert isinstance(info.value, HilosError) and isinstance(info.value, OverflowError)
    assert space.size == 2**128


def test_a_lone_string_is_one_spec_not_its_characters() -> None:
    assert list(parse_targets("127.0.0.1")) == addrs("127.0.0.1")
    assert parse_targets("127.0.0.0/30", exclude="127.0.0.0").size == 3


def test_int_and_ipaddress_specs() -> None:
    space = parse_targets(
        [2130706433, IPv6Address("::1"), ipaddress.ip_network("127.0.0.4/31")], exclude=[2130706437]
    )
    assert list(space) == addrs("127.0.0.1", "127.0.0.4", "::1")
    assert list(parse_targets(2130706434)) == addrs("127.0.0.2")


@pytest.mark.parametrize("bad", [[True], [None], [1.5], [-1], [2**128], b"127.0.0.1", 3.0])
def test_specs_of_the_wrong_type_are_target_errors(bad: object) -> None:
    with pytest.raises(TargetError):
        parse_targets(bad)  # type: ignore[arg-type]


def test_ipv4_mapped_addresses_are_ipv4() -> None:
    space = parse_targets(["::ffff:127.0.0.1", "::ffff:127.0.0.8/127"])
    assert list(space) == addrs("127.0.0.1", "127.0.0.8", "127.0.0.9")
    assert space.size_v6 == 0
    assert IPv6Address("::ffff:127.0.0.1") in space
    # a block straddling ::ffff:0:0/96 keeps its IPv6 part and maps the rest
    wide = parse_targets(["::fffe:ffff:ffff/95"])
    assert (wide.size_v4, wide.size_v6) == (2**32, 2**32)
    # exclusions map the same way
    assert list(parse_targets(["127.0.0.1-2"], exclude=["::ffff:127.0.0.2"])) == addrs("127.0.0.1")


def test_names_resolving_to_mapped_addresses_keep_the_name() -> None:
    space = parse_targets(["m.test"], resolver=fake_resolver({"m.test": ["::ffff:127.0.0.3"]}))
    assert list(space) == addrs("127.0.0.3")
    assert space.hostname("127.0.0.3") == "m.test"


def test_hostname_accessor_with_localhost() -> None:
    space = parse_targets(["localhost", "127.0.0.0/30"])
    assert space.hostname(IPv4Address("127.0.0.1")) == "localhost"
    assert space.hostname("127.0.0.1") == "localhost"
    assert space.hostname("127.0.0.2") is None
    assert space.hostname("not an address") is None
    assert set(space.names.values()) == {"localhost"}  # a block adds no per-address entries


def test_unresolvable_exclusion_is_an_error_not_a_warning() -> None:
    from hilos.errors import ResolveError

    warnings: list[str] = []
    with pytest.raises(ResolveError, match=r"nosuch\.test"):
        parse_targets(
            ["127.0.0.1"],
            exclude=["nosuch.test"],
            on_warning=warnings.append,
            resolver=fake_resolver({}),
        )
    with pytest.raises(ResolveError, match="resolved to no address"):
        parse_targets(
            ["127.0.0.1"], exclude=["empty.test"], resolver=fake_resolver({"empty.test": []})
        )
    assert warnings == []


def test_unresolvable_exclusion_in_a_file_names_the_line(tmp_path: Path) -> None:
    from hilos.errors import ResolveError

    f = tmp_path / "ex.txt"
    f.write_text("127.0.0.2\nnosuch.test\n")
    with pytest.raises(ResolveError, match=r"ex\.txt line 2"):
        parse_targets(["127.0.0.1"], exclude_file=str(f), resolver=fake_resolver({}))


def test_strict_makes_an_unresolvable_target_an_error() -> None:
    from hilos.errors import ResolveError

    with pytest.raises(ResolveError, match=r"nosuch\.test"):
        parse_targets(["nosuch.test"], strict=True, resolver=fake_resolver({}))


def test_target_file_of_zeros_is_refused_without_reading_it_all() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(TargetError, match="NUL byte"):
            parse_targets([], input_file="/dev/zero")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000


def test_target_file_with_an_overlong_line_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "long.txt"
    f.write_text("127.0.0.1\n" + "1" * (targets_mod.MAX_LINE + 10) + "\n")
    with pytest.raises(TargetError, match=r"line 2 is longer than 4096 bytes"):
        parse_targets([], input_file=str(f))
    ok = tmp_path / "ok.txt"
    ok.write_text(" " * (targets_mod.MAX_LINE - 10) + "127.0.0.1\n127.0.0.2")
    assert parse_targets([], input_file=str(ok)).size == 2


def test_binary_exclusion_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "bin"
    f.write_bytes(b"127.0.0.1\n\x7fELF\x00\x01")
    with pytest.raises(TargetError, match=r"exclusion file .* line 2 holds a NUL byte"):
        parse_targets(["127.0.0.1"], exclude_file=str(f))


def test_stdin_target_file_is_bounded_too(monkeypatch: pytest.MonkeyPatch) -> None:
    class _Stdin(io.StringIO):
        buffer = io.BytesIO(b"127.0.0.1\n" + b"9" * 10_000)

    monkeypatch.setattr(sys, "stdin", _Stdin())
    with pytest.raises(TargetError, match=r"stdin.* line 2 is longer"):
        parse_targets([], input_file="-")


@given(st.integers(0, 2**32 - 1))
def test_property_mapped_and_int_forms_equal_the_dotted_form(value: int) -> None:
    dotted = str(IPv4Address(value))
    expected = list(parse_targets([dotted]))
    assert list(parse_targets([value])) == expected
    assert list(parse_targets([f"::ffff:{dotted}"])) == expected


# --------------------------------------------------------------------------- via the CLI (exit 2)


def test_cli_target_file_of_zeros_is_exit_2_one_line() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "hilos", "sweep", "-iL", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stderr.startswith("hilos: error: ") and out.stderr.count("\n") == 1
    assert "NUL byte" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_cli_unresolvable_exclusion_is_exit_2_even_with_q(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], quiet: list[str]
) -> None:
    from hilos import cli

    monkeypatch.setattr(targets_mod, "_resolve", fake_resolver({}))
    rc = cli.main(["sweep", "127.0.0.1", "--exclude", "nosuch.test", *quiet])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("hilos: error: ") and "nosuch.test" in err


def test_cli_sweep_of_a_v4_mapped_address_finds_the_v4_host() -> None:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "hilos", "sweep", "::ffff:127.0.0.1", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["127.0.0.1", "up"]


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


@st.composite
def _mapped_spec(draw: st.DrawFn) -> tuple[str, set[int]]:
    """An IPv4-mapped IPv6 range or block over the v4 test window, and the v4 values it means."""
    a = _BASE4 + draw(st.integers(0, _SPAN - 1))
    mapped = 0xFFFF << 32
    if draw(st.booleans()):
        prefix = draw(st.integers(118, 128))
        net = ipaddress.ip_network(f"{IPv6Address(mapped + a)}/{prefix}", strict=False)
        return str(net), {int(x) - mapped for x in net}
    b = draw(st.integers(a, _BASE4 + _SPAN - 1))
    return f"{IPv6Address(mapped + a)}-{IPv6Address(mapped + b)}", set(range(a, b + 1))


@given(
    st.lists(st.one_of(_v4_spec(), _mapped_spec()), max_size=5),
    st.lists(st.one_of(_v4_spec(), _mapped_spec()), max_size=3),
)
@settings(max_examples=100, deadline=None)
def test_property_mapped_specs_are_their_ipv4_addresses(
    inc: list[tuple[str, set[int]]], exc: list[tuple[str, set[int]]]
) -> None:
    v4: set[int] = set()
    for _, values in inc:
        v4 |= values
    for _, values in exc:
        v4 -= values
    space = parse_targets([s for s, _ in inc], exclude=[s for s, _ in exc])
    _check_against(space, v4, set())


@given(st.lists(_spec, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]))
@settings(max_examples=50, deadline=None)
def test_property_a_target_file_means_what_its_specs_mean(
    specs: list[tuple[str, set[int]]], newline: str
) -> None:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, newline="") as f:
        f.write(newline.join(f"{s}  # comment" for s, _ in specs) + newline)
    try:
        from_file = parse_targets([], input_file=f.name)
    finally:
        Path(f.name).unlink()
    direct = parse_targets([s for s, _ in specs])
    assert list(from_file.iter_ranges()) == list(direct.iter_ranges())
