"""Fake network services for the practice lab: plausible banners for testing service identification.

LAB USE ONLY. The lab starts this inside its own hosts namespace as
``python -m hilos.labsvc SPEC.json``; it listens on exactly the (address, port) pairs the spec lists
and on nothing else, and never opens an outgoing connection. Tests run it on 127.0.0.0/8 loopback.

SPEC.json::

    {"services": [{"addr": "198.18.0.1", "port": 22, "kind": "ssh"},
                  {"addr": "fd18::100:1", "port": 443, "kind": "https"}],
     "idle_timeout": 30}

``idle_timeout`` (seconds, optional, default 30) closes connections on which nothing happened for
that long; ``silent`` connections are exempt (they stay open until the client closes). One process
serves every listener with asyncio (epoll): 2000 listeners bind in well under a second. It prints
``ready`` once every listener is bound and exits 0 on SIGTERM or SIGINT.

Kinds (``KINDS``) and what they speak; ``describe(kind)`` gives what a scanner should report:

- ssh: ``SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3``; after the client's identification line, a real
  SSH_MSG_KEXINIT packet (RFC 4253 section 7.1); a non-SSH line gets "Invalid SSH identification
  string." and a close.
- http: nginx/1.22.1; any well-formed HTTP request gets ``200 OK`` and the nginx welcome page
  (keep-alive and pipelining work, HEAD has no body, HTTP/0.9 gets the bare body); anything that
  is not HTTP (a TLS ClientHello, garbage) gets 400 and a close, as nginx does.
- https: TLS (a self-signed RSA certificate made with the ``openssl`` command at startup), then
  HTTP as Apache/2.4.57 (Debian) with the Debian "It works!" page.
- tls: a generic TLS-wrapped service: implicit-TLS SMTP ("smtps", as on port 465). After the
  handshake it sends the Postfix 220 greeting and speaks SMTP exactly like ``smtp``. It covers the
  case where a scanner must finish a TLS handshake and then read a banner (https covers "send a
  request first").
- ftp: ``220 (vsFTPd 3.0.3)``; USER/PASS (always "530 Login incorrect."), FEAT, OPTS, QUIT.
- smtp: ``220 mail.lab.example ESMTP Postfix (Debian/GNU)``; EHLO/HELO/MAIL/RCPT (relay denied)/
  RSET/NOOP/VRFY/QUIT like Postfix; HTTP verbs get Postfix's "I can break rules, too" and a close.
- pop3: ``+OK Dovecot (Debian) ready.``; CAPA, USER/PASS (auth fails), QUIT.
- imap: ``* OK [CAPABILITY IMAP4rev1 ...] Dovecot (Debian) ready.``; CAPABILITY, ID, LOGIN (fails),
  NOOP, LOGOUT.
- mysql: a real protocol-10 handshake packet for 8.0.36 (caching_sha2_password); the client's
  HandshakeResponse gets ERR 1045 "Access denied".
- postgresql: waits; SSLRequest/GSSENCRequest get ``N``, a StartupMessage gets a real FATAL
  ErrorResponse (28000 no pg_hba.conf entry), an unknown protocol version gets 0A000.
- redis: waits; RESP and inline commands: PING, ECHO, INFO (``redis_version:7.0.15``), SELECT,
  GET/SET/DEL/EXISTS/DBSIZE, QUIT; unknown commands get Redis 7's error text.
- elasticsearch: HTTP; ``GET /`` gets the 8.11.1 JSON ("You Know, for Search").
- escape: a banner full of terminal escape sequences and control bytes (OSC title, clear screen,
  cursor report request, backspaces, NUL, DEL, 8-bit CSI), to test that scanners sanitise banners.
- flood: on connect sends ``FLOOD_BYTES`` (10 MiB) of a repeating 64-byte text with no line break,
  then closes; tests that scanners cap what they read.
- silent: accepts, never speaks, reads and discards, keeps the connection until the client closes.
- echo: RFC 862 echo: says nothing first, sends back every byte it gets. The lab puts one on
  MongoDB's port 27017: a scanner must name it "echo" (as nmap does: its own probe came back),
  not take its reflected probe for a MongoDB banner.

nmap 7.93 ``-sV`` names every kind but escape, flood and silent as describe() does (a slow test
checks it): https is its "ssl/http" (service "https" here), tls its "ssl/smtp" ("smtps"),
elasticsearch its "http" with product "Elasticsearch REST API"; for postgresql it prints
"PostgreSQL DB" "9.6.0 or later", inferred from the error's source line numbers. TLS is done here
with memory BIOs rather than by asyncio, so a refused handshake gets its alert, which is how nmap
recognises TLS. Listeners set IP_FREEBIND, so an IPv6 address still in duplicate address
detection binds at once.

Example::

    python -m hilos.labsvc spec.json   # prints "ready"; kill -TERM to stop
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import ipaddress
import json
import os
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from hilos.errors import HilosError, LabError, from_oserror

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "FLOOD_BYTES",
    "FLOOD_PATTERN",
    "KINDS",
    "LabServer",
    "Service",
    "Spec",
    "describe",
    "load_spec",
    "main",
    "parse_spec",
]

KINDS: tuple[str, ...] = (
    "ssh",
    "http",
    "https",
    "tls",
    "ftp",
    "smtp",
    "pop3",
    "imap",
    "mysql",
    "postgresql",
    "redis",
    "elasticsearch",
    "escape",
    "flood",
    "silent",
    "echo",
)

DEFAULT_IDLE_TIMEOUT = 30.0
BACKLOG = 4096  # the kernel caps it at net.core.somaxconn; a scanner opens hundreds at once
FLOOD_PATTERN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
FLOOD_BYTES = 10 * 1024 * 1024
_FLOOD_CHUNK = FLOOD_PATTERN * 1024  # 64 KiB; FLOOD_BYTES is an exact multiple of it
_TLS_KINDS = frozenset({"https", "tls"})

# ---------------------------------------------------------------------------------------------
# What each service says, and what a scanner should report for it (nmap's naming conventions).

_SSH_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
_FTP_BANNER = "220 (vsFTPd 3.0.3)"
_SMTP_HOST = "mail.lab.example"
_SMTP_BANNER = f"220 {_SMTP_HOST} ESMTP Postfix (Debian/GNU)"
_POP3_BANNER = "+OK Dovecot (Debian) ready."
_IMAP_CAPS = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"
_IMAP_BANNER = f"* OK [CAPABILITY {_IMAP_CAPS}] Dovecot (Debian) ready."
_MYSQL_VERSION = "8.0.36"
_REDIS_VERSION = "7.0.15"
_ES_VERSION = "8.11.1"
_NGINX = "nginx/1.22.1"
_APACHE = "Apache/2.4.57 (Debian)"

# Terminal attacks a scanner must not pass through to the user's terminal.
_ESCAPE_BANNER = (
    "\x1b]0;you have been pwned\x07"  # OSC 0: set the window title
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b[5;31;47mWARNING\x1b[0m "  # blinking red on white
    "lab\x08\x08\x08LAB "  # backspaces overwrite what was printed
    "\x1b[8mhidden\x1b[28m "  # concealed text
    "\x00\x01\x7f\x9b31m "  # NUL, SOH, DEL, 8-bit CSI (C1 control 0x9b)
    "\x1b[?1049h\x1b[6n"  # alternate screen; ask the terminal to type its cursor position
)

_DESCRIPTIONS: dict[str, tuple[str | None, str | None, str | None, bool, str | None]] = {
    # kind: (service, product, version, tls, banner)
    "ssh": ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", False, _SSH_BANNER),
    "http": ("http", "nginx", "1.22.1", False, None),
    "https": ("https", "Apache httpd", "2.4.57", True, None),
    "tls": ("smtps", "Postfix smtpd", None, True, _SMTP_BANNER),
    "ftp": ("ftp", "vsftpd", "3.0.3", False, _FTP_BANNER),
    "smtp": ("smtp", "Postfix smtpd", None, False, _SMTP_BANNER),
    "pop3": ("pop3", "Dovecot pop3d", None, False, _POP3_BANNER),
    "imap": ("imap", "Dovecot imapd", None, False, _IMAP_BANNER),
    "mysql": ("mysql", "MySQL", _MYSQL_VERSION, False, None),
    "postgresql": ("postgresql", "PostgreSQL", None, False, None),
    "redis": ("redis", "Redis key-value store", _REDIS_VERSION, False, None),
    # nmap reports Elasticsearch as service "http" with this product.
    "elasticsearch": ("http", "Elasticsearch REST API", _ES_VERSION, False, None),
    "escape": (None, None, None, False, _ESCAPE_BANNER),
    "flood": (None, None, None, False, FLOOD_PATTERN.decode("ascii")),
    "silent": (None, None, None, False, None),
    "echo": ("echo", None, None, False, None),
}


def describe(kind: str) -> dict[str, Any]:
    """What a scanner should report for a service of this kind (the lab's truth file uses it).

    Keys: service, product, version (nmap conventions, None when nmap would not know), tls, banner.
    banner is the start of what the service sends unprompted, as text (latin-1, line ending
    removed, control characters kept), or None when it waits for the client or its greeting is
    binary (mysql).
    For flood it is the repeating 64-character unit of a 10 MiB stream without line breaks.

    >>> describe("ssh")["product"]
    'OpenSSH'
    """
    try:
        service, product, version, tls, banner = _DESCRIPTIONS[kind]
    except KeyError:
        raise LabError(f"unknown service kind {kind!r} (known: {', '.join(KINDS)})") from None
    return {
        "service": service,
        "product": product,
        "version": version,
        "tls": tls,
        "banner": banner,
    }


# ---------------------------------------------------------------------------------------------
# The spec


@dataclass(frozen=True, slots=True)
class Service:
    """One listener: a kind of service on (addr, port)."""

    addr: str
    port: int
    kind: str


@dataclass(frozen=True, slots=True)
class Spec:
    """Every listener of one labsvc process, and the idle timeout for their connections."""

    services: tuple[Service, ...]
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


def parse_spec(data: object) -> Spec:
    """Validate a decoded SPEC.json document; raise LabError naming the first problem."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise LabError('spec must be an object with a "services" list')
    idle = data.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 0 < idle <= 86400:
        raise LabError(
            f"spec: idle_timeout must be a number of seconds in (0, 86400], not {idle!r}"
        )
    services: list[Service] = []
    seen: set[tuple[str, int]] = set()
    for i, entry in enumerate(data["services"]):
        where = f"spec: services[{i}]"
        if not isinstance(entry, dict):
            raise LabError(f"{where} must be an object with addr, port and kind")
        addr, port, kind = entry.get("addr"), entry.get("port"), entry.get("kind")
        try:
            ip = ipaddress.ip_address(addr if isinstance(addr, str) else "")
        except ValueError:
            raise LabError(f"{where}: addr {addr!r} is not an IPv4 or IPv6 address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise LabError(f"{where}: addr {addr} must be one unicast address")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise LabError(f"{where}: port {port!r} must be an integer in 1-65535")
        if kind not in _DESCRIPTIONS:
            raise LabError(f"{where}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        key = (ip.compressed, port)
        if key in seen:
            raise LabError(f"{where}: {_hostport(ip.compressed, port)} is listed twice")
        seen.add(key)
        services.append(Service(ip.compressed, port, cast(str, kind)))
    return Spec(tuple(services), float(idle))


def load_spec(path: str) -> Spec:
    """Read and validate SPEC.json."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise LabError(f"cannot read spec {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise LabError(f"spec {path} is not valid JSON: {exc}") from exc
    return parse_spec(data)


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


# ---------------------------------------------------------------------------------------------
# Connection protocols


class _Context:
    """State shared by every connection of one server."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle = idle_timeout
        self.conns: set[_Conn] = set()
        self.started = time.time()
        self.next_id = 8  # MySQL connection ids; real servers start low too


class _Conn(asyncio.Protocol):
    """Base: idle timeout (checked lazily, so data costs one clock read), buffering, tracking."""

    idle_timeout = True
    max_buffer = 65536

    def __init__(self, ctx: _Context, service: Service) -> None:
        self.ctx = ctx
        self.service = service
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.closing = False
        self.last = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ctx.conns.add(self)
        if self.idle_timeout:
            self.last = self.loop.time()
            self.timer = self.loop.call_later(self.ctx.idle, self._check_idle)
        self.start()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.ctx.conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        self.last = self.loop.time()
        if self.closing:
            return
        self.buf += data
        self.feed()
        if len(self.buf) > self.max_buffer and not self.closing:
            self.overflow()

    def eof_received(self) -> bool | None:
        return None  # the client is done: close our side too

    def _check_idle(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        remaining = self.last + self.ctx.idle - self.loop.time()
        if remaining > 0:
            self.timer = self.loop.call_later(remaining, self._check_idle)
        else:
            self.abort()

    # helpers for subclasses

    def start(self) -> None:
        """Called once connected (after the TLS handshake): send the greeting, if any."""

    def feed(self) -> None:
        """Consume what is complete in self.buf."""
        self.buf.clear()

    def overflow(self) -> None:
        self.close()

    def send(self, data: bytes | memoryview) -> None:
        # is_closing() is already true when the peer reset us but connection_lost() is still
        # queued: writing then only makes asyncio log "socket.send() raised exception."
        if not self.closing and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def say(self, *lines: str) -> None:
        self.send("".join(line + "\r\n" for line in lines).encode("utf-8", "replace"))

    def close(self) -> None:
        """Close after what was written has been sent."""
        if not self.closing and self.transport is not None:
            self.closing = True
            self.transport.close()

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def peer_host(self) -> str:
        peer = self.transport.get_extra_info("peername") if self.transport else None
        return str(peer[0]) if peer else "unknown"


class _LineConn(_Conn):
    """A line-based text protocol (CRLF or LF)."""

    max_line = 4096

    def feed(self) -> None:
        buf = self.buf
        while not self.closing:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > self.max_line:
                    self.line_too_long()
                return
            line = bytes(buf[:end]).rstrip(b"\r").decode("latin-1")
            del buf[: end + 1]
            self.line(line)

    def line(self, line: str) -> None:
        raise NotImplementedError

    def line_too_long(self) -> None:
        self.close()


# --- ssh ---------------------------------------------------------------------------------------

_SSH_KEX_LISTS = (
    "sntrup761x25519-sha512@openssh.com,curve25519-sha256,curve25519-sha256@libssh.org,"
    "ecdh-sha2-nistp256,ecdh-sha2-nistp384,ecdh-sha2-nistp521,diffie-hellman-group-exchange-sha256,"
    "diffie-hellman-group16-sha512,diffie-hellman-group18-sha512,diffie-hellman-group14-sha256,"
    "kex-strict-s-v00@openssh.com",
    "rsa-sha2-512,rsa-sha2-256,ecdsa-sha2-nistp256,ssh-ed25519",
    *(
        [
            "chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr,"
            "aes128-gcm@openssh.com,aes256-gcm@openssh.com"
        ]
        * 2
    ),
    *(
        [
            "umac-64-etm@openssh.com,umac-128-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
            "hmac-sha2-512-etm@openssh.com,hmac-sha1-etm@openssh.com,umac-64@openssh.com,"
            "umac-128@openssh.com,hmac-sha2-256,hmac-sha2-512,hmac-sha1"
        ]
        * 2
    ),
    "none,zlib@openssh.com",
    "none,zlib@openssh.com",
    "",
    "",
)
_SSH_KEX_BODY = b"".join(
    len(item).to_bytes(4, "big") + item.encode("ascii") for item in _SSH_KEX_LISTS
) + bytes(5)  # first_kex_packet_follows = FALSE, reserved uint32 0


def _ssh_kexinit() -> bytes:
    """An unencrypted SSH_MSG_KEXINIT binary packet (RFC 4253 sections 6 and 7.1)."""
    payload = b"\x14" + os.urandom(16) + _SSH_KEX_BODY
    pad = 8 - (5 + len(payload)) % 8
    if pad < 4:
        pad += 8
    return (1 + len(payload) + pad).to_bytes(4, "big") + bytes([pad]) + payload + os.urandom(pad)


class _SshConn(_LineConn):
    max_line = 255  # RFC 4253 section 4.2: the identification line is at most 255 bytes

    def start(self) -> None:
        self.identified = False
        self.say(_SSH_BANNER)

    def feed(self) -> None:
        if self.identified:
            self.buf.clear()  # binary packets we cannot continue with; wait for close or idle
            return
        super().feed()

    def line(self, line: str) -> None:
        if self.identified:
            return
        if line.startswith(("SSH-2.0-", "SSH-1.99-")):
            self.identified = True
            self.buf.clear()
            self.send(_ssh_kexinit())
        elif line.startswith("SSH-"):
            self.say("Protocol major versions differ: 2 vs. 1")
            self.close()
        else:
            self.say("Invalid SSH identification string.")
            self.close()

    def line_too_long(self) -> None:
        self.say("Invalid SSH identification string.")
        self.close()


# --- http, https, elasticsearch ------------------------------------------------------------------


def _http_date(ts: float | None = None) -> str:
    return email.utils.formatdate(ts, usegmt=True)


_NGINX_PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
"""

_APACHE_PAGE = b"""<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">
<html xmlns="http://www.w3.org/1999/xhtml">
  <head>
    <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
    <title>Apache2 Debian Default Page: It works</title>
  </head>
  <body>
    <h1>It works!</h1>
    <p>This is the default welcome page used to test the correct operation of the Apache2
    server after installation on Debian systems.</p>
  </body>
</html>
"""

_ES_BODY = (
    json.dumps(
        {
            "name": "es-lab-01",
            "cluster_name": "lab-cluster",
            "cluster_uuid": "Q2m3bXlBTkW5v1lS0iWm9A",
            "version": {
                "number": _ES_VERSION,
                "build_flavor": "default",
                "build_type": "deb",
                "build_hash": "6f9ff581fbcde658e6f69d6ce03050f060d1fd0c",
                "build_date": "2023-11-11T10:05:59.421038163Z",
                "build_snapshot": False,
                "lucene_version": "9.8.0",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        },
        indent=2,
        separators=(",", " : "),  # Jackson's pretty printer, which nmap's pattern expects
    ).encode("ascii")
    + b"\n"
)

_STARTED_HTTP_DATE = _http_date()
_HTTP_METHOD_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ-_")


class _HttpConn(_Conn):
    """HTTP/1.x server skeleton: request framing, keep-alive, pipelining; subclasses pick pages."""

    max_head = 16384
    max_buffer = 1 << 20

    def start(self) -> None:
        self.skip = 0  # request body bytes still to discard
        self.version = "HTTP/1.1"  # of the request being answered

    def feed(self) -> None:
        buf = self.buf
        while not self.closing:
            if self.skip:
                n = min(self.skip, len(buf))
                del buf[:n]
                self.skip -= n
                if self.skip:
                    return
            while buf[:2] == b"\r\n" or buf[:1] == b"\n":  # RFC 9112 2.2: ignore leading CRLFs
                del buf[: 2 if buf[:1] == b"\r" else 1]
            if buf and buf[0] not in _HTTP_METHOD_CHARS:
                # Not HTTP (a TLS ClientHello, a binary probe): like nginx, answer 400 at once.
                self.bad_request()
                return
            first = buf.find(b"\n")
            if first < 0:
                if len(buf) > self.max_head:
                    self.bad_request()
                return
            if len(buf[:first].split()) == 2:  # HTTP/0.9 "GET /": no headers follow
                line = bytes(buf[:first])
                del buf[: first + 1]
                self.simple_request(line.split())
                return
            end, sep = buf.find(b"\r\n\r\n"), 4
            lf = buf.find(b"\n\n")
            if lf >= 0 and (end < 0 or lf < end):
                end, sep = lf, 2
            if end < 0:
                if len(buf) > self.max_head:
                    self.bad_request()
                return
            head = bytes(buf[:end])
            del buf[: end + sep]
            self.request(head)

    def request(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\n")
        parts = lines[0].rstrip("\r").split(" ")
        if (
            len(parts) != 3
            or not parts[0]
            or not _HTTP_METHOD_CHARS.issuperset(parts[0].encode("latin-1"))
            or parts[2] not in ("HTTP/1.0", "HTTP/1.1")
        ):
            self.bad_request()
            return
        method, target, version = parts
        self.version = version
        headers: dict[str, str] = {}
        for raw in lines[1:]:
            name, colon, value = raw.rstrip("\r").partition(":")
            if not colon or not name or name != name.strip():
                self.bad_request()
                return
            headers[name.lower()] = value.strip()
        connection = headers.get("connection", "").lower()
        # HTTP/1.1 is persistent unless "close"; HTTP/1.0 only with "keep-alive" (RFC 9112 9.3).
        keep = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
        if "transfer-encoding" in headers:
            keep = False  # we do not decode chunked bodies: answer, then close
        length = headers.get("content-length", "0")
        if not length.isdigit():
            self.bad_request()
            return
        self.skip = int(length)
        status, extra, body = self.page(method, target)
        self.send(self.response(status, extra, b"" if method == "HEAD" else body, len(body), keep))
        if not keep:
            self.close()

    def simple_request(self, parts: list[bytes]) -> None:
        if parts[0] != b"GET":
            self.bad_request()
            return
        self.send(self.page("GET", parts[1].decode("latin-1"))[2])
        self.close()

    def bad_request(self) -> None:
        body = self.error_page("400 Bad Request")
        self.send(self.response("400 Bad Request", [], body, len(body), False))
        self.close()

    def overflow(self) -> None:
        self.bad_request()

    # per-server flavour

    def page(self, method: str, target: str) -> tuple[str, list[str], bytes]:
        raise NotImplementedError

    def response(
        self, status: str, extra: list[str], body: bytes, length: int, keep: bool
    ) -> bytes:
        raise NotImplementedError

    def error_page(self, status: str) -> bytes:
        raise NotImplementedError


class _NginxConn(_HttpConn):
    def page(self, method: str, target: str) -> tuple[str, list[str], bytes]:
        return (
            "200 OK",
            [f"Last-Modified: {_STARTED_HTTP_DATE}", 'ETag: "6537cac7-267"'],
            _NGINX_PAGE,
        )

    def response(
        self, status: str, extra: list[str], body: bytes, length: int, keep: bool
    ) -> bytes:
        head = [
            f"HTTP/1.1 {status}",
            f"Server: {_NGINX}",
            f"Date: {_http_date()}",
            "Content-Type: text/html",
            f"Content-Length: {length}",
            *extra,
            f"Connection: {'keep-alive' if keep else 'close'}",
        ]
        if status.startswith("200"):
            head.append("Accept-Ranges: bytes")
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    def error_page(self, status: str) -> bytes:
        return (
            f"<html>\r\n<head><title>{status}</title></head>\r\n<body>\r\n"
            f"<center><h1>{status}</h1></center>\r\n<hr><center>{_NGINX}</center>\r\n"
            "</body>\r\n</html>\r\n"
        ).encode("latin-1")


class _ApacheConn(_HttpConn):
    def page(self, method: str, target: str) -> tuple[str, list[str], bytes]:
        return (
            "200 OK",
            [
                f"Last-Modified: {_STARTED_HTTP_DATE}",
                'ETag: "29cd-60b1e5b8a4c80"',
                "Accept-Ranges: bytes",
                "Vary: Accept-Encoding",
            ],
            _APACHE_PAGE,
        )

    def response(
        self, status: str, extra: list[str], body: bytes, length: int, keep: bool
    ) -> bytes:
        head = [
            f"HTTP/1.1 {status}",
            f"Date: {_http_date()}",
            f"Server: {_APACHE}",
            *extra,
            f"Content-Length: {length}",
        ]
        if keep:
            head += ["Keep-Alive: timeout=5, max=100", "Connection: Keep-Alive"]
        else:
            head.append("Connection: close")
        head.append(
            f"Content-Type: text/html{'' if status.startswith('200') else '; charset=iso-8859-1'}"
        )
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    def error_page(self, status: str) -> bytes:
        return (
            '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
            f"<title>{status}</title>\n</head><body>\n<h1>{status[4:]}</h1>\n"
            "<p>Your browser sent a request that this server could not understand.<br />\n</p>\n"
            f"<hr>\n<address>{_APACHE} Server at lab.example Port {self.service.port}</address>\n"
            "</body></html>\n"
        ).encode("latin-1")


class _ElasticConn(_HttpConn):
    def page(self, method: str, target: str) -> tuple[str, list[str], bytes]:
        path = target.split("?", 1)[0]
        if path == "/" and method in ("GET", "HEAD"):
            return "200 OK", [], _ES_BODY
        return "400 Bad Request", [], self.error_page(f"{method} {target}")

    def response(
        self, status: str, extra: list[str], body: bytes, length: int, keep: bool
    ) -> bytes:
        # Netty answers in the request's HTTP version, with lower-case header names and no Server
        # header. Exactly these two headers, as Elasticsearch 7 sent them: nmap 7.93's pattern
        # wants them alone (8.x adds X-elastic-product, which that pattern does not allow).
        head = [
            f"{self.version} {status}",
            "content-type: application/json; charset=UTF-8",
            f"content-length: {length}",
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    def error_page(self, status: str) -> bytes:
        method, _, uri = status.partition(" ")
        if method.isdigit():  # a framing error, not a routing one
            return b'{"error":"bad request","status":400}'
        reason = f"no handler found for uri [{uri}] and method [{method}]"
        return json.dumps({"error": reason}).encode("latin-1")


# --- ftp, smtp, pop3, imap -----------------------------------------------------------------------


class _FtpConn(_LineConn):
    max_line = 4096

    def start(self) -> None:
        self.user: str | None = None
        self.say(_FTP_BANNER)

    def line(self, line: str) -> None:
        verb, _, arg = line.strip().partition(" ")
        verb = verb.upper()
        if verb == "USER":
            self.user = arg
            self.say("331 Please specify the password.")
        elif verb == "PASS":
            if self.user is None:
                self.say("503 Login with USER first.")
            else:
                self.user = None
                self.say("530 Login incorrect.")
        elif verb == "QUIT":
            self.say("221 Goodbye.")
            self.close()
        elif verb == "FEAT":
            self.say(
                "211-Features:",
                " EPRT",
                " EPSV",
                " MDTM",
                " PASV",
                " REST STREAM",
                " SIZE",
                " TVFS",
                "211 End",
            )
        elif verb == "OPTS" and arg.upper().startswith("UTF8 ON"):
            self.say("200 Always in UTF8 mode.")
        else:
            self.say("530 Please login with USER and PASS.")

    def line_too_long(self) -> None:
        self.buf.clear()
        self.say("500 Input line too long.")


_EHLO_LINES = (
    _SMTP_HOST,
    "PIPELINING",
    "SIZE 10240000",
    "VRFY",
    "ETRN",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
)


class _SmtpConn(_LineConn):
    max_line = 2048  # Postfix line_length_limit

    def start(self) -> None:
        self.helo = False
        self.mail = False
        self.say(_SMTP_BANNER)

    def line(self, line: str) -> None:
        verb, _, arg = line.strip().partition(" ")
        verb = verb.upper()
        arg = arg.strip()
        if verb == "EHLO":
            if not arg:
                self.say("501 Syntax: EHLO hostname")
                return
            self.helo, self.mail = True, False
            self.say(*(f"250-{x}" for x in _EHLO_LINES[:-1]), f"250 {_EHLO_LINES[-1]}")
        elif verb == "HELO":
            if not arg:
                self.say("501 Syntax: HELO hostname")
                return
            self.helo, self.mail = True, False
            self.say(f"250 {_SMTP_HOST}")
        elif verb == "MAIL":
            if not self.helo:
                self.say("503 5.5.1 Error: send HELO/EHLO first")
            elif self.mail:
                self.say("503 5.5.1 Error: nested MAIL command")
            else:
                self.mail = True
                self.say("250 2.1.0 Ok")
        elif verb == "RCPT":
            if not self.mail:
                self.say("503 5.5.1 Error: need MAIL command")
            else:
                rcpt = arg[arg.find("<") : arg.find(">") + 1] if "<" in arg else arg
                self.say(f"454 4.7.1 {rcpt}: Relay access denied")
        elif verb == "DATA":
            if not self.mail:
                self.say("503 5.5.1 Error: need RCPT command")
            else:
                self.say("554 5.5.1 Error: no valid recipients")
        elif verb in ("RSET", "NOOP"):
            if verb == "RSET":
                self.mail = False
            self.say("250 2.0.0 Ok")
        elif verb == "VRFY":
            self.say(f"252 2.0.0 {arg}" if arg else "501 5.5.4 Syntax: VRFY address")
        elif verb == "QUIT":
            self.say("221 2.0.0 Bye")
            self.close()
        elif verb in ("CONNECT", "GET", "POST"):  # Postfix smtpd_forbidden_commands
            self.say("221 2.7.0 Error: I can break rules, too. Goodbye.")
            self.close()
        elif not verb:
            self.say("500 5.5.2 Error: bad syntax")
        else:
            self.say("502 5.5.2 Error: command not recognized")

    def line_too_long(self) -> None:
        self.buf.clear()
        self.say("500 5.5.2 Error: bad syntax")


class _Pop3Conn(_LineConn):
    max_line = 4096

    def start(self) -> None:
        self.user = False
        self.say(_POP3_BANNER)

    def line(self, line: str) -> None:
        verb, _, _arg = line.strip().partition(" ")
        verb = verb.upper()
        if verb == "CAPA":
            self.say(
                "+OK",
                "CAPA",
                "TOP",
                "UIDL",
                "RESP-CODES",
                "PIPELINING",
                "AUTH-RESP-CODE",
                "USER",
                "SASL PLAIN",
                ".",
            )
        elif verb == "USER":
            self.user = True
            self.say("+OK")
        elif verb == "PASS":
            if self.user:
                self.user = False
                self.say("-ERR [AUTH] Authentication failed.")
            else:
                self.say("-ERR No username given.")
        elif verb == "NOOP":
            self.say("+OK")
        elif verb == "QUIT":
            self.say("+OK Logging out")
            self.close()
        else:
            self.say("-ERR Unknown command.")


class _ImapConn(_LineConn):
    max_line = 8192

    def start(self) -> None:
        self.say(_IMAP_BANNER)

    def line(self, line: str) -> None:
        tag, _, rest = line.strip().partition(" ")
        verb = rest.strip().partition(" ")[0].upper()
        # Dovecot: an empty line or a bad tag is an untagged BAD; a tag followed by something
        # that is not a command name a tagged one (nmap's Dovecot match after "GET / HTTP/1.0").
        if not tag or not tag.isprintable() or any(c in tag for c in '(){%*"\\+'):
            self.say("* BAD Error in IMAP command received by server.")
        elif not verb.isalpha():
            self.say(f"{tag} BAD Error in IMAP command received by server.")
        elif verb == "CAPABILITY":
            self.say(
                f"* CAPABILITY {_IMAP_CAPS}",
                f"{tag} OK Pre-login capabilities listed, post-login capabilities have more.",
            )
        elif verb == "NOOP":
            self.say(f"{tag} OK NOOP completed.")
        elif verb == "ID":
            self.say('* ID ("name" "Dovecot")', f"{tag} OK ID completed.")
        elif verb in ("LOGIN", "AUTHENTICATE"):
            self.say(f"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.")
        elif verb == "LOGOUT":
            self.say("* BYE Logging out", f"{tag} OK Logout completed.")
            self.close()
        else:
            self.say(f"{tag} BAD Error in IMAP command {verb}: Unknown command.")


# --- mysql ---------------------------------------------------------------------------------------

# Server capability flags of MySQL 8.0 without CLIENT_SSL (0x0800): we cannot do the TLS upgrade.
_MYSQL_CAPS = 0xDFFFF7FF
_MYSQL_PLUGIN = b"caching_sha2_password"
_SALT_CHARS = bytes(range(0x21, 0x7F))


def _mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


def _mysql_error(seq: int, code: int, state: str, message: str) -> bytes:
    body = b"\xff" + code.to_bytes(2, "little") + b"#" + state.encode() + message.encode("utf-8")
    return _mysql_packet(seq, body)


class _MysqlConn(_Conn):
    def start(self) -> None:
        self.ctx.next_id += 1
        salt = bytes(_SALT_CHARS[b % len(_SALT_CHARS)] for b in os.urandom(20))
        payload = b"".join(
            (
                b"\x0a",  # protocol version 10
                _MYSQL_VERSION.encode() + b"\x00",
                self.ctx.next_id.to_bytes(4, "little"),
                salt[:8] + b"\x00",  # auth-plugin-data-part-1 and filler
                (_MYSQL_CAPS & 0xFFFF).to_bytes(2, "little"),
                b"\xff",  # utf8mb4_0900_ai_ci
                (0x0002).to_bytes(2, "little"),  # SERVER_STATUS_AUTOCOMMIT
                (_MYSQL_CAPS >> 16).to_bytes(2, "little"),
                bytes([len(salt) + 1]),
                bytes(10),  # reserved
                salt[8:] + b"\x00",  # auth-plugin-data-part-2: 13 bytes
                _MYSQL_PLUGIN + b"\x00",
            )
        )
        self.send(_mysql_packet(0, payload))

    def feed(self) -> None:
        buf = self.buf
        if len(buf) < 4:
            return
        length = int.from_bytes(buf[:3], "little")
        seq = buf[3]
        if seq != 1 or length > 16384:  # e.g. an HTTP request read as a packet header
            self.send(_mysql_error(seq + 1, 1156, "08S01", "Got packets out of order"))
            self.close()
            return
        if len(buf) < 4 + length:
            return
        packet = bytes(buf[4 : 4 + length])
        buf.clear()
        user, password = self._parse_login(packet)
        if user is None:
            self.send(_mysql_error(seq + 1, 1043, "08S01", "Bad handshake"))
        else:
            self.send(
                _mysql_error(
                    seq + 1,
                    1045,
                    "28000",
                    f"Access denied for user '{user}'@'{self.peer_host()}' "
                    f"(using password: {'YES' if password else 'NO'})",
                )
            )
        self.close()

    @staticmethod
    def _parse_login(packet: bytes) -> tuple[str | None, bool]:
        """Username and whether a password was sent, from a HandshakeResponse41."""
        if len(packet) < 33:
            return None, False
        caps = int.from_bytes(packet[:4], "little")
        if not caps & 0x0200:  # CLIENT_PROTOCOL_41
            return None, False
        end = packet.find(b"\x00", 32)
        if end < 0:
            return None, False
        user = packet[32:end].decode("utf-8", "replace")
        rest = packet[end + 1 :]
        if caps & 0x00200000 and rest:  # CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            return user, rest[0] not in (0, 0xFB)
        if caps & 0x8000 and rest:  # CLIENT_SECURE_CONNECTION: one length byte
            return user, rest[0] != 0
        return user, bool(rest[:1]) and rest[0] != 0


# --- postgresql ----------------------------------------------------------------------------------

_PG_SSL_REQUEST = 80877103
_PG_GSS_REQUEST = 80877104
_PG_CANCEL_REQUEST = 80877102


def _pg_error(code: str, message: str, file: str, line: int, routine: str) -> bytes:
    """An ErrorResponse message (PostgreSQL protocol 3.0, 'E')."""
    fields = b"".join(
        tag + value.encode("utf-8") + b"\x00"
        for tag, value in (
            (b"S", "FATAL"),
            (b"V", "FATAL"),
            (b"C", code),
            (b"M", message),
            (b"F", file),
            (b"L", str(line)),
            (b"R", routine),
        )
    )
    fields += b"\x00"
    return b"E" + (len(fields) + 4).to_bytes(4, "big") + fields


class _PostgresConn(_Conn):
    def feed(self) -> None:
        buf = self.buf
        while not self.closing and len(buf) >= 4:
            length = int.from_bytes(buf[:4], "big")
            if not 8 <= length <= 10000:
                self.abort()  # "invalid length of startup packet": PostgreSQL just hangs up
                return
            if len(buf) < length:
                return
            code = int.from_bytes(buf[4:8], "big")
            body = bytes(buf[8:length])
            del buf[:length]
            self.startup(code, body)

    def startup(self, code: int, body: bytes) -> None:
        if code in (_PG_SSL_REQUEST, _PG_GSS_REQUEST):
            self.send(b"N")  # no SSL / no GSSAPI encryption: continue in clear text
            return
        if code == _PG_CANCEL_REQUEST:
            self.close()
            return
        major, minor = code >> 16, code & 0xFFFF
        if major != 3:
            self.send(
                _pg_error(
                    "0A000",
                    f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
                    "postmaster.c",
                    2205,
                    "ProcessStartupPacket",
                )
            )
            self.close()
            return
        items = body.split(b"\x00")
        params = {
            items[i].decode("utf-8", "replace"): items[i + 1].decode("utf-8", "replace")
            for i in range(0, len(items) - 1, 2)
            if items[i]
        }
        user = params.get("user")
        if not user:
            msg = _pg_error(
                "28000",
                "no PostgreSQL user name specified in startup packet",
                "postmaster.c",
                2280,
                "ProcessStartupPacket",
            )
        else:
            database = params.get("database") or user
            msg = _pg_error(
                "28000",
                f'no pg_hba.conf entry for host "{self.peer_host()}", user "{user}", '
                f'database "{database}", no encryption',
                "auth.c",
                543,
                "ClientAuthentication",
            )
        self.send(msg)
        self.close()


# --- redis ---------------------------------------------------------------------------------------


class _RedisError(Exception):
    """A RESP protocol error: Redis answers -ERR Protocol error and hangs up."""


# Accepted argument counts (min, max) of the commands we implement.
_REDIS_ARITY = {
    "ping": (0, 1),
    "echo": (1, 1),
    "quit": (0, 99),
    "select": (1, 1),
    "get": (1, 1),
    "set": (2, 99),
    "del": (1, 1 << 20),
    "exists": (1, 1 << 20),
    "dbsize": (0, 0),
    "info": (0, 99),
}


class _RedisConn(_Conn):
    max_buffer = 1 << 20
    max_keys = 10000

    def __init__(self, ctx: _Context, service: Service, store: dict[bytes, bytes]) -> None:
        super().__init__(ctx, service)
        self.store = store

    def feed(self) -> None:
        buf = self.buf
        try:
            while not self.closing and buf:
                if buf[0] == 0x2A:  # '*': a multibulk request
                    args = self._multibulk()
                    if args is None:
                        return
                else:
                    end = buf.find(b"\n")
                    if end < 0:
                        if len(buf) > 65536:
                            raise _RedisError("too big inline request")
                        return
                    args = bytes(buf[:end]).split()
                    del buf[: end + 1]
                if args:
                    self.command(args)
        except _RedisError as exc:
            self.send(b"-ERR Protocol error: " + str(exc).encode() + b"\r\n")
            self.close()

    def _multibulk(self) -> list[bytes] | None:
        buf = self.buf
        end = buf.find(b"\r\n")
        if end < 0:
            if len(buf) > 65536:
                raise _RedisError("too big mbulk count string")
            return None
        try:
            count = int(buf[1:end])
        except ValueError:
            raise _RedisError("invalid multibulk length") from None
        if count > 1024 * 1024:
            raise _RedisError("invalid multibulk length")
        pos = end + 2
        args: list[bytes] = []
        for _ in range(count):
            if pos >= len(buf):
                return None
            if buf[pos] != 0x24:  # '$'
                raise _RedisError(f"expected '$', got '{chr(buf[pos])}'")
            end = buf.find(b"\r\n", pos)
            if end < 0:
                return None
            try:
                size = int(buf[pos + 1 : end])
            except ValueError:
                raise _RedisError("invalid bulk length") from None
            if not 0 <= size <= self.max_buffer:
                raise _RedisError("invalid bulk length")
            if end + 2 + size + 2 > len(buf):
                return None
            args.append(bytes(buf[end + 2 : end + 2 + size]))
            pos = end + 2 + size + 2
        del buf[:pos]
        return args

    def overflow(self) -> None:
        self.send(b"-ERR Protocol error: request too big\r\n")
        self.close()

    def command(self, args: list[bytes]) -> None:
        name = args[0].decode("latin-1")
        cmd = name.lower()
        n = len(args) - 1
        arity = _REDIS_ARITY
        if cmd in ("post", "host:"):
            self.abort()  # Redis: "Possible SECURITY ATTACK detected" (HTTP sent to Redis)
            return
        if cmd not in arity:
            shown = "".join(f"'{a[:128].decode('latin-1')}' " for a in args[1:])
            reply = f"-ERR unknown command '{name[:128]}', with args beginning with: {shown}\r\n"
            self.send(reply.encode("latin-1"))
            return
        low, high = arity[cmd]
        if not low <= n <= high:
            self.send(f"-ERR wrong number of arguments for '{cmd}' command\r\n".encode())
            return
        if cmd == "ping":
            self.send(b"+PONG\r\n" if n == 0 else _bulk(args[1]))
        elif cmd == "echo":
            self.send(_bulk(args[1]))
        elif cmd == "quit":
            self.send(b"+OK\r\n")
            self.close()
        elif cmd == "select":
            ok = args[1].isdigit() and int(args[1]) < 16
            self.send(b"+OK\r\n" if ok else b"-ERR DB index is out of range\r\n")
        elif cmd == "get":
            value = self.store.get(args[1])
            self.send(b"$-1\r\n" if value is None else _bulk(value))
        elif cmd == "set":
            if args[1] not in self.store and len(self.store) >= self.max_keys:
                self.send(b"-OOM command not allowed when used memory > 'maxmemory'.\r\n")
            else:
                self.store[args[1]] = args[2]
                self.send(b"+OK\r\n")
        elif cmd == "del":
            self.send(b":%d\r\n" % sum(self.store.pop(k, None) is not None for k in args[1:]))
        elif cmd == "exists":
            self.send(b":%d\r\n" % sum(k in self.store for k in args[1:]))
        elif cmd == "dbsize":
            self.send(b":%d\r\n" % len(self.store))
        else:
            self.send(_bulk(self.info([a.decode("latin-1").lower() for a in args[1:]])))

    def info(self, sections: list[str]) -> bytes:
        uptime = int(time.time() - self.ctx.started)
        clients = sum(isinstance(c, _RedisConn) for c in self.ctx.conns)
        text = {
            "server": [
                f"redis_version:{_REDIS_VERSION}",
                "redis_git_sha1:00000000",
                "redis_git_dirty:0",
                "redis_build_id:5e5aa8a9f8b2e0c3",
                "redis_mode:standalone",
                "os:Linux 6.1.0-18-amd64 x86_64",
                "arch_bits:64",
                "monotonic_clock:POSIX clock_gettime",
                "multiplexing_api:epoll",
                "atomicvar_api:c11-builtin",
                "gcc_version:12.2.0",
                f"process_id:{os.getpid()}",
                "process_supervised:systemd",
                "run_id:1f0b6c3a9e3c4d2b8a7f6e5d4c3b2a1908f7e6d5",
                f"tcp_port:{self.service.port}",
                f"server_time_usec:{int(time.time() * 1e6)}",
                f"uptime_in_seconds:{uptime}",
                f"uptime_in_days:{uptime // 86400}",
                "hz:10",
                "configured_hz:10",
                "executable:/usr/bin/redis-server",
                "config_file:/etc/redis/redis.conf",
                "io_threads_active:0",
            ],
            "clients": [
                f"connected_clients:{clients}",
                "cluster_connections:0",
                "maxclients:10000",
                "blocked_clients:0",
            ],
            "memory": ["used_memory:1046440", "used_memory_human:1021.91K", "maxmemory:0"],
            "persistence": ["loading:0", "rdb_changes_since_last_save:0"],
            "replication": ["role:master", "connected_slaves:0"],
            "keyspace": [f"db0:keys={len(self.store)},expires=0,avg_ttl=0"] if self.store else [],
        }
        wanted = [s for s in sections if s not in ("all", "default", "everything")]
        chosen = [s for s in text if s in wanted] if wanted else list(text)
        return "\r\n".join(
            f"# {s.capitalize()}\r\n" + "".join(line + "\r\n" for line in text[s]) for s in chosen
        ).encode("latin-1")


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


# --- escape, flood, silent, echo ------------------------------------------------------------------


class _EscapeConn(_Conn):
    def start(self) -> None:
        self.send(_ESCAPE_BANNER.encode("latin-1") + b"\r\n")


class _FloodConn(_Conn):
    def start(self) -> None:
        self.sent = 0
        self.paused = False
        self.chunk = memoryview(_FLOOD_CHUNK)
        self.pump()

    def pump(self) -> None:
        while not self.paused and not self.closing:
            if self.transport is None or self.transport.is_closing():
                return
            if self.sent >= FLOOD_BYTES:
                self.close()
                return
            n = min(len(self.chunk), FLOOD_BYTES - self.sent)
            self.sent += n
            self.send(self.chunk[:n])  # may call pause_writing() synchronously

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.last = self.loop.time()  # the client is reading: not idle
        # Not inline: CPython 3.11's _write_ready() calls resume_writing() and then, if the buffer
        # is empty and the transport closing, connection_lost() directly; a close() from in here
        # would schedule a second connection_lost() (AttributeError on a None socket).
        self.loop.call_soon(self.pump)


class _SilentConn(_Conn):
    idle_timeout = False  # stays until the client closes


class _EchoConn(_Conn):
    """RFC 862: everything received goes back as it came."""

    def feed(self) -> None:
        self.send(bytes(self.buf))
        self.buf.clear()


class _TlsConn(_Conn):
    """Server-side TLS over memory BIOs, carrying an inner protocol once the handshake is done.

    Not asyncio's own TLS (create_server(ssl=...)): when a handshake fails it drops the alert
    OpenSSL wrote, and scanners recognise TLS by that alert (nmap's SSLSessionReq probe is an
    SSLv3 hello that every modern server refuses with a protocol_version alert).
    """

    def __init__(self, ctx: _Context, service: Service, tls: ssl.SSLContext, inner: _Conn) -> None:
        super().__init__(ctx, service)
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = tls.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.inner = inner
        self.wrapped = False

    def feed(self) -> None:
        self.incoming.write(self.buf)
        self.buf.clear()
        if not self.wrapped:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                return
            except ssl.SSLError:
                self.flush()  # the alert says why
                self.close()
                return
            self.wrapped = True
            self.flush()
            self.inner.connection_made(_TlsTransport(self))
        while not self.closing:
            try:
                data = self.obj.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # the client's close_notify
                self.tls_close()
                return
            except ssl.SSLError:
                self.flush()
                self.close()
                return
            if not data:
                break
            self.inner.data_received(data)
        self.flush()

    def flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.send(data)

    def tls_write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            return
        try:
            self.obj.write(data)
        except ssl.SSLError:
            self.abort()
            return
        self.flush()

    def tls_close(self) -> None:
        if self.closing:
            return
        with contextlib.suppress(ssl.SSLError):
            self.obj.unwrap()  # queues our close_notify; SSLWantReadError while the peer's is due
        self.flush()
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.wrapped:
            self.inner.connection_lost(exc)


class _TlsTransport(asyncio.Transport):
    """What the inner protocol of a _TlsConn writes to: plaintext in, TLS records out."""

    def __init__(self, conn: _TlsConn) -> None:
        super().__init__()
        self._conn = conn

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._conn.tls_write(data)

    def close(self) -> None:
        self._conn.tls_close()

    def abort(self) -> None:
        self._conn.abort()

    def is_closing(self) -> bool:
        return self._conn.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "ssl_object":
            return self._conn.obj
        raw = self._conn.transport
        return raw.get_extra_info(name, default) if raw is not None else default


_PROTOCOLS: dict[str, type[_Conn]] = {
    "ssh": _SshConn,
    "http": _NginxConn,
    "https": _ApacheConn,
    "tls": _SmtpConn,
    "ftp": _FtpConn,
    "smtp": _SmtpConn,
    "pop3": _Pop3Conn,
    "imap": _ImapConn,
    "mysql": _MysqlConn,
    "postgresql": _PostgresConn,
    "redis": _RedisConn,
    "elasticsearch": _ElasticConn,
    "escape": _EscapeConn,
    "flood": _FloodConn,
    "silent": _SilentConn,
    "echo": _EchoConn,
}

# ---------------------------------------------------------------------------------------------
# Server


def _make_tls_contexts() -> dict[str, ssl.SSLContext]:
    """Server contexts for https and tls with one fresh self-signed RSA certificate (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LabError(
            "the openssl command is needed for https/tls services (apt-get install openssl)"
        )
    with tempfile.TemporaryDirectory(prefix="hilos-labsvc-") as tmp:
        key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        cmd = [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "3650",
            "-subj",
            "/CN=lab.example",
            "-addext",
            "subjectAltName=DNS:lab.example,DNS:*.lab.example",
            "-keyout",
            key,
            "-out",
            cert,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LabError(f"openssl could not make a certificate: {exc}") from exc
        if proc.returncode != 0:
            detail = proc.stderr.strip().splitlines()[-1:] or ["no message"]
            raise LabError(f"openssl could not make a certificate: {detail[0]}")
        contexts = {}
        for kind in _TLS_KINDS:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            contexts[kind] = ctx
    contexts["https"].set_alpn_protocols(["http/1.1"])
    return contexts


_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux value; Python does not export it


def _listen(service: Service) -> socket.socket:
    family = socket.AF_INET6 if ":" in service.addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        with contextlib.suppress(OSError):
            # Lets us bind an IPv6 address still in duplicate address detection ("tentative")
            # right after the lab adds it, instead of failing with EADDRNOTAVAIL.
            sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
        sock.bind((service.addr, service.port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        where = f"listening on {_hostport(service.addr, service.port)} ({service.kind})"
        raise from_oserror(exc, where) from exc
    return sock


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            target = soft
    if needed > target:
        raise LabError(
            f"{needed} listeners need more file descriptors than the limit {target} (ulimit -n)"
        )


class LabServer:
    """Every listener of a spec in the running event loop.

    >>> async def demo(spec: Spec) -> None:
    ...     server = LabServer(spec)
    ...     await server.start()    # all bound and serving
    ...     await server.close()
    """

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._ctx = _Context(spec.idle_timeout)
        self._servers: list[asyncio.AbstractServer] = []
        self._tls: dict[str, ssl.SSLContext] = {}

    async def start(self) -> None:
        """Bind every listener and start serving; on any failure close what was bound and raise."""
        services = self.spec.services
        _raise_fd_limit(len(services) + 256)
        if any(s.kind in _TLS_KINDS for s in services):
            self._tls = _make_tls_contexts()
        loop = asyncio.get_running_loop()
        try:
            for service in services:
                sock = _listen(service)
                try:
                    server = await loop.create_server(
                        self._factory(service), sock=sock, backlog=BACKLOG
                    )
                except BaseException:
                    sock.close()
                    raise
                self._servers.append(server)
        except BaseException:
            await self.close()
            raise

    def _factory(self, service: Service) -> Callable[[], asyncio.Protocol]:
        ctx, cls = self._ctx, _PROTOCOLS[service.kind]
        if cls is _RedisConn:
            store: dict[bytes, bytes] = {}  # one keyspace per listener
            return lambda: _RedisConn(ctx, service, store)
        if service.kind in _TLS_KINDS:
            tls = self._tls[service.kind]
            return lambda: _TlsConn(ctx, service, tls, cls(ctx, service))
        return lambda: cls(ctx, service)

    @property
    def connections(self) -> int:
        """Connections open right now."""
        return len(self._ctx.conns)

    async def close(self) -> None:
        """Stop listening and drop every open connection."""
        for server in self._servers:
            server.close()
        for conn in list(self._ctx.conns):
            conn.abort()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()


def _quiet_exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Peers resetting, failing TLS handshakes or timing out are normal here; bugs are not."""
    exc = context.get("exception")
    if isinstance(exc, OSError):
        return
    if exc is None:
        detail = str(context.get("message", ""))
    else:
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    print(f"labsvc: internal error: {detail}", file=sys.stderr, flush=True)


async def _serve(spec: Spec, ready: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_quiet_exception_handler)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = LabServer(spec)
    await server.start()
    try:
        ready()
        await stop.wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hilos.labsvc SPEC.json``: serve until SIGTERM; 0 on a clean stop, 1 on errors."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m hilos.labsvc SPEC.json", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args[0])
        asyncio.run(_serve(spec, lambda: print("ready", flush=True)))
    except HilosError as exc:
        print(f"labsvc: error: {exc}", file=sys.stderr)
        return 1
    except ssl.SSLError as exc:
        print(f"labsvc: error: TLS setup failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
