"""postgresql: SSLRequest refusals and a real FATAL ErrorResponse."""

from __future__ import annotations

from hilos.lab.services.base import Conn

# --- postgresql ----------------------------------------------------------------------------------

_PG_SSL_REQUEST = 80877103
_PG_GSS_REQUEST = 80877104
_PG_CANCEL_REQUEST = 80877102


def _pg_error(code: str, message: str, file: str, line: int, routine: str) -> bytes:
    """An ErrorResponse message (PostgreSQL protocol 3.0, 'E')."""
    fields = b"".join(
        tag + value.encode("utf-8") + b"\x00"
        for tag, value in (
            (b"S", "FATAL"),
            (b"V", "FATAL"),
            (b"C", code),
            (b"M", message),
            (b"F", file),
            (b"L", str(line)),
            (b"R", routine),
        )
    )
    fields += b"\x00"
    return b"E" + (len(fields) + 4).to_bytes(4, "big") + fields


class PostgresConn(Conn):
    def feed(self) -> None:
        buf = self.buf
        while not self.closing and len(buf) >= 4:
            length = int.from_bytes(buf[:4], "big")
            if not 8 <= length <= 10000:
                self.abort()  # "invalid length of startup packet": PostgreSQL just hangs up
                return
            if len(buf) < length:
                return
            code = int.from_bytes(buf[4:8], "big")
            body = bytes(buf[8:length])
            del buf[:length]
            self.startup(code, body)

    def startup(self, code: int, body: bytes) -> None:
        if code in (_PG_SSL_REQUEST, _PG_GSS_REQUEST):
            self.send(b"N")  # no SSL / no GSSAPI encryption: continue in clear text
            return
        if code == _PG_CANCEL_REQUEST:
            self.close()
            return
        major, minor = code >> 16, code & 0xFFFF
        if major != 3:
            self.send(
                _pg_error(
                    "0A000",
                    f"unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0",
                    "postmaster.c",
                    2205,
                    "ProcessStartupPacket",
                )
            )
            self.close()
            return
        items = body.split(b"\x00")
        params = {
            items[i].decode("utf-8", "replace"): items[i + 1].decode("utf-8", "replace")
            for i in range(0, len(items) - 1, 2)
            if items[i]
        }
        user = params.get("user")
        if not user:
            msg = _pg_error(
                "28000",
                "no PostgreSQL user name specified in startup packet",
                "postmaster.c",
                2280,
                "ProcessStartupPacket",
            )
        else:
            database = params.get("database") or user
            msg = _pg_error(
                "28000",
                f'no pg_hba.conf entry for host "{self.peer_host()}", user "{user}", '
                f'database "{database}", no encryption',
                "auth.c",
                543,
                "ClientAuthentication",
            )
        self.send(msg)
        self.close()
