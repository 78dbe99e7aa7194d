"""Fake network services for the practice lab: plausible banners for testing service identification.

One module per protocol (ssh, http, ftp, smtp, pop3, imap, mysql, postgresql, redis, hostile:
escape/flood/silent/echo), tls around any of them, catalog (what each kind is), spec, server.

LAB USE ONLY. The lab starts this inside its own hosts namespace as
``python -m hilos.lab.services SPEC.json``; it listens on exactly the (address, port) pairs the
spec lists and on nothing else, and never opens an outgoing connection. Tests run it on
127.0.0.0/8 loopback.

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

    python -m hilos.lab.services spec.json   # prints "ready"; kill -TERM to stop
"""

from __future__ import annotations

from hilos.lab.services.catalog import FLOOD_BYTES, FLOOD_PATTERN, KINDS, describe
from hilos.lab.services.server import BACKLOG, LabServer, main
from hilos.lab.services.spec import DEFAULT_IDLE_TIMEOUT, Service, Spec, load_spec, parse_spec

__all__ = [
    "BACKLOG",
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
