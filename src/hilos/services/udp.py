"""Naming UDP services from their replies: DNS version.bind, NTP, SNMP sysDescr, SSDP, memcached.

`describe(port, data)` reads one reply (the payload of a datagram that answered our probe) and
returns the PortResult fields it supports: service, product, version, banner. It recognises the
protocol from the reply itself, not the port, so a DNS server on port 5000 is named "domain".
Unrecognised replies give {} (the port table's name stays). Never raises on any input.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["describe"]

_TEXT_LIMIT: Final = 200
_SYSDESCR_OID: Final = b"\x06\x08\x2b\x06\x01\x02\x01\x01\x01\x00"
_MEMCACHED_VERSION = re.compile(rb"(?:STAT version|VERSION) ([\w.+-]+)")
_BIND = re.compile(r"(\d+\.\d+(?:\.\d+)?)")
_SERVER = re.compile(rb"^server:[ \t]*([^\r\n]*)", re.IGNORECASE | re.MULTILINE)


def describe(port: int, data: bytes) -> dict[str, str]:
    """PortResult fields (service, product, version, banner) that `data` names, or {}."""
    for reader in (_ssdp, _snmp, _memcached, _netbios, _dns, _ntp):
        try:
            found = reader(data)
        except (IndexError, ValueError, UnicodeDecodeError):
            found = None
        if found:
            return {k: v[:_TEXT_LIMIT] for k, v in found.items() if v}
    return {}


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


def _ssdp(data: bytes) -> dict[str, str] | None:
    if not data.startswith(b"HTTP/1.1 200") or b"\r\n" not in data:
        return None
    m = _SERVER.search(data)
    server = _text(m.group(1)) if m else ""
    return {"service": "upnp", "product": server, "banner": server}


def _snmp(data: bytes) -> dict[str, str] | None:
    if not data.startswith(b"\x30") or b"public" not in data[:40]:
        return None
    at = data.find(_SYSDESCR_OID)
    if at < 0:
        return {"service": "snmp"}
    pos = at + len(_SYSDESCR_OID)
    if data[pos] != 0x04:
        return {"service": "snmp"}
    n, pos = data[pos + 1], pos + 2
    if n & 0x80:
        count = n & 0x7F
        n, pos = int.from_bytes(data[pos : pos + count], "big"), pos + count
    descr = _text(data[pos : pos + n])
    return {"service": "snmp", "product": descr, "banner": descr}


def _memcached(data: bytes) -> dict[str, str] | None:
    if len(data) < 9 or data[2:4] != b"\x00\x00":
        return None
    m = _MEMCACHED_VERSION.search(data[8:])
    if m is None:
        return None
    return {"service": "memcache", "product": "memcached", "version": _text(m.group(1))}


def _ntp(data: bytes) -> dict[str, str] | None:
    if len(data) < 48 or data[0] & 0x07 != 4:  # mode 4: a server's answer
        return None
    version = (data[0] >> 3) & 0x07
    if not 1 <= version <= 4:
        return None
    stratum = data[1]
    return {
        "service": "ntp",
        "product": "NTP",
        "version": f"v{version}",
        "banner": f"NTP v{version}, stratum {stratum}",
    }


def _names(data: bytes, pos: int) -> int:
    """Skip a DNS name (labels or a compression pointer) at `pos`; the offset after it."""
    for _ in range(128):
        n = data[pos]
        if n == 0:
            return pos + 1
        if n & 0xC0 == 0xC0:
            return pos + 2
        pos += n + 1
    raise ValueError("name too long")


def _dns_answers(data: bytes) -> list[tuple[int, bytes]]:
    """(type, rdata) of each answer record of a DNS response."""
    qd, an = int.from_bytes(data[4:6], "big"), int.from_bytes(data[6:8], "big")
    pos = 12
    for _ in range(min(qd, 16)):
        pos = _names(data, pos) + 4
    out = []
    for _ in range(min(an, 64)):
        pos = _names(data, pos)
        rtype = int.from_bytes(data[pos : pos + 2], "big")
        rdlen = int.from_bytes(data[pos + 8 : pos + 10], "big")
        rdata = data[pos + 10 : pos + 10 + rdlen]
        if len(rdata) != rdlen:
            raise ValueError("short record")
        out.append((rtype, rdata))
        pos += 10 + rdlen
    return out


def _netbios(data: bytes) -> dict[str, str] | None:
    # An NBSTAT answer: a response (QR) whose first answer has type 0x21.
    if len(data) < 57 or not data[2] & 0x80 or data[46:48] != b"\x00\x21":
        return None
    count = data[56]
    names = [_text(data[57 + 18 * i : 57 + 18 * i + 15]) for i in range(min(count, 16))]
    first = names[0] if names else ""
    return {"service": "netbios-ns", "product": first, "banner": " ".join(names)}


def _dns(data: bytes) -> dict[str, str] | None:
    if len(data) < 12 or not data[2] & 0x80:  # QR: a response
        return None
    answers = _dns_answers(data)
    txt = [rd for t, rd in answers if t == 16 and rd]
    if txt:
        version = _text(txt[0][1 : 1 + txt[0][0]])
        m = _BIND.match(version)
        if version.lower().startswith("dnsmasq-"):
            return {"service": "domain", "product": "dnsmasq", "version": version[8:]}
        if m:
            return {"service": "domain", "product": "ISC BIND", "version": m.group(1)}
        return {"service": "domain", "product": version}
    ptrs = [rd for t, rd in answers if t == 12]
    if ptrs:
        return {"service": "mdns", "banner": f"{len(ptrs)} service types"}
    return {"service": "domain"}
