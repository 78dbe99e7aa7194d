"""Tests for hilos.sweep.choose: which engines a sweep uses, and what it says is missing."""

from __future__ import annotations

import pytest

from hilos.errors import PrivilegeError
from hilos.sweep import choose
from hilos.sweep.choose import attach_link, choose_engines
from hilos.sweep.connects import ConnectDiscovery
from hilos.sweep.engines import IcmpDiscovery, TcpDiscovery
from hilos.sweep.targets import Targets
from hilos.wire.cookie import Cookie
from hilos.wire.ratelimit import TokenBucket


def _choose(
    method: str, families: set[int], raw: bool, cookie: Cookie | None = None
) -> tuple[list[object], list[str]]:
    engines, missing = choose_engines(
        method,  # type: ignore[arg-type]
        families,
        raw,
        cookie or Cookie(1),
        TokenBucket(None),
        lambda *a: None,
        4,
        lambda: 1.0,
    )
    for e in engines:
        e.close()
    return list(engines), missing


def test_unprivileged_tcp_is_connect() -> None:
    engines, missing = _choose("tcp", {4}, raw=False)
    assert [type(e) for e in engines] == [ConnectDiscovery] and missing == []


def test_unprivileged_auto_without_ping_sockets_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(choose, "ping_group_allows", lambda: False)
    engines, missing = _choose("auto", {4}, raw=False)
    assert [type(e) for e in engines] == [ConnectDiscovery]
    assert len(missing) == 2 and "ping_group_range" in missing[0] and "need root" in missing[1]


def test_forced_icmp_failing_is_the_socket_layers_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_icmp(*args: object, **kw: object) -> None:
        raise PrivilegeError("opening an ICMP socket: permission denied (the fix)")

    monkeypatch.setattr(choose, "ping_group_allows", lambda: False)
    monkeypatch.setattr(choose, "IcmpDiscovery", no_icmp)
    with pytest.raises(PrivilegeError, match="the fix"):
        _choose("icmp", {4}, raw=False)
    # "auto" goes on without it and says so.
    monkeypatch.setattr(choose, "ping_group_allows", lambda: True)
    engines, missing = _choose("auto", {4}, raw=False)
    assert [type(e) for e in engines] == [ConnectDiscovery] and "ICMP echo" in missing[0]


@pytest.mark.root
def test_raw_engines_share_the_sweeps_one_cookie() -> None:
    """Echo and TCP probes of a sweep are keyed by its one Cookie (the frame path computes an
    address's seed once for all three cookies)."""
    cookie = Cookie(7)
    engines, _missing = _choose("auto", {4}, raw=True, cookie=cookie)
    icmp = [e for e in engines if isinstance(e, IcmpDiscovery)]
    tcpe = [e for e in engines if isinstance(e, TcpDiscovery)]
    assert len(icmp) == len(tcpe) == 1
    assert icmp[0].engine.cookie is cookie and tcpe[0].cookie is cookie


def test_no_frame_path_without_ipv4_targets() -> None:
    assert attach_link(Targets(["::1"], randomize=False, seed=None), [], None) == (None, None)
