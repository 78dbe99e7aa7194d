"""The lab's DNS server (hilos.lab.dns): the zone, the wire format, UDP and TCP on loopback."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hilos.errors import LabError
from hilos.lab import dns as labdns
from hilos.lab.dns import DnsServer, DnsSpec, answer, parse_spec
from hilos.lab.resolver import lab_dns_spec

A, NS, SOA, PTR, AAAA, ANY = 1, 2, 6, 12, 28, 255
NOERROR, FORMERR, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 3, 4, 5

LIVE = ["198.18.0.1", "198.18.0.2", "198.18.0.3", "198.18.0.4", "fd18:0:0:100::1", "198.18.0.9"]
SPEC = lab_dns_spec(
    LIVE,
    ["198.18.0.254"],
    [("198.19.0.1", 53), ("fd18:ff::1", 53)],
    ["198.18.0.0/16", "fd18:0:0:100::/64"],
)


# --- An independent client: RFC 1035 encoding written again here, not imported. ----------------


def query(name: str, qtype: int, qid: int = 0x4242, qclass: int = 1, opcode: int = 0) -> bytes:
    head = struct.pack("!HHHHHH", qid, 0x0100 | (opcode << 11), 1, 0, 0, 0)
    qname = b"".join(bytes([len(x)]) + x.encode() for x in name.split(".") if x) + b"\0"
    return head + qname + struct.pack("!HH", qtype, qclass)


@dataclass
class Reply:
    qid: int
    flags: int
    questions: list[tuple[str, int]]
    answers: list[tuple[str, int, int, bytes]]  # owner, type, ttl, rdata
    authority: list[tuple[str, int, int, bytes]]

    @property
    def rcode(self) -> int:
        return self.flags & 0xF

    @property
    def aa(self) -> bool:
        return bool(self.flags & 0x0400)

    def values(self, rtype: int) -> list[str]:
        out = []
        for _, t, _, rdata in self.answers:
            if t == rtype and t in (A, AAAA):
                out.append(str(ipaddress.ip_address(rdata)))
            elif t == rtype:
                out.append(_name(rdata, 0)[0])
        return out


def _name(msg: bytes, pos: int) -> tuple[str, int]:
    labels, end = [], None
    while True:
        n = msg[pos]
        if n & 0xC0 == 0xC0:
            end = pos + 2 if end is None else end
            pos = ((n & 0x3F) << 8) | msg[pos + 1]
            continue
        if n == 0:
            return ".".join(labels), (pos + 1 if end is None else end)
        labels.append(msg[pos + 1 : pos + 1 + n].decode())
        pos += 1 + n


def parse(msg: bytes) -> Reply:
    qid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", msg)
    assert ar == 0
    pos = 12
    questions = []
    for _ in range(qd):
        name, pos = _name(msg, pos)
        questions.append((name, struct.unpack_from("!H", msg, pos)[0]))
        pos += 4
    sections: list[list[tuple[str, int, int, bytes]]] = [[], []]
    for count, section in ((an, sections[0]), (ns, sections[1])):
        for _ in range(count):
            name, pos = _name(msg, pos)
            rtype, rclass, ttl, size = struct.unpack_from("!HHIH", msg, pos)
            assert rclass == 1
            pos += 10
            section.append((name, rtype, ttl, msg[pos : pos + size]))
            pos += size
    assert pos == len(msg)
    return Reply(qid, flags, questions, sections[0], sections[1])


def ask(name: str, qtype: int, **kw: int) -> Reply:
    response = answer(SPEC, query(name, qtype, **kw))
    assert response is not None
    return parse(response)


# --- The zone ------------------------------------------------------------------------------------


def test_fixed_hosts_have_names_and_ptrs() -> None:
    assert ask("h1.lab.test", A).values(A) == ["198.18.0.1"]
    assert ask("h4.lab.test", A).values(A) == ["198.18.0.4"]
    assert ask("v6.lab.test", AAAA).values(AAAA) == ["fd18:0:0:100::1"]
    dual = ask("dual.lab.test", ANY)
    assert dual.values(A) == ["198.18.0.1"] and dual.values(AAAA) == ["fd18:0:0:100::1"]
    assert ask("multi.lab.test", A).values(A) == ["198.18.0.1", "198.18.0.2"]
    assert ask("dead.lab.test", A).values(A) == ["198.18.0.254"]
    assert ask("1.0.18.198.in-addr.arpa", PTR).values(PTR) == ["h1.lab.test"]
    v6ptr = ipaddress.ip_address("fd18:0:0:100::1").reverse_pointer
    assert ask(v6ptr, PTR).values(PTR) == ["v6.lab.test"]
    assert ask("lab.test", NS).values(NS) == ["ns.lab.test"]
    assert ask("ns.lab.test", AAAA).values(AAAA) == ["fd18:ff::1"]


def test_answers_are_authoritative_and_echo_the_question() -> None:
    r = ask("H1.Lab.TEST", A, qid=0xBEEF)
    assert r.qid == 0xBEEF and r.flags & 0x8000 and r.aa and r.rcode == NOERROR
    assert r.flags & 0x0100 and not r.flags & 0x0080  # RD echoed; no recursion available
    assert r.questions == [("H1.Lab.TEST", A)]  # as spelled (0x20 case randomisation)
    assert r.answers[0][0] == "H1.Lab.TEST" and r.answers[0][2] == labdns.TTL


def test_unknown_lab_name_is_nxdomain_with_the_soa() -> None:
    r = ask("nosuch.lab.test", A)
    assert r.rcode == NXDOMAIN and r.aa and not r.answers
    assert [(n, t) for n, t, _, _ in r.authority] == [("lab.test", SOA)]
    r = ask("9.0.18.198.in-addr.arpa", PTR)  # a live host without a name
    assert r.rcode == NXDOMAIN and r.authority[0][0] == "18.198.in-addr.arpa"


def test_missing_type_is_nodata_not_nxdomain() -> None:
    # getaddrinfo asks A and AAAA: NXDOMAIN for the AAAA of a v4-only name would be wrong.
    r = ask("h1.lab.test", AAAA)
    assert r.rcode == NOERROR and r.aa and not r.answers and r.authority[0][1] == SOA


@pytest.mark.parametrize(
    "name", ["example.com", "test", "other.test", "lab.test.example.com", "1.0.0.10.in-addr.arpa"]
)
def test_other_names_are_refused_never_forwarded(name: str) -> None:
    r = ask(name, A)
    assert r.rcode == REFUSED and not r.aa and not r.answers and not r.authority


def test_bad_queries() -> None:
    assert ask("h1.lab.test", A, opcode=2).rcode == NOTIMP  # STATUS
    assert ask("h1.lab.test", A, qclass=3).rcode == REFUSED  # CHAOS
    truncated = query("h1.lab.test", A)[:-3]
    assert parse(answer(SPEC, truncated) or b"").rcode == FORMERR
    pointer = query("h1.lab.test", A)[:12] + b"\xc0\x0c\x00\x01\x00\x01"
    assert parse(answer(SPEC, pointer) or b"").rcode == FORMERR
    assert answer(SPEC, b"\x00" * 11) is None
    response = answer(SPEC, query("h1.lab.test", A))
    assert response is not None and answer(SPEC, response) is None  # never answer an answer


def test_too_long_for_udp_is_truncated() -> None:
    records = {"big.lab.test": {"A": tuple(f"198.18.1.{i}" for i in range(1, 60))}}
    many = DnsSpec((("127.0.0.1", 0),), ("lab.test",), records)
    full = parse(answer(many, query("big.lab.test", A)) or b"")
    assert len(full.answers) == 59 and not full.flags & 0x0200
    short = parse(answer(many, query("big.lab.test", A), 512) or b"")
    assert short.flags & 0x0200 and not short.answers and short.questions


def test_names_only_for_hosts_the_lab_has() -> None:
    spec = lab_dns_spec(["198.18.0.1", "198.18.0.2"], [], [("198.19.0.1", 53)],
                        ["198.18.0.0/16"])  # fmt: skip
    assert "h1.lab.test" in spec.records and "multi.lab.test" in spec.records
    assert "v6.lab.test" not in spec.records and "dual.lab.test" not in spec.records
    assert "h3.lab.test" not in spec.records


def test_spec_round_trips_and_rejects_junk() -> None:
    assert parse_spec(SPEC.to_json()) == SPEC
    for bad in ({}, {"listen": [["nope", 53]], "zones": []},
                {"listen": [], "zones": [], "records": {"x": {"MX": ["y"]}}}):  # fmt: skip
        with pytest.raises(LabError, match="bad DNS spec"):
            parse_spec(bad)


# --- The server on loopback ----------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[tuple[str, int]]:
    spec = DnsSpec((("127.0.0.1", 0),), SPEC.zones, SPEC.records)
    loop = asyncio.new_event_loop()
    srv = DnsServer(spec)
    loop.run_until_complete(srv.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield srv.ports[0]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.run_until_complete(srv.close())
        # close() ends every connection's handler: nothing left to be destroyed while pending
        assert not asyncio.all_tasks(loop)
        loop.close()


def test_udp_and_tcp(server: tuple[str, int]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query("h2.lab.test", A), server)
        assert parse(s.recv(4096)).values(A) == ["198.18.0.2"]
    with socket.create_connection(server, timeout=5) as c:
        for name, qtype, want in (("h3.lab.test", A, "198.18.0.3"), ("v6.lab.test", AAAA,
                                  "fd18:0:0:100::1")):  # fmt: skip
            msg = query(name, qtype)
            c.sendall(struct.pack("!H", len(msg)) + msg)
            size = struct.unpack("!H", c.recv(2))[0]
            data = b""
            while len(data) < size:
                data += c.recv(size - len(data))
            assert parse(data).values(qtype) == [want]


def test_close_ends_open_tcp_connections(server: tuple[str, int]) -> None:
    c = socket.create_connection(server, timeout=5)
    _KEEP_OPEN.append(c)  # still open when the fixture closes the server
    msg = query("h1.lab.test", A)
    c.sendall(struct.pack("!H", len(msg)) + msg)
    assert len(c.recv(4096)) > 2


_KEEP_OPEN: list[socket.socket] = []
