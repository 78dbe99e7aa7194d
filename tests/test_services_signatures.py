"""Tests of hilos.services.signatures: naming services from the shapes real servers send
(pure functions over bytes, no sockets)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hilos.services import (
    match_greeting,
    match_response,
    parse_http,
)
from hilos.services.signatures import (
    is_echo,
    match_answer,
    name_220,
    postgres_reply,
    redis_version,
    tls_name,
)

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


def test_match_response_does_not_take_other_answers_for_echo() -> None:
    assert match_response(b"HTTP/1.0 200 OK\r\nServer: nginx/1.22.1\r\n\r\n") is not None
    assert match_response(b"GET / HTTP/1.0\r\n") is None  # alone: unknown, not echo


def test_a_bare_220_is_named_by_its_answer_to_ehlo() -> None:
    assert name_220(b"220 host ready\r\n", b"250-host Hello\r\n") == ("smtp", None, None)
    assert name_220(b"220 host ready\r\n", b"530 Please login\r\n") == ("ftp", None, None)
    assert name_220(b"220 host ready\r\n", b"") is None
    assert match_greeting(b"220 host ready\r\n") is None  # the greeting alone cannot tell


def test_a_late_greeting_still_names_the_answer() -> None:
    # Greeting heard, then the answer to the probe: named by the answer, else by both together.
    assert match_answer(b"", b"-ERR unknown command\r\n") == (
        "redis",
        "Redis key-value store",
        None,
    )
    assert match_answer(b"junk\r\n", b"HTTP/1.0 200 OK\r\n\r\n") == ("http", None, None)
    assert match_answer(b"junk\r\n", b"more junk\r\n") is None


def test_echo_tls_names_and_small_replies() -> None:
    probe = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
    assert is_echo(probe, probe) and is_echo(probe[:18], probe)
    assert not is_echo(probe[:10], probe) and not is_echo(b"HTTP/1.0 200 OK\r\n", probe)
    assert tls_name("http") == "https" and tls_name("ssh") == "ssh"
    assert redis_version(b"# Server\r\nredis_version:7.2.4\r\n") == "7.2.4"
    assert redis_version(b"-NOAUTH\r\n") is None
    assert postgres_reply(b"S") and postgres_reply(b"N") and not postgres_reply(b"SS")


def test_services_load_neither_output_nor_cli() -> None:
    # The layers (issue 10): services sit under output and the CLI, never the other way round.
    code = (
        "import sys, hilos.services; "
        "print(sorted(m for m in sys.modules if m.startswith(('hilos.output', 'hilos.cli'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
