"""hilos.syn.resume: a SYN scan's state saved mid-scan, and a scan that goes on from it, on the
simulated network of test_syn_scanner (no privileges, nothing sent)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hilos.syn.resume import Cursors, walked
from test_syn_scanner import SimScanner

HOSTS = [f"127.0.2.{i}" for i in range(1, 201)]
PORTS = [21, 22, 80, 443, 8080]
OPEN = {(h, p) for h in HOSTS[::7] for p in (22, 80)}
SILENT = set(HOSTS[5::9])
RATE, TIMEOUT = 2000.0, 0.05


def _facts(results: list[Any]) -> set[tuple[str, str, int, str, str]]:
    return {(r.host, r.status, p.port, p.state, p.reason) for r in results for p in r.ports}


def _scanner(**kw: Any) -> SimScanner:
    return SimScanner(HOSTS, PORTS, retries=1, timeout=TIMEOUT, seed=7, rate=RATE,
                      open_=OPEN, silent=SILENT, archive=True, **kw)  # fmt: skip


def test_cursors_are_shared_and_start_where_saved() -> None:
    c = Cursors([(1, 2), (2, 2)], [5, 0])
    assert c.slot((2, 2)) == 1 and c.values() == [5, 0]
    c.add(1, 3)
    assert c.values() == [5, 3] and c.start == [5, 0]
    assert Cursors([(1, 1)]).values() == [0]


def test_walked_gives_the_first_chunks_as_sent_long_ago() -> None:
    walk = iter(range(10))
    chunks = walked(walk, 7, 3, last=True)
    assert [(t, n, ids) for t, n, ids in chunks] == [
        (0.0, 3, [0, 1, 2]),
        (0.0, 3, [3, 4, 5]),
        (0.0, 1, [6]),
    ]
    assert next(walk) == 7  # the first pass goes on right after them
    assert walked(iter(range(2)), 5, 3, last=False) == [(0.0, 2, None)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("at", [0.15, 0.35, 0.55])
def test_a_scan_stopped_mid_way_goes_on_from_its_snapshot(
    monkeypatch: pytest.MonkeyPatch, at: float
) -> None:
    # Chunks of 16 probes, not 1024: a cursor moves a chunk at a time (8 ms here, as 1024
    # probes are ~2 ms of a real scan), and this scan has only 1,000 probes.
    monkeypatch.setattr("hilos.syn.send.CHUNK", 16)
    ref = _scanner()
    reference = list(ref.results())
    ref_sends = sum(ref.net.sends.values())

    first = _scanner()
    lock = threading.Lock()
    written: list[str] = []

    def consume() -> None:
        # Every third host is held back, as a writer's batch or a TCP+UDP scan's other half
        # holds hosts reported and not written yet: the resumed scan reports those again.
        for k, r in enumerate(first.results()):
            if k % 3 != 2:
                with lock:
                    written.append(r.host)

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    time.sleep(at)
    with lock:  # the checkpoint's save: outputs and engine state together
        saved_hosts = set(written)
        snap = first.snapshot(lambda hs: [h in saved_hosts for h in hs])
        at_save = sum(first.net.sends.values())
        kept = [h for h in written if h in saved_hosts]
    time.sleep(0.05)  # the kill comes a little after the save
    first.cancel()
    t.join(5)
    sent_first = sum(first.net.sends.values())
    assert snap is not None

    second = _scanner(resume=snap, written=lambda hs: [h in saved_hosts for h in hs])
    rest = list(second.results())
    hosts = kept + [r.host for r in rest]
    assert len(hosts) == len(set(hosts)), "a host reported twice"
    by_host = {r.host: r for r in reference}
    got = [by_host[h] for h in kept] + rest
    assert _facts(got) == _facts(reference)
    # Nothing goes again to a host the outputs hold.
    again = [k for k in second.net.sends if k[0] in saved_hosts]
    assert not again, again
    # What is sent twice: the probes sent after the save, and those within one timeout of it.
    extra = sent_first + sum(second.net.sends.values()) - ref_sends
    # (Without the snapshot every probe sent before the save would go again: 176 to 576 here.)
    assert extra <= (sent_first - at_save) + RATE * TIMEOUT + 16, (extra, sent_first, at_save)
