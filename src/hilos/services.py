"""Banner grabbing and service identification for open TCP ports (what `--banners` does).

For each open port, one short dialogue, bounded in time and size (banners are untrusted input):

1. connect and listen briefly: most text protocols speak first (SSH, FTP, SMTP, POP3, IMAP, MySQL);
2. silent so far: send an HTTP/1.0 ``GET /`` on the same connection. HTTP servers answer it,
   Redis answers with an error, and a service that spoke late still shows its greeting first;
3. closed on us without a word: try a TLS handshake (``ssl``, no verification) on a new
   connection, and inside it steps 1-2 again (https, smtps, imaps, ...); then a PostgreSQL
   SSLRequest (an ``S`` or ``N`` byte means PostgreSQL).

A service that sends our own probe back is ``echo`` (RFC 862), as nmap names it. The service is
named by what it says, never by its port, so unusual ports come out right. Only
when nothing at all was learned (a service that never speaks) is the name taken from the port
table; such a result has no product, version or banner, which outputs report as "table".
Product and version follow nmap's conventions ("OpenSSH" "9.2p1 Debian 2+deb12u3", "nginx"
"1.22.1", "Apache httpd" "2.4.57", "Postfix smtpd"), matched by regular expressions over the
shapes real servers send, not over the lab's exact strings.

Limits: at most `READ_LIMIT` bytes are read per connection (a 10 MB flood costs 16 KB), every
connection has a deadline, the whole dialogue of a port has one (`timeout`), and banners are
cleaned of escape sequences and control characters (hilos.output.sanitize) before they are kept.

Usage::

    info = identify("127.0.0.1", 22)
    print(info.service, info.product, info.version, info.tls)
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace

from hilos.output.sanitize import BANNER_DATA_LIMIT, clean
from hilos.pool import Pool
from hilos.results import PortResult, ScanHostResult
from hilos.targets.ports import service_name

__all__ = [
    "DEFAULT_THREADS",
    "DEFAULT_TIMEOUT",
    "READ_LIMIT",
    "BannerGrabber",
    "ServiceInfo",
    "identify",
    "match_greeting",
    "match_response",
    "parse_http",
]

READ_LIMIT = 16 * 1024
DEFAULT_TIMEOUT = 2.5  # seconds for the whole dialogue with one port
DEFAULT_THREADS = 128
# How long to listen for a greeting before speaking; a LAN service greets in milliseconds, and
# one that greets later still shows its greeting ahead of its answer to our probe.
_GREET_WAIT = 0.25
# How long to wait for the answer to a probe.
_PROBE_WAIT = 0.75
_TLS_NAMES = {"http": "https", "smtp": "smtps", "imap": "imaps", "pop3": "pop3s", "ftp": "ftps"}
_HTTP_PROBE = b"GET / HTTP/1.0\r\nHost: %s\r\nUser-Agent: hilos\r\nAccept: */*\r\n\r\n"
_BINARY_GREETERS = frozenset({"mysql", "telnet"})
_PG_SSLREQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"


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


Match = tuple[str, str | None, str | None]  # service, product, version


# ------------------------------------------------------------------------------ matchers
_SSH = re.compile(rb"^SSH-(\d+\.\d+)-([^\s\r\n]+)(?:[ \t]+([^\r\n]*))?")
_SSH_PRODUCTS = (
    (re.compile(r"^OpenSSH[_-]([\w.]+)", re.I), "OpenSSH"),
    (re.compile(r"^dropbear[_-]?([\w.]+)?", re.I), "Dropbear sshd"),
    (re.compile(r"^libssh[_-]([\w.]+)", re.I), "libssh"),
    (re.compile(r"^Cisco-([\w.]+)", re.I), "Cisco SSH"),
    (re.compile(r"^RomSShell_([\w.]+)", re.I), "Allegro RomSShell SSH"),
)
_FTP_PRODUCTS = (
    (re.compile(r"vsFTPd ([\w.]+)", re.I), "vsftpd"),
    (re.compile(r"ProFTPD ([\w.]+)", re.I), "ProFTPD"),
    (re.compile(r"Pure-FTPd", re.I), "Pure-FTPd"),
    (re.compile(r"FileZilla Server(?: version)? ([\w.]+(?: beta)?)", re.I), "FileZilla ftpd"),
    (re.compile(r"Microsoft FTP Service", re.I), "Microsoft ftpd"),
    (re.compile(r"wu-([\w.()-]+)", re.I), "WU-FTPD"),
)
_SMTP_PRODUCTS = (
    (re.compile(r"\bPostfix\b", re.I), "Postfix smtpd"),
    (re.compile(r"\bExim ([\w.]+)", re.I), "Exim smtpd"),
    (re.compile(r"\bSendmail ([\w.]+)", re.I), "Sendmail"),
    (re.compile(r"\bOpenSMTPD\b", re.I), "OpenSMTPD"),
    (re.compile(r"Microsoft ESMTP MAIL Service(?:, Version: ([\w.]+))?", re.I), "Microsoft ESMTP"),
    (re.compile(r"\bhMailServer ([\w.]+)", re.I), "hMailServer smtpd"),
)
_POP3_PRODUCTS = (
    (re.compile(r"\bDovecot\b", re.I), "Dovecot pop3d"),
    (re.compile(r"\bCyrus POP3 v?([\w.]+)", re.I), "Cyrus pop3d"),
    (re.compile(r"\bCourier-?POP3\b", re.I), "Courier pop3d"),
    (re.compile(r"\bQpopper\b(?: \(version ([\w.]+)\))?", re.I), "Qpopper pop3d"),
)
_IMAP_PRODUCTS = (
    (re.compile(r"\bDovecot\b", re.I), "Dovecot imapd"),
    (re.compile(r"\bCyrus IMAP4? v?([\w.]+)", re.I), "Cyrus imapd"),
    (re.compile(r"\bCourier-IMAP\b", re.I), "Courier Imapd"),
    (re.compile(r"\bUW IMAP4?rev1 ([\w.]+)", re.I), "UW imapd"),
)
_MYSQL_VERSION = re.compile(rb"^[\x20-\x7e]{1,60}$")
_HTTP_STATUS = re.compile(rb"^HTTP/(\d\.\d) (\d{3})")
_SERVER_PRODUCTS = (
    (re.compile(r"^Apache(?:/([\w.]+))?", re.I), "Apache httpd"),
    (re.compile(r"^nginx(?:/([\w.]+))?", re.I), "nginx"),
    (re.compile(r"^Microsoft-IIS(?:/([\w.]+))?", re.I), "Microsoft IIS httpd"),
    (re.compile(r"^lighttpd(?:/([\w.]+))?", re.I), "lighttpd"),
    (re.compile(r"^openresty(?:/([\w.]+))?", re.I), "OpenResty web app server"),
    (re.compile(r"^Caddy(?:/([\w.]+))?", re.I), "Caddy httpd"),
    (re.compile(r"^gunicorn(?:/([\w.]+))?", re.I), "Gunicorn"),
    (re.compile(r"^Jetty\(([\w.-]+)\)", re.I), "Jetty"),
    (re.compile(r"^Werkzeug(?:/([\w.]+))?", re.I), "Werkzeug httpd"),
    (re.compile(r"^LiteSpeed", re.I), "LiteSpeed httpd"),
)
_GENERIC_SERVER = re.compile(r"^([A-Za-z][\w.+-]*?)(?:/([\w.+-]+))?(?:\s|$)")
_ES_NUMBER = re.compile(rb'"number"\s*:\s*"([\w.+-]+)"')
_REDIS_VERSION = re.compile(rb"redis_version:([\w.]+)")


def _first(rules: Iterable[tuple[re.Pattern[str], str]], text: str) -> tuple[str, str | None]:
    for rx, product in rules:
        m = rx.search(text)
        if m:
            version = m.group(1) if m.groups() and m.group(1) else None
            return product, version
    return "", None


def _line(data: bytes) -> str:
    """The first line of `data` as text (latin-1 keeps every byte), without the line ending."""
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")


def match_greeting(data: bytes) -> Match | None:
    """Name the service from what it said first (unprompted), or None if the shape is unknown."""
    if not data:
        return None
    m = _SSH.match(data)
    if m:
        software = m.group(2).decode("latin-1")
        comment = (m.group(3) or b"").decode("latin-1").strip()
        product, version = "", None
        for rx, name in _SSH_PRODUCTS:
            pm = rx.match(software)
            if pm:
                product, version = name, pm.group(1)
                break
        if not product:
            parts = re.split(r"[_-]", software, maxsplit=1)
            product = parts[0]
            version = parts[1] if len(parts) > 1 else None
        if comment:
            # nmap writes the distribution comment with a space: "Debian-2+deb12u3" -> "Debian 2+"
            comment = comment.replace("-", " ", 1)
            version = f"{version} {comment}" if version else comment
        return "ssh", product or None, version
    line = _line(data)
    if re.match(r"^220[ -]", line):
        upper = line.upper()
        if "SMTP" in upper or "MAIL" in upper or "POSTFIX" in upper or "EXIM" in upper:
            product, version = _first(_SMTP_PRODUCTS, line)
            return "smtp", product or None, version
        if "FTP" in upper:
            product, version = _first(_FTP_PRODUCTS, line)
            return "ftp", product or None, version
        return None  # a bare 220: FTP or SMTP, the caller asks
    if line.startswith("+OK"):
        product, version = _first(_POP3_PRODUCTS, line)
        return "pop3", product or None, version
    if re.match(r"^\* (OK|PREAUTH)\b", line):
        product, version = _first(_IMAP_PRODUCTS, line)
        return "imap", product or None, version
    if line.startswith("RFB "):
        return "vnc", None, line[4:].strip() or None
    mysql = _match_mysql(data)
    if mysql is not None:
        return mysql
    if data[:1] == b"\xff" and len(data) > 2 and data[1] in (0xFB, 0xFC, 0xFD, 0xFE):
        return "telnet", None, None
    return None


def _match_mysql(data: bytes) -> Match | None:
    # A MySQL/MariaDB server greets with a handshake packet: 3-byte length, sequence 0,
    # protocol 10, then the NUL-terminated server version (or an ERR packet, 0xff).
    if len(data) < 6 or data[3] != 0:
        return None
    length = int.from_bytes(data[:3], "little")
    if not 4 <= length <= 1 << 16:
        return None
    if data[4] == 10:
        end = data.find(b"\x00", 5)
        if end < 0:
            return None
        raw = data[5:end]
        if not _MYSQL_VERSION.match(raw):
            return None
        version = raw.decode("ascii")
        if "mariadb" in version.lower():
            m = re.search(r"(\d+\.\d+\.\d+)-MariaDB", version, re.I)
            return "mysql", "MariaDB", m.group(1) if m else version
        return "mysql", "MySQL", version
    if data[4] == 0xFF and (b"mysql" in data.lower() or b"mariadb" in data.lower()):
        return "mysql", "MySQL", None
    if data[4] == 0xFF and len(data) > 7 and data[5:7] in (b"j\x04", b"\x13\x04", b"\x15\x04"):
        return "mysql", "MySQL", None  # ERR 1130 / 1043 / 1045 before the handshake
    return None


def parse_http(data: bytes) -> Match | None:
    """Name an HTTP response: (service "http", product, version) from the Server header or body."""
    if not _HTTP_STATUS.match(data):
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    headers: dict[str, str] = {}
    for raw in head.split(b"\r\n")[1:]:
        name, sep, value = raw.partition(b":")
        if sep:
            key = name.strip().lower().decode("latin-1")
            headers.setdefault(key, value.strip().decode("latin-1"))
    if (
        headers.get("x-elastic-product", "").lower() == "elasticsearch"
        or b"You Know, for Search" in body
    ):
        m = _ES_NUMBER.search(body)
        return "http", "Elasticsearch REST API", m.group(1).decode("ascii") if m else None
    server = headers.get("server", "").strip()
    if not server:
        return "http", None, None
    product, version = _first(_SERVER_PRODUCTS, server)
    if product:
        return "http", product, version
    g = _GENERIC_SERVER.match(server)
    if g:
        return "http", g.group(1), g.group(2)
    return "http", None, None


def match_response(data: bytes) -> Match | None:
    """Name the service from its answer to our HTTP probe (after any greeting)."""
    http = parse_http(data)
    if http is not None:
        return http
    if data[:1] in (b"-", b"+") and (
        data.startswith((b"-ERR", b"-NOAUTH", b"-DENIED", b"-WRONGPASS", b"+PONG", b"+OK"))
    ):
        return "redis", "Redis key-value store", None
    if data[:1] == b"E" and b"SFATAL" in data[:256]:
        return "postgresql", "PostgreSQL", None
    return match_greeting(data)


# ------------------------------------------------------------------------------ dialogue
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
    s: socket.socket | ssl.SSLSocket,
    wait: float,
    deadline: _Deadline,
    enough: Callable[[bytes], bool],
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


def _send(s: socket.socket | ssl.SSLSocket, payload: bytes, deadline: _Deadline) -> bool:
    try:
        s.settimeout(max(0.05, deadline.left()))
        s.sendall(payload)
    except OSError:
        return False
    return True


def _banner(data: bytes) -> str | None:
    text = clean(
        _line(data) if b"\n" in data[:BANNER_DATA_LIMIT] else data[:BANNER_DATA_LIMIT],
        BANNER_DATA_LIMIT,
    )
    return text or None


def _talk(
    s: socket.socket | ssl.SSLSocket,
    addr: str,
    deadline: _Deadline,
    greet_wait: float,
    probe_wait: float,
) -> tuple[ServiceInfo | None, str]:
    """Steps 1-2 on an open connection. Returns (info or None, how it ended:
    "named", "unknown", "closed" (closed on us with no data), "silent")."""
    data, closed = _read(s, greet_wait, deadline, _greeting_enough)
    if data:
        m = match_greeting(data)
        if m is None and re.match(rb"^220[ -]", data):
            m = _ask_220(s, deadline, probe_wait, data)
        if m is not None:
            # Binary greetings (MySQL's handshake) make no readable banner.
            banner = None if m[0] in _BINARY_GREETERS else _banner(data)
            return ServiceInfo(m[0], m[1], m[2], banner), "named"
        if closed or len(data) >= READ_LIMIT:
            return ServiceInfo(None, None, None, _banner(data)), "unknown"
    if closed:
        return None, "closed"
    host = addr if ":" not in addr else f"[{addr}]"
    probe = _HTTP_PROBE % host.encode("ascii")
    if not _send(s, probe, deadline):
        return None, "closed"
    more, closed = _read(s, probe_wait, deadline, lambda d: d == probe or _http_enough(d))
    answer = data + more
    if not answer:
        return None, "closed" if closed else "silent"
    if _is_echo(more, probe):
        # Our own bytes are no banner (and not HTTP: nmap's "echo", e.g. an RFC 862 service).
        return ServiceInfo("echo", None, None, None), "named"
    m = match_response(more) if data and more else match_response(answer)
    if m is None and data:
        m = match_response(answer)
    if m is None:
        if answer[:1] == b"\x15" and answer[1:2] == b"\x03":  # a TLS alert: speaks TLS
            return None, "closed"
        return ServiceInfo(None, None, None, _banner(answer)), "unknown"
    banner = _banner(data) if data else None
    return ServiceInfo(m[0], m[1], m[2], banner), "named"


def _is_echo(answer: bytes, probe: bytes) -> bool:
    """The answer is our probe sent back: all of it, or a start of it past the request line (a
    slow echo cut by the deadline)."""
    first_line = probe.index(b"\r\n") + 2
    return len(answer) >= first_line and probe.startswith(answer[: len(probe)])


def _ask_220(
    s: socket.socket | ssl.SSLSocket, deadline: _Deadline, wait: float, greeting: bytes
) -> Match | None:
    """A bare "220 ..." greeting is FTP or SMTP: EHLO tells (SMTP answers 250)."""
    if not _send(s, b"EHLO hilos.invalid\r\n", deadline):
        return None
    answer, _ = _read(s, wait, deadline, lambda d: b"\n" in d)
    line = _line(greeting)
    if answer.startswith(b"250"):
        product, version = _first(_SMTP_PRODUCTS, line)
        return "smtp", product or None, version
    if answer[:3] in (b"500", b"530", b"502", b"504"):
        product, version = _first(_FTP_PRODUCTS, line)
        return "ftp", product or None, version
    return None


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
        data, _ = _read(s, wait, deadline, lambda d: _REDIS_VERSION.search(d) is not None)
        m = _REDIS_VERSION.search(data)
        return m.group(1).decode("ascii") if m else None
    finally:
        s.close()


def identify(
    addr: str,
    port: int,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    greet_wait: float = _GREET_WAIT,
    probe_wait: float = _PROBE_WAIT,
) -> ServiceInfo:
    """Talk to `addr`:`port` (open) and name its service; see the module docstring.

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
    name = _TLS_NAMES.get(inner.service, inner.service)
    return replace(inner, service=name, tls=True)


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
    if data in (b"S", b"N") or (data[:1] == b"E" and b"SFATAL" in data):
        return ServiceInfo("postgresql", "PostgreSQL", None, None)
    return None


