"""Service identification: banner matchers on real-world shapes, and live dialogues on loopback
with the lab's fake services (standard kinds on unusual ports, TLS, hostile banners)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilos import labsvc
from hilos.output.sanitize import BANNER_DATA_LIMIT, clean
from hilos.results import PortResult, ScanHostResult
from hilos.services import (
    READ_LIMIT,
    BannerGrabber,
    identify,
    match_greeting,
    match_response,
    parse_http,
)
from hilos.targets.ports import service_name

pytestmark = pytest.mark.timeout(60)


# ------------------------------------------------------------------ matchers (pure functions)
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
            ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3"),
        ),
        (
            b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n",
            ("ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.6"),
        ),
        (b"SSH-2.0-OpenSSH_7.4\r\n", ("ssh", "OpenSSH", "7.4")),
        (b"SSH-2.0-dropbear_2020.81\r\n", ("ssh", "Dropbear sshd", "2020.81")),
        (b"SSH-2.0-libssh_0.9.6\r\n", ("ssh", "libssh", "0.9.6")),
        (b"SSH-1.99-Cisco-1.25\r\n", ("ssh", "Cisco SSH", "1.25")),
        (b"220 (vsFTPd 3.0.3)\r\n", ("ftp", "vsftpd", "3.0.3")),
        (
            b"220 ProFTPD 1.3.5e Server (Debian) [::ffff:198.18.0.9]\r\n",
            ("ftp", "ProFTPD", "1.3.5e"),
        ),
        (
            b"220---------- Welcome to Pure-FTPd [privsep] [TLS] ----------\r\n",
            ("ftp", "Pure-FTPd", None),
        ),
        (b"220 Microsoft FTP Service\r\n", ("ftp", "Microsoft ftpd", None)),
        (b"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n", ("smtp", "Postfix smtpd", None)),
        (
            b"220 mx.example.org ESMTP Exim 4.96 Mon, 01 Jan 2024\r\n",
            ("smtp", "Exim smtpd", "4.96"),
        ),
        (b"220 host.example ESMTP Sendmail 8.15.2/8.15.2; Mon\r\n", ("smtp", "Sendmail", "8.15.2")),
        (b"+OK Dovecot (Debian) ready.\r\n", ("pop3", "Dovecot pop3d", None)),
        (b"+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", ("pop3", None, None)),
        (
            b"* OK [CAPABILITY IMAP4rev1 LITERAL+] Dovecot (Ubuntu) ready.\r\n",
            ("imap", "Dovecot imapd", None),
        ),
        (b"* OK example Cyrus IMAP v2.4.17 server ready\r\n", ("imap", "Cyrus imapd", "2.4.17")),
        (b"RFB 003.008\n", ("vnc", None, "003.008")),
        (
            b"J\x00\x00\x00\n8.0.36\x00\x08\x00\x00\x00abcdefgh\x00\xff\xf7",
            ("mysql", "MySQL", "8.0.36"),
        ),
        (
            b"Y\x00\x00\x00\n5.5.5-10.6.12-MariaDB-0ubuntu0.22.04.1\x00-\x00\x00\x00",
            ("mysql", "MariaDB", "10.6.12"),
        ),
    ],
)
def test_match_greeting(data: bytes, expected: tuple[str, str | None, str | None]) -> None:
    assert match_greeting(data) == expected


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("nginx/1.22.1", ("http", "nginx", "1.22.1")),
        ("nginx", ("http", "nginx", None)),
        ("Apache/2.4.57 (Debian)", ("http", "Apache httpd", "2.4.57")),
        ("Microsoft-IIS/10.0", ("http", "Microsoft IIS httpd", "10.0")),
        ("lighttpd/1.4.59", ("http", "lighttpd", "1.4.59")),
        ("gunicorn/20.1.0", ("http", "Gunicorn", "20.1.0")),
        ("Jetty(9.4.51.v20230217)", ("http", "Jetty", "9.4.51.v20230217")),
        ("MiniServ/1.990", ("http", "MiniServ", "1.990")),
    ],
)
def test_parse_http_server_header(server: str, expected: tuple[str, str, str | None]) -> None:
    data = f"HTTP/1.1 200 OK\r\nServer: {server}\r\nContent-Length: 0\r\n\r\n".encode()
    assert parse_http(data) == expected


def test_elasticsearch_from_its_body_not_its_port() -> None:
    body = b'{"name":"n1","version":{"number":"7.17.9"},"tagline":"You Know, for Search"}'
    data = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + body
    assert parse_http(data) == ("http", "Elasticsearch REST API", "7.17.9")


@pytest.mark.parametrize(
    ("data", "service"),
    [
        (b"-ERR wrong number of arguments for 'get' command\r\n", "redis"),
        (b"-DENIED Redis is running in protected mode\r\n", "redis"),
        (b"-NOAUTH Authentication required.\r\n", "redis"),
        (b"E\x00\x00\x00\x54SFATAL\x00VFATAL\x00C0A000\x00", "postgresql"),
        (b"HTTP/1.0 400 Bad Request\r\n\r\n", "http"),
    ],
)
def test_match_response(data: bytes, service: str) -> None:
    m = match_response(data)
    assert m is not None and m[0] == service


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_matchers_never_raise_on_garbage(data: bytes) -> None:
    for fn in (match_greeting, match_response, parse_http):
        m = fn(data)
        assert m is None or isinstance(m[0], str)


# ------------------------------------------------------------------ live, on loopback
def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


KINDS = [k for k in labsvc.KINDS]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, str]]:
    """Every labsvc kind on an unusual (ephemeral) port of 127.0.0.1: port -> kind."""
    ports = _free_ports(len(KINDS))
    mapping = dict(zip(ports, KINDS, strict=True))
    spec = {
        "services": [{"addr": "127.0.0.1", "port": p, "kind": k} for p, k in mapping.items()],
        "idle_timeout": 20,
    }
    path = Path(tmp_path_factory.mktemp("svc")) / "spec.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen(
        [sys.executable, "-m", "hilos.labsvc", str(path)],
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
        want = labsvc.describe(kind)
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


def test_hosts_without_open_ports_pass_straight_through() -> None:
    host = ScanHostResult("127.0.0.1", "up", "user-set", (PortResult(1, "closed", "conn-refused"),))
    assert list(BannerGrabber().enrich([host])) == [host]


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


def test_match_response_does_not_take_other_answers_for_echo() -> None:
    assert match_response(b"HTTP/1.0 200 OK\r\nServer: nginx/1.22.1\r\n\r\n") is not None
    assert match_response(b"GET / HTTP/1.0\r\n") is None  # alone: unknown, not echo
