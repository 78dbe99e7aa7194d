"""hilos.lab.services over HTTP and TLS: nginx, Apache (https), smtps, Elasticsearch."""

from __future__ import annotations

import json
import ssl

import pytest

from lab_services_support import connect, connect_tls, http_response, recv_to_eof, recv_until


def test_http_nginx_page(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["http"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        status, headers, body = http_response(reader)
        assert status == "HTTP/1.1 200 OK"
        assert headers["server"] == "nginx/1.22.1"
        assert headers["content-type"] == "text/html"
        assert headers["connection"] == "close"
        assert b"<title>Welcome to nginx!</title>" in body
        assert reader.read() == b"", "HTTP/1.0 without keep-alive closes after the response"


def test_http_keepalive_pipelined_and_head(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["http"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        for _ in range(2):
            status, headers, body = http_response(reader)
            assert status == "HTTP/1.1 200 OK" and headers["connection"] == "keep-alive"
            assert b"nginx" in body
        status, headers, _ = http_response(reader, head_only=True)
        assert status == "HTTP/1.1 200 OK" and int(headers["content-length"]) > 0
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert http_response(reader)[0] == "HTTP/1.1 200 OK", "HEAD sent no body"
        assert reader.read() == b""


@pytest.mark.parametrize(
    "garbage", [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"HELLO there friend\r\n\r\n"]
)
def test_http_rejects_non_http(svc: dict[str, tuple[str, int]], garbage: bytes) -> None:
    with connect(svc["http"]) as sock:
        sock.sendall(garbage)
        data = recv_to_eof(sock)
        assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"nginx/1.22.1" in data


def test_http_09_gets_bare_body(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["http"]) as sock:
        sock.sendall(b"GET /\r\n")
        assert recv_to_eof(sock).startswith(b"<!DOCTYPE html>")


def test_http_on_ipv6_loopback(svc: dict[str, tuple[str, int]]) -> None:
    if "http6" not in svc:
        pytest.skip("no IPv6 loopback here")
    with connect(svc["http6"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert http_response(reader)[1]["server"] == "nginx/1.22.1"


def test_https_self_signed_apache(svc: dict[str, tuple[str, int]]) -> None:
    with connect_tls(svc["https"]) as tls, tls.makefile("rb") as reader:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        tls.sendall(b"GET / HTTP/1.1\r\nHost: lab.example\r\n\r\n")
        status, headers, body = http_response(reader)
    assert status == "HTTP/1.1 200 OK"
    assert headers["server"] == "Apache/2.4.57 (Debian)"
    assert b"It works!" in body
    # Self-signed: the certificate verifies with itself as the only trust anchor.
    verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    verify.load_verify_locations(cadata=ssl.DER_cert_to_PEM_cert(der))
    with (
        connect(svc["https"]) as raw,
        verify.wrap_socket(raw, server_hostname="lab.example") as tls,
    ):
        cert = tls.getpeercert()
    assert cert["subject"] == cert["issuer"] == ((("commonName", "lab.example"),),)


def test_tls_is_smtp_inside_tls(svc: dict[str, tuple[str, int]]) -> None:
    with connect_tls(svc["tls"]) as tls:
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        assert recv_until(tls, b"\r\n").startswith(b"220 mail.lab.example ESMTP Postfix")
        tls.sendall(b"EHLO scanner\r\n")
        assert recv_until(tls, b"250 CHUNKING\r\n").startswith(b"250-mail.lab.example\r\n")
        tls.sendall(b"QUIT\r\n")
        assert recv_until(tls, b"\r\n") == b"221 2.0.0 Bye\r\n"
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
    with connect(svc[kind]) as sock:
        sock.sendall(_SSLV3_HELLO)
        reply = recv_to_eof(sock)
    # A fatal alert record (content type 21, level 2), as OpenSSL servers send.
    assert reply[:2] == b"\x15\x03" and reply[3:6] == b"\x00\x02\x02", reply


def test_tls_port_spoken_to_in_clear_text_closes(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["tls"]) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert not recv_to_eof(sock).startswith(b"220"), "no clear-text banner"


def test_elasticsearch(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["elasticsearch"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = http_response(reader)
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
        status, _, body = http_response(reader)
        assert status == "HTTP/1.1 400 Bad Request" and b"no handler found" in body
    with connect(svc["elasticsearch"]) as sock, sock.makefile("rb") as reader:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert http_response(reader)[0] == "HTTP/1.0 200 OK", "Netty answers in kind"
        assert reader.read() == b""
