"""hilos.lab.services databases: mysql, postgresql, redis (loopback only)."""

from __future__ import annotations

import socket

from lab_services_support import closed, connect, dialogue, recv_exact, recv_to_eof, recv_until


def _mysql_read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = recv_exact(sock, 4)
    return header[3], recv_exact(sock, int.from_bytes(header[:3], "little"))


def test_mysql_handshake_then_access_denied(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["mysql"]) as sock:
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
        assert closed(sock)


def test_mysql_rejects_http(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["mysql"]) as sock:
        _mysql_read_packet(sock)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        _, err = _mysql_read_packet(sock)
        assert err[0] == 0xFF and int.from_bytes(err[1:3], "little") == 1156


def _pg_message(sock: socket.socket) -> tuple[bytes, dict[str, str]]:
    kind = recv_exact(sock, 1)
    length = int.from_bytes(recv_exact(sock, 4), "big")
    body = recv_exact(sock, length - 4)
    assert body.endswith(b"\x00\x00")
    fields = {f[:1].decode(): f[1:].decode() for f in body[:-2].split(b"\x00")}
    return kind, fields


def _pg_startup(code: int, params: bytes = b"") -> bytes:
    return (8 + len(params)).to_bytes(4, "big") + code.to_bytes(4, "big") + params


def test_postgresql_sslrequest_then_startup(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["postgresql"]) as sock:
        sock.sendall(_pg_startup(80877104))  # GSSENCRequest
        assert recv_exact(sock, 1) == b"N"
        sock.sendall(_pg_startup(80877103))  # SSLRequest
        assert recv_exact(sock, 1) == b"N"
        sock.sendall(_pg_startup(196608, b"user\x00alice\x00database\x00shop\x00\x00"))
        kind, fields = _pg_message(sock)
        assert kind == b"E"
        assert fields["S"] == fields["V"] == "FATAL" and fields["C"] == "28000"
        assert 'user "alice", database "shop"' in fields["M"]
        assert fields["R"] == "ClientAuthentication" and fields["L"].isdigit()
        assert closed(sock)


def test_postgresql_unsupported_protocol(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["postgresql"]) as sock:
        sock.sendall(_pg_startup(0x00020000, b"user\x00bob\x00\x00"))
        kind, fields = _pg_message(sock)
        assert kind == b"E" and fields["C"] == "0A000"
        assert "unsupported frontend protocol 2.0" in fields["M"]


def test_redis(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["redis"]) as sock:
        dialogue(
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
        header = recv_until(sock, b"\r\n")
        assert header.startswith(b"$")
        size = int(header[1 : header.index(b"\r\n")])
        body = header[header.index(b"\r\n") + 2 :]
        body += recv_exact(sock, size + 2 - len(body))
        assert body.endswith(b"\r\n")
        info = body[:-2].decode()
        assert len(body[:-2]) == size
        assert "# Server\r\n" in info and "redis_version:7.0.15\r\n" in info
        assert f"tcp_port:{svc['redis'][1]}\r\n" in info
        sock.sendall(b"INFO clients\r\n")
        assert b"# Server" not in recv_until(sock, b"connected_clients:")
        sock.sendall(b"QUIT\r\n")
        assert recv_to_eof(sock).endswith(b"+OK\r\n")


def test_redis_hangs_up_on_http_and_protocol_errors(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["redis"]) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_to_eof(sock) == b"-ERR wrong number of arguments for 'get' command\r\n"
    with connect(svc["redis"]) as sock:
        sock.sendall(b"*1\r\n!4\r\nPING\r\n")
        assert recv_to_eof(sock) == b"-ERR Protocol error: expected '$', got '!'\r\n"
