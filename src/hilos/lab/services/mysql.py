"""mysql: a real protocol-10 handshake, then Access denied."""

from __future__ import annotations

import os

from hilos.lab.services.base import Conn
from hilos.lab.services.catalog import MYSQL_VERSION

# --- mysql ---------------------------------------------------------------------------------------

# Server capability flags of MySQL 8.0 without CLIENT_SSL (0x0800): we cannot do the TLS upgrade.
_MYSQL_CAPS = 0xDFFFF7FF
_MYSQL_PLUGIN = b"caching_sha2_password"
_SALT_CHARS = bytes(range(0x21, 0x7F))


def _mysql_packet(seq: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([seq & 0xFF]) + payload


def _mysql_error(seq: int, code: int, state: str, message: str) -> bytes:
    body = b"\xff" + code.to_bytes(2, "little") + b"#" + state.encode() + message.encode("utf-8")
    return _mysql_packet(seq, body)


class MysqlConn(Conn):
    def start(self) -> None:
        self.ctx.next_id += 1
        salt = bytes(_SALT_CHARS[b % len(_SALT_CHARS)] for b in os.urandom(20))
        payload = b"".join(
            (
                b"\x0a",  # protocol version 10
                MYSQL_VERSION.encode() + b"\x00",
                self.ctx.next_id.to_bytes(4, "little"),
                salt[:8] + b"\x00",  # auth-plugin-data-part-1 and filler
                (_MYSQL_CAPS & 0xFFFF).to_bytes(2, "little"),
                b"\xff",  # utf8mb4_0900_ai_ci
                (0x0002).to_bytes(2, "little"),  # SERVER_STATUS_AUTOCOMMIT
                (_MYSQL_CAPS >> 16).to_bytes(2, "little"),
                bytes([len(salt) + 1]),
                bytes(10),  # reserved
                salt[8:] + b"\x00",  # auth-plugin-data-part-2: 13 bytes
                _MYSQL_PLUGIN + b"\x00",
            )
        )
        self.send(_mysql_packet(0, payload))

    def feed(self) -> None:
        buf = self.buf
        if len(buf) < 4:
            return
        length = int.from_bytes(buf[:3], "little")
        seq = buf[3]
        if seq != 1 or length > 16384:  # e.g. an HTTP request read as a packet header
            self.send(_mysql_error(seq + 1, 1156, "08S01", "Got packets out of order"))
            self.close()
            return
        if len(buf) < 4 + length:
            return
        packet = bytes(buf[4 : 4 + length])
        buf.clear()
        user, password = self._parse_login(packet)
        if user is None:
            self.send(_mysql_error(seq + 1, 1043, "08S01", "Bad handshake"))
        else:
            self.send(
                _mysql_error(
                    seq + 1,
                    1045,
                    "28000",
                    f"Access denied for user '{user}'@'{self.peer_host()}' "
                    f"(using password: {'YES' if password else 'NO'})",
                )
            )
        self.close()

    @staticmethod
    def _parse_login(packet: bytes) -> tuple[str | None, bool]:
        """Username and whether a password was sent, from a HandshakeResponse41."""
        if len(packet) < 33:
            return None, False
        caps = int.from_bytes(packet[:4], "little")
        if not caps & 0x0200:  # CLIENT_PROTOCOL_41
            return None, False
        end = packet.find(b"\x00", 32)
        if end < 0:
            return None, False
        user = packet[32:end].decode("utf-8", "replace")
        rest = packet[end + 1 :]
        if caps & 0x00200000 and rest:  # CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
            return user, rest[0] not in (0, 0xFB)
        if caps & 0x8000 and rest:  # CLIENT_SECURE_CONNECTION: one length byte
            return user, rest[0] != 0
        return user, bool(rest[:1]) and rest[0] != 0
