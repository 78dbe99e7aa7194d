"""Lab UDP DNS server: answers `version.bind` CH TXT like BIND 9, REFUSED to other valid queries.

Anything that is not a well-formed single-question DNS query gets no answer, as a real server
drops garbage.
"""

from __future__ import annotations

import struct

__all__ = ["VERSION", "answer"]

VERSION = "9.18.24-1-Debian"


def _qname(data: bytes, pos: int) -> tuple[str, int] | None:
    labels: list[str] = []
    while pos < len(data):
        n = data[pos]
        if n == 0:
            return ".".join(labels), pos + 1
        if n > 63 or pos + 1 + n > len(data):
            return None
        labels.append(data[pos + 1 : pos + 1 + n].decode("ascii", "replace").lower())
        pos += 1 + n
    return None


def answer(data: bytes) -> bytes | None:
    """The response to one datagram, or None (stay silent)."""
    if len(data) < 17:
        return None
    ident, flags, qd, an, ns, _ar = struct.unpack("!HHHHHH", data[:12])
    if flags & 0x8000 or (flags >> 11) & 0xF or qd != 1 or an or ns:
        return None  # a response, another opcode, or not one question
    parsed = _qname(data, 12)
    if parsed is None or parsed[1] + 4 > len(data):
        return None
    name, end = parsed
    qtype, qclass = struct.unpack("!HH", data[end : end + 4])
    question = data[12 : end + 4]
    if name == "version.bind" and qclass == 3 and qtype == 16:
        txt = VERSION.encode()
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 3, 0, len(txt) + 1) + bytes([len(txt)]) + txt
        return struct.pack("!HHHHHH", ident, 0x8400 | (flags & 0x0100), 1, 1, 0, 0) + question + rr
    return struct.pack("!HHHHHH", ident, 0x8005 | (flags & 0x0100), 1, 0, 0, 0) + question
