"""Tests for hilos.wire.senders: the one send-error policy and the forked sender processes."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from hilos.errors import NetworkError, ResourceError
from hilos.wire import senders
from hilos.wire.senders import Claims, run_forked, send_failed


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(senders.time, "sleep", lambda s: None)


def _err(code: int) -> OSError:
    return OSError(code, os.strerror(code))


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (errno.EHOSTUNREACH, "unreachable"),
        (errno.ENETUNREACH, "unreachable"),
        (errno.EPERM, "unanswered"),
        (errno.EACCES, "unanswered"),
        (errno.EADDRNOTAVAIL, "unanswered"),
    ],
)
def test_no_route_and_unsendable_never_resend(code: int, outcome: str) -> None:
    calls: list[int] = []
    assert send_failed(_err(code), lambda: calls.append(1), "sending") == outcome
    assert calls == []


def test_full_queue_is_waited_out_and_resent() -> None:
    tries: list[int] = []

    def resend() -> None:
        tries.append(1)
        if len(tries) < 3:
            raise _err(errno.ENOBUFS)

    assert send_failed(_err(errno.EAGAIN), resend, "sending") == "sent"
    assert len(tries) == 3


def test_a_queue_that_stays_full_gives_the_probe_up() -> None:
    tries: list[int] = []

    def resend() -> None:
        tries.append(1)
        raise _err(errno.ENOBUFS)

    assert send_failed(_err(errno.ENOBUFS), resend, "sending") == "unanswered"
    assert len(tries) == len(senders.BACKOFF)
    assert send_failed(_err(errno.ENOBUFS), None, "sending") == "unanswered"


def test_a_resend_failing_otherwise_follows_the_policy() -> None:
    def resend() -> None:
        raise _err(errno.EHOSTUNREACH)

    assert send_failed(_err(errno.ENOBUFS), resend, "sending") == "unreachable"


@pytest.mark.parametrize(
    ("code", "kind"), [(errno.EBADF, NetworkError), (errno.EMFILE, ResourceError)]
)
def test_other_errors_are_raised_as_hilos_errors(code: int, kind: type[Exception]) -> None:
    with pytest.raises(kind, match="sending probes"):
        send_failed(_err(code), None, "sending probes")


def test_claims_deal_every_item_once() -> None:
    claims = Claims(1000)
    got: list[int] = []
    try:
        while True:
            lo, hi = claims.next()
            if lo >= hi:
                break
            got.extend(range(lo, hi))
    finally:
        claims.close()
    assert sorted(i for i in got if i < 1000) == list(range(1000))
    assert len(got) == len(set(got)) and claims.count <= Claims.CHUNKS


def _claimed_sum(claims: Claims, stop: threading.Event) -> int:
    """Work for the tests: the sum of 1 + the item numbers this process claimed."""
    total = 0
    while not stop.is_set():
        lo, hi = claims.next()
        if lo >= hi:
            return total
        total += sum(i + 1 for i in range(lo, min(hi, 5000)))
    return total


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_forked_senders_share_the_claims_and_report_back(parts: int) -> None:
    assert run_forked(_claimed_sum, parts, Claims(5000), threading.Event(), "test") == sum(
        range(1, 5001)
    )


def test_a_failing_child_is_an_error() -> None:
    parent = os.getpid()

    def work(claims: Claims, stop: threading.Event) -> int:
        if os.getpid() != parent:
            raise RuntimeError("boom")
        return _claimed_sum(claims, stop)

    with pytest.raises(NetworkError, match="test sender process failed: RuntimeError"):
        run_forked(work, 2, Claims(5000), threading.Event(), "test sender")


@pytest.mark.timeout(20)
def test_stop_terminates_and_reaps_the_children() -> None:
    parent = os.getpid()
    stop = threading.Event()
    pids: list[int] = []

    def work(claims: Claims, stop_: threading.Event) -> int:
        if os.getpid() != parent:
            while True:  # a child that would never end on its own
                time.sleep(0.01)
        stop_.set()
        return 0

    real_fork = os.fork

    def fork() -> int:
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    mp = pytest.MonkeyPatch()
    mp.setattr(senders.os, "fork", fork)
    try:
        t0 = time.monotonic()
        assert run_forked(work, 3, Claims(100), stop, "test") == 0
    finally:
        mp.undo()
    assert time.monotonic() - t0 < 5 and len(pids) == 2
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped
