"""Tests of hilos.targets.specs (through parse_targets): every target form, bad specs, and
property tests of specs and exclusions against brute force (intervals and the trie path).

Parsing only: addresses outside loopback appear only as strings and integers.
"""

from __future__ import annotations

import ipaddress
import itertools
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hilos.errors import TargetError, UsageError
from hilos.targets import (
    TargetSpace,
    parse_targets,
)
from hilos.targets import parse as parse_mod


def addrs(*texts: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(t) for t in texts]


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
    original = parse_mod.EXPAND_LIMIT
    parse_mod.EXPAND_LIMIT = 0
    try:
        space = parse_targets([s for s, _ in inc], exclude=[s for s, _ in exc])
    finally:
        parse_mod.EXPAND_LIMIT = original
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


@given(st.integers(0, 2**32 - 1))
def test_property_mapped_and_int_forms_equal_the_dotted_form(value: int) -> None:
    dotted = str(IPv4Address(value))
    expected = list(parse_targets([dotted]))
    assert list(parse_targets([value])) == expected
    assert list(parse_targets([f"::ffff:{dotted}"])) == expected


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