# ------------------------------------------------------------------------------ the stage
class BannerGrabber:
    """Names the services of every open port of a stream of ScanHostResults, concurrently.

    `enrich(results)` yields each host again once all its open ports are identified (hosts
    without open ports pass straight through), so a slow service holds up only its own host.
    `pending()` gives, after an interruption, the hosts still being worked on as they were.

        grabber = BannerGrabber(threads=64)
        for host in grabber.enrich(scanner.results()):
            print(host.host, [(p.port, p.service, p.product) for p in host.open_ports])
    """

    def __init__(
        self,
        *,
        threads: int = DEFAULT_THREADS,
        timeout: float = DEFAULT_TIMEOUT,
        rtt: float = 0.0,
    ) -> None:
        self.threads = threads
        self.timeout = timeout
        # Waits grow with the path's round-trip time: a greeting needs one RTT to arrive.
        self.greet_wait = _GREET_WAIT + 2 * rtt
        self.probe_wait = _PROBE_WAIT + 4 * rtt
        self._lock = threading.Lock()
        self._open: dict[str, tuple[ScanHostResult, dict[int, PortResult], int]] = {}
        self._pool: Pool[tuple[ScanHostResult, PortResult | None], ServiceInfo | None] | None = None

    def _work(self, item: tuple[ScanHostResult, PortResult | None]) -> ServiceInfo | None:
        host, port = item
        if port is None:
            return None
        return identify(
            host.host,
            port.port,
            timeout=self.timeout,
            greet_wait=self.greet_wait,
            probe_wait=self.probe_wait,
        )

    def _units(
        self, results: Iterable[ScanHostResult]
    ) -> Iterator[tuple[ScanHostResult, PortResult | None]]:
        for host in results:
            opened = host.open_ports
            if not opened:
                yield host, None
                continue
            with self._lock:
                self._open[host.host] = (host, {}, len(opened))
            for p in opened:
                yield host, p

    def enrich(self, results: Iterable[ScanHostResult]) -> Iterator[ScanHostResult]:
        pool: Pool[tuple[ScanHostResult, PortResult | None], ServiceInfo | None] = Pool(
            self._work, threads=self.threads, name="hilos-banner"
        )
        self._pool = pool
        with pool:
            for tr in pool.imap_unordered(self._units(results)):
                host, port = tr.item
                if port is None:
                    yield host
                    continue
                info = tr.value if tr.ok else None
                done = self._store(host, port, info)
                if done is not None:
                    yield done

    def _store(
        self, host: ScanHostResult, port: PortResult, info: ServiceInfo | None
    ) -> ScanHostResult | None:
        with self._lock:
            entry = self._open.get(host.host)
            if entry is None:
                return None
            base, found, count = entry
            found[port.port] = info.apply(port) if info is not None else port
            if len(found) < count:
                return None
            del self._open[host.host]
        ports = tuple(found.get(p.port, p) for p in base.ports)
        return replace(base, ports=ports)

    def pending(self) -> list[ScanHostResult]:
        """Hosts whose banners were still being read, with what is known so far."""
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
        return [
            replace(base, ports=tuple(found.get(p.port, p) for p in base.ports))
            for base, found, _ in entries
        ]

    def cancel(self) -> None:
        if self._pool is not None:
            self._pool.cancel()
