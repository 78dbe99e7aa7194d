"""The scan's JSON Lines fast path (output.jsonl.scan_line) writes exactly what the encoder
writes for scan_object, whatever the ports, names and flags."""

from __future__ import annotations

import json
import random

import pytest

from hilos.output.jsonl import _encode, scan_line, scan_object
from hilos.results import PortResult, ScanHostResult

STATES = ("open", "closed", "filtered", "open|filtered")
TEXTS = (None, "ssh", "OpenSSH 9.2p1", 'quo"te\\back', "caf\u00e9 \x01\x7f", "x" * 300)


def _port(rng: random.Random) -> PortResult:
    return PortResult(
        rng.randrange(1, 65536),
        rng.choice(STATES),  # type: ignore[arg-type]
        rng.choice(("syn-ack", "reset", "no-response", "admin-prohibited")),
        proto=rng.choice(("tcp", "udp")),
        service=rng.choice(TEXTS),
        product=rng.choice(TEXTS),
        version=rng.choice(TEXTS),
        banner=rng.choice(TEXTS),
        tls=rng.random() < 0.2,
    )


@pytest.mark.parametrize("seed", range(40))
def test_scan_line_is_the_encoders_output(seed: int) -> None:
    rng = random.Random(seed)
    shared = tuple(_port(rng) for _ in range(rng.randrange(0, 20)))
    for _ in range(30):
        ports = shared if rng.random() < 0.5 else tuple(_port(rng) for _ in range(5))
        result = ScanHostResult(
            rng.choice(("198.18.0.1", "fd18::1")),
            rng.choice(("up", "down")),  # type: ignore[arg-type]
            "syn-ack",
            ports,
            hostname=rng.choice((None, "h1.lab.test", "n\u00e4me\x00")),
            complete=rng.random() < 0.8,
        )
        for show_all in (False, True):
            line = scan_line(result, show_all)
            assert line == _encode(scan_object(result, show_all))
            json.loads(line)


def test_a_shared_port_tuple_is_encoded_once_per_listing_rule() -> None:
    ports = (PortResult(22, "closed", "reset"), PortResult(80, "filtered", "no-response"))
    a = ScanHostResult("198.18.0.1", "up", "reset", ports)
    b = ScanHostResult("198.18.0.2", "up", "reset", ports)
    assert '"port": 22' not in scan_line(a, False)
    assert '"port": 22' in scan_line(b, True)  # the cache keys the rule too
    assert '"port": 22' not in scan_line(b, False)


def test_text_reports_of_hosts_sharing_a_port_tuple() -> None:
    """The text writer keeps the last port table: a table is the same for every host with the
    same tuple, but "All N scanned ports on HOST" names its own host each time."""
    from hilos.output.text import scan_report

    shown = (
        PortResult(22, "open", "syn-ack", service="ssh"),
        PortResult(80, "filtered", "no-response"),
    )
    quiet = (PortResult(22, "closed", "reset"), PortResult(80, "closed", "reset"))
    for ports in (shown, quiet):
        a = scan_report(ScanHostResult("198.18.0.1", "up", "syn-ack", ports), False)
        b = scan_report(ScanHostResult("198.18.0.2", "up", "syn-ack", ports), False)
        assert [line.replace("198.18.0.1", "X") for line in a] == [
            line.replace("198.18.0.2", "X") for line in b
        ]
    b = scan_report(ScanHostResult("198.18.0.2", "up", "reset", quiet), False)
    assert "All 2 scanned ports on 198.18.0.2 are in ignored states." in b
    a = scan_report(ScanHostResult("198.18.0.1", "up", "syn-ack", shown), True)
    assert a[-2:] == ["22/tcp open     ssh", "80/tcp filtered unknown"]
