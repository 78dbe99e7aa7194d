"""http, https, elasticsearch: nginx, Apache and Elasticsearch over HTTP/1.x."""

from __future__ import annotations

import email.utils
import json

from hilos.lab.services.base import Conn
from hilos.lab.services.catalog import APACHE, ES_VERSION, NGINX

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
                "number": ES_VERSION,
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


class _HttpConn(Conn):
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


class NginxConn(_HttpConn):
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
            f"Server: {NGINX}",
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
            f"<center><h1>{status}</h1></center>\r\n<hr><center>{NGINX}</center>\r\n"
            "</body>\r\n</html>\r\n"
        ).encode("latin-1")


class ApacheConn(_HttpConn):
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
            f"Server: {APACHE}",
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
            f"<hr>\n<address>{APACHE} Server at lab.example Port {self.service.port}</address>\n"
            "</body></html>\n"
        ).encode("latin-1")


class ElasticConn(_HttpConn):
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
