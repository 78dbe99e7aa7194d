"""Lab memcached (UDP): `stats` and `version` in the UDP frame header, else silence."""

from __future__ import annotations

import struct

__all__ = ["VERSION", "answer"]

VERSION = "1.6.21"


def answer(data: bytes) -> bytes | None:
    """The response to one datagram, or None (stay silent)."""
    if len(data) < 10:
        return None
    request_id, seq, total, reserved = struct.unpack("!HHHH", data[:8])
    if seq != 0 or total != 1 or reserved != 0:
        return None
    command = data[8:].strip().lower()
    if command == b"version":
        body = f"VERSION {VERSION}\r\n".encode()
    elif command == b"stats":
        body = (
            f"STAT pid 412\r\nSTAT uptime 86400\r\nSTAT version {VERSION}\r\n"
            "STAT libevent 2.1.12-stable\r\nSTAT curr_connections 2\r\nEND\r\n"
        ).encode()
    else:
        return None
    return struct.pack("!HHHH", request_id, 0, 1, 0) + body
