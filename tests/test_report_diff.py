"""hilos.report.diff: hosts and ports that changed, services only where both sides asked."""

from __future__ import annotations

import json

from helpers_report import host, port, run_of
from hilos.report.diff import Change, diff_runs, format_json, format_text


def kinds(changes: list[Change]) -> list[tuple[str, str, int | None]]:
    return [(c.kind, c.host, c.port) for c in changes]


def test_no_change_is_silent() -> None:
    a = run_of(host("198.18.0.1", port(22, service="ssh"), port(80)))
    assert diff_runs(a, a) == []
    assert format_text([]) == "" and format_json([]) == ""


def test_hosts_that_appear_and_go() -> None:
    old = run_of(host("198.18.0.1", port(22)), host("198.18.0.2", port(80, service="http")))
    new = run_of(
        host("198.18.0.1", port(22)),
        host("198.18.0.3", port(443, service="https")),
        host("198.18.0.2", status="down"),  # listed down (--all) is the same as gone
    )
    changes = diff_runs(old, new)
    assert kinds(changes) == [("host-down", "198.18.0.2", None), ("host-up", "198.18.0.3", None)]
    assert changes[0].ports == ("80/tcp http",)
    assert format_text(changes).splitlines() == [
        "- 198.18.0.2 no longer up (was open: 80/tcp http)",
        "+ 198.18.0.3 up (open: 443/tcp https)",
    ]


def test_ports_opened_closed_and_state_changes() -> None:
    old = run_of(host("198.18.0.1", port(22), port(80), port(135, "filtered"), port(9, "closed")))
    new = run_of(host("198.18.0.1", port(80, "filtered"), port(135, "closed"), port(8080), port(9)))
    changes = diff_runs(old, new)
    assert [(c.kind, c.port, c.old, c.new) for c in changes] == [
        ("port-opened", 9, "closed", "open"),
        ("port-closed", 22, "open", None),  # not listed: not open, in every format
        ("port-closed", 80, "open", "filtered"),
        ("port-state", 135, "filtered", "closed"),
        ("port-opened", 8080, None, "open"),
    ]
    assert format_text(changes).splitlines() == [
        "+ 198.18.0.1 9/tcp open (was closed)",
        "- 198.18.0.1 22/tcp not listed (was open)",
        "- 198.18.0.1 80/tcp filtered (was open)",
        "~ 198.18.0.1 135/tcp closed (was filtered)",
        "+ 198.18.0.1 8080/tcp open (was not listed)",
    ]


def test_a_non_open_port_listed_on_one_side_only_is_no_change() -> None:
    # hilos JSON lists every filtered port; nmap folds many into <extraports>.
    old = run_of(host("198.18.0.1", port(22), port(135, "filtered"), port(25, "closed")))
    new = run_of(host("198.18.0.1", port(22)), tool="nmap")
    assert diff_runs(old, new) == []


def test_service_changes_between_two_scans_of_one_tool() -> None:
    old = run_of(host("198.18.0.1", port(22, service="ssh", product="OpenSSH", version="9.2p1")))
    new = run_of(host("198.18.0.1", port(22, service="ssh", product="OpenSSH", version="9.3p1")))
    (change,) = diff_runs(old, new)
    assert (change.kind, change.field, change.old, change.new) == (
        "service",
        "version",
        "9.2p1",
        "9.3p1",
    )
    assert change.text() == "~ 198.18.0.1 22/tcp version: 9.2p1 -> 9.3p1"


def test_services_named_from_the_port_number_are_not_compared() -> None:
    # Without version detection on one side, a name is a guess from the port's table.
    old = run_of(host("198.18.0.1", port(8080, service="http-proxy")))
    new = run_of(host("198.18.0.1", port(8080, service="http", product="nginx")))
    assert diff_runs(old, new) == []


def test_between_tools_only_product_and_version_where_both_have_one() -> None:
    hilos = run_of(
        host(
            "198.18.0.1",
            port(443, service="https", product="Apache httpd", version="2.4.57"),
            port(22, service="ssh", product="OpenSSH", version="9.2p1", banner="SSH-2.0"),
        ),
    )
    nmap = run_of(
        host(
            "198.18.0.1",
            port(443, service="http", product="apache httpd", tls=True),
            port(22, service="ssh", product="OpenSSH", version="9.3p1"),
        ),
        tool="nmap",
    )
    (change,) = diff_runs(hilos, nmap)
    assert (change.port, change.field, change.new) == (22, "version", "9.3p1")


def test_json_lines_one_change_each() -> None:
    old = run_of(host("198.18.0.1", port(22)))
    new = run_of(host("198.18.0.1", port(80)), host("198.18.0.2", port(22, service="ssh")))
    lines = [json.loads(x) for x in format_json(diff_runs(old, new)).splitlines()]
    assert lines == [
        {
            "change": "port-closed",
            "host": "198.18.0.1",
            "port": 22,
            "proto": "tcp",
            "old": "open",
            "new": None,
        },
        {
            "change": "port-opened",
            "host": "198.18.0.1",
            "port": 80,
            "proto": "tcp",
            "old": None,
            "new": "open",
        },
        {"change": "host-up", "host": "198.18.0.2", "ports": ["22/tcp ssh"]},
    ]


def test_hosts_in_address_order_ipv4_before_ipv6() -> None:
    new = run_of(host("fd18:0:0:100::1"), host("198.18.0.10"), host("198.18.0.9"))
    assert [c.host for c in diff_runs(run_of(), new)] == [
        "198.18.0.9",
        "198.18.0.10",
        "fd18:0:0:100::1",
    ]


def test_raw_strings_of_a_live_scan_are_cleaned_in_changes() -> None:
    old = run_of(host("198.18.0.1", port(22, product="OpenSSH", version="9.2")))
    new = run_of(host("198.18.0.1", port(22, product="OpenSSH", version="9.3\x1b]0;x\x07")))
    (change,) = diff_runs(old, new)
    assert change.new == "9.3" and "\x1b" not in format_text([change])


def test_a_raw_string_equal_once_cleaned_is_no_change() -> None:
    old = run_of(host("198.18.0.1", port(22, product="OpenSSH", version="9.2")))
    new = run_of(host("198.18.0.1", port(22, product="Open\x00SSH", version="9.2\x1b[0m")))
    assert diff_runs(old, new) == []
