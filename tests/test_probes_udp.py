"""UDP payloads carry the cookie in their id fields; the reply parsers never crash on garbage."""

from __future__ import annotations

import random
import struct

import pytest

from hilos.probes.udp_payloads import (
    PORT_KINDS,
    ROTATION,
    build_payload,
    id_matches,
    kind_for,
    snmp_request_id,
)
from hilos.probes.udp_reply import build_udp, parse_icmp4, parse_icmp6, parse_udp4, parse_udp6

COOKIE = 0xDEADBEEF


def _echo_reply(kind: str, request: bytes) -> bytes:
    """What a server of `kind` sends back, as far as the id goes."""
    if kind in ("dns", "netbios", "mdns", "memcached"):
        return request[:2] + b"\x81\x80" + request[4:]
    if kind == "ntp":
        return b"\x24\x02" + bytes(22) + request[40:48] + bytes(16)
    if kind in ("snmp", "snmp1"):
        return request.replace(b"\xa0", b"\xa2", 1)  # a GetResponse with the same request-id
    return b"HTTP/1.1 200 OK\r\n\r\n"


@pytest.mark.parametrize(
    "kind", sorted({*ROTATION, *(k for ks in PORT_KINDS.values() for k in ks)})
)
def test_payload_cookie_round_trips(kind: str) -> None:
    request = build_payload(kind, COOKIE)
    assert id_matches(kind, COOKIE, _echo_reply(kind, request))
    if kind not in ("ssdp", "empty"):
        assert not id_matches(kind, COOKIE ^ 1, _echo_reply(kind, request))


def test_payloads_of_the_anchors() -> None:
    assert build_payload("dns", COOKIE)[2:] == (
        b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07version\x04bind\x00\x00\x10\x00\x03"
    )
    ntp = build_payload("ntp", COOKIE)
    assert len(ntp) == 48 and ntp.startswith(b"\xe3\x00\x04\xfa\x00\x01\x00\x00\x00\x01")
    assert struct.unpack("!I", ntp[40:44])[0] == COOKIE
    assert snmp_request_id(build_payload("snmp", COOKIE)) == COOKIE & 0x7FFFFFFF
    assert b"public" in build_payload("snmp1", COOKIE)
    assert b'MAN: "ssdp:discover"' in build_payload("ssdp", COOKIE)
    assert build_payload("memcached", COOKIE)[2:] == b"\x00\x00\x00\x01\x00\x00stats\r\n"
    assert build_payload("empty", COOKIE) == b""


def test_kinds_by_port_and_rotation() -> None:
    assert kind_for(53, 3) == "dns"
    assert [kind_for(161, a) for a in range(3)] == ["snmp", "snmp1", "snmp"]
    assert [kind_for(5300, a) for a in range(len(ROTATION))] == list(ROTATION)


def test_parse_udp4_and_icmp4_quote() -> None:
    probe = build_udp(20000, 53, b"xy")
    ip = bytes(
        [0x45, 0, 0, 20 + len(probe), 0, 0, 0, 0, 64, 17, 0, 0, 198, 19, 0, 2, 198, 18, 0, 1]
    )
    d = parse_udp4(ip + probe, len(ip + probe))
    assert d is not None and (d.sport, d.dport) == (20000, 53)
    outer = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 198, 18, 0, 1, 198, 19, 0, 2])
    err = outer + bytes([3, 3, 0, 0, 0, 0, 0, 0]) + ip + probe
    q = parse_icmp4(err, len(err))
    assert q is not None and q.reason == "port-unreach"
    assert (q.addr, q.sport, q.dport) == (0xC6120001, 20000, 53)
    # A quoted TCP segment is not ours.
    tcp = bytearray(err)
    tcp[28 + 9] = 6
    assert parse_icmp4(bytes(tcp), len(tcp)) is None


def test_parse_icmp6_quote() -> None:
    ip6 = bytes([0x60, 0, 0, 0, 0, 10, 17, 64]) + bytes(16) + (1).to_bytes(16, "big")
    err = bytes([1, 4, 0, 0, 0, 0, 0, 0]) + ip6 + build_udp(20001, 161, b"")
    q = parse_icmp6(err, len(err))
    assert q is not None and (q.addr, q.sport, q.dport, q.reason) == (1, 20001, 161, "port-unreach")
    assert parse_udp6(1, build_udp(161, 20001, b"a"), 9) is not None


def test_ten_thousand_fuzzed_packets_never_raise() -> None:
    rng = random.Random(12)
    base4 = bytes([0x45] + [0] * 8 + [17] + [0] * 10)
    for i in range(10_000):
        n = rng.randrange(0, 120)
        blob = bytes(rng.randrange(256) for _ in range(n))
        if i % 3 == 0:
            blob = base4[: rng.randrange(21)] + blob
        for parse in (parse_udp4, parse_icmp4, parse_icmp6):
            parse(blob, len(blob))
        parse_udp6(0, blob, len(blob))
        snmp_request_id(blob)
        for kind in ("dns", "ntp", "snmp", "ssdp"):
            id_matches(kind, COOKIE, blob)
