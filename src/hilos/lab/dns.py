"""The lab's DNS server: answers for the lab's own names (lab.test), never forwards a query.

LAB USE ONLY. The lab starts it in its router namespace as ``python -m hilos.lab.dns SPEC.json``
and points the scanner namespace's resolver at it (``/etc/netns/<name>-scan/resolv.conf``), so
name tests resolve lab names without ever asking this machine's resolver. ``.test`` is reserved
for testing (RFC 6761 section 6.2): no real name can collide with a lab name.

SPEC.json::

    {"listen": [["198.19.0.1", 53], ["fd18:ff::1", 53]],
     "zones": ["lab.test", "18.198.in-addr.arpa"],
     "records": {"h1.lab.test": {"A": ["198.18.0.1"]},
                 "1.0.18.198.in-addr.arpa": {"PTR": ["h1.lab.test"]}}}

It answers over UDP and TCP (RFC 1035 section 4.2; RFC 7766), authoritatively (AA) for the names
under ``zones``: A, AAAA, PTR, NS and SOA records, ANY with everything the name has, NODATA (no
error, no answer, the zone's SOA) for a type the name lacks, NXDOMAIN for a name the zone lacks.
Any other name is REFUSED: there is no recursion and no forwarding, so nothing leaves the lab.
Other opcodes get NOTIMP, malformed queries FORMERR. It prints ``ready`` once every socket is
bound and exits 0 on SIGTERM or SIGINT.

Example::

    python -m hilos.lab.dns dns.json   # prints "ready"; kill -TERM to stop
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hilos.errors import HilosError, LabError, from_oserror
from hilos.lab.daemon import serve_until_stopped

__all__ = ["DOMAIN", "TTL", "DnsServer", "DnsSpec", "answer", "load_spec", "main", "parse_spec"]

DOMAIN = "lab.test"  # RFC 6761: .test is reserved for testing and never delegated
TTL = 60  # seconds; also the negative-caching TTL (the SOA minimum, RFC 2308)

TYPES = {"A": 1, "NS": 2, "SOA": 6, "PTR": 12, "AAAA": 28}
_ANY, _CLASS_IN, _CLASS_ANY = 255, 1, 255
_NOERROR, _FORMERR, _NXDOMAIN, _NOTIMP, _REFUSED = 0, 1, 3, 4, 5
_UDP_MAX = 512  # without EDNS (RFC 1035 section 4.2.1); longer answers set TC, the client uses TCP
_TCP_IDLE = 10.0


@dataclass(frozen=True, slots=True)
class DnsSpec:
    """Where to listen, which zones are ours, and every record: name -> type -> values."""

    listen: tuple[tuple[str, int], ...]
    zones: tuple[str, ...]
    records: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "listen": [list(x) for x in self.listen],
            "zones": list(self.zones),
            "records": {n: {t: list(v) for t, v in r.items()} for n, r in self.records.items()},
        }


def parse_spec(data: object) -> DnsSpec:
    """A DnsSpec from decoded JSON; LabError on anything malformed."""
    try:
        assert isinstance(data, dict)
        listen = tuple((str(a), int(p)) for a, p in data["listen"])
        zones = tuple(str(z).lower().rstrip(".") for z in data["zones"])
        records = {
            str(n).lower().rstrip("."): {str(t): tuple(str(v) for v in vs) for t, vs in r.items()}
            for n, r in data.get("records", {}).items()
        }
        for addr, port in listen:
            ipaddress.ip_address(addr)
            assert 0 <= port < 65536
        for rtypes in records.values():
            assert set(rtypes) <= set(TYPES)
    except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LabError(f"bad DNS spec: {exc!r}") from exc
    return DnsSpec(listen, zones, records)


def load_spec(path: str) -> DnsSpec:
    try:
        with open(path, encoding="utf-8") as f:
            return parse_spec(json.load(f))
    except OSError as exc:
        raise from_oserror(exc, f"reading {path}") from exc
    except ValueError as exc:
        raise LabError(f"{path}: not JSON: {exc}") from exc


# ---------------------------------------------------------------------------------------------
# The wire format (RFC 1035 section 4)


def _encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def _read_question(msg: bytes) -> tuple[bytes, str, int, int] | None:
    """(question bytes as sent, lower-case name, qtype, qclass), or None if malformed. Queries
    carry no compression pointers (there is nothing earlier to point at), so none are followed."""
    pos, labels = 12, []
    while True:
        if pos >= len(msg) or msg[pos] & 0xC0:
            return None
        n = msg[pos]
        if n == 0:
            break
        label = msg[pos + 1 : pos + 1 + n]
        if len(label) != n:
            return None
        labels.append(label.decode("latin-1").lower())
        pos += 1 + n
    if pos + 5 > len(msg):
        return None
    qtype, qclass = struct.unpack_from("!HH", msg, pos + 1)
    return msg[12 : pos + 5], ".".join(labels), qtype, qclass


def _rdata(rtype: str, value: str) -> bytes:
    if rtype in ("A", "AAAA"):
        return ipaddress.ip_address(value).packed
    return _encode_name(value)  # PTR, NS


def _soa_rdata() -> bytes:
    # mname, rname, serial, refresh, retry, expire, minimum (RFC 1035 section 3.3.13)
    return (
        _encode_name(f"ns.{DOMAIN}")
        + _encode_name(f"hostmaster.{DOMAIN}")
        + struct.pack("!IIIII", 1, 3600, 600, 86400, TTL)
    )


def _rr(owner: bytes, rtype: int, rdata: bytes) -> bytes:
    return owner + struct.pack("!HHIH", rtype, _CLASS_IN, TTL, len(rdata)) + rdata


def _zone_of(name: str, zones: Sequence[str]) -> str | None:
    for zone in zones:
        if name == zone or name.endswith("." + zone):
            return zone
    return None


def _answers(spec: DnsSpec, name: str, qtype: int, zone: str) -> list[tuple[int, bytes]]:
    """(type, rdata) of every record of `name` matching `qtype` (ANY: all of them)."""
    found: list[tuple[int, bytes]] = []
    if name == zone:
        if qtype in (TYPES["SOA"], _ANY):
            found.append((TYPES["SOA"], _soa_rdata()))
        if qtype in (TYPES["NS"], _ANY):
            found.append((TYPES["NS"], _encode_name(f"ns.{DOMAIN}")))
    for rtype, values in spec.records.get(name, {}).items():
        if qtype in (TYPES[rtype], _ANY):
            found += [(TYPES[rtype], _rdata(rtype, v)) for v in values]
    return found


def answer(spec: DnsSpec, query: bytes, max_size: int = 65535) -> bytes | None:
    """The response to one query message, or None when it deserves no answer (too short to
    carry an id, or itself a response: answering those could loop between two servers)."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack_from("!HHH", query)
    if flags & 0x8000:
        return None
    opcode, rd = (flags >> 11) & 0xF, flags & 0x0100

    def reply(
        rcode: int,
        question: bytes = b"",
        aa: bool = False,
        an: Sequence[bytes] = (),
        ns: Sequence[bytes] = (),
    ) -> bytes:
        bits = 0x8000 | (opcode << 11) | (0x0400 if aa else 0) | rd | rcode
        head = struct.pack("!HHHHHH", qid, bits, 1 if question else 0, len(an), len(ns), 0)
        msg = head + question + b"".join(an) + b"".join(ns)
        if len(msg) > max_size:  # truncated: the client asks again over TCP
            head = struct.pack("!HHHHHH", qid, bits | 0x0200, 1 if question else 0, 0, 0, 0)
            msg = head + question
        return msg

    if opcode != 0:
        return reply(_NOTIMP)
    parsed = _read_question(query) if qdcount == 1 else None
    if parsed is None:
        return reply(_FORMERR)
    question, name, qtype, qclass = parsed
    zone = _zone_of(name, spec.zones)
    if zone is None or qclass not in (_CLASS_IN, _CLASS_ANY):
        return reply(_REFUSED, question)  # not ours: no recursion, no forwarding, ever
    owner = b"\xc0\x0c"  # compression pointer to the question's name, as the client spelled it
    found = _answers(spec, name, qtype, zone)
    if found:
        return reply(_NOERROR, question, True, [_rr(owner, t, d) for t, d in found])
    soa = [_rr(_encode_name(zone), TYPES["SOA"], _soa_rdata())]
    exists = name == zone or name in spec.records
    return reply(_NOERROR if exists else _NXDOMAIN, question, True, ns=soa)


