"""hilos.lab.services: the catalog, the spec, the server process (and nmap agreeing with it)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from hilos.errors import LabError
from hilos.lab.services import KINDS, describe, parse_spec
from lab_services_support import (
    IDLE,
    connect,
    connect_tls,
    http_response,
    launch,
    random_loopback,
    recv_exact,
    recv_to_eof,
    recv_until,
    start_server,
)


def test_kinds_and_describe_agree() -> None:
    assert len(set(KINDS)) == len(KINDS) == 16
    for kind in KINDS:
        d = describe(kind)
        assert set(d) == {"service", "product", "version", "tls", "banner"}
        assert isinstance(d["tls"], bool)
        for key in ("service", "product", "version", "banner"):
            assert d[key] is None or isinstance(d[key], str)
        assert describe(kind) is not d, "callers may mutate their copy"


@pytest.mark.parametrize(
    ("kind", "service", "product", "version", "tls"),
    [
        ("ssh", "ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", False),
        ("http", "http", "nginx", "1.22.1", False),
        ("https", "https", "Apache httpd", "2.4.57", True),
        ("tls", "smtps", "Postfix smtpd", None, True),
        ("ftp", "ftp", "vsftpd", "3.0.3", False),
        ("smtp", "smtp", "Postfix smtpd", None, False),
        ("pop3", "pop3", "Dovecot pop3d", None, False),
        ("imap", "imap", "Dovecot imapd", None, False),
        ("mysql", "mysql", "MySQL", "8.0.36", False),
        ("postgresql", "postgresql", "PostgreSQL", None, False),
        ("redis", "redis", "Redis key-value store", "7.0.15", False),
        ("elasticsearch", "http", "Elasticsearch REST API", "8.11.1", False),
        ("escape", None, None, None, False),
        ("flood", None, None, None, False),
        ("silent", None, None, None, False),
        ("echo", "echo", None, None, False),
    ],
)
def test_describe(
    kind: str, service: str | None, product: str | None, version: str | None, tls: bool
) -> None:
    d = describe(kind)
    assert (d["service"], d["product"], d["version"], d["tls"]) == (service, product, version, tls)


def test_describe_unknown_kind() -> None:
    with pytest.raises(LabError, match="unknown service kind 'telnet'"):
        describe("telnet")


def test_parse_spec_valid() -> None:
    spec = parse_spec(
        {
            "services": [
                {"addr": "127.0.0.2", "port": 22, "kind": "ssh"},
                {"addr": "0:0::1", "port": 22, "kind": "http"},
            ],
            "idle_timeout": 5,
        }
    )
    assert [(s.addr, s.port, s.kind) for s in spec.services] == [
        ("127.0.0.2", 22, "ssh"),
        ("::1", 22, "http"),
    ]
    assert spec.idle_timeout == 5.0
    assert parse_spec({"services": []}).idle_timeout == 30.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "services"),
        ({"services": {}}, "services"),
        ({"services": [1]}, "must be an object"),
        ({"services": [{"addr": "lab", "port": 1, "kind": "ssh"}]}, "not an IPv4 or IPv6"),
        ({"services": [{"addr": "0.0.0.0", "port": 1, "kind": "ssh"}]}, "one unicast address"),
        ({"services": [{"addr": "127.0.0.2", "port": 0, "kind": "ssh"}]}, "1-65535"),
        ({"services": [{"addr": "127.0.0.2", "port": 70000, "kind": "ssh"}]}, "1-65535"),
        ({"services": [{"addr": "127.0.0.2", "port": "22", "kind": "ssh"}]}, "1-65535"),
        ({"services": [{"addr": "127.0.0.2", "port": True, "kind": "ssh"}]}, "1-65535"),
        ({"services": [{"addr": "127.0.0.2", "port": 22, "kind": "telnet"}]}, "unknown kind"),
        (
            {
                "services": [
                    {"addr": "::1", "port": 22, "kind": "ssh"},
                    {"addr": "0::1", "port": 22, "kind": "http"},
                ]
            },
            r"\[::1\]:22 is listed twice",
        ),
        ({"services": [], "idle_timeout": 0}, "idle_timeout"),
        ({"services": [], "idle_timeout": "30"}, "idle_timeout"),
    ],
)
def test_parse_spec_rejects(data: object, message: str) -> None:
    with pytest.raises(LabError, match=message):
        parse_spec(data)


@pytest.mark.parametrize("kind", [k for k in KINDS if describe(k)["banner"] is not None])
def test_banner_matches_describe(svc: dict[str, tuple[str, int]], kind: str) -> None:
    d = describe(kind)
    with connect_tls(svc[kind]) if d["tls"] else connect(svc[kind]) as sock:
        if kind == "flood":
            data = recv_exact(sock, 4096)
            assert data.startswith(d["banner"].encode("latin-1"))
        else:
            data = recv_until(sock, b"\r\n")
            assert data.split(b"\r\n")[0].decode("latin-1") == d["banner"]


@pytest.mark.parametrize("kind", ["http", "https", "postgresql", "redis", "elasticsearch"])
def test_waiting_kinds_speak_only_when_spoken_to(
    svc: dict[str, tuple[str, int]], kind: str
) -> None:
    assert describe(kind)["banner"] is None
    with connect_tls(svc[kind]) if describe(kind)["tls"] else connect(svc[kind]) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_idle_connections_close_and_activity_keeps_them(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["redis"]) as idle, connect(svc["redis"]) as busy:
        start = time.monotonic()
        idle.settimeout(0.2)
        closed_at = None
        while time.monotonic() - start < IDLE * 1.7:
            busy.sendall(b"PING\r\n")
            assert recv_until(busy, b"\r\n") == b"+PONG\r\n"
            try:
                if closed_at is None and idle.recv(1) == b"":
                    closed_at = time.monotonic() - start
            except TimeoutError:
                pass
            time.sleep(0.3)
        assert closed_at is not None and IDLE - 0.5 <= closed_at <= IDLE + 1.5
        busy.sendall(b"PING\r\n")
        assert recv_until(busy, b"\r\n") == b"+PONG\r\n", "busy for longer than IDLE yet open"


def test_200_concurrent_clients(svc: dict[str, tuple[str, int]]) -> None:
    socks = []
    try:
        for i in range(200):  # all open at once before any is read
            socks.append(connect(svc["ssh" if i % 2 else "http"]))
        for i, sock in enumerate(socks):
            if i % 2:
                assert recv_until(sock, b"\r\n").startswith(b"SSH-2.0-OpenSSH_9.2p1")
            else:
                sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in socks[::2]:
            with sock.makefile("rb") as reader:
                assert http_response(reader, head_only=True)[0] == "HTTP/1.1 200 OK"
    finally:
        for sock in socks:
            sock.close()


def _answers_as(kind: str, where: tuple[str, int]) -> None:
    """Check that the listener at where speaks like `kind` (for spot checks)."""
    with connect_tls(where) if describe(kind)["tls"] else connect(where) as sock:
        if kind == "silent":
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        elif kind == "redis":
            sock.sendall(b"PING\r\n")
            assert recv_until(sock, b"\r\n") == b"+PONG\r\n"
        elif kind in ("http", "https"):
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert recv_to_eof(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        else:
            banner = describe(kind)["banner"]
            assert recv_until(sock, b"\r\n") == banner.encode("latin-1") + b"\r\n"


def test_2000_listeners_start_fast(tmp_path: Path) -> None:
    kinds = ("ssh", "http", "redis", "silent", "https")

    def make(addr: str, base: int) -> list[dict[str, Any]]:
        first = addr.rsplit(".", 1)[0]
        return [
            {"addr": f"{first}.{10 + i // 500}", "port": base + i % 500, "kind": kinds[i % 5]}
            for i in range(2000)
        ]

    spec_path = tmp_path / "spec.json"
    running = start_server(make, spec_path)
    try:
        assert running.startup < 5.0, f"2000 listeners took {running.startup:.2f} s"
        services = json.loads(spec_path.read_text())["services"]
        for i in (0, 1, 2, 3, 4, 999, 1500, 1998, 1999):
            _answers_as(services[i]["kind"], (services[i]["addr"], services[i]["port"]))
        # An open connection must not delay a clean stop.
        with connect((services[3]["addr"], services[3]["port"])):
            start = time.monotonic()
            code, out, err = running.stop()
            stopped = time.monotonic() - start
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.communicate()
    assert (code, out, err) == (0, b"", b"")
    assert stopped < 5.0


def test_bind_failure_names_the_listener(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind((random_loopback(), 0))
        blocker.listen()
        addr, port = blocker.getsockname()
        spec = {"services": [{"addr": addr, "port": port, "kind": "ssh"}]}
        running, err = launch(spec, tmp_path / "spec.json")
    assert running is None
    assert err == f"labsvc: error: listening on {addr}:{port} (ssh): Address already in use\n"


def test_bad_spec_and_usage(tmp_path: Path) -> None:
    running, err = launch({"services": [{"addr": "127.0.0.1", "kind": "ssh"}]}, tmp_path / "s")
    assert running is None
    assert err == "labsvc: error: spec: services[0]: port None must be an integer in 1-65535\n"
    proc = subprocess.run(
        [sys.executable, "-m", "hilos.lab.services"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("usage: python -m hilos.lab.services SPEC.json")


# Kinds nmap -sV identifies by itself (escape, flood and silent it cannot; postgresql it names
# "PostgreSQL DB", version "9.6.0 or later" from the error's line numbers).
_NMAP_KINDS = (
    "ssh",
    "http",
    "https",
    "tls",
    "ftp",
    "smtp",
    "pop3",
    "imap",
    "mysql",
    "redis",
    "postgresql",
    "elasticsearch",
    "echo",
)


@pytest.mark.slow
def test_nmap_agrees_with_describe(tmp_path: Path) -> None:
    """nmap -sV (connect scan, loopback only) reports what describe() says, for every kind."""
    nmap = shutil.which("nmap")
    if nmap is None:
        pytest.skip("nmap is not installed (scripts/system-deps installs it)")
    ports: dict[int, str] = {}

    def make(addr: str, base: int) -> list[dict[str, Any]]:
        ports.clear()
        ports.update({base + i: kind for i, kind in enumerate(_NMAP_KINDS)})
        return [{"addr": addr, "port": p, "kind": k} for p, k in ports.items()]

    spec_path = tmp_path / "spec.json"
    running = start_server(make, spec_path, idle=30.0)  # nmap waits up to 6 s per probe
    try:
        addr = json.loads(spec_path.read_text())["services"][0]["addr"]
        assert addr.startswith("127.")
        proc = subprocess.run(
            [nmap, "-sT", "-sV", "-Pn", "-n", "-oX", "-", "-p", ",".join(map(str, ports)), addr],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        running.stop()
    assert proc.returncode == 0, proc.stderr
    seen = {}
    for port in ElementTree.fromstring(proc.stdout).iter("port"):
        service = port.find("service")
        assert service is not None, ElementTree.tostring(port)
        seen[ports[int(port.get("portid", "0"))]] = service.attrib
    assert set(seen) == set(_NMAP_KINDS)
    for kind, got in seen.items():
        want = describe(kind)
        name = got.get("name")
        if got.get("tunnel") == "ssl":
            name = {"http": "https", "smtp": "smtps"}.get(name or "", name)
        assert (name, got.get("tunnel") == "ssl") == (want["service"], want["tls"]), kind
        if want["product"] is None:  # echo: nmap knows no product either
            assert "product" not in got, (kind, got)
        else:
            assert got.get("product", "").startswith(want["product"]), (kind, got)
        # nmap learns Redis's version only from its INFO probe, sent to port 6379 alone.
        if want["version"] is not None and kind != "redis":
            assert got.get("version") == want["version"], (kind, got)
