"""hilos.connect.loop: the worker's per-probe paths (scripted sockets), self-connects, windows."""

from __future__ import annotations

import errno
import itertools
import select
import socket
import threading
from collections import deque
from collections.abc import Iterator

import pytest

from hilos.connect.feed import HostFeed
from hilos.connect.hosts import CLOSED, OPEN, Host, Windows, close_connected
from hilos.connect.loop import Worker

_fds = itertools.count(10_000)


class ScriptedSocket:
    """A stand-in for _socket.socket whose connect_ex answers come from `script`; closed, it
    answers EBADF as a real closed socket does."""

    script: deque[int] = deque()
    made: list[ScriptedSocket] = []

    def __init__(self, family: int, type: int) -> None:
        self.fd = next(_fds)
        self.closed = False
        ScriptedSocket.made.append(self)

    def connect_ex(self, addr: tuple[str, int]) -> int:
        if self.closed:
            return errno.EBADF
        return self.script.popleft()

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return -1 if self.closed else self.fd

    def getsockopt(self, level: int, name: int) -> int:
        return 0


@pytest.fixture
def worker() -> Iterator[tuple[Worker, Host]]:
    feed = HostFeed((1, 2, 3), bucket=None, max_active=8, shard=None)
    feed.add("127.0.0.1")
    ep = select.epoll()
    w = Worker(0, ep, feed, Windows(1, 64, 64), tries=1, stop=threading.Event(), timeout=0.5)
    w.socket_type = ScriptedSocket  # type: ignore[assignment]
    ScriptedSocket.script.clear()
    ScriptedSocket.made.clear()
    try:
        yield w, feed.hosts[0]
    finally:
        ep.close()


def test_a_spare_socket_lost_to_a_shortage_is_not_reused(worker: tuple[Worker, Host]) -> None:
    # Port 1 is refused on the fast path, its socket kept as the spare; port 2's connect on that
    # spare hits EADDRNOTAVAIL (a local shortage): the socket is closed and the probe queued
    # again. The resend must get a fresh socket, not the closed spare (whose EBADF once made
    # port 2 "filtered error").
    w, h = worker
    refused = [errno.EINPROGRESS, errno.ECONNREFUSED]
    ScriptedSocket.script.extend([*refused, errno.EADDRNOTAVAIL, *refused])
    w._start([(h, 0, 0), (h, 1, 0)])
    assert list(w.retry) == [(h, 1, 0)] and w.windows.resource_waits == 1
    w._start([w.retry.popleft()])
    assert w.results == [(h, 0, CLOSED), (h, 1, CLOSED)]
    assert len(ScriptedSocket.made) == 2 and not ScriptedSocket.script


def test_refused_on_the_fast_path_reuses_one_socket(worker: tuple[Worker, Host]) -> None:
    w, h = worker
    ScriptedSocket.script.extend([errno.EINPROGRESS, errno.ECONNREFUSED] * 3)
    w._start([(h, 0, 0), (h, 1, 0), (h, 2, 0)])
    assert w.results == [(h, 0, CLOSED), (h, 1, CLOSED), (h, 2, CLOSED)]
    assert len(ScriptedSocket.made) == 1 and w.spare4 is ScriptedSocket.made[0]  # type: ignore[comparison-overlap]


def test_an_immediate_error_takes_a_fresh_socket(worker: tuple[Worker, Host]) -> None:
    w, h = worker
    ScriptedSocket.script.extend([errno.ENETUNREACH, errno.EINPROGRESS, errno.ECONNREFUSED])
    w._start([(h, 0, 0), (h, 1, 0)])
    assert [code for _, _, code in w.results] == [5, CLOSED]  # net-unreach, then closed
    assert ScriptedSocket.made[0].closed and len(ScriptedSocket.made) == 2


def test_close_connected_tells_a_self_connect() -> None:
    # Linux lets a socket bound to port P connect to itself at P (TCP simultaneous open).
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.connect(("127.0.0.1", port))
    assert close_connected(s, "127.0.0.1", port) is False
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(1)
        c = socket.create_connection(lst.getsockname())
        assert close_connected(c, "127.0.0.1", lst.getsockname()[1]) is True
        assert c.fileno() == -1


def test_worker_scans_loopback_ports_to_the_end() -> None:
    with socket.socket() as lst:
        lst.bind(("127.0.0.1", 0))
        lst.listen(8)
        port = lst.getsockname()[1]
        feed = HostFeed((port, port + 1), bucket=None, max_active=8, shard=None)
        feed.add("127.0.0.1")
        feed.source_done()
        ep = select.epoll()
        try:
            Worker(
                0, ep, feed, Windows(1, 8, 8), tries=1, stop=threading.Event(), timeout=0.5
            ).run()
        finally:
            ep.close()
    result = feed.out.get_nowait()
    assert result is not None
    assert [(p.port, p.state) for p in result.ports] == [(port, "open"), (port + 1, "closed")]
    assert feed.hosts[0].codes == bytearray([OPEN, CLOSED])


def test_windows_shrink_to_what_fitted() -> None:
    w = Windows(2, 512, 2048)
    w.shrink(1, 100)
    assert w.win == [512, 90] and w.resource_waits == 1
    w.shrink(1, 2)
    assert w.win == [512, 4] and w.resource_waits == 2  # never below 4
