"""UDP probe payloads by port, each carrying the scan's keyed cookie in its protocol's own id field.

A UDP service answers only a request of its protocol, so the payload is chosen by port (nmap's
nmap-payloads, masscan's templ-payloads.c). The cookie rides where the server echoes it back:
the DNS, NetBIOS and mDNS id and the memcached request id (16 bits), the SNMP request-id (31
bits), the NTP transmit timestamp (copied into the answer's originate timestamp). A reply to a
port with a payload of its own is accepted only when it echoes that id. A port without one gets,
attempt after attempt, an empty datagram and then each protocol's payload in turn (`ROTATION`),
which is how a DNS or SNMP server on an unusual port still answers.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "PORT_KINDS",
    "ROTATION",
    "build_payload",
    "id_matches",
    "kind_for",
    "kinds_for",
]

# Kinds each well-known port gets, one per attempt in turn (SNMP: v2c, then v1).
PORT_KINDS: Final[dict[int, tuple[str, ...]]] = {
    53: ("dns",),
    123: ("ntp",),
    137: ("netbios",),
    161: ("snmp", "snmp1"),
    1900: ("ssdp",),
    5353: ("mdns",),
    11211: ("memcached",),
}
ROTATION: Final = ("empty", "dns", "snmp", "ntp", "memcached", "ssdp")

_DNS_VERSION_BIND: Final = (
    b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07version\x04bind\x00\x00\x10\x00\x03"
)
_NBSTAT: Final = (
    b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x20"
    b"CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00\x00\x21\x00\x01"
)
_MDNS: Final = (
    b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    b"\x09_services\x07_dns-sd\x04_udp\x05local\x00\x00\x0c\x00\x01"
)
_NTP_HEAD: Final = b"\xe3\x00\x04\xfa\x00\x01\x00\x00\x00\x01\x00\x00" + bytes(28)
_SSDP: Final = (
    b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
    b'MAN: "ssdp:discover"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n'
)
_SYSDESCR_OID: Final = b"\x06\x08\x2b\x06\x01\x02\x01\x01\x01\x00"
# Kinds whose id is the first two bytes of request and reply.
_ID16: Final = frozenset({"dns", "netbios", "mdns", "memcached"})


def kinds_for(port: int) -> tuple[str, ...]:
    """The payload kinds `port` gets, attempt by attempt (cycled)."""
    return PORT_KINDS.get(port, ROTATION)


def kind_for(port: int, attempt: int) -> str:
    """The payload kind of attempt `attempt` (0-based) to `port`."""
    kinds = PORT_KINDS.get(port, ROTATION)
    return kinds[attempt % len(kinds)]


def _tlv(tag: int, body: bytes) -> bytes:
    # BER definite length: short form below 128, else one or two length bytes.
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    if n < 0x100:
        return bytes((tag, 0x81, n)) + body
    return bytes((tag, 0x82)) + n.to_bytes(2, "big") + body


def _snmp_get(version: int, request_id: int) -> bytes:
    """An SNMP GetRequest for sysDescr.0 with community `public` (version 0: v1, 1: v2c)."""
    varbind = _tlv(0x30, _SYSDESCR_OID + b"\x05\x00")
    pdu = _tlv(
        0xA0,
        b"\x02\x04"
        + request_id.to_bytes(4, "big")
        + b"\x02\x01\x00\x02\x01\x00"  # error-status, error-index
        + _tlv(0x30, varbind),
    )
    return _tlv(0x30, bytes((0x02, 0x01, version)) + b"\x04\x06public" + pdu)


def build_payload(kind: str, cookie: int) -> bytes:
    """The datagram payload of `kind` carrying the 32-bit `cookie` in its id field."""
    id16 = struct.pack("!H", cookie & 0xFFFF)
    if kind == "dns":
        return id16 + _DNS_VERSION_BIND
    if kind == "netbios":
        return id16 + _NBSTAT
    if kind == "mdns":
        return id16 + _MDNS
    if kind == "memcached":
        return id16 + b"\x00\x00\x00\x01\x00\x00stats\r\n"
    if kind == "ntp":
        return _NTP_HEAD + struct.pack("!II", cookie & 0xFFFFFFFF, 0)
    if kind in ("snmp", "snmp1"):
        return _snmp_get(1 if kind == "snmp" else 0, cookie & 0x7FFFFFFF)
    if kind == "ssdp":
        return _SSDP
    if kind == "empty":
        return b""
    raise ValueError(f"unknown UDP payload kind {kind!r}")


def snmp_request_id(data: bytes) -> int | None:
    """The request-id of an SNMP message (v1/v2c), or None when `data` is not one."""
    try:
        pos = _skip_header(data, 0, 0x30)
        pos = _skip_tlv(data, pos, 0x02)  # version
        pos = _skip_tlv(data, pos, 0x04)  # community
        if data[pos] & 0xE0 != 0xA0:  # a PDU (context-specific, constructed)
            return None
        pos = _skip_header(data, pos, data[pos])
        if data[pos] != 0x02:
            return None
        n = data[pos + 1]
        if not 1 <= n <= 5 or pos + 2 + n > len(data):
            return None
        return int.from_bytes(data[pos + 2 : pos + 2 + n], "big", signed=True)
    except IndexError:
        return None


def _length(data: bytes, pos: int) -> tuple[int, int]:
    """(content length, offset of the content) for the BER length at `pos`."""
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if not 1 <= count <= 2:
        raise IndexError("unsupported BER length")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _skip_header(data: bytes, pos: int, tag: int) -> int:
    if data[pos] != tag:
        raise IndexError("unexpected BER tag")
    return _length(data, pos + 1)[1]


def _skip_tlv(data: bytes, pos: int, tag: int) -> int:
    if data[pos] != tag:
        raise IndexError("unexpected BER tag")
    n, start = _length(data, pos + 1)
    return start + n


def id_matches(kind: str, cookie: int, data: bytes) -> bool:
    """Whether `data`, a reply to a `kind` probe, echoes the id that probe carried (kinds without
    an id field, SSDP and the empty datagram, always match: the source port vouches alone)."""
    if kind in _ID16:
        return len(data) >= 2 and int.from_bytes(data[:2], "big") == cookie & 0xFFFF
    if kind == "ntp":
        return len(data) >= 48 and int.from_bytes(data[24:28], "big") == cookie & 0xFFFFFFFF
    if kind in ("snmp", "snmp1"):
        return snmp_request_id(data) == cookie & 0x7FFFFFFF
    return True
