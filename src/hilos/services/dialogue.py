"""The conversation with one open port: what to send, how long to listen, when to try TLS.

Every read is bounded in size (`READ_LIMIT`) and time (a deadline for the whole dialogue), and
``identify`` never raises for network reasons: a port it cannot talk to gets the table's name.
What the bytes mean is hilos.services.signatures' job.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from hilos.results import PortResult
from hilos.services.signatures import (
    BINARY_GREETERS,
    Match,
    banner_text,
    is_echo,
    match_answer,
    match_greeting,
    name_220,
    postgres_reply,
    redis_version,
    tls_name,
)
from hilos.targets.ports import service_name

__all__ = [
    "DEFAULT_TIMEOUT",
    "GREET_WAIT",
    "PROBE_WAIT",
    "READ_LIMIT",
    "ServiceInfo",
    "identify",
]

READ_LIMIT = 16 * 1024
DEFAULT_TIMEOUT = 2.5  # seconds for the whole dialogue with one port
#: How long to listen for a greeting before speaking; a LAN service greets in milliseconds, and
#: one that greets later still shows its greeting ahead of its answer to our probe.
GREET_WAIT = 0.25
#: How long to wait for the answer to a probe.
PROBE_WAIT = 0.75
_HTTP_PROBE = b"GET / HTTP/1.0\r\nHost: %s\r\nUser-Agent: hilos\r\nAccept: */*\r\n\r\n"
_PG_SSLREQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
_REPLY_220 = re.compile(rb"^220[ -]")


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """What was learned about one port. `method` is "probed" (from the service) or "table"."""

    service: str | None = None
    product: str | None = None
    version: str | None = None
    banner: str | None = None
    tls: bool = False
    method: str = "probed"

    def apply(self, port: PortResult) -> PortResult:
        return replace(
            port,
            service=self.service,
            product=self.product,
            version=self.version,
            banner=self.banner,
            tls=self.tls,
        )


Stream = socket.socket | ssl.SSLSocket
#: (what was learned or None, how the talk ended: "named", "unknown", "closed" (closed on us
#: with no data) or "silent")
Outcome = tuple[ServiceInfo | None, str]


class _Deadline:
    __slots__ = ("end",)

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self, cap: float | None = None) -> float:
        left = self.end - time.monotonic()
        return max(0.0, left if cap is None else min(cap, left))


def _connect(addr: str, port: int, deadline: _Deadline) -> socket.socket | None:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.settimeout(max(0.05, deadline.left()))
        s.connect((addr, port))
    except OSError:
        s.close()
        return None
    return s


def _read(
    s: Stream, wait: float, deadline: _Deadline, enough: Callable[[bytes], bool]
) -> tuple[bytes, bool]:
    """Read until `enough(data)`, the peer closes, READ_LIMIT, or `wait` passes.
    Returns (data, closed_by_peer)."""
    data = b""
    end = time.monotonic() + wait
    while len(data) < READ_LIMIT:
        left = min(end - time.monotonic(), deadline.left())
        if left <= 0:
            return data, False
        s.settimeout(left)
        try:
            chunk = s.recv(min(4096, READ_LIMIT - len(data)))
        except (TimeoutError, ssl.SSLWantReadError):
            return data, False
        except (ssl.SSLError, OSError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
        if enough(data):
            break
    return data, False


def _greeting_enough(data: bytes) -> bool:
    if b"\n" in data:
        return True
    if len(data) >= 4 and data[3] == 0:  # a length-prefixed binary greeting (MySQL)
        return len(data) >= 4 + int.from_bytes(data[:3], "little")
    return False


def _http_enough(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        # Not HTTP at all (Redis, an error line): one line is the whole answer.
        return not data.startswith(b"HTTP/") and b"\n" in data and not data.startswith(b"SSH-")
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if m:
        return len(body) >= int(m.group(1))
    return False  # HTTP/1.0 without a length: read to the close


def _send(s: Stream, payload: bytes, deadline: _Deadline) -> bool:
    try:
        s.settimeout(max(0.05, deadline.left()))
        s.sendall(payload)
    except OSError:
        return False
    return True


def _talk(
    s: Stream, addr: str, deadline: _Deadline, greet_wait: float, probe_wait: float
) -> Outcome:
    """Listen for a greeting, then (still unnamed and open) send the HTTP probe."""
    data, closed = _read(s, greet_wait, deadline, _greeting_enough)
    if data:
        named = _name_greeting(s, data, closed, deadline, probe_wait)
        if named is not None:
            return named
    if closed:
        return None, "closed"
    return _probe(s, addr, data, deadline, probe_wait)


def _name_greeting(
    s: Stream, data: bytes, closed: bool, deadline: _Deadline, probe_wait: float
) -> Outcome | None:
    """What the greeting alone tells, or None to go on and probe."""
    m = match_greeting(data)
    if m is None and _REPLY_220.match(data):
        m = _ask_220(s, deadline, probe_wait, data)
    if m is not None:
        # Binary greetings (MySQL's handshake) make no readable banner.
        banner = None if m[0] in BINARY_GREETERS else banner_text(data)
        return ServiceInfo(m[0], m[1], m[2], banner), "named"
    if closed or len(data) >= READ_LIMIT:
        return ServiceInfo(None, None, None, banner_text(data)), "unknown"
    return None


def _probe(s: Stream, addr: str, data: bytes, deadline: _Deadline, probe_wait: float) -> Outcome:
    """Send an HTTP/1.0 ``GET /`` after greeting `data` (maybe empty) and name the answer."""
    host = addr if ":" not in addr else f"[{addr}]"
    probe = _HTTP_PROBE % host.encode("ascii")
    if not _send(s, probe, deadline):
        return None, "closed"
    more, closed = _read(s, probe_wait, deadline, lambda d: d == probe or _http_enough(d))
    answer = data + more
    if not answer:
        return None, "closed" if closed else "silent"
    if is_echo(more, probe):
        # Our own bytes are no banner (and not HTTP: nmap's "echo", e.g. an RFC 862 service).
        return ServiceInfo("echo", None, None, None), "named"
    m = match_answer(data, more)
    if m is None:
        if answer[:2] == b"\x15\x03":  # a TLS alert: speaks TLS
            return None, "closed"
        return ServiceInfo(None, None, None, banner_text(answer)), "unknown"
    banner = banner_text(data) if data else None
    return ServiceInfo(m[0], m[1], m[2], banner), "named"


def _ask_220(s: Stream, deadline: _Deadline, wait: float, greeting: bytes) -> Match | None:
    """A bare "220 ..." greeting is FTP or SMTP: EHLO tells (SMTP answers 250)."""
    if not _send(s, b"EHLO hilos.invalid\r\n", deadline):
        return None
    answer, _ = _read(s, wait, deadline, lambda d: b"\n" in d)
    return name_220(greeting, answer)


def _tls_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # identification only: any certificate will do
    # Old servers too: any cipher the library still has (identification, not secrecy).
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


_TLS_CTX: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def _tls() -> ssl.SSLContext:
    global _TLS_CTX
    with _TLS_LOCK:
        if _TLS_CTX is None:
            _TLS_CTX = _tls_context()
        return _TLS_CTX


def _redis_version(addr: str, port: int, deadline: _Deadline, wait: float) -> str | None:
    s = _connect(addr, port, deadline)
    if s is None:
        return None
    try:
        if not _send(s, b"INFO server\r\n", deadline):
            return None
        data, _ = _read(s, wait, deadline, lambda d: redis_version(d) is not None)
        return redis_version(data)
    finally:
        s.close()


def identify(
    addr: str,
    port: int,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    greet_wait: float = GREET_WAIT,
    probe_wait: float = PROBE_WAIT,
) -> ServiceInfo:
    """Talk to `addr`:`port` (open) and name its service; see hilos.services.

    Never raises for network reasons: a port that cannot be talked to gets the table's name.
    """
    deadline = _Deadline(timeout)
    info: ServiceInfo | None = None
    ending = "silent"
    s = _connect(addr, port, deadline)
    if s is not None:
        try:
            info, ending = _talk(s, addr, deadline, greet_wait, probe_wait)
        finally:
            s.close()
    if info is None and ending == "closed" and deadline.left() > 0:
        info = _try_tls(addr, port, deadline, greet_wait, probe_wait)
        if info is None and deadline.left() > 0:
            info = _try_postgres(addr, port, deadline, probe_wait)
    if info is not None and info.service == "redis" and info.version is None:
        version = _redis_version(addr, port, deadline, probe_wait)
        if version:
            info = replace(info, version=version)
    if info is None:
        return ServiceInfo(service_name(port), method="table")
    return info


def _try_tls(
    addr: str, port: int, deadline: _Deadline, greet_wait: float, probe_wait: float
) -> ServiceInfo | None:
    raw = _connect(addr, port, deadline)
    if raw is None:
        return None
    try:
        raw.settimeout(max(0.05, deadline.left(probe_wait)))
        try:
            s = _tls().wrap_socket(raw, do_handshake_on_connect=True)
        except (ssl.SSLError, OSError, ValueError):
            return None
        try:
            inner, _ = _talk(s, addr, deadline, greet_wait, probe_wait)
        finally:
            s.close()
    finally:
        raw.close()
    if inner is None or inner.service is None:
        banner = inner.banner if inner else None
        return ServiceInfo("ssl", None, None, banner, tls=True)
    return replace(inner, service=tls_name(inner.service), tls=True)


def _try_postgres(addr: str, port: int, deadline: _Deadline, wait: float) -> ServiceInfo | None:
    s = _connect(addr, port, deadline)
    if s is None:
        return None
    try:
        if not _send(s, _PG_SSLREQUEST, deadline):
            return None
        data, _ = _read(s, wait, deadline, lambda d: len(d) >= 1)
    finally:
        s.close()
    if postgres_reply(data):
        return ServiceInfo("postgresql", "PostgreSQL", None, None)
    return None
