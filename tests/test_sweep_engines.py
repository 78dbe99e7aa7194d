"""Tests for hilos.sweep.engines: the raw TCP engine's sends follow the one send-error policy."""

from __future__ import annotations

import errno
import os

import pytest

from hilos.errors import NetworkError
from hilos.sweep.engines import TcpDiscovery
from hilos.wire import senders


class _Flaky:
    """A sendto that fails with the given errnos first, then sends."""

    def __init__(self, *codes: int) -> None:
        self.codes = list(codes)
        self.sent: list[bytes] = []

    def __call__(self, packet: bytes, dest: tuple[str, int]) -> int:
        if self.codes:
            code = self.codes.pop(0)
            raise OSError(code, os.strerror(code))
        self.sent.append(packet)
        return len(packet)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(senders.time, "sleep", lambda s: None)


def _first_failure(sendto: _Flaky) -> OSError:
    try:
        sendto(b"syn", ("127.0.0.1", 0))
    except OSError as exc:
        return exc
    raise AssertionError("did not fail")


def test_a_full_queue_is_waited_out_and_both_probes_go() -> None:
    sendto = _Flaky(errno.ENOBUFS, errno.ENOBUFS)
    exc = _first_failure(sendto)
    assert TcpDiscovery._resend(exc, sendto, (b"syn", b"ack"), ("127.0.0.1", 0))
    assert sendto.sent == [b"syn", b"ack"]


@pytest.mark.parametrize("code", [errno.EHOSTUNREACH, errno.EPERM])
def test_no_route_or_a_firewall_leaves_the_address_unanswered(code: int) -> None:
    sendto = _Flaky(code)
    exc = _first_failure(sendto)
    assert not TcpDiscovery._resend(exc, sendto, (b"syn", b"ack"), ("127.0.0.1", 0))
    assert sendto.sent == []


def test_other_failures_are_hilos_errors_naming_the_target() -> None:
    sendto = _Flaky(errno.EBADF)
    exc = _first_failure(sendto)
    with pytest.raises(NetworkError, match=r"sending TCP probes to 127\.0\.0\.1"):
        TcpDiscovery._resend(exc, sendto, (b"syn", b"ack"), ("127.0.0.1", 0))
