"""hilos.staged: a raw scan that starts on the hosts found early, and scans the late ones after."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hilos.results import HostResult, PortResult, ScanHostResult, ScanStats
from hilos.staged import Discovery, Staged


def _live(
    hosts: list[str], gate: threading.Event | None = None, at: int = 0
) -> Iterator[HostResult]:
    for i, h in enumerate(hosts):
        if gate is not None and i == at:
            gate.wait(5)
        yield HostResult(h, "up", "echo-reply")


class FakeScanner:
    """Reports each host with one open port; counts its cancels."""

    def __init__(self, hosts: list[str]) -> None:
        self.hosts = list(hosts)
        self.cancelled = 0
        self.drops = len(hosts)

    def results(self) -> Iterator[ScanHostResult]:
        for h in self.hosts:
            yield ScanHostResult(h, "up", "syn-ack", (PortResult(22, "open", "syn-ack"),))

    def cancel(self) -> None:
        self.cancelled += 1

    def partial(self) -> list[ScanHostResult]:
        return [ScanHostResult(h, "up", "syn-ack", ()) for h in self.hosts]

    @property
    def stats(self) -> ScanStats:
        n = len(self.hosts)
        return ScanStats(done=n, total=n, hosts_done=n, hosts_total=n, elapsed=1.0, window=4,
                         sent=2 * n)  # fmt: skip


def test_early_hosts_are_those_found_when_due_and_rest_the_others() -> None:
    gate = threading.Event()
    disc = Discovery(_live(["198.18.0.1", "198.18.0.2", "198.18.0.3"], gate, at=2))
    due = time.monotonic() + 0.05
    early = disc.early(lambda: due, threading.Event())
    assert early == ["198.18.0.1", "198.18.0.2"]
    assert time.monotonic() >= due
    gate.set()
    assert disc.rest(len(early)) == ["198.18.0.3"]


def test_early_waits_while_the_first_pass_is_unsent_and_ends_with_discovery() -> None:
    disc = Discovery(_live(["198.18.0.1"]))
    # Never due: discovery ending first gives every host found.
    assert disc.early(lambda: None, threading.Event()) == ["198.18.0.1"]
    assert disc.rest(1) == []


def test_a_failed_discovery_is_raised_in_the_scanning_thread() -> None:
    def broken() -> Iterator[HostResult]:
        yield HostResult("198.18.0.1", "up", "echo-reply")
        raise PermissionError("no raw socket")

    disc = Discovery(broken())
    with pytest.raises(PermissionError):
        disc.early(lambda: None, threading.Event())
    with pytest.raises(PermissionError):
        disc.rest(0)


def test_staged_scans_the_early_hosts_then_the_late_ones() -> None:
    made: list[FakeScanner] = []

    def make(hosts: list[str]) -> FakeScanner:
        made.append(FakeScanner(hosts))
        return made[-1]

    staged = Staged(make, ["198.18.0.1", "198.18.0.2"], lambda: ["198.18.0.3"])
    assert [h.host for h in staged.results()] == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]
    assert [m.hosts for m in made] == [["198.18.0.1", "198.18.0.2"], ["198.18.0.3"]]
    st = staged.stats
    assert (st.done, st.total, st.hosts_done, st.sent, st.elapsed) == (3, 3, 3, 6, 2.0)
    assert staged.drops == 3
    assert sorted(h.host for h in staged.partial()) == ["198.18.0.1", "198.18.0.2", "198.18.0.3"]


def test_no_late_hosts_no_second_scan() -> None:
    made: list[list[str]] = []

    def make(hosts: list[str]) -> FakeScanner:
        made.append(hosts)
        return FakeScanner(hosts)

    staged = Staged(make, ["198.18.0.1"], lambda: [])
    assert [h.host for h in staged.results()] == ["198.18.0.1"]
    assert made == [["198.18.0.1"]]


def test_cancel_stops_the_running_scan_and_skips_the_late_one() -> None:
    late_asked = []

    def late() -> list[str]:
        late_asked.append(1)
        return ["198.18.0.9"]

    staged = Staged(FakeScanner, ["198.18.0.1"], late)
    staged.cancel()
    assert staged.scanners[0].cancelled == 1
    assert [h.host for h in staged.results()] == ["198.18.0.1"]  # the fake ignores cancel
    assert late_asked == [] and len(staged.scanners) == 1


def test_start_without_early_hosts_waits_for_discovery_and_leaves_the_scan_to_the_caller() -> None:
    from hilos.staged import start

    made: list[list[str]] = []
    gate = threading.Event()
    threading.Timer(0.05, gate.set).start()
    # Due at once, but nothing found by then: discovery runs to its end, the caller scans all.
    assert (
        start(_live(["198.18.0.1"], gate, at=0), time.monotonic, threading.Event(), made.append)
        is None
    )
    assert made == []


def test_start_with_early_hosts_gives_a_staged_scan() -> None:
    from hilos.staged import start

    staged = start(_live(["198.18.0.1"]), lambda: None, threading.Event(), FakeScanner)
    assert isinstance(staged, Staged)
    assert [h.host for h in staged.results()] == ["198.18.0.1"]
