"""UDP probes for the batched engine (hilos.wire.vector): one frame template per payload kind.

A `UdpVector` is an IPv4 header + UDP header + the kind's payload (hilos.probes.udp_payloads)
for an IP_HDRINCL raw socket: the kernel fills the source address, the total length and the IP
checksum (raw(7)), the UDP checksum stays 0 ("none" over IPv4), as in the scalar path. `patch`
writes the destination, the keyed source port, the port and the cookie in the payload's id
field for a whole batch in numpy; the frames after the IP header are byte for byte
build_udp(sport, port, build_payload(kind, cookie)) (tests/test_probes_udp_vector.py).
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt

from hilos.probes.base import SPORT_BASE, SPORT_MASK
from hilos.probes.udp_payloads import build_payload
from hilos.wire.cookie import Cookie
from hilos.wire.vector import U8, U16, U32, Answers, tcp_cookies

__all__ = ["UdpVector", "keyed_sports"]

_u64 = np.uint64
_MARK: Final = 0x5A6B7C1D  # a cookie whose bytes locate the id field in a payload
# Where each kind's id field sits in its payload, and its width (None: no id field).
_ID: Final[dict[str, tuple[int, int] | None]] = {
    "dns": (0, 2),
    "netbios": (0, 2),
    "mdns": (0, 2),
    "memcached": (0, 2),
    "ntp": (40, 4),
    "ssdp": None,
    "empty": None,
}


def _id_field(kind: str) -> tuple[int, int] | None:
    if kind in _ID:
        return _ID[kind]
    # SNMP: the request-id's 4 content bytes, found by building with a marker cookie.
    at = build_payload(kind, _MARK).find(struct.pack("!I", _MARK & 0x7FFFFFFF))
    if at < 0:
        raise ValueError(f"no id field found in a {kind} payload")
    return at, 4


def keyed_sports(
    cookie: Cookie, addrs: npt.NDArray[np.uint64], ports: npt.NDArray[np.uint64]
) -> npt.NDArray[np.uint64]:
    """The source port of each probe: hilos.udp.targets.UdpTargets.sport, vectorised."""
    zero = np.zeros(len(addrs), dtype=np.uint64)
    c = tcp_cookies(cookie, addrs, ports, zero).astype(np.uint64)
    out: npt.NDArray[np.uint64] = _u64(SPORT_BASE) + (c & _u64(SPORT_MASK))
    return out


class UdpVector:
    """Frames of one payload kind for the scan keyed by `cookie` (see the module docstring)."""

    def __init__(self, cookie: Cookie, kind: str) -> None:
        payload = build_payload(kind, 0)
        self.cookie = cookie
        self.kind = kind
        head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 64, 17, 0, bytes(4), bytes(4))
        udp = struct.pack("!HHHH", 0, 0, 8 + len(payload), 0)
        self.template = head + udp + payload
        fields: list[tuple[str, str, int]] = [
            ("dst", ">u4", 16),
            ("sport", ">u2", 20),
            ("dport", ">u2", 22),
        ]
        self._id = _id_field(kind)
        if self._id is not None:
            at, width = self._id
            fields.append(("id", ">u2" if width == 2 else ">u4", 28 + at))
        names, formats, offsets = zip(*fields, strict=True)
        self.layout: np.dtype[np.void] = np.dtype(
            {"names": list(names), "formats": list(formats), "offsets": list(offsets),
             "itemsize": len(self.template)}
        )  # fmt: skip

    def patch(self, rows: npt.NDArray[np.void], dst: U32, port: U16) -> None:
        d, p = dst.astype(np.uint64), port.astype(np.uint64)
        sport = keyed_sports(self.cookie, d, p)
        rows["dst"] = dst
        rows["sport"] = sport
        rows["dport"] = port
        if self._id is not None:
            value = tcp_cookies(self.cookie, d, p, sport).astype(np.uint64)
            width = self._id[1]
            mask = (
                0xFFFF
                if width == 2
                else (0x7FFFFFFF if self.kind.startswith("snmp") else 0xFFFFFFFF)
            )
            rows["id"] = value & _u64(mask)

    def validate(self, pkts: U8, lens: npt.NDArray[np.int64]) -> Answers:
        """Datagrams (IP header first) from a port to the source port keyed for that address
        and port (the payload's id is checked by the scalar receiver, per kind)."""
        v = pkts[:, 0].astype(np.int64)
        ihl = (v & 15) * 4
        ok = (v >> 4 == 4) & (ihl >= 20) & (pkts[:, 9] == 17) & (lens >= ihl + 8)
        rows = np.arange(len(pkts))
        cols = np.clip(ihl[:, None] + np.arange(4), 0, pkts.shape[1] - 1)
        b = pkts[rows[:, None], cols].astype(np.uint64)
        src_port = (b[:, 0] << _u64(8)) | b[:, 1]
        dst_port = (b[:, 2] << _u64(8)) | b[:, 3]
        a = pkts[:, 12:16].astype(np.uint64)
        addr = (a[:, 0] << _u64(24)) | (a[:, 1] << _u64(16)) | (a[:, 2] << _u64(8)) | a[:, 3]
        ok &= dst_port == keyed_sports(self.cookie, addr, src_port)
        zeros = np.zeros(len(pkts), dtype=np.uint64)
        return Answers(ok, addr.astype(np.uint32), src_port.astype(np.uint16),
                       np.ones(len(pkts), dtype=np.uint8), zeros)  # fmt: skip
