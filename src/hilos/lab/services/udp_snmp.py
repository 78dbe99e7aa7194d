"""Lab SNMP agent: answers a v1/v2c GetRequest with community `public` (sysDescr), else silence."""

from __future__ import annotations

__all__ = ["SYSDESCR", "answer"]

SYSDESCR = "Linux lab-gw 6.1.0-18-amd64 #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 x86_64"
_SYSDESCR_OID = b"\x06\x08\x2b\x06\x01\x02\x01\x01\x01\x00"


def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    return bytes((tag, 0x81, n)) + body


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag, content, offset after) of the TLV at `pos` (short or one-byte long lengths)."""
    tag, n = data[pos], data[pos + 1]
    pos += 2
    if n == 0x81:
        n, pos = data[pos], pos + 1
    elif n & 0x80:
        raise IndexError("length form not supported")
    if pos + n > len(data):
        raise IndexError("truncated")
    return tag, data[pos : pos + n], pos + n


def answer(data: bytes) -> bytes | None:
    """The response to one datagram, or None (stay silent)."""
    try:
        tag, msg, _ = _read(data, 0)
        if tag != 0x30:
            return None
        t1, version, pos = _read(msg, 0)
        t2, community, pos = _read(msg, pos)
        t3, pdu, _ = _read(msg, pos)
        if (t1, t2, t3) != (0x02, 0x04, 0xA0) or version not in (b"\x00", b"\x01"):
            return None
        if community != b"public":
            return None  # a wrong community gets nothing, as from net-snmp
        t4, request_id, _ = _read(pdu, 0)
        if t4 != 0x02 or not 1 <= len(request_id) <= 4:
            return None
    except IndexError:
        return None
    varbind = _tlv(0x30, _SYSDESCR_OID + _tlv(0x04, SYSDESCR.encode()))
    body = _tlv(0x02, request_id) + b"\x02\x01\x00\x02\x01\x00" + _tlv(0x30, varbind)
    return _tlv(0x30, _tlv(0x02, version) + _tlv(0x04, community) + _tlv(0xA2, body))
