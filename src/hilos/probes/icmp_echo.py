"""The ICMP/ICMPv6 echo probe (RFC 792, RFC 4443): building requests, parsing what answers them.

Packet layout of an echo request as hilos builds it (RFC 792 p. 14)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     Type      |     Code      |          Checksum             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           Identifier          |        Sequence Number        |   <- 32-bit cookie
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                 send time, ns (64 bits, monotonic)            |   <- RTT without a table
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          cookie again (32 bits)  |  "hilos" padding ...        |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The identifier and sequence carry a keyed hash of the destination (the "cookie"), the way zmap
validates replies: the receiver recomputes it from the reply's source, so no per-probe state is
kept. Unprivileged datagram sockets get their identifier rewritten by the kernel, which is why the
cookie is repeated in the payload (echo replies return the payload verbatim).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final, Literal

from hilos.wire.checksum import checksum
from hilos.wire.frames import (
    ICMP6_DEST_UNREACH,
    ICMP6_ECHO_REPLY,
    ICMP6_ECHO_REQUEST,
    ICMP6_TIME_EXCEEDED,
    ICMP_DEST_UNREACH,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    ICMP_TIME_EXCEEDED,
)

__all__ = ["V6_TAG", "IcmpReply", "Reason", "addr_key", "build_echo", "parse_reply"]

# Keys of results: IPv4 addresses as their int, IPv6 addresses as their int plus this tag, so one
# dict holds both families without collisions (::1 and 0.0.0.1 are both 1).
V6_TAG: Final = 1 << 128

Reason = Literal["echo-reply", "host-unreach", "time-exceeded"]


def build_echo(ident: int, seq: int, payload: bytes = b"", *, v6: bool = False) -> bytes:
    """An ICMP (or ICMPv6) echo request with its checksum.

    For ICMPv6 the checksum covers a pseudo-header with both addresses (RFC 4443 2.3); Linux raw
    and datagram ICMPv6 sockets always compute it themselves, so it is left 0 here.
    """
    kind = ICMP6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
    header = struct.pack("!BBHHH", kind, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    if v6:
        return header + payload
    csum = checksum(header + payload)
    return struct.pack("!BBHHH", kind, 0, csum, ident & 0xFFFF, seq & 0xFFFF) + payload


@dataclass(frozen=True, slots=True)
class IcmpReply:
    """One ICMP message that answers (or may answer) a probe of ours.

    `target` is the address the probe went to: the sender of an echo reply, or the destination
    quoted inside an error. `reporter` is who sent the message (a router for errors).
    For echo replies `ident`/`seq` are the reply's, `payload` its data. For errors `proto` is the
    quoted datagram's protocol (1, 58 or 6) and `quoted` the first bytes of its transport header:
    for a quoted echo, `ident`/`seq` are filled in from it; a quoted TCP header is left to the
    TCP engine.
    """

    kind: Reason
    family: int
    reporter: str
    target: str
    type: int
    code: int
    ident: int = 0
    seq: int = 0
    proto: int = 0
    payload: bytes = b""
    quoted: bytes = b""

    @property
    def cookie(self) -> int:
        return (self.ident << 16) | self.seq

    @property
    def sent_ns(self) -> int | None:
        """The send time hilos put in the payload, if this is a hilos probe's echo or quote."""
        data = self.payload if self.kind == "echo-reply" else self.quoted[8:]
        if len(data) < 8:
            return None
        return int.from_bytes(data[:8], "big")

    @property
    def payload_cookie(self) -> int | None:
        """The cookie copy in a hilos echo payload (survives the kernel's identifier rewrite)."""
        data = self.payload if self.kind == "echo-reply" else self.quoted[8:]
        if len(data) < 12:
            return None
        return int.from_bytes(data[8:12], "big")


def _ntop(family: int, raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if family == 4 else socket.AF_INET6, raw)


