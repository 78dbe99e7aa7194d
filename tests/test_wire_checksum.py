"""Tests for hilos.wire.checksum: the RFC 1071 Internet checksum against textbook versions."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from hilos.wire.checksum import checksum


def _slow_checksum(data: bytes) -> int:
    """RFC 1071 the textbook way, to check the fast one against."""
    total = 0
    for i in range(0, len(data) - 1, 2):
        total += (data[i] << 8) | data[i + 1]
    if len(data) & 1:
        total += data[-1] << 8
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_checksum_rfc1071_example() -> None:
    # RFC 1071 section 3: the sum of these words is 0xddf2, so the checksum is 0x220d.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D


@given(st.binary(max_size=200))
def test_checksum_matches_textbook(data: bytes) -> None:
    fast = checksum(data)
    slow = _slow_checksum(data)
    # +0 and -0 are the same checksum in ones' complement arithmetic.
    assert fast == slow or {fast, slow} == {0, 0xFFFF}


def test_checksum_matches_reference_and_rfc1071_example() -> None:
    # RFC 1071 section 3 example: words 0x0001 0xf203 0xf4f5 0xf6f7 sum to 0xddf2 (complement).
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert checksum(data) == _slow_checksum(data) == (~0xDDF2) & 0xFFFF
    for blob in (b"", b"\x01", b"\xff" * 41, os.urandom(99)):
        assert checksum(blob) == _slow_checksum(blob)
