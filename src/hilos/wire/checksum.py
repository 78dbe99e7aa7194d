"""The Internet checksum (RFC 1071): the one definition every packet builder and test uses."""

from __future__ import annotations

__all__ = ["checksum"]


def checksum(data: bytes | bytearray | memoryview) -> int:
    """The Internet checksum of `data` (odd length padded with a zero byte), as the 16-bit value
    to put in a header.

    The ones' complement sum of 16-bit words equals the whole buffer read as one big-endian number
    modulo 0xFFFF (because 0x10000 = 1 mod 0xFFFF), so one int conversion and one modulo replace a
    Python loop over words. All-zero data sums to 0 and checksums to 0xFFFF; a non-zero sum that
    is a multiple of 0xFFFF is ones' complement "negative zero" and checksums to 0.
    """
    raw = bytes(data)
    if len(raw) & 1:
        raw += b"\x00"
    total = int.from_bytes(raw, "big") % 0xFFFF
    return 0xFFFF - total if total else (0xFFFF if not any(raw) else 0)