# ---------------------------------------------------------------------------------------------
# The server

_IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # Linux value; Python does not export it


def _bind(addr: str, port: int, kind: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        with contextlib.suppress(OSError):
            # The lab may start us before its router has its addresses: bind them anyway.
            sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
        sock.bind((addr, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(64)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise from_oserror(exc, f"DNS on {addr} port {port}") from exc
    return sock


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, spec: DnsSpec) -> None:
        self.spec = spec
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        response = answer(self.spec, data, _UDP_MAX)
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)


class DnsServer:
    """The spec's UDP and TCP listeners in the running event loop; `ports` says where they are
    (a spec may ask for port 0)."""

    def __init__(self, spec: DnsSpec) -> None:
        self.spec = spec
        self.ports: list[tuple[str, int]] = []
        self._transports: list[asyncio.BaseTransport] = []
        self._servers: list[asyncio.AbstractServer] = []
        self._conns: set[asyncio.Task[None]] = set()  # TCP handlers, ended by close()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for addr, port in self.spec.listen:
                tcp = _bind(addr, port, socket.SOCK_STREAM)
                port = tcp.getsockname()[1]  # UDP on the same port, when 0 asked for any
                udp = _bind(addr, port, socket.SOCK_DGRAM)
                self.ports.append((addr, port))
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self.spec), sock=udp
                )
                self._transports.append(transport)
                self._servers.append(await asyncio.start_server(self._tcp, sock=tcp))
        except BaseException:
            await self.close()
            raise

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # RFC 7766: two-byte length, then the message; several queries may share a connection.
        task = asyncio.current_task()
        if task is not None:
            self._conns.add(task)
        try:
            while True:
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), _TCP_IDLE))
                query = await asyncio.wait_for(reader.readexactly(size[0]), _TCP_IDLE)
                response = answer(self.spec, query)
                if response is None:
                    break
                writer.write(struct.pack("!H", len(response)) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass
        finally:
            writer.close()
            if task is not None:
                self._conns.discard(task)

    async def close(self) -> None:
        """Stop listening and end every open TCP connection."""
        for conn in list(self._conns):
            conn.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)
        for transport in self._transports:
            transport.close()
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._transports.clear()
        self._servers.clear()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hilos.lab.dns SPEC.json``: serve until SIGTERM; 0 on a clean stop, 1 on error."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0].startswith("-"):
        print("usage: python -m hilos.lab.dns SPEC.json", file=sys.stderr)
        return 2
    try:
        asyncio.run(
            serve_until_stopped(DnsServer(load_spec(args[0])), lambda: print("ready", flush=True))
        )
    except HilosError as exc:
        print(f"labdns: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