def parse_reply(
    packet: bytes, *, family: int = 4, ip_header: bool = True, source: str | None = None
) -> IcmpReply | None:
    """Parse one packet read from an ICMP socket; None for anything that is not of interest.

    `ip_header`: IPv4 raw sockets deliver the IP header, datagram sockets and every ICMPv6 socket
    do not; then `source` (from recvfrom) names the sender. Never raises: malformed, truncated
    and foreign packets (echo requests, redirects, other protocols) all give None.
    """
    try:
        return _parse(packet, family, ip_header, source)
    except (IndexError, ValueError, struct.error, OSError):
        return None


def _parse(packet: bytes, family: int, ip_header: bool, source: str | None) -> IcmpReply | None:
    if family not in (4, 6):
        return None
    outer = _strip_ip(memoryview(packet), family, ip_header, source)
    if outer is None:
        return None
    reporter, data = outer
    echo_reply, unreach, exceeded = _TYPES[family]
    kind, code = data[0], data[1]
    if kind == echo_reply:
        ident, seq = struct.unpack_from("!HH", data, 4)
        return IcmpReply(
            "echo-reply", family, reporter, reporter, kind, code, ident, seq,
            payload=bytes(data[8:]),
        )  # fmt: skip
    if kind != unreach and kind != exceeded:
        return None
    # Errors quote the offending datagram after 4 unused bytes: its IP header and at least the
    # first 8 bytes of its payload (RFC 792; RFC 4443 quotes as much as fits in 1280 bytes).
    inner = _quoted(data[8:], family)
    if inner is None:
        return None
    proto, target, quoted = inner
    ident = seq = 0
    if proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
        echo_request = ICMP_ECHO_REQUEST if family == 4 else ICMP6_ECHO_REQUEST
        if quoted[0] != echo_request:
            return None  # an error about some other ICMP message is not about our probe
        ident, seq = struct.unpack_from("!HH", quoted, 4)
    elif proto != socket.IPPROTO_TCP:
        return None
    reason: Reason = "host-unreach" if kind == unreach else "time-exceeded"
    return IcmpReply(reason, family, reporter, target, kind, code, ident, seq, proto, b"", quoted)


# Per family: the echo reply, destination unreachable and time exceeded type numbers.
_TYPES: Final = {
    4: (ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED),
    6: (ICMP6_ECHO_REPLY, ICMP6_DEST_UNREACH, ICMP6_TIME_EXCEEDED),
}


def _strip_ip(
    data: memoryview, family: int, ip_header: bool, source: str | None
) -> tuple[str, memoryview] | None:
    """(who sent it, the ICMP message) of a packet read from an ICMP socket."""
    if family == 4 and ip_header:
        if len(data) < 20 or data[0] >> 4 != 4:
            return None
        ihl = (data[0] & 0x0F) * 4
        if ihl < 20 or len(data) < ihl + 8 or data[9] != socket.IPPROTO_ICMP:
            return None
        return _ntop(4, bytes(data[12:16])), data[ihl:]
    if source is None or len(data) < 8:
        return None
    return (source if family == 4 else source.split("%", 1)[0]), data


def _quoted(inner: memoryview, family: int) -> tuple[int, str, bytes] | None:
    """(protocol, destination, transport header and on) of the datagram an ICMP error quotes."""
    if family == 4:
        if len(inner) < 20 or inner[0] >> 4 != 4:
            return None
        ihl = (inner[0] & 0x0F) * 4
        if ihl < 20 or len(inner) < ihl + 8:
            return None
        return inner[9], _ntop(4, bytes(inner[16:20])), bytes(inner[ihl:])
    if len(inner) < 48 or inner[0] >> 4 != 6:
        return None
    # Extension headers are not followed: hilos probes never carry them.
    return inner[6], _ntop(6, bytes(inner[24:40])), bytes(inner[40:])


def addr_key(family: int, text: str) -> int:
    """The result key of an address in text form: its int, plus V6_TAG for IPv6."""
    if family == 4:
        return int.from_bytes(socket.inet_aton(text), "big")
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%")[0]), "big") + V6_TAG
