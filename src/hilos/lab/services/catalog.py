"""The lab services' kinds, what each says first, and what a scanner should report."""

from __future__ import annotations

from typing import Any

from hilos.errors import LabError

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


FLOOD_PATTERN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
FLOOD_BYTES = 10 * 1024 * 1024

# What each service says, and what a scanner should report for it (nmap's naming conventions).

SSH_BANNER = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"
FTP_BANNER = "220 (vsFTPd 3.0.3)"
SMTP_HOST = "mail.lab.example"
SMTP_BANNER = f"220 {SMTP_HOST} ESMTP Postfix (Debian/GNU)"
POP3_BANNER = "+OK Dovecot (Debian) ready."
IMAP_CAPS = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN"
IMAP_BANNER = f"* OK [CAPABILITY {IMAP_CAPS}] Dovecot (Debian) ready."
MYSQL_VERSION = "8.0.36"
REDIS_VERSION = "7.0.15"
ES_VERSION = "8.11.1"
NGINX = "nginx/1.22.1"
APACHE = "Apache/2.4.57 (Debian)"

# Terminal attacks a scanner must not pass through to the user's terminal.
ESCAPE_BANNER = (
    "\x1b]0;you have been pwned\x07"  # OSC 0: set the window title
    "\x1b[2J\x1b[H"  # clear the screen, cursor home
    "\x1b[5;31;47mWARNING\x1b[0m "  # blinking red on white
    "lab\x08\x08\x08LAB "  # backspaces overwrite what was printed
    "\x1b[8mhidden\x1b[28m "  # concealed text
    "\x00\x01\x7f\x9b31m "  # NUL, SOH, DEL, 8-bit CSI (C1 control 0x9b)
    "\x1b[?1049h\x1b[6n"  # alternate screen; ask the terminal to type its cursor position
)

DESCRIPTIONS: dict[str, tuple[str | None, str | None, str | None, bool, str | None]] = {
    # kind: (service, product, version, tls, banner)
    "ssh": ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", False, SSH_BANNER),
    "http": ("http", "nginx", "1.22.1", False, None),
    "https": ("https", "Apache httpd", "2.4.57", True, None),
    "tls": ("smtps", "Postfix smtpd", None, True, SMTP_BANNER),
    "ftp": ("ftp", "vsftpd", "3.0.3", False, FTP_BANNER),
    "smtp": ("smtp", "Postfix smtpd", None, False, SMTP_BANNER),
    "pop3": ("pop3", "Dovecot pop3d", None, False, POP3_BANNER),
    "imap": ("imap", "Dovecot imapd", None, False, IMAP_BANNER),
    "mysql": ("mysql", "MySQL", MYSQL_VERSION, False, None),
    "postgresql": ("postgresql", "PostgreSQL", None, False, None),
    "redis": ("redis", "Redis key-value store", REDIS_VERSION, False, None),
    # nmap reports Elasticsearch as service "http" with this product.
    "elasticsearch": ("http", "Elasticsearch REST API", ES_VERSION, False, None),
    "escape": (None, None, None, False, ESCAPE_BANNER),
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
        service, product, version, tls, banner = DESCRIPTIONS[kind]
    except KeyError:
        raise LabError(f"unknown service kind {kind!r} (known: {', '.join(KINDS)})") from None
    return {
        "service": service,
        "product": product,
        "version": version,
        "tls": tls,
        "banner": banner,
    }
