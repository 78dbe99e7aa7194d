"""hilos.lab.services: every kind of fake lab service, run as a subprocess on loopback only."""

from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO
from xml.etree import ElementTree

import pytest

from hilos.errors import LabError
from hilos.lab.services import FLOOD_BYTES, FLOOD_PATTERN, KINDS, describe, parse_spec

IDLE = 2.0  # idle_timeout of the shared server: long enough for every exchange below
IO_TIMEOUT = 5.0


# --- running the server ------------------------------------------------------------------------


def _random_loopback() -> str:
    """A random 127.x.y.z address: other tests on this machine use 127.0.0.x."""
    return f"127.{random.randint(64, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def _ipv6_loopback_ok() -> bool:
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


def _launch(spec: dict[str, Any], path: Path, timeout: float = 30.0) -> tuple[Running | None, str]:
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


def _start(
    make: Callable[[str, int], list[dict[str, Any]]], path: Path, idle: float = IDLE
) -> Running:
    """Start labsvc on services made from a random loopback address and port base; retry clashes."""
    err = ""
    for _ in range(4):
        addr, base = _random_loopback(), random.randrange(20000, 28000)
        running, err = _launch({"services": make(addr, base), "idle_timeout": idle}, path)
        if running is not None:
            return running
        if "in use" not in err:
            break
    pytest.fail(f"labsvc failed to start: {err}")


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, int]]]:
    """One listener of each kind (plus http on ::1 when available): kind -> (addr, port)."""
    where: dict[str, tuple[str, int]] = {}
    v6 = _ipv6_loopback_ok()

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

    running = _start(make, tmp_path_factory.mktemp("labsvc") / "spec.json")
    yield where
    code, out, err = running.stop()
    assert (code, out, err) == (0, b"", b""), "labsvc must exit 0 silently on SIGTERM"


# --- client helpers ----------------------------------------------------------------------------


