"""hilos.sweep.resume: a sweep's saved state taken back (the lab tests kill and resume sweeps)."""

from __future__ import annotations

import ipaddress
from typing import Any

from hilos.results import HostResult
from hilos.sweep import Sweeper
from hilos.targets import parse_targets


def _key(addr: str) -> int:
    return int(ipaddress.IPv4Address(addr))


def _saved(**kw: Any) -> dict[str, Any]:
    state = {
        "pass": 1,
        "chunk": 7,
        "chunks": 128,
        "passes": 3,
        "loss": [256, 20],
        "rtt": [0.1, 0.05],
        "answered": [
            [_key("198.18.0.1"), "echo-reply"],
            [_key("198.18.0.2"), "reset"],
            [_key("198.18.0.3"), "host-unreach"],
        ],
        "unwritten": [_key("198.18.0.2")],
    }
    return {**state, **kw}


def test_restore_takes_back_the_answers_the_passes_and_where_to_go_on() -> None:
    sw = Sweeper(parse_targets(["198.18.0.0/24"]), resume=_saved())
    assert sw.start_at == (1, 7) and sw.planned == 3
    assert sw.loss_measured == (256, 20)
    assert sw._answered[_key("198.18.0.3")] == "host-unreach" and sw.up == 2
    # Found but not written when saved: reported again first (its RTT was not kept).
    assert sw._queue.get_nowait() == HostResult("198.18.0.2", "up", "reset", None)
    assert sw._queue.empty()
    # The timeout as the saved estimate gives it: srtt + 4 rttvar, at least 2 srtt.
    assert abs(sw._wait() - 0.3) < 1e-9


def test_a_new_sweep_starts_at_the_beginning_and_keeps_no_state_without_frames() -> None:
    sw = Sweeper(parse_targets(["198.18.0.0/24"]))
    assert sw.start_at == (0, 0) and sw.planned == 2 and sw.up == 0
    # Not started: no frame sender, so nothing to save.
    assert sw.snapshot(lambda hs: [False] * len(hs)) is None
