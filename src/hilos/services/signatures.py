"""Naming a service by what it says: greeting and response signatures, product and version rules.

Pure functions over bytes (no sockets), so each shape real servers send is testable on its own.
Product and version follow nmap's conventions ("OpenSSH" "9.2p1 Debian 2+deb12u3", "nginx"
"1.22.1", "Apache httpd" "2.4.57", "Postfix smtpd"), matched by regular expressions over the
shapes real servers send, not over the lab's exact strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from hilos.sanitize import BANNER_DATA_LIMIT, clean

__all__ = [
    "BINARY_GREETERS",
    "Match",
    "banner_text",
    "first_line",
    "is_echo",
    "match_answer",
    "match_greeting",
    "match_response",
    "name_220",
    "parse_http",
    "postgres_reply",
    "redis_version",
    "tls_name",
]

Match = tuple[str, str | None, str | None]  # service, product, version

#: Services whose greeting is binary (MySQL's handshake): it makes no readable banner.
BINARY_GREETERS = frozenset({"mysql", "telnet"})
_TLS_NAMES = {"http": "https", "smtp": "smtps", "imap": "imaps", "pop3": "pop3s", "ftp": "ftps"}

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
_REPLY_220 = re.compile(r"^220[ -]")
_SMTP_WORDS = ("SMTP", "MAIL", "POSTFIX", "EXIM")

Products = Iterable[tuple[re.Pattern[str], str]]


def _first(rules: Products, text: str) -> tuple[str, str | None]:
    for rx, product in rules:
        m = rx.search(text)
        if m:
            version = m.group(1) if m.groups() and m.group(1) else None
            return product, version
    return "", None


def _named(service: str, rules: Products, line: str) -> Match:
    product, version = _first(rules, line)
    return service, product or None, version


def first_line(data: bytes) -> str:
    """The first line of `data` as text (latin-1 keeps every byte), without the line ending."""
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("latin-1")


def banner_text(data: bytes) -> str | None:
    """What is kept of a banner: its first line (or its start), cleaned of control sequences."""
    text = clean(
        first_line(data) if b"\n" in data[:BANNER_DATA_LIMIT] else data[:BANNER_DATA_LIMIT],
        BANNER_DATA_LIMIT,
    )
    return text or None


# ------------------------------------------------------------------------------ greetings
# Each recogniser takes (data, first line) and names the service or returns None; the first
# that names it wins. Their shapes do not overlap, so the order only saves work.


def _ssh(data: bytes, line: str) -> Match | None:
    m = _SSH.match(data)
    if not m:
        return None
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


def _smtp_or_ftp(data: bytes, line: str) -> Match | None:
    # A bare 220 (neither word) is FTP or SMTP: None here, the dialogue asks (name_220).
    if not _REPLY_220.match(line):
        return None
    upper = line.upper()
    if any(word in upper for word in _SMTP_WORDS):
        return _named("smtp", _SMTP_PRODUCTS, line)
    if "FTP" in upper:
        return _named("ftp", _FTP_PRODUCTS, line)
    return None


def _pop3(data: bytes, line: str) -> Match | None:
    return _named("pop3", _POP3_PRODUCTS, line) if line.startswith("+OK") else None


def _imap(data: bytes, line: str) -> Match | None:
    if re.match(r"^\* (OK|PREAUTH)\b", line):
        return _named("imap", _IMAP_PRODUCTS, line)
    return None


def _vnc(data: bytes, line: str) -> Match | None:
    return ("vnc", None, line[4:].strip() or None) if line.startswith("RFB ") else None


def _mysql_handshake(data: bytes) -> Match | None:
    # Protocol 10, then the NUL-terminated server version.
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


def _mysql(data: bytes, line: str) -> Match | None:
    # A MySQL/MariaDB server greets with a handshake packet: 3-byte length, sequence 0,
    # protocol 10, then the NUL-terminated server version (or an ERR packet, 0xff).
    if len(data) < 6 or data[3] != 0:
        return None
    length = int.from_bytes(data[:3], "little")
    if not 4 <= length <= 1 << 16:
        return None
    if data[4] == 10:
        return _mysql_handshake(data)
    if data[4] != 0xFF:
        return None
    if b"mysql" in data.lower() or b"mariadb" in data.lower():
        return "mysql", "MySQL", None
    if len(data) > 7 and data[5:7] in (b"j\x04", b"\x13\x04", b"\x15\x04"):
        return "mysql", "MySQL", None  # ERR 1130 / 1043 / 1045 before the handshake
    return None


def _telnet(data: bytes, line: str) -> Match | None:
    # An IAC WILL/WONT/DO/DONT option negotiation.
    if data[:1] == b"\xff" and len(data) > 2 and data[1] in (0xFB, 0xFC, 0xFD, 0xFE):
        return "telnet", None, None
    return None


_GREETINGS: tuple[Callable[[bytes, str], Match | None], ...] = (
    _ssh,
    _smtp_or_ftp,
    _pop3,
    _imap,
    _vnc,
    _mysql,
    _telnet,
)


def match_greeting(data: bytes) -> Match | None:
    """Name the service from what it said first (unprompted), or None if the shape is unknown."""
    if not data:
        return None
    line = first_line(data)
    for recognise in _GREETINGS:
        found = recognise(data, line)
        if found is not None:
            return found
    return None


def name_220(greeting: bytes, answer: bytes) -> Match | None:
    """A bare "220 ..." greeting is FTP or SMTP: the answer to EHLO tells (SMTP says 250)."""
    line = first_line(greeting)
    if answer.startswith(b"250"):
        return _named("smtp", _SMTP_PRODUCTS, line)
    if answer[:3] in (b"500", b"530", b"502", b"504"):
        return _named("ftp", _FTP_PRODUCTS, line)
    return None


# ------------------------------------------------------------------------------ responses


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


def match_answer(greeting: bytes, answer: bytes) -> Match | None:
    """Name the service from its answer to the probe, the answer alone first when it greeted
    too (a late greeting may still head the answer, so then both together)."""
    whole = greeting + answer
    found = match_response(answer) if greeting and answer else match_response(whole)
    if found is None and greeting:
        found = match_response(whole)
    return found


def is_echo(answer: bytes, probe: bytes) -> bool:
    """The answer is our probe sent back: all of it, or a start of it past the request line (a
    slow echo cut by the deadline)."""
    first_end = probe.index(b"\r\n") + 2
    return len(answer) >= first_end and probe.startswith(answer[: len(probe)])


def redis_version(info: bytes) -> str | None:
    """The version in a Redis ``INFO server`` reply, or None."""
    m = _REDIS_VERSION.search(info)
    return m.group(1).decode("ascii") if m else None


def postgres_reply(data: bytes) -> bool:
    """An answer to PostgreSQL's SSLRequest: ``S``/``N``, or an error message (FATAL)."""
    return data in (b"S", b"N") or (data[:1] == b"E" and b"SFATAL" in data)


def tls_name(service: str) -> str:
    """The name of a service found inside TLS (http -> https, as nmap writes it)."""
    return _TLS_NAMES.get(service, service)
