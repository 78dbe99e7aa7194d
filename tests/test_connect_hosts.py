"""hilos.connect.hosts: result codes to nmap's states and reasons, and each host's status."""

from __future__ import annotations

import errno

from hilos.connect.hosts import (
    CLOSED,
    ERRNO_CODE,
    ERROR,
    NO_RESPONSE,
    OPEN,
    RESET,
    Host,
    build_result,
)
from hilos.results import HostResult

PORTS = (22, 80, 443, 8080)


def host_with(codes: list[int], item: str | HostResult = "127.0.0.1") -> Host:
    h = Host(item, 0, len(PORTS), len(PORTS))
    h.codes[:] = bytes(codes)
    return h


def test_states_and_reasons_follow_nmap() -> None:
    r = build_result(host_with([OPEN, CLOSED, NO_RESPONSE, ERRNO_CODE[errno.EHOSTUNREACH]]), PORTS)
    got = [(p.port, p.state, p.reason, p.service) for p in r.ports]
    assert got == [
        (22, "open", "syn-ack", "ssh"),
        (80, "closed", "conn-refused", "http"),
        (443, "filtered", "no-response", "https"),
        (8080, "filtered", "host-unreach", "http-proxy"),
    ]
    assert (r.status, r.reason) == ("up", "syn-ack")


def test_errnos_map_to_reasons() -> None:
    reasons = {
        e: build_result(host_with([ERRNO_CODE[e], 0, 0, 0]), PORTS).ports[0].reason
        for e in (errno.ENETUNREACH, errno.EACCES, errno.ECONNRESET, errno.ETIMEDOUT)
    }
    assert reasons == {
        errno.ENETUNREACH: "net-unreach",
        errno.EACCES: "admin-prohibited",
        errno.ECONNRESET: "reset",
        errno.ETIMEDOUT: "no-response",
    }
    assert build_result(host_with([ERROR, 0, 0, 0]), PORTS).ports[0].state == "filtered"


def test_host_status_without_discovery() -> None:
    closed = build_result(host_with([CLOSED, NO_RESPONSE, 0, 0]), PORTS)
    assert (closed.status, closed.reason) == ("up", "conn-refused")
    reset = build_result(host_with([RESET, NO_RESPONSE, 0, 0]), PORTS)
    assert (reset.status, reset.reason) == ("up", "conn-refused")
    silent = build_result(host_with([0, NO_RESPONSE, NO_RESPONSE, 0]), PORTS)
    assert (silent.status, silent.reason) == ("down", "no-response")
    assert [p.port for p in silent.ports] == [80, 443]  # unanswered ports are left out
    unreach = build_result(host_with([ERRNO_CODE[errno.EHOSTUNREACH], 0, 0, 0]), PORTS)
    assert (unreach.status, unreach.reason) == ("down", "host-unreach")


def test_discovered_host_keeps_its_reason_and_rtt() -> None:
    found = HostResult("127.0.0.9", "up", "echo-reply", 1.5)
    r = build_result(host_with([NO_RESPONSE, 0, 0, 0], found), PORTS)
    assert (r.host, r.status, r.reason, r.rtt_ms) == ("127.0.0.9", "up", "echo-reply", 1.5)


def test_closed_results_are_shared_between_hosts() -> None:
    a = build_result(host_with([CLOSED, 0, 0, 0]), PORTS)
    b = build_result(host_with([CLOSED, 0, 0, 0], "127.0.0.2"), PORTS)
    assert a.ports[0] is b.ports[0]


def test_host_family_and_address() -> None:
    assert Host("::1", 0, 1, 1).family != Host("127.0.0.1", 0, 1, 1).family
    assert Host(HostResult("::1", "up", "syn-ack"), 3, 2, 2).addr == "::1"
