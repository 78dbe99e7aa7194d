"""Tests for hilos.wire.batch: frames from fixed slots, sent by sendmmsg or one by one."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hilos.errors import NetworkError
from hilos.wire import batch as batch_mod
from hilos.wire import senders
from hilos.wire.batch import Batch


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.settimeout(1.0)
    yield a, b
    a.close()
    b.close()


def _fill(batch: Batch, frames: int) -> list[bytes]:
    want = []
    for k in range(frames):
        frame = bytes([k + 1]) * batch.lens[k]
        batch.buf[k * batch.slot : k * batch.slot + len(frame)] = frame
        want.append(frame)
    return want


@pytest.mark.parametrize("mmsg", [True, False])
def test_each_slot_leaves_as_one_frame_of_its_length(
    pair: tuple[socket.socket, socket.socket], mmsg: bool
) -> None:
    tx, rx = pair
    batch = Batch(tx, [66, 58, 58] * 4, slot=66)
    assert (batch._mmsg is not None) or not mmsg
    if not mmsg:
        batch._mmsg = None
    want = _fill(batch, 7)
    assert batch.flush(7) == 7
    assert [rx.recv(100) for _ in range(7)] == want


def test_a_frame_longer_than_its_slot_is_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    with pytest.raises(ValueError, match="slot"):
        Batch(pair[0], [70], slot=66)


@pytest.mark.parametrize("mmsg", [True, False])
def test_a_queue_that_stays_full_returns_what_left(
    pair: tuple[socket.socket, socket.socket], mmsg: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_mod.time, "sleep", lambda s: None)
    monkeypatch.setattr(senders.time, "sleep", lambda s: None)
    tx, _rx = pair
    tx.setblocking(False)
    tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    batch = Batch(tx, [1000] * 64, slot=1000)
    if not mmsg:
        batch._mmsg = None
    _fill(batch, 64)
    sent = batch.flush(64)  # nobody reads: the receive queue fills up, then EAGAIN
    assert 0 < sent < 64


def test_a_broken_socket_is_a_hilos_error(pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    rx.close()
    batch = Batch(tx, [10] * 4, slot=10)
    with pytest.raises(NetworkError, match="sending frames"):  # ECONNREFUSED: no peer
        batch.flush(4)
