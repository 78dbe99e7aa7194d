"""Tests for hilos.probes.base: the send clock in the source port, address text, unreach reasons."""

from __future__ import annotations

import time

import pytest

from hilos.probes.base import (
    SPORT_BASE,
    SPORT_COUNT,
    SPORT_MASK,
    TICK_SHIFT,
    addr_str,
    send_tick,
    unreach_reason,
)


def test_send_tick_is_the_clock_in_the_source_port_range() -> None:
    before = (time.monotonic_ns() >> TICK_SHIFT) & SPORT_MASK
    port = send_tick()
    after = (time.monotonic_ns() >> TICK_SHIFT) & SPORT_MASK
    assert SPORT_BASE <= port < SPORT_BASE + SPORT_COUNT
    assert port - SPORT_BASE in {before, after} or before > after  # (a wrap in between)


def test_addr_str_by_family() -> None:
    assert addr_str(4, 0x7F000001) == "127.0.0.1"
    assert addr_str(6, 1) == "::1"


@pytest.mark.parametrize(
    ("family", "kind", "code", "reason"),
    [
        (4, 3, 1, "host-unreach"),
        (4, 3, 13, "admin-prohibited"),
        (4, 3, 7, "unreach"),  # a code nmap has no word for
        (4, 11, 0, None),  # time exceeded is not an unreachable
        (6, 1, 4, "port-unreach"),
        (6, 1, 0, "no-route"),
        (6, 3, 0, None),
    ],
)
def test_unreach_reasons_are_nmaps(family: int, kind: int, code: int, reason: str | None) -> None:
    assert unreach_reason(family, kind, code) == reason
