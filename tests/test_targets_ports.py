"""Tests of hilos.targets.ports: -p specs, the top-ports ranking, service names (no I/O)."""

from __future__ import annotations

import re
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilos.errors import PortSpecError, UsageError
from hilos.targets import ports as ports_mod
from hilos.targets.ports import (
    MAX_PORT,
    exclude_ports,
    parse_ports,
    service_name,
    service_port,
    top_ports,
)

# --------------------------------------------------------------------------- parse_ports


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("22", (22,)),
        ("22,80,443", (22, 80, 443)),
        ("443,80,22,80", (22, 80, 443)),
        ("1-5", (1, 2, 3, 4, 5)),
        ("-3", (1, 2, 3)),
        ("65533-", (65533, 65534, 65535)),
        ("  22 , 80 - 82 ,443 ", (22, 80, 81, 82, 443)),
        ("T:22,80", (22, 80)),
        ("t:22, T: 25", (22, 25)),
        ("1-3,2-4", (1, 2, 3, 4)),
        ("ssh,https", (22, 443)),
        ("HTTP,22", (22, 80)),
        ("65535", (65535,)),
        ("1", (1,)),
    ],
)
def test_parse_ports_forms(spec: str, expected: tuple[int, ...]) -> None:
    assert parse_ports(spec) == expected


def test_dash_is_every_port() -> None:
    everything = parse_ports("-")
    assert everything == tuple(range(1, 65536))
    assert parse_ports(" - ") == everything
    assert parse_ports("1-") == everything


def test_open_ended_ranges() -> None:
    assert parse_ports("-1024") == tuple(range(1, 1025))
    assert parse_ports("60000-") == tuple(range(60000, 65536))
    assert parse_ports("-2,65534-") == (1, 2, 65534, 65535)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("0", "out of range"),
        ("70000", "out of range"),
        ("65536", "out of range"),
        ("99999999999999", "out of range"),
        ("0-10", "out of range"),
        ("5-1", "starts after it ends"),
        ("abc", "unknown service"),
        ("", "empty"),
        ("   ", "empty"),
        ("22,,80", "empty item"),
        ("22,", "empty item"),
        ("U:53", "UDP ports need a UDP scan"),
        ("22,U:53", "UDP ports need a UDP scan"),
        ("S:22", "not supported"),
        ("1-2-3", "cannot parse"),
        ("22 80", "cannot parse"),
        ("+22", "cannot parse"),
        ("٣", "cannot parse"),  # a non-ASCII digit: int() would accept it
        ("1_000", "cannot parse"),
        ("22/tcp", "cannot parse"),
    ],
)
def test_parse_ports_errors(spec: str, fragment: str) -> None:
    with pytest.raises(PortSpecError) as info:
        parse_ports(spec)
    assert fragment in str(info.value)
    assert isinstance(info.value, UsageError)
    assert str(info.value).startswith("invalid port spec ")
    assert "\n" not in str(info.value)


def test_non_string_spec_is_a_port_spec_error() -> None:
    with pytest.raises(PortSpecError):
        parse_ports(22)  # type: ignore[arg-type]


_port = st.integers(1, MAX_PORT)


@st.composite
def _port_items(draw: st.DrawFn) -> tuple[str, set[int]]:
    """A random valid spec and the set it means, built independently of the parser."""
    items: list[str] = []
    expected: set[int] = set()
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["one", "range", "open_lo", "open_hi", "name"]))
        if kind == "one":
            p = draw(_port)
            items.append(str(p))
            expected.add(p)
        elif kind == "range":
            a = draw(st.integers(1, MAX_PORT))
            b = draw(st.integers(a, min(MAX_PORT, a + 300)))
            ws = draw(st.sampled_from(["", " "]))
            items.append(f"{a}{ws}-{ws}{b}")
            expected.update(range(a, b + 1))
        elif kind == "open_lo":
            b = draw(st.integers(1, 200))
            items.append(f"-{b}")
            expected.update(range(1, b + 1))
        elif kind == "open_hi":
            a = draw(st.integers(MAX_PORT - 200, MAX_PORT))
            items.append(f"{a}-")
            expected.update(range(a, MAX_PORT + 1))
        else:
            name, port = draw(st.sampled_from([("ssh", 22), ("http", 80), ("mysql", 3306)]))
            items.append(name)
            expected.add(port)
    seps = [draw(st.sampled_from([",", ", ", " ,", " , "])) for _ in items]
    spec = "".join(item + sep for item, sep in zip(items, seps, strict=True))[: -len(seps[-1])]
    if draw(st.booleans()):
        spec = "T:" + spec
    return spec, expected


@given(_port_items())
@settings(max_examples=200, deadline=None)
def test_random_valid_specs_parse_to_the_right_set(case: tuple[str, set[int]]) -> None:
    spec, expected = case
    assert parse_ports(spec) == tuple(sorted(expected))


@given(st.text(max_size=30))
@settings(max_examples=500, deadline=None)
def test_fuzz_text_parses_or_raises_port_spec_error(text: str) -> None:
    try:
        result = parse_ports(text)
    except PortSpecError as exc:
        assert str(exc).startswith("invalid port spec ")
        return
    assert result == tuple(sorted(set(result)))
    assert all(1 <= p <= MAX_PORT for p in result)
    assert result