def _connect(where: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(where, timeout=IO_TIMEOUT)
    sock.settimeout(IO_TIMEOUT)
    return sock


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _connect_tls(where: tuple[str, int]) -> ssl.SSLSocket:
    return _client_tls().wrap_socket(_connect(where), server_hostname="lab.example")


def _recv_until(sock: socket.socket, marker: bytes, limit: int = 1 << 20) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before {marker!r}; got {data!r}")
        data += chunk
        assert len(data) < limit
    return data


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError(f"closed after {len(data)} of {n} bytes: {data!r}")
        data += chunk
    return data


def _recv_to_eof(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    data = b""
    while chunk := sock.recv(1 << 20):
        data += chunk
        assert len(data) <= limit
    return data


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def _http_response(reader: BinaryIO, head_only: bool = False) -> tuple[str, dict[str, str], bytes]:
    """Read one HTTP response framed by Content-Length: (status line, headers, body)."""
    status = reader.readline().decode("latin-1").rstrip("\r\n")
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b"" if head_only else reader.read(int(headers["content-length"]))
    return status, headers, body


# --- describe, KINDS, spec parsing ---------------------------------------------------------------


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


# --- what each kind says -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [k for k in KINDS if describe(k)["banner"] is not None])
def test_banner_matches_describe(svc: dict[str, tuple[str, int]], kind: str) -> None:
    d = describe(kind)
    with _connect_tls(svc[kind]) if d["tls"] else _connect(svc[kind]) as sock:
        if kind == "flood":
            data = _recv_exact(sock, 4096)
            assert data.startswith(d["banner"].encode("latin-1"))
        else:
            data = _recv_until(sock, b"\r\n")
            assert data.split(b"\r\n")[0].decode("latin-1") == d["banner"]


@pytest.mark.parametrize("kind", ["http", "https", "postgresql", "redis", "elasticsearch"])
def test_waiting_kinds_speak_only_when_spoken_to(
    svc: dict[str, tuple[str, int]], kind: str
) -> None:
    assert describe(kind)["banner"] is None
    with _connect_tls(svc[kind]) if describe(kind)["tls"] else _connect(svc[kind]) as sock:
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_ssh_sends_kexinit_after_client_identification(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["ssh"]) as sock:
        assert _recv_until(sock, b"\r\n") == b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
        sock.sendall(b"SSH-2.0-hilos_test\r\n")
        length = int.from_bytes(_recv_exact(sock, 4), "big")
        packet = _recv_exact(sock, length)
        pad = packet[0]
        assert pad >= 4 and (4 + length) % 8 == 0, "RFC 4253 6: padding and block alignment"
        payload = packet[1 : length - pad]
        assert payload[0] == 20, "SSH_MSG_KEXINIT"
        pos, lists = 17, []
        for _ in range(10):
            n = int.from_bytes(payload[pos : pos + 4], "big")
            lists.append(payload[pos + 4 : pos + 4 + n].decode())
            pos += 4 + n
        assert payload[pos:] == bytes(5)
        assert "curve25519-sha256" in lists[0].split(",")
        assert "ssh-ed25519" in lists[1].split(",")
        assert lists[2] == lists[3] and "aes128-ctr" in lists[2]


def test_ssh_rejects_non_ssh_client(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["ssh"]) as sock:
        _recv_until(sock, b"\r\n")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _recv_to_eof(sock) == b"Invalid SSH identification string.\r\n"


def test_http_nginx_page(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["http"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status, headers, body = _http_response(reader)
        assert status == "HTTP/1.1 200 OK"
        assert headers["server"] == "nginx/1.22.1"
        assert headers["content-type"] == "text/html"
        assert headers["connection"] == "close"
        assert b"<title>Welcome to nginx!</title>" in body
        assert reader.read() == b"", "HTTP/1.0 without keep-alive closes after the response"


def test_http_keepalive_pipelined_and_head(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["http"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        for _ in range(2):
            status, headers, body = _http_response(reader)
            assert status == "HTTP/1.1 200 OK" and headers["connection"] == "keep-alive"
            assert b"nginx" in body
        status, headers, _ = _http_response(reader, head_only=True)
        assert status == "HTTP/1.1 200 OK" and int(headers["content-length"]) > 0
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _http_response(reader)[0] == "HTTP/1.1 200 OK", "HEAD sent no body"
        assert reader.read() == b""


@pytest.mark.parametrize(
    "garbage", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"HELLO there friend\r\n\r\n"]
)
def test_http_rejects_non_http(svc: dict[str, tuple[str, int]], garbage: bytes) -> None:
    with _connect(svc["http"]) as sock:
        sock.sendall(garbage)
        data = _recv_to_eof(sock)
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"nginx/1.22.1" in data


def test_http_09_gets_bare_body(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["http"]) as sock:
        sock.sendall(b"GET /\r\n")
        assert _recv_to_eof(sock).startswith(b"<!DOCTYPE html>")


def test_http_on_ipv6_loopback(svc: dict[str, tuple[str, int]]) -> None:
    if "http6" not in svc:
        pytest.skip("no IPv6 loopback here")
    with _connect(svc["http6"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _http_response(reader)[1]["server"] == "nginx/1.22.1"


def test_https_self_signed_apache(svc: dict[str, tuple[str, int]]) -> None:
    with _connect_tls(svc["https"]) as tls, tls.makefile("rb") as reader:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(b"GET / HTTP/1.1\r\nHost: lab.example\r\n\r\n")
        status, headers, body = _http_response(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["server"] == "Apache/2.4.57 (Debian)"
    assert b"It works!" in body
    # Self-signed: the certificate verifies with itself as the only trust anchor.
    verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(der))
    with (
        _connect(svc["https"]) as raw,
        verify.wrap_socket(raw, server_hostname="lab.example") as tls,
    ):
        cert = tls.getpeercert()
    assert cert["subject"] == cert["issuer"] == ((("commonName", "lab.example"),),)


def test_tls_is_smtp_inside_tls(svc: dict[str, tuple[str, int]]) -> None:
    with _connect_tls(svc["tls"]) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert _recv_until(tls, b"\r\n").startswith(b"220 mail.lab.example ESMTP Postfix")
        tls.sendall(b"EHLO scanner\r\n")
        assert _recv_until(tls, b"250 CHUNKING\r\n").startswith(b"250-mail.lab.example\r\n")
        tls.sendall(b"QUIT\r\n")
        assert _recv_until(tls, b"\r\n") == b"221 2.0.0 Bye\r\n"
        assert tls.recv(100) == b"", "close_notify: a clean TLS end of stream"


# nmap's SSLSessionReq probe: an SSLv3 ClientHello with ciphers no modern server accepts.
_SSLV3_HELLO = (
    b"\x16\x03\x00\x00S\x01\x00\x00O\x03\x00?G\xd7\xf7\xba,\xee\xea\xb2`~\xf3\x00\xfd\x82{\xb9"
    b"\xd5\x96\xc8w\x9b\xe6\xc4\xdb<=\xdbo\xef\x10n\x00\x00(\x00\x16\x00\x13\x00\x0a\x00f\x00"
    b"\x05\x00\x04\x00e\x00d\x00c\x00b\x00a\x00`\x00\x15\x00\x12\x00\x09\x00\x14\x00\x11\x00"
    b"\x08\x00\x06\x00\x03\x01\x00"
)


@pytest.mark.parametrize("kind", ["https", "tls"])
def test_failed_handshake_gets_a_tls_alert(svc: dict[str, tuple[str, int]], kind: str) -> None:
    with _connect(svc[kind]) as sock:
        sock.sendall(_SSLV3_HELLO)
        reply = _recv_to_eof(sock)
    # A fatal alert record (content type 21, level 2), as OpenSSL servers send.
    assert reply[:2] == b"\x15\x03" and reply[3:6] == b"\x00\x02\x02", reply


def test_tls_port_spoken_to_in_clear_text_closes(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["tls"]) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert not _recv_to_eof(sock).startswith(b"220"), "no clear-text banner"


def _dialogue(sock: socket.socket, steps: list[tuple[bytes, bytes]]) -> None:
    """Send each line and expect the reply to end with the given bytes."""
    for send, expect in steps:
        sock.sendall(send)
        assert _recv_until(sock, expect).endswith(expect), (send, expect)


def test_ftp_vsftpd(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["ftp"]) as sock:
        assert _recv_until(sock, b"\r\n") == b"220 (vsFTPd 3.0.3)\r\n"
        _dialogue(
            sock,
            [
                (b"SYST\r\n", b"530 Please login with USER and PASS.\r\n"),
                (b"FEAT\r\n", b"211 End\r\n"),
                (b"PASS x\r\n", b"503 Login with USER first.\r\n"),
                (b"USER anonymous\r\n", b"331 Please specify the password.\r\n"),
                (b"PASS guest@\r\n", b"530 Login incorrect.\r\n"),
                (b"QUIT\r\n", b"221 Goodbye.\r\n"),
            ],
        )
        assert _closed(sock)


def test_smtp_postfix(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["smtp"]) as sock:
        assert _recv_until(sock, b"\r\n") == b"220 mail.lab.example ESMTP Postfix (Debian/GNU)\r\n"
        _dialogue(
            sock,
            [
                (b"MAIL FROM:<a@b>\r\n", b"503 5.5.1 Error: send HELO/EHLO first\r\n"),
                (b"EHLO scanner.lab\r\n", b"250 CHUNKING\r\n"),
                (b"MAIL FROM:<a@b>\r\n", b"250 2.1.0 Ok\r\n"),
                (b"RCPT TO:<x@far.example>\r\n", b"<x@far.example>: Relay access denied\r\n"),
                (b"NOOP\r\n", b"250 2.0.0 Ok\r\n"),
                (b"FROB\r\n", b"502 5.5.2 Error: command not recognized\r\n"),
                (b"QUIT\r\n", b"221 2.0.0 Bye\r\n"),
            ],
        )
        assert _closed(sock)


def test_smtp_hangs_up_on_http(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["smtp"]) as sock:
        _recv_until(sock, b"\r\n")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _recv_to_eof(sock) == b"221 2.7.0 Error: I can break rules, too. Goodbye.\r\n"


def test_pop3_dovecot(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["pop3"]) as sock:
        assert _recv_until(sock, b"\r\n") == b"+OK Dovecot (Debian) ready.\r\n"
        sock.sendall(b"CAPA\r\n")
        capa = _recv_until(sock, b"\r\n.\r\n")
        assert capa.startswith(b"+OK\r\n") and b"\r\nUSER\r\n" in capa
        _dialogue(
            sock,
            [
                (b"USER bob\r\n", b"+OK\r\n"),
                (b"PASS secret\r\n", b"-ERR [AUTH] Authentication failed.\r\n"),
                (b"QUIT\r\n", b"+OK Logging out\r\n"),
            ],
        )
        assert _closed(sock)


def test_imap_dovecot(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["imap"]) as sock:
        greeting = _recv_until(sock, b"\r\n")
        assert greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")
        assert greeting.endswith(b"] Dovecot (Debian) ready.\r\n")
        sock.sendall(b"a1 CAPABILITY\r\n")
        reply = _recv_until(sock, b"a1 OK")
        assert reply.startswith(b"* CAPABILITY IMAP4rev1 ")
        _dialogue(
            sock,
            [
                (
                    b"a2 LOGIN bob secret\r\n",
                    b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
                ),
                (
                    b"a3 SELECT INBOX\r\n",
                    b"a3 BAD Error in IMAP command SELECT: Unknown command.\r\n",
                ),
                (b"a4 LOGOUT\r\n", b"a4 OK Logout completed.\r\n"),
            ],
        )
        assert _closed(sock)


def test_imap_bad_lines_like_dovecot(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["imap"]) as sock:
        _recv_until(sock, b"\r\n")
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _recv_until(sock, b"* BAD Error in IMAP command received by server.\r\n") == (
            b"GET BAD Error in IMAP command received by server.\r\n"
            b"* BAD Error in IMAP command received by server.\r\n"
        )


def _mysql_read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = _recv_exact(sock, 4)
    return header[3], _recv_exact(sock, int.from_bytes(header[:3], "little"))


def test_mysql_handshake_then_access_denied(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["mysql"]) as sock:
        seq, payload = _mysql_read_packet(sock)
        assert seq == 0 and payload[0] == 10, "protocol 10"
        end = payload.index(b"\x00", 1)
        assert payload[1:end] == b"8.0.36"
        pos = end + 1 + 4  # connection id
        salt1 = payload[pos : pos + 8]
        assert payload[pos + 8] == 0
        caps = int.from_bytes(payload[pos + 9 : pos + 11], "little")
        caps |= int.from_bytes(payload[pos + 14 : pos + 16], "little") << 16
        assert caps & 0x0200 and caps & 0x8000 and caps & 0x00080000, "41, secure conn, plugin"
        assert not caps & 0x0800, "no CLIENT_SSL: we cannot upgrade"
        salt_len = payload[pos + 16]
        rest = payload[pos + 27 :]
        salt2_len = max(13, salt_len - 8)
        salt2, plugin = rest[:salt2_len], rest[salt2_len:]
        assert len(salt1 + salt2.rstrip(b"\x00")) == 20
        assert plugin == b"caching_sha2_password\x00"
        # HandshakeResponse41 for user "root" with a 20-byte auth response.
        login = (
            (0x0200 | 0x8000 | 0x00080000).to_bytes(4, "little")
            + (1 << 24).to_bytes(4, "little")
            + b"\xff"
            + bytes(23)
            + b"root\x00"
            + b"\x14"
            + bytes(range(1, 21))
            + b"caching_sha2_password\x00"
        )
        sock.sendall(len(login).to_bytes(3, "little") + b"\x01" + login)
        seq, err = _mysql_read_packet(sock)
        assert seq == 2 and err[0] == 0xFF
        assert int.from_bytes(err[1:3], "little") == 1045
        assert err[3:9] == b"#28000"
        assert err[9:].startswith(b"Access denied for user 'root'@'")
        assert err.endswith(b"(using password: YES)")
        assert _closed(sock)


def test_mysql_rejects_http(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["mysql"]) as sock:
        _mysql_read_packet(sock)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        _, err = _mysql_read_packet(sock)
        assert err[0] == 0xFF and int.from_bytes(err[1:3], "little") == 1156


def _pg_message(sock: socket.socket) -> tuple[bytes, dict[str, str]]:
    kind = _recv_exact(sock, 1)
    length = int.from_bytes(_recv_exact(sock, 4), "big")
    body = _recv_exact(sock, length - 4)
    assert body.endswith(b"\x00\x00")
    fields = {f[:1].decode(): f[1:].decode() for f in body[:-2].split(b"\x00")}
    return kind, fields


def _pg_startup(code: int, params: bytes = b"") -> bytes:
    return (8 + len(params)).to_bytes(4, "big") + code.to_bytes(4, "big") + params


def test_postgresql_sslrequest_then_startup(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["postgresql"]) as sock:
        sock.sendall(_pg_startup(80877104))  # GSSENCRequest
        assert _recv_exact(sock, 1) == b"N"
        sock.sendall(_pg_startup(80877103))  # SSLRequest
        assert _recv_exact(sock, 1) == b"N"
        sock.sendall(_pg_startup(196608, b"user\x00alice\x00database\x00shop\x00\x00"))
        kind, fields = _pg_message(sock)
        assert kind == b"E"
        assert fields["S"] == fields["V"] == "FATAL" and fields["C"] == "28000"
        assert 'user "alice", database "shop"' in fields["M"]
        assert fields["R"] == "ClientAuthentication" and fields["L"].isdigit()
        assert _closed(sock)


def test_postgresql_unsupported_protocol(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["postgresql"]) as sock:
        sock.sendall(_pg_startup(0x00020000, b"user\x00bob\x00\x00"))
        kind, fields = _pg_message(sock)
        assert kind == b"E" and fields["C"] == "0A000"
        assert "unsupported frontend protocol 2.0" in fields["M"]


def test_redis(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["redis"]) as sock:
        _dialogue(
            sock,
            [
                (b"PING\r\n", b"+PONG\r\n"),
                (b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
                (b"*2\r\n$4\r\nECHO\r\n$5\r\nhi\r\nx\r\n", b"$5\r\nhi\r\nx\r\n"),
                (b"SET k v1\r\n", b"+OK\r\n"),
                (b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"$2\r\nv1\r\n"),
                (b"GET missing\r\n", b"$-1\r\n"),
                (b"DEL k missing\r\n", b":1\r\n"),
                (b"GET\r\n", b"-ERR wrong number of arguments for 'get' command\r\n"),
                (
                    b"FLUSHALL now\r\n",
                    b"-ERR unknown command 'FLUSHALL', with args beginning with: 'now' \r\n",
                ),
            ],
        )
        sock.sendall(b"*1\r\n$4\r\nINFO\r\n")
        header = _recv_until(sock, b"\r\n")
        assert header.startswith(b"$")
        size = int(header[1 : header.index(b"\r\n")])
        body = header[header.index(b"\r\n") + 2 :]
        body += _recv_exact(sock, size + 2 - len(body))
        assert body.endswith(b"\r\n")
        info = body[:-2].decode()
        assert len(body[:-2]) == size
        assert "# Server\r\n" in info and "redis_version:7.0.15\r\n" in info
        assert f"tcp_port:{svc['redis'][1]}\r\n" in info
        sock.sendall(b"INFO clients\r\n")
        assert b"# Server" not in _recv_until(sock, b"connected_clients:")
        sock.sendall(b"QUIT\r\n")
        assert _recv_to_eof(sock).endswith(b"+OK\r\n")


def test_redis_hangs_up_on_http_and_protocol_errors(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["redis"]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _recv_to_eof(sock) == b"-ERR wrong number of arguments for 'get' command\r\n"
    with _connect(svc["redis"]) as sock:
        sock.sendall(b"*1\r\n!4\r\nPING\r\n")
        assert _recv_to_eof(sock) == b"-ERR Protocol error: expected '$', got '!'\r\n"


def test_elasticsearch(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["elasticsearch"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = _http_response(reader)
        assert status == "HTTP/1.1 200 OK"
        assert headers == {
            "content-type": "application/json; charset=UTF-8",
            "content-length": str(len(body)),
        }
        assert b'"number" : "8.11.1"' in body, "Jackson's pretty printing"
        doc = json.loads(body)
        assert doc["version"]["number"] == "8.11.1"
        assert doc["tagline"] == "You Know, for Search"
        sock.sendall(b"GET /_cat/nodes/x/y HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body = _http_response(reader)
        assert status == "HTTP/1.1 400 Bad Request" and b"no handler found" in body
    with _connect(svc["elasticsearch"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _http_response(reader)[0] == "HTTP/1.0 200 OK", "Netty answers in kind"
        assert reader.read() == b""


def test_escape_banner(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["escape"]) as sock:
        data = _recv_until(sock, b"\r\n")
    assert b"\x1b[" in data and b"\x1b]" in data, "CSI and OSC sequences"
    assert {0x00, 0x07, 0x08, 0x7F, 0x9B} <= set(data), "NUL, BEL, BS, DEL, 8-bit CSI"
    assert data[:-2].decode("latin-1") == describe("escape")["banner"]


def test_flood_sends_10_mib_then_closes(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["flood"]) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        data = _recv_to_eof(sock, limit=FLOOD_BYTES)
    assert len(data) == FLOOD_BYTES == 10 * 1024 * 1024
    assert data == FLOOD_PATTERN * (FLOOD_BYTES // len(FLOOD_PATTERN))


def test_silent_never_speaks_and_stays_open(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["silent"]) as sock:
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\nhello?\r\n")
        sock.settimeout(IDLE + 0.5)  # past the idle timeout: silent is exempt
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_idle_connections_close_and_activity_keeps_them(svc: dict[str, tuple[str, int]]) -> None:
    with _connect(svc["redis"]) as idle, _connect(svc["redis"]) as busy:
        start = time.monotonic()
        idle.settimeout(0.2)
        closed_at = None
        while time.monotonic() - start < IDLE * 1.7:
            busy.sendall(b"PING\r\n")
            assert _recv_until(busy, b"\r\n") == b"+PONG\r\n"
            try:
                if closed_at is None and idle.recv(1) == b"":
                    closed_at = time.monotonic() - start
            except TimeoutError:
                pass
            time.sleep(0.3)
        assert closed_at is not None and IDLE - 0.5 <= closed_at <= IDLE + 1.5
        busy.sendall(b"PING\r\n")
        assert _recv_until(busy, b"\r\n") == b"+PONG\r\n", "busy for longer than IDLE yet open"


def test_200_concurrent_clients(svc: dict[str, tuple[str, int]]) -> None:
    socks = []
    try:
        for i in range(200):  # all open at once before any is read
            socks.append(_connect(svc["ssh" if i % 2 else "http"]))
        for i, sock in enumerate(socks):
            if i % 2:
                assert _recv_until(sock, b"\r\n").startswith(b"SSH-2.0-OpenSSH_9.2p1")
            else:
                sock.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        for sock in socks[::2]:
            with sock.makefile("rb") as reader:
                assert _http_response(reader, head_only=True)[0] == "HTTP/1.1 200 OK"
    finally:
        for sock in socks:
            sock.close()


# --- process behaviour ---------------------------------------------------------------------------


def _answers_as(kind: str, where: tuple[str, int]) -> None:
    """Check that the listener at where speaks like `kind` (for spot checks)."""
    with _connect_tls(where) if describe(kind)["tls"] else _connect(where) as sock:
        if kind == "silent":
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)
        elif kind == "redis":
            sock.sendall(b"PING\r\n")
            assert _recv_until(sock, b"\r\n") == b"+PONG\r\n"
        elif kind in ("http", "https"):
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert _recv_to_eof(sock).startswith(b"HTTP/1.1 200 OK\r\n")
        else:
            banner = describe(kind)["banner"]
            assert _recv_until(sock, b"\r\n") == banner.encode("latin-1") + b"\r\n"


def test_2000_listeners_start_fast(tmp_path: Path) -> None:
    kinds = ("ssh", "http", "redis", "silent", "https")

    def make(addr: str, base: int) -> list[dict[str, Any]]:
        first = addr.rsplit(".", 1)[0]
        return [
            {"addr": f"{first}.{10 + i // 500}", "port": base + i % 500, "kind": kinds[i % 5]}
            for i in range(2000)
        ]

    spec_path = tmp_path / "spec.json"
    running = _start(make, spec_path)
    try:
        assert running.startup < 5.0, f"2000 listeners took {running.startup:.2f} s"
        services = json.loads(spec_path.read_text())["services"]
        for i in (0, 1, 2, 3, 4, 999, 1500, 1998, 1999):
            _answers_as(services[i]["kind"], (services[i]["addr"], services[i]["port"]))
        # An open connection must not delay a clean stop.
        with _connect((services[3]["addr"], services[3]["port"])):
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
        blocker.bind((_random_loopback(), 0))
        blocker.listen()
        addr, port = blocker.getsockname()
        spec = {"services": [{"addr": addr, "port": port, "kind": "ssh"}]}
        running, err = _launch(spec, tmp_path / "spec.json")
    assert running is None
    assert err == f"labsvc: error: listening on {addr}:{port} (ssh): Address already in use\n"


def test_bad_spec_and_usage(tmp_path: Path) -> None:
    running, err = _launch({"services": [{"addr": "127.0.0.1", "kind": "ssh"}]}, tmp_path / "s")
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
    running = _start(make, spec_path, idle=30.0)  # nmap waits up to 6 s per probe
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


def test_echo_sends_back_what_it_gets(svc: dict[str, tuple[str, int]]) -> None:
    """RFC 862: every byte comes back, whatever it is (a scanner's own HTTP probe included)."""
    with socket.create_connection(svc["echo"], timeout=5) as c:
        c.settimeout(0.3)
        with pytest.raises(TimeoutError):
            c.recv(1)  # says nothing first
        c.settimeout(5)
        for data in (b"GET / HTTP/1.0\r\n\r\n", bytes(range(256)) * 64):
            c.sendall(data)
            got = b""
            while len(got) < len(data):
                got += c.recv(65536)
            assert got == data
