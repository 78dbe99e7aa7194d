"""Lab NTP server: a stratum 2 server's mode 4 answer to a mode 3 client request, else silence."""

from __future__ import annotations

import struct
import time

__all__ = ["STRATUM", "answer"]

STRATUM = 2
_NTP_EPOCH = 2208988800  # seconds from 1900 to 1970


def _stamp(t: float) -> bytes:
    secs = int(t) + _NTP_EPOCH
    return struct.pack("!II", secs & 0xFFFFFFFF, int((t % 1) * (1 << 32)))


def answer(data: bytes) -> bytes | None:
    """The response to one datagram, or None (stay silent)."""
    if len(data) < 48:
        return None
    version, mode = (data[0] >> 3) & 7, data[0] & 7
    if mode != 3 or not 1 <= version <= 4:
        return None
    now = time.time()
    head = bytes([(version << 3) | 4, STRATUM, data[2], 0xE9])
    head += struct.pack("!II", 0x00000120, 0x00000340) + bytes([198, 18, 0, 123])
    return head + _stamp(now - 30) + data[40:48] + _stamp(now) + _stamp(now)
