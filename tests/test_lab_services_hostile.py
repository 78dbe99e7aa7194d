"""hilos.lab.services that test a scanner's defences: escape, flood, silent, echo."""

from __future__ import annotations

import socket

import pytest

from hilos.lab.services import FLOOD_BYTES, FLOOD_PATTERN, describe
from lab_services_support import IDLE, connect, recv_to_eof, recv_until


def test_escape_banner(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["escape"]) as sock:
        data = recv_until(sock, b"\r\n")
    assert b"\x1b[" in data and b"\x1b]" in data, "CSI and OSC sequences"
    assert {0x00, 0x07, 0x08, 0x7F, 0x9B} <= set(data), "NUL, BEL, BS, DEL, 8-bit CSI"
    assert data[:-2].decode("latin-1") == describe("escape")["banner"]


def test_flood_sends_10_mib_then_closes(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["flood"]) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        data = recv_to_eof(sock, limit=FLOOD_BYTES)
    assert len(data) == FLOOD_BYTES == 10 * 1024 * 1024
    assert data == FLOOD_PATTERN * (FLOOD_BYTES // len(FLOOD_PATTERN))


def test_silent_never_speaks_and_stays_open(svc: dict[str, tuple[str, int]]) -> None:
    with connect(svc["silent"]) as sock:
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\nhello?\r\n")
        sock.settimeout(IDLE + 0.5)  # past the idle timeout: silent is exempt
        with pytest.raises(TimeoutError):
            sock.recv(1)


def test_echo_sends_back_what_it_gets(svc: dict[str, tuple[str, int]]) -> None:
    """RFC 862: every byte comes back, whatever it is (a scanner's own HTTP probe included)."""
    with socket.create_connection(svc["echo"], timeout=5) as c:
        c.settimeout(0.3)
        with pytest.raises(TimeoutError):
            c.recv(1)  # says nothing first
        c.settimeout(5)
        for data in (b"GET / HTTP/1.0\r\n\r\n", bytes(range(256)) * 64):
            c.sendall(data)
            got = b""
            while len(got) < len(data):
                got += c.recv(65536)
            assert got == data