@given(st.text(alphabet="0123456789-,:TU tu", max_size=20))
@settings(max_examples=500, deadline=None)
def test_fuzz_port_alphabet_parses_or_raises_port_spec_error(text: str) -> None:
    try:
        result = parse_ports(text)
    except PortSpecError:
        return
    assert all(1 <= p <= MAX_PORT for p in result)
    # Whatever parsed must agree with a plain regex reading of the same text.
    expected: set[int] = set()
    for raw in text.split(","):
        item = re.sub(r"^\s*[Tt]:", "", raw).strip()
        lo, dash, hi = (s.strip() for s in item.partition("-"))
        if dash:
            expected.update(range(int(lo) if lo else 1, (int(hi) if hi else MAX_PORT) + 1))
        else:
            expected.add(int(item))
    assert set(result) == expected


# --------------------------------------------------------------------------- exclude_ports


def test_exclude_ports_keeps_the_given_order() -> None:
    assert exclude_ports((443, 80, 22, 8080), "80,8000-9000") == (443, 22)
    assert exclude_ports(top_ports(5), "22") == (80, 443, 21, 25)
    assert exclude_ports(range(1, 6), "-") == ()


def test_exclude_ports_rejects_bad_specs() -> None:
    with pytest.raises(PortSpecError):
        exclude_ports((22,), "0")


# --------------------------------------------------------------------------- top_ports


def test_top_ports_head_is_the_hand_ranked_order() -> None:
    head = (80, 443, 22, 21, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080, 1723, 111)
    assert top_ports(len(head)) == head
    assert top_ports(1) == (80,)


@pytest.mark.parametrize("n", [1, 10, 100, 200, 1000, 5000, 65535])
def test_top_ports_are_unique_valid_and_prefix_consistent(n: int) -> None:
    ports = top_ports(n)
    assert len(ports) == n
    assert len(set(ports)) == n
    assert all(1 <= p <= MAX_PORT for p in ports)
    assert top_ports(n) == ports  # deterministic
    assert top_ports(n + 1)[:n] == ports if n < MAX_PORT else True


def test_top_ports_thousand_follows_the_documented_rule() -> None:
    ranking = top_ports(1000)
    hand = ports_mod._HAND_RANKED
    assert ranking[: len(hand)] == hand
    # step 2 of the rule: the rest of the service table, ascending, comes next
    rest_of_table = sorted(set(ports_mod._SERVICES) - set(hand))
    after = ranking[len(hand) : len(hand) + len(rest_of_table)]
    assert list(after) == rest_of_table
    # step 3: then the rest of 1-1024, ascending
    well_known = sorted(set(range(1, 1025)) - set(hand) - set(rest_of_table))
    start = len(hand) + len(rest_of_table)
    assert list(top_ports(start + len(well_known))[start:]) == well_known
    # step 4 begins with 1025-1100 (minus what was ranked before: 1025-1030 are hand-ranked)
    seen = set(hand) | set(rest_of_table)
    first_high = next(p for p in range(1025, 1101) if p not in seen)
    assert top_ports(start + len(well_known) + 1)[-1] == first_high == 1031


def test_top_ports_covers_every_port_and_clamps() -> None:
    assert sorted(top_ports(65535)) == list(range(1, 65536))
    assert top_ports(70000) == top_ports(65535)


@pytest.mark.parametrize("n", [0, -1])
def test_top_ports_rejects_non_positive(n: int) -> None:
    with pytest.raises(PortSpecError):
        top_ports(n)


def test_top_ports_rejects_non_integers() -> None:
    with pytest.raises(PortSpecError):
        top_ports(True)
    with pytest.raises(PortSpecError):
        top_ports(1.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- service names


@pytest.mark.parametrize(
    ("port", "name"),
    [
        (22, "ssh"),
        (80, "http"),
        (443, "https"),
        (3306, "mysql"),
        (5432, "postgresql"),
        (6379, "redis"),
        (9200, "elasticsearch"),
        (21, "ftp"),
        (25, "smtp"),
        (3389, "ms-wbt-server"),
        (27017, "mongodb"),
    ],
)
def test_service_name(port: int, name: str) -> None:
    assert service_name(port) == name


def test_service_name_unknown_is_none() -> None:
    assert service_name(1) == "tcpmux"
    assert service_name(65000) is None
    assert service_name(0) is None


def test_service_table_size_and_round_trip() -> None:
    table = ports_mod._SERVICES
    assert len(table) >= 150
    assert all(1 <= p <= MAX_PORT for p in table)
    for port, name in table.items():
        back = service_port(name)
        assert back is not None and table[back] == name and back <= port
    assert service_port(" SSH ") == 22
    assert service_port("no-such-service") is None


def test_targets_reexports_the_port_functions() -> None:
    from hilos import targets

    assert targets.parse_ports is parse_ports
    assert targets.top_ports is top_ports
    assert targets.service_name is service_name
    assert targets.exclude_ports is exclude_ports


@given(st.sampled_from(sorted(ports_mod._SERVICE_PORTS.items())), st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_any_service_name_in_any_case_is_its_port(item: tuple[str, int], rnd: Random) -> None:
    name, port = item
    mixed = "".join(c.upper() if rnd.random() < 0.5 else c for c in name)
    assert parse_ports(f"{mixed},1") == tuple(sorted({1, port}))
    assert parse_ports(f"T:{mixed}") == (port,)


@pytest.mark.parametrize("spec", ["ssh,nosuch", "sshh", "http-", "s"])
def test_unknown_service_name_says_which(spec: str) -> None:
    with pytest.raises(PortSpecError, match="unknown service"):
        parse_ports(spec)


def test_service_lookups_of_the_wrong_type_are_none() -> None:
    assert service_port(22) is None  # type: ignore[arg-type]
    assert service_name("22") is None  # type: ignore[arg-type]
    assert service_name(True) is None
