"""Tests for hilos.wire.link: the kernel's routes (netlink), LinkTx's coverage and IP prefix."""

from __future__ import annotations

import socket

from helpers_tcp import ref_checksum
from hilos.wire.link import LinkTx, kernel_route_v4

LO = 0x7F000001


def _link(covered: dict[int, bool], long: set[int], local: set[int]) -> LinkTx:
    link = object.__new__(LinkTx)
    link.eth = bytes(12) + b"\x08\x00"
    link.source = 0xC6130002
    link._by24 = dict(covered)
    link._long, link._local = long, local
    return link


def test_kernel_route_of_a_local_address_is_local() -> None:
    route = kernel_route_v4(LO)
    assert route is not None
    rtype, oif, gateway, plen = route
    assert rtype == 2 and gateway == 0 and plen == 32  # RTN_LOCAL: never sent as a frame
    assert oif == socket.if_nametoindex("lo")


def test_no_link_for_loopback_or_local_destinations() -> None:
    assert LinkTx.for_route(LO) is None


def test_ip_prefix_gives_a_valid_header_checksum_with_any_destination() -> None:
    link = _link({}, set(), set())
    head, partial = link.ip_prefix(6, 44)
    assert head[:14] == link.eth and head[14:] == bytes.fromhex("4500002c000040004006")
    for dst in (0xC6120007, 0xFFFFFFFF, 0):
        csum = 0xFFFF - (partial + (dst >> 16) + (dst & 0xFFFF)) % 0xFFFF
        header = head[14:] + csum.to_bytes(2, "big") + (0xC6130002).to_bytes(4, "big")
        assert ref_checksum(header + dst.to_bytes(4, "big")) in (0, 0xFFFF)


def test_covers_uses_the_per_24_cache_and_never_covers_special_blocks() -> None:
    block = 0xC61200  # 198.18.0.0/24, answered from the cache: no route lookup
    link = _link({block: True, block + 1: False}, long={block + 2}, local={block + 3})
    assert link.covers(block << 8 | 7)
    assert not link.covers((block + 1) << 8)
    assert not link.covers((block + 2) << 8 | 1)  # a /25-/32 route inside: IP socket
    assert not link.covers((block + 3) << 8 | 1)  # a local address inside: IP socket
    assert link.covers_range(block << 8, block << 8 | 255)
    assert not link.covers_range(block << 8, (block + 1) << 8)
