"""Tests of hilos.services.grabber: BannerGrabber over a stream of scan results (loopback only)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from hilos.results import PortResult, ScanHostResult
from hilos.services import BannerGrabber

pytestmark = pytest.mark.timeout(60)


def test_hosts_without_open_ports_pass_straight_through() -> None:
    host = ScanHostResult("127.0.0.1", "up", "user-set", (PortResult(1, "closed", "conn-refused"),))
    assert list(BannerGrabber().enrich([host])) == [host]


@pytest.fixture
def ssh_greeter() -> Iterator[int]:
    """A service on 127.0.0.1 that greets like OpenSSH and closes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_a_host_comes_back_once_with_every_open_port_named(ssh_greeter: int) -> None:
    ports = (
        PortResult(1, "closed", "conn-refused"),
        PortResult(ssh_greeter, "open", "syn-ack"),
    )
    other = ScanHostResult("127.0.0.2", "up", "user-set", ())
    grabber = BannerGrabber(threads=4, timeout=2.0)
    out = list(grabber.enrich([ScanHostResult("127.0.0.1", "up", "user-set", ports), other]))
    assert sorted(h.host for h in out) == ["127.0.0.1", "127.0.0.2"]
    (host,) = [h for h in out if h.host == "127.0.0.1"]
    assert host.ports[0] == ports[0]  # closed ports are left as they were, in their place
    named = host.ports[1]
    assert (named.port, named.service, named.product) == (ssh_greeter, "ssh", "OpenSSH")
    assert named.version == "9.2p1 Debian 2+deb12u3"
    assert named.banner == "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
    assert grabber.pending() == []
