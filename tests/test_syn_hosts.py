"""Tests for hilos.syn.hosts: targets to integers, the host table and its inlined cookie seeds."""

from __future__ import annotations

import ipaddress

import pytest

from hilos.errors import UsageError
from hilos.syn.hosts import HostTable, host_ints
from hilos.targets import parse_targets
from hilos.wire.cookie import Cookie


def test_host_ints_accepts_strings_objects_and_target_spaces() -> None:
    space = parse_targets(["127.0.0.1-3", "::1"])
    assert list(host_ints(space)) == [(4, 0x7F000001), (4, 0x7F000002), (4, 0x7F000003), (6, 1)]
    mixed = ["127.0.0.9", ipaddress.ip_address("::2"), ipaddress.ip_address("127.0.0.8")]
    assert list(host_ints(mixed)) == [(4, 0x7F000009), (6, 2), (4, 0x7F000008)]
    with pytest.raises(UsageError, match="not an IP address"):
        list(host_ints(["localhost.invalid"]))


def test_table_scans_duplicates_once_with_the_cookies_seeds() -> None:
    cookie = Cookie(0xFEED)
    table = HostTable(["127.0.0.1", "::1", "127.0.0.1", "0:0::1", "127.0.0.2"], cookie)
    assert len(table) == 3 and table.names == ["127.0.0.1", "::1", "127.0.0.2"]
    assert table.families == {4, 6}
    assert table.index4 == {0x7F000001: 0, 0x7F000002: 2} and table.index6 == {1: 1}
    # The inlined Cookie.host_seed must be the cookie's own (the receiver recomputes it).
    for (_addr, seed, d4, *_rest), ip in zip(
        table.entries, (0x7F000001, 1, 0x7F000002), strict=True
    ):
        assert seed == cookie.host_seed(ip)
        assert d4 == (ip.to_bytes(4, "big") if ip > 1 else None)
