"""Tests for hilos.wire.cookie: the one keyed probe cookie (TCP, UDP and ICMP echo)."""

from __future__ import annotations

import ipaddress

from hilos.wire import cookie as cookie_mod
from hilos.wire.cookie import M1, M2, M3, MASK32, MASK64, Cookie

DST4, DST6 = "198.18.0.7", "fd18:0:0:100::9"


def test_cookie_is_keyed_and_spread() -> None:
    a, b = Cookie(1), Cookie(2)
    ip = int(ipaddress.ip_address(DST4))
    assert a.value(a.host_seed(ip), 80, 61000) == Cookie(1).value(
        Cookie(1).host_seed(ip), 80, 61000
    )
    assert a.value(a.host_seed(ip), 80, 61000) != b.value(b.host_seed(ip), 80, 61000)
    values = {a.value(a.host_seed(ip), port, 61000) for port in range(1, 5001)}
    assert len(values) > 4990  # 32-bit outputs: collisions among 5000 inputs are rare
    v6 = int(ipaddress.ip_address(DST6))
    # The upper 64 bits of an IPv6 address count too.
    assert a.host_seed(v6) != a.host_seed(v6 ^ (1 << 100))


def test_inlined_arithmetic_with_public_constants_is_the_cookie() -> None:
    """Hot loops inline the hash with M1/M2/M3/MASK64: this is that inlining, checked."""
    c = Cookie(0xABCDEF_0123456789_FEDCBA9876543210)
    for ip in (0, 1, 0xC6120007, int(ipaddress.ip_address(DST6))):
        x = ((ip & MASK64) ^ c.k1) * M1 & MASK64
        x ^= x >> 31
        x = ((x ^ (ip >> 64) ^ c.k2) * M2) & MASK64
        seed = x ^ (x >> 29)
        assert seed == c.host_seed(ip)
        y = (seed ^ (443 << 16) ^ 16400) * M3 & MASK64
        y ^= y >> 32
        assert (y * M1 & MASK64) >> 32 == c.value(seed, 443, 16400)


def test_echo_cookie_is_the_tcp_cookie_without_ports() -> None:
    """One construction: the echo cookie is value(host_seed(ip), 0, 0), keyed, 32 bits; no
    second keyed mix is left in the module."""
    c = Cookie(0x1234_5678_9ABC_DEF0_0FED_CBA9_8765_4321)
    v6 = int(ipaddress.ip_address(DST6))
    for ip in (0, 5, 0xC6120007, MASK32, v6):
        assert c.echo(ip) == c.value(c.host_seed(ip), 0, 0)
        assert 0 <= c.echo(ip) <= MASK32
    assert c.echo(5) != Cookie(2).echo(5)
    assert len({c.echo(ip) for ip in range(5000)}) > 4990
    # A sweep's IPv6 result key (V6_TAG, bit 128, above the address) has the address's cookie.
    assert c.echo(v6 + (1 << 128)) == c.echo(v6) and c.echo(1 + (1 << 128)) == c.echo(1)
    assert not hasattr(cookie_mod, "echo_cookie")


def test_inlined_echo_arithmetic_is_the_cookie() -> None:
    """The echo loops inline value(seed, 0, 0) as this (the port word is 0)."""
    c = Cookie(0xABCDEF_0123456789_FEDCBA9876543210)
    for ip in (0, 1, 0xC6120007, 0xFFFFFFFF):
        x = ((ip ^ c.k1) * M1) & MASK64
        x ^= x >> 31
        x = ((x ^ c.k2) * M2) & MASK64
        seed = x ^ (x >> 29)
        y = (seed * M3) & MASK64
        y ^= y >> 32
        assert ((y * M1) & MASK64) >> 32 == c.echo(ip)
