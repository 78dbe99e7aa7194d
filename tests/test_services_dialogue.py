"""Tests of hilos.services.dialogue: live dialogues on loopback with the lab's fake services
(standard kinds on unusual ports, TLS, hostile banners), an echo service, a closed port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hilos.lab import services as lab_services
from hilos.results import PortResult, ScanHostResult
from hilos.sanitize import BANNER_DATA_LIMIT, clean
from hilos.services import (
    READ_LIMIT,
    BannerGrabber,
    identify,
)
from hilos.targets.ports import service_name

pytestmark = pytest.mark.timeout(60)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


KINDS = [k for k in lab_services.KINDS]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, str]]:
    """Every lab service kind on an unusual (ephemeral) port of 127.0.0.1: port -> kind."""
    ports = _free_ports(len(KINDS))
    mapping = dict(zip(ports, KINDS, strict=True))
    spec = {
        "services": [{"addr": "127.0.0.1", "port": p, "kind": k} for p, k in mapping.items()],
        "idle_timeout": 20,
    }
    path = Path(tmp_path_factory.mktemp("svc")) / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilos.lab.services", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        yield mapping
    finally:
        proc.terminate()
        proc.wait(10)


def _host(ports: list[int]) -> ScanHostResult:
    return ScanHostResult(
        "127.0.0.1", "up", "user-set", tuple(PortResult(p, "open", "syn-ack") for p in ports)
    )


def test_every_kind_named_by_what_it_says(services: dict[int, str]) -> None:
    t0 = time.monotonic()
    (host,) = list(BannerGrabber(threads=32).enrich([_host(sorted(services))]))
    elapsed = time.monotonic() - t0
    assert elapsed < 4.0  # concurrent: the slowest (silent) port bounds the whole
    for p in host.ports:
        kind = services[p.port]
        want = lab_services.describe(kind)
        got = {k: getattr(p, k) for k in ("service", "product", "version", "tls")}
        if kind == "silent":
            # Nothing learned: the port table's name, nothing else (reported as "table").
            assert got == {**got, "service": service_name(p.port), "product": None}
            assert p.banner is None
            continue
        expected = {k: want[k] for k in ("service", "product", "version", "tls")}
        assert got == expected, kind
        if want["banner"] is not None:
            assert p.banner is not None
            assert p.banner.startswith(clean(want["banner"], BANNER_DATA_LIMIT)[:60]), kind


def test_hostile_banners_are_bounded_and_clean(services: dict[int, str]) -> None:
    by_kind = {k: p for p, k in services.items()}
    t0 = time.monotonic()
    flood = identify("127.0.0.1", by_kind["flood"], timeout=2.0)
    assert time.monotonic() - t0 < 2.5  # 10 MB offered, at most READ_LIMIT read
    assert flood.banner is not None and len(flood.banner) <= BANNER_DATA_LIMIT
    assert READ_LIMIT <= 64 * 1024

    escape = identify("127.0.0.1", by_kind["escape"], timeout=2.0)
    assert escape.banner is not None
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in escape.banner)
    assert "\x1b" not in escape.banner and "WARNING" in escape.banner

    t0 = time.monotonic()
    silent = identify("127.0.0.1", by_kind["silent"], timeout=1.5)
    assert time.monotonic() - t0 < 2.0  # never speaks: the deadline ends it
    assert silent.method == "table" and silent.banner is None


def test_closed_port_is_table_guess_without_error() -> None:
    (port,) = _free_ports(1)
    info = identify("127.0.0.1", port, timeout=0.5)
    assert info.method == "table" and info.product is None


# ------------------------------------------------------------ echo (issue 9: mongodb lab ports)
@pytest.fixture
def echo_port() -> Iterator[int]:
    """An RFC 862 echo server on 127.0.0.1: silent first, then every byte it gets sent back."""
    import threading

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
                conn.settimeout(2.0)
                try:
                    while data := conn.recv(4096):
                        conn.sendall(data)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        server.close()


def test_a_service_echoing_our_probe_is_named_echo(echo_port: int) -> None:
    t0 = time.monotonic()
    info = identify("127.0.0.1", echo_port, timeout=2.5)
    assert (info.service, info.product, info.version, info.tls) == ("echo", None, None, False)
    assert info.method == "probed" and info.banner is None  # our own bytes are no banner
    assert time.monotonic() - t0 < 1.0  # the echo is recognised at once, not after the wait
