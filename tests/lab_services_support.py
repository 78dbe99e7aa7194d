"""Shared by the tests of hilos.lab.services: a server on loopback and small clients."""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from hilos.lab.services import KINDS

IDLE = 2.0  # idle_timeout of the shared server: long enough for every exchange below
IO_TIMEOUT = 5.0


# --- running the server ------------------------------------------------------------------------


def random_loopback() -> str:
    """A random 127.x.y.z address: other tests on this machine use 127.0.0.x."""
    return f"127.{random.randint(64, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def ipv6_loopback_ok() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Running:
    """A labsvc subprocess that printed "ready"."""

    def __init__(self, proc: subprocess.Popen[bytes], startup: float) -> None:
        self.proc = proc
        self.startup = startup

    def stop(self) -> tuple[int, bytes, bytes]:
        """SIGTERM; return (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def launch(spec: dict[str, Any], path: Path, timeout: float = 30.0) -> tuple[Running | None, str]:
    """Start labsvc on spec; (Running, "") once ready, or (None, stderr) if it exited."""
    path.write_text(json.dumps(spec))
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilos.lab.services", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while not line.endswith(b"\n"):
            left = start + timeout - time.monotonic()
            if left <= 0 or not sel.select(left):
                proc.kill()
                proc.communicate()
                pytest.fail("labsvc did not print ready in time")
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                break
            line += chunk
    if line != b"ready\n":
        _, err = proc.communicate(timeout=10)
        return None, err.decode(errors="replace")
    return Running(proc, time.monotonic() - start), ""


def start_server(
    make: Callable[[str, int], list[dict[str, Any]]], path: Path, idle: float = IDLE
) -> Running:
    """Start labsvc on services made from a random loopback address and port base; retry clashes."""
    err = ""
    for _ in range(4):
        addr, base = random_loopback(), random.randrange(20000, 28000)
        running, err = launch({"services": make(addr, base), "idle_timeout": idle}, path)
        if running is not None:
            return running
        if "in use" not in err:
            break
    pytest.fail(f"labsvc failed to start: {err}")


def every_kind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, int]]]:
    """One listener of each kind (plus http on ::1 when available): kind -> (addr, port).
    conftest's module-scoped fixture `svc` runs it."""
    where: dict[str, tuple[str, int]] = {}
    v6 = ipv6_loopback_ok()

    def make(addr: str, base: int) -> list[dict[str, Any]]:
        where.clear()
        services = []
        for i, kind in enumerate(KINDS):
            where[kind] = (addr, base + i)
            services.append({"addr": addr, "port": base + i, "kind": kind})
        if v6:
            where["http6"] = ("::1", base + 100)
            services.append({"addr": "::1", "port": base + 100, "kind": "http"})
        return services

    running = start_server(make, tmp_path_factory.mktemp("labsvc") / "spec.json")
    yield where
    code, out, err = running.stop()
    assert (code, out, err) == (0, b"", b""), "labsvc must exit 0 silently on SIGTERM"


# --- client helpers ----------------------------------------------------------------------------


def connect(where: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(where, timeout=IO_TIMEOUT)
    sock.settimeout(IO_TIMEOUT)
    return sock


def client_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect_tls(where: tuple[str, int]) -> ssl.SSLSocket:
    return client_tls().wrap_socket(connect(where), server_hostname="lab.example")


def recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {data!r}")
        data += chunk
        assert len(data) < limit
    return data


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"closed after {len(data)} of {n} bytes: {data!r}")
        data += chunk
    return data


def recv_to_eof(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while chunk := sock.recv(1 << 20):
        data += chunk
        assert len(data) <= limit
    return data


def closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def http_response(reader: BinaryIO, head_only: bool = False) -> tuple[str, dict[str, str], bytes]:
    """Read one HTTP response framed by Content-Length: (status line, headers, body)."""
    status = reader.readline().decode("latin-1").rstrip("\r\n")
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head_only else reader.read(int(headers["content-length"]))
    return status, headers, body


def dialogue(sock: socket.socket, steps: list[tuple[bytes, bytes]]) -> None:
    """Send each line and expect the reply to end with the given bytes."""
    for send, expect in steps:
        sock.sendall(send)
        assert recv_until(sock, expect).endswith(expect), (send, expect)
