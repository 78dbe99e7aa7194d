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
cleaned of escape sequences and control characters (hilos.sanitize) before they are kept.

Usage::

    info = identify("127.0.0.1", 22)
    print(info.service, info.product, info.version, info.tls)

The package: ``signatures`` names a service from bytes (pure functions), ``dialogue`` talks to one
port (``identify``), ``grabber`` runs ``identify`` for every open port of a scan (BannerGrabber).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hilos.lazy import lazy_names

if TYPE_CHECKING:
    from hilos.services.dialogue import DEFAULT_TIMEOUT, READ_LIMIT, ServiceInfo, identify
    from hilos.services.grabber import DEFAULT_THREADS, BannerGrabber
    from hilos.services.signatures import match_greeting, match_response, parse_http

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

# Loaded when first used: a UDP scan describes its replies with hilos.services.udp alone, and
# the TCP dialogue (ssl, the signatures' expressions) would cost its start ~20 ms.
__getattr__ = lazy_names(
    __name__,
    {
        "DEFAULT_TIMEOUT": "hilos.services.dialogue",
        "READ_LIMIT": "hilos.services.dialogue",
        "ServiceInfo": "hilos.services.dialogue",
        "identify": "hilos.services.dialogue",
        "DEFAULT_THREADS": "hilos.services.grabber",
        "BannerGrabber": "hilos.services.grabber",
        "match_greeting": "hilos.services.signatures",
        "match_response": "hilos.services.signatures",
        "parse_http": "hilos.services.signatures",
    },
)
