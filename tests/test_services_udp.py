"""UDP services are named from their replies: every lab UDP kind, answered to hilos's own probes."""

from __future__ import annotations

import random

import pytest

from hilos.lab.services.udp_server import ANSWERS, UDP_KINDS
from hilos.probes.udp_payloads import ROTATION, build_payload, id_matches
from hilos.services.udp import describe

PROBE = {"dns": "dns", "ntp": "ntp", "snmp": "snmp", "ssdp": "ssdp", "memcached": "memcached"}


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_each_lab_udp_service_is_named_right(kind: str) -> None:
    request = build_payload(PROBE[kind], 0x12345678)
    reply = ANSWERS[kind](request)
    assert reply is not None
    assert id_matches(PROBE[kind], 0x12345678, reply)
    want = {k: v for k, v in UDP_KINDS[kind].items() if v}
    got = describe(5000, reply)  # the port plays no part: an unusual port is named the same
    assert {k: got.get(k) for k in want} == want


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_lab_udp_services_answer_only_their_protocol(kind: str) -> None:
    answer = ANSWERS[kind]
    others = [k for k in ROTATION if k != PROBE[kind]]
    for other in others:
        assert answer(build_payload(other, 1)) is None, other
    rng = random.Random(kind)
    for _ in range(500):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(60)))
        if kind == "ntp" and blob[:1] and blob[0] & 7 == 3:
            continue  # any 48 bytes in mode 3 is a valid client request: ntpd answers it
        assert answer(blob) is None


def test_snmp_v1_and_wrong_community() -> None:
    v1 = build_payload("snmp1", 77)
    assert describe(161, ANSWERS["snmp"](v1) or b"")["service"] == "snmp"
    assert ANSWERS["snmp"](v1.replace(b"public", b"secret")) is None


def test_memcached_version_reply_and_dns_refused() -> None:
    frame = b"\x00\x07\x00\x00\x00\x01\x00\x00version\r\n"
    assert describe(11211, ANSWERS["memcached"](frame) or b"")["version"] == "1.6.21"
    query = b"\x00\x09\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x04test\x00\x00\x01\x00\x01"
    assert describe(53, ANSWERS["dns"](query) or b"") == {"service": "domain"}


def test_describe_never_raises_on_garbage() -> None:
    rng = random.Random(3)
    for i in range(10_000):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
        if i % 4 == 0:
            blob = b"\x00\x01\x81\x80\x00\x01\x00\x05" + blob
        describe(53, blob)
