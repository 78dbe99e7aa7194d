"""Tests for hilos.syn.fork: sender processes report give-ups, counts and errors to the parent."""

from __future__ import annotations

import os
import threading

import pytest

from hilos.errors import NetworkError
from hilos.syn.control import Control
from hilos.syn.fork import ChildCoordination, ForkedSenders, SharedControl
from hilos.syn.hosts import HostTable
from hilos.syn.state import ScanState
from hilos.wire.cookie import Cookie


class Engine:
    idle_at = 12.5

    def check(self) -> None:
        pass


def _setup(processes: int) -> tuple[ScanState, SharedControl, ForkedSenders, threading.Event]:
    hosts = HostTable([f"127.0.0.{i}" for i in range(1, 5)], Cookie(3))
    state = ScanState(hosts, [22, 80], Control(None), 8)
    ctl = SharedControl(processes)
    cancel = threading.Event()
    return state, ctl, ForkedSenders(ctl, state, cancel), cancel


@pytest.mark.timeout(30)
def test_children_hand_over_give_ups_and_counts_while_running() -> None:
    state, ctl, forked, _cancel = _setup(2)
    ctl.publish(12.5, 0.25, 1000.0)

    def run(part: tuple[int, int], coord: ChildCoordination) -> None:
        assert coord.status() == (12.5, 0.25) and coord.pace() == 500.0  # its share
        coord.sent(3)
        # Part (1, 2) gives up on the even indices, part (2, 2) on the odd ones.
        coord.give_up([i for i in range(8) if i % 2 == part[0] - 1])
        coord.sent(1)
        coord.finish()

    forked.fork([(1, 2), (2, 2)], run)
    reports: list[int] = []
    control = Control(0.25)
    control.pace = 1000.0  # what the parent publishes, the children read
    forked.coordinate(Engine(), control, lambda: reports.append(state.final_count))  # type: ignore[arg-type]
    assert forked.error is None and forked.children == []
    assert state.final_count == 8 and state.hosts_done == 4 and state.sent == 8
    assert ctl.sent(2) == 8 and ctl.done  # every probe final: the senders were told to stop
    assert reports and reports[-1] == 8
    assert sorted(state.completed.get_nowait() for _ in range(4)) == [0, 1, 2, 3]


@pytest.mark.timeout(30)
def test_a_child_error_cancels_the_scan() -> None:
    _state, ctl, forked, cancel = _setup(1)

    def run(part: tuple[int, int], coord: ChildCoordination) -> None:
        raise OSError(90, "Message too long")

    forked.fork([(1, 1)], run)
    forked.coordinate(Engine(), Control(None), lambda: None)  # type: ignore[arg-type]
    assert isinstance(forked.error, NetworkError) and "Message too long" in str(forked.error)
    assert cancel.is_set() and ctl.cancelled


def test_a_cancelled_scan_stops_the_child_sender() -> None:
    ctl = SharedControl(1)
    coord = ChildCoordination(ctl, -1, 0, 1, os.getppid())
    assert coord.status() == (0.0, 0.0)
    ctl.cancel()
    assert coord.status() is None
    assert ChildCoordination(SharedControl(1), -1, 0, 1, -5).status() is None  # parent gone
