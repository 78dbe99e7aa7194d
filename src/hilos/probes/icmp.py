"""ICMP/ICMPv6 echo: building and parsing packets (RFC 792, RFC 4443), sockets, the echo engine.

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

import contextlib
import errno
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Final, Literal

from hilos.errors import PrivilegeError, from_oserror
from hilos.probes.ratelimit import TokenBucket

__all__ = [
    "ECHO_PAD",
    "ECHO_PAYLOAD_LEN",
    "EchoBuilder",
    "IcmpReply",
    "IcmpSocket",
    "build_echo",
    "checksum",
    "open_icmp_socket",
    "parse_reply",
]

# RFC 792 (ICMPv4) and RFC 4443 (ICMPv6) type numbers.
ICMP_ECHO_REPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_ECHO_REQUEST: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP6_DEST_UNREACH: Final = 1
ICMP6_TIME_EXCEEDED: Final = 3
ICMP6_ECHO_REQUEST: Final = 128
ICMP6_ECHO_REPLY: Final = 129

# Linux socket options not exported by the socket module (linux/icmp.h, linux/icmpv6.h).
_SOL_RAW: Final = 255
_ICMP_FILTER: Final = 1
_ICMP6_FILTER: Final = 1
_SO_RCVBUFFORCE: Final = 33

_HEADER = struct.Struct("!BBHI")  # type, code, checksum, cookie (identifier << 16 | sequence)
_ECHO = struct.Struct("!BBHIQI")  # ... + send time (ns) + cookie again
_PAD = b"hilos-sweep\x00"  # makes our probes recognisable in a capture; even length
ECHO_PAD: Final = _PAD
ECHO_PAYLOAD_LEN: Final = _ECHO.size - 8 + len(_PAD)
_RCVBUF = 8 << 20

Reason = Literal["echo-reply", "host-unreach", "time-exceeded"]


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`, as the 16-bit value to put in a header.

    The ones' complement sum of 16-bit words equals the whole buffer read as one big-endian number
    modulo 0xFFFF (because 0x10000 = 1 mod 0xFFFF), so one int conversion and one modulo replace a
    Python loop over words.
    """
    if len(data) & 1:
        data += b"\x00"
    total = int.from_bytes(data, "big") % 0xFFFF
    return 0xFFFF - total if total else (0xFFFF if not any(data) else 0)


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


class EchoBuilder:
    """Builds hilos echo requests fast: a precomputed template, an incremental checksum.

    Only the cookie and the send time change between packets; their contribution to the checksum
    is `(cookie + time) mod 0xFFFF` (the sum of a number's 16-bit words is the number mod 0xFFFF),
    so a packet costs one modulo and one `struct.pack`.
    """

    __slots__ = ("_base", "_kind", "_pack", "_pad", "v6")

    def __init__(self, *, v6: bool = False) -> None:
        self.v6 = v6
        self._kind = ICMP6_ECHO_REQUEST if v6 else ICMP_ECHO_REQUEST
        self._pad = _PAD
        self._pack = _ECHO.pack
        # Sum of the fixed words: type/code and the padding.
        self._base = ((self._kind << 8) + int.from_bytes(_PAD, "big")) % 0xFFFF

    def build(self, cookie: int, sent_ns: int) -> bytes:
        """The echo request carrying `cookie` (32 bits) and `sent_ns` (64 bits)."""
        # ICMPv6: the kernel fills the checksum in (it covers a pseudo-header).
        csum = 0 if self.v6 else 0xFFFF - (self._base + cookie + cookie + sent_ns) % 0xFFFF
        return self._pack(self._kind, 0, csum, cookie, sent_ns, cookie) + self._pad

    @property
    def base_sum(self) -> int:
        """The precomputed part of the checksum (for senders that inline `build`)."""
        return self._base


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
    data = memoryview(packet)
    if family == 4:
        if ip_header:
            if len(data) < 20 or data[0] >> 4 != 4:
                return None
            ihl = (data[0] & 0x0F) * 4
            if ihl < 20 or len(data) < ihl + 8 or data[9] != socket.IPPROTO_ICMP:
                return None
            reporter = _ntop(4, bytes(data[12:16]))
            data = data[ihl:]
        else:
            if source is None or len(data) < 8:
                return None
            reporter = source
        echo_reply, unreach, exceeded = ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED
    elif family == 6:
        if source is None or len(data) < 8:
            return None
        reporter = source.split("%", 1)[0]
        echo_reply, unreach, exceeded = ICMP6_ECHO_REPLY, ICMP6_DEST_UNREACH, ICMP6_TIME_EXCEEDED
    else:
        return None
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
    inner = data[8:]
    if family == 4:
        if len(inner) < 20 or inner[0] >> 4 != 4:
            return None
        ihl = (inner[0] & 0x0F) * 4
        if ihl < 20 or len(inner) < ihl + 8:
            return None
        proto = inner[9]
        target = _ntop(4, bytes(inner[16:20]))
        quoted = bytes(inner[ihl:])
        echo_request = ICMP_ECHO_REQUEST
    else:
        if len(inner) < 48 or inner[0] >> 4 != 6:
            return None
        proto = inner[6]  # extension headers are not followed: hilos probes never carry them
        target = _ntop(6, bytes(inner[24:40]))
        quoted = bytes(inner[40:])
        echo_request = ICMP6_ECHO_REQUEST
    ident = seq = 0
    if proto in (socket.IPPROTO_ICMP, socket.IPPROTO_ICMPV6):
        if quoted[0] != echo_request:
            return None  # an error about some other ICMP message is not about our probe
        ident, seq = struct.unpack_from("!HH", quoted, 4)
    elif proto != socket.IPPROTO_TCP:
        return None
    reason: Reason = "host-unreach" if kind == unreach else "time-exceeded"
    return IcmpReply(reason, family, reporter, target, kind, code, ident, seq, proto, b"", quoted)


# --------------------------------------------------------------------------------------------
# Sockets
# --------------------------------------------------------------------------------------------

_SYSCTL_FIX = (
    "run as root (or with CAP_NET_RAW), or allow unprivileged ping for your group: "
    "sysctl -w net.ipv4.ping_group_range='0 2147483647'"
)


@dataclass(slots=True)
class IcmpSocket:
    """An open ICMP socket: `raw` (SOCK_RAW, IP header included for IPv4) or datagram.

    On a datagram ("ping") socket Linux replaces the echo identifier with the socket's local port
    (`ident`), returns no IP header and delivers only replies to that identifier.
    """

    sock: socket.socket
    family: int  # 4 or 6
    raw: bool
    ident: int | None = None

    @property
    def ip_header(self) -> bool:
        return self.raw and self.family == 4

    def close(self) -> None:
        self.sock.close()


def open_icmp_socket(
    family: int, *, mode: Literal["auto", "raw", "dgram"] = "auto", rcvbuf: int = _RCVBUF
) -> IcmpSocket:
    """Open the best ICMP socket this process may have for `family` (4 or 6).

    Raw when privileged, else an unprivileged datagram socket where `net.ipv4.ping_group_range`
    allows it, else PrivilegeError naming both fixes.
    """
    af, proto = (
        (socket.AF_INET, socket.IPPROTO_ICMP)
        if family == 4
        else (socket.AF_INET6, socket.IPPROTO_ICMPV6)
    )
    errors: list[OSError] = []
    kinds = ("raw", "dgram") if mode == "auto" else (mode,)
    for kind in kinds:
        stype = socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM
        try:
            sock = socket.socket(af, stype, proto)
        except OSError as exc:
            errors.append(exc)
            continue
        try:
            _tune(sock, family, raw=kind == "raw", rcvbuf=rcvbuf)
            ident = sock.getsockname()[1] if kind == "dgram" else None
        except OSError as exc:
            sock.close()
            raise from_oserror(exc, f"setting up an ICMPv{family} socket") from exc
        return IcmpSocket(sock, family, kind == "raw", ident)
    what = f"opening an ICMP{'v6' if family == 6 else ''} socket"
    last = errors[-1]
    if all(e.errno in (errno.EPERM, errno.EACCES) for e in errors):
        raise PrivilegeError(f"{what}: permission denied ({_SYSCTL_FIX})") from last
    raise from_oserror(last, what, _SYSCTL_FIX) from last


def _tune(sock: socket.socket, family: int, *, raw: bool, rcvbuf: int) -> None:
    # A sweep's replies arrive in bursts: a small receive buffer silently drops them (a Python
    # multi-ping lost 40% of replies that way). SO_RCVBUFFORCE passes rmem_max when root.
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, rcvbuf)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    if not raw:
        sock.bind(("0.0.0.0", 0) if family == 4 else ("::", 0))
        return
    # Kernel-side type filters: a raw ICMP socket sees every ICMP message of the namespace,
    # including other programs' pings; let through only what can answer a probe.
    if family == 4:
        wanted = (ICMP_ECHO_REPLY, ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED)
        blocked = 0xFFFFFFFF
        for t in wanted:
            blocked &= ~(1 << t)
        sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", blocked))
    else:
        words = [0xFFFFFFFF] * 8  # Linux: a set bit blocks the type
        for t in (ICMP6_ECHO_REPLY, ICMP6_DEST_UNREACH, ICMP6_TIME_EXCEEDED):
            words[t >> 5] &= ~(1 << (t & 31))
        sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))


def can_open_raw() -> bool:
    """Whether this process may open raw sockets (root or CAP_NET_RAW), tested, not guessed."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except OSError:
        return False
    return True


def ping_group_allows() -> bool:
    """Whether `net.ipv4.ping_group_range` covers one of this process's groups."""
    try:
        with open("/proc/sys/net/ipv4/ping_group_range") as fh:
            low, high = (int(x) for x in fh.read().split())
    except (OSError, ValueError):
        return False
    return any(low <= g <= high for g in {os.getgid(), os.getegid(), *os.getgroups()})


# --------------------------------------------------------------------------------------------
# The engine: one socket per family, the caller's thread sends, one receiver thread per socket
# --------------------------------------------------------------------------------------------

# Keys of results: IPv4 addresses as their int, IPv6 addresses as their int plus this tag, so one
# dict holds both families without collisions (::1 and 0.0.0.1 are both 1).
V6_TAG: Final = 1 << 128
_OCTETS: Final = tuple(str(i) for i in range(256))
_RECV_POLL = struct.pack("@ll", 0, 50_000)  # SO_RCVTIMEO 50 ms: how fast a receiver notices stop
_PACE_BATCH = 32  # packets per token-bucket reservation


def cookie(key: int, addr: int) -> int:
    """The 32-bit probe cookie of `addr` (an int, V6_TAG added for IPv6) under the sweep's `key`.

    Python's tuple hash (xxHash-style mixing of the two ints) keyed by a random 61-bit `key`:
    about 0.2 us, measured faster than blake2b (1.1 us) and good enough to tell our replies from
    foreign ones and from another sweep's; it is not meant to resist a forging adversary.
    """
    return hash((key, addr)) & 0xFFFFFFFF


class EchoEngine:
    """Sends hilos echo requests and matches their replies, statelessly.

    `on_result(key, reason, rtt_ms)` is called from a receiver thread for every validated answer:
    reason "echo-reply" (up), "host-unreach" or "time-exceeded" (down). `key` is the address as an
    int (plus V6_TAG for IPv6). Nothing per probe is stored: the cookie in the identifier, sequence
    and payload is recomputed from the reply's source, and the send time travels in the payload.

        engine = EchoEngine(key, bucket, on_result, families=(4,))
        engine.start()
        engine.send_ranges([(4, first, last)], skip=answered, stop=event)
        ...
        engine.close()
    """

    def __init__(
        self,
        key: int,
        bucket: TokenBucket,
        on_result: Callable[[int, str, float | None], None],
        *,
        families: Iterable[int] = (4, 6),
        mode: Literal["auto", "raw", "dgram"] = "auto",
    ) -> None:
        self.key = key
        self.bucket = bucket
        self.on_result = on_result
        self.sockets: dict[int, IcmpSocket] = {}
        self.sent = 0
        self.progress = 0  # addresses handled by the current send_ranges call
        self.send_errors = 0
        self.loss_keys: tuple[int, ...] = ()
        self.loss_replies = 0
        self.loss_sent = 0
        self._base4 = ((ICMP_ECHO_REQUEST << 8) + int.from_bytes(_PAD, "big")) % 0xFFFF
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        try:
            for fam in sorted(set(families)):
                self.sockets[fam] = open_icmp_socket(fam, mode=mode)
        except BaseException:
            self.close()
            raise

    @property
    def kinds(self) -> dict[int, str]:
        """Which socket each family got: {4: "raw"} or {4: "dgram", 6: "dgram"}."""
        return {fam: ("raw" if s.raw else "dgram") for fam, s in self.sockets.items()}

    def start(self) -> None:
        """Start one receiver thread per socket."""
        for fam, isock in self.sockets.items():
            isock.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _RECV_POLL)
            t = threading.Thread(
                target=self._receive, args=(isock,), name=f"hilos-icmp{fam}-recv", daemon=True
            )
            t.start()
            self._threads.append(t)

    def close(self) -> None:
        """Stop the receivers and close the sockets (idempotent)."""
        self._stop.set()
        for isock in self.sockets.values():
            # Wakes a receiver blocked in recvfrom at once (Linux wakes waiters on shutdown
            # even for unconnected datagram sockets), instead of after its 50 ms poll.
            with contextlib.suppress(OSError):
                isock.sock.shutdown(socket.SHUT_RD)
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads.clear()
        for isock in self.sockets.values():
            isock.close()

    # -- sending ------------------------------------------------------------------------------

    def send_ranges(
        self,
        ranges: Iterable[tuple[int, int, int]],
        skip: Container[int],
        stop: threading.Event,
    ) -> int:
        """Send one echo request to every address of `ranges` ((family, first, last) inclusive int
        ranges) whose key is not in `skip`. Runs in the caller's thread; returns packets sent."""
        sent = 0
        self.progress = 0
        for fam, first, last in ranges:
            if stop.is_set():
                break
            self.progress += last - first + 1
            isock = self.sockets.get(fam)
            if isock is None:
                continue
            if fam == 4:
                sent += self._send4(isock, first, last, skip, stop)
            else:
                sent += self._send6(isock, first, last, skip, stop)
        self.sent += sent
        return sent

    def _send4(
        self, isock: IcmpSocket, first: int, last: int, skip: Container[int], stop: threading.Event
    ) -> int:
        # The hot loop of a sweep: everything is a local, the address string is built from a
        # per-/24 prefix and an octet table (inet_ntoa costs 1 us, this 0.15 us), the checksum
        # is incremental. Measured ~1 us of Python per packet besides the sendto itself.
        sendto = isock.sock.sendto
        pack = _ECHO.pack
        pad = _PAD
        octets = _OCTETS
        key = self.key
        now_ns = time.monotonic_ns
        base = ((ICMP_ECHO_REQUEST << 8) + int.from_bytes(_PAD, "big")) % 0xFFFF
        take = self.bucket.take
        limited = not self.bucket.unlimited
        sent = 0
        pending = 0
        a = first
        while a <= last:
            if stop.is_set():
                break
            block_end = min(last, a | 0xFF)
            prefix = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}."
            for b in range(a, block_end + 1):
                if b in skip:
                    continue
                if limited:
                    pending += 1
                    if pending >= _PACE_BATCH:
                        take(pending)
                        pending = 0
                c = hash((key, b)) & 0xFFFFFFFF
                t = now_ns()
                pkt = pack(8, 0, 0xFFFF - (base + c + c + t) % 0xFFFF, c, t, c) + pad
                try:
                    sendto(pkt, (prefix + octets[b & 255], 0))
                except OSError as exc:
                    if not self._send_failed(exc, b, sendto, pkt, (prefix + octets[b & 255], 0)):
                        continue
                sent += 1
            a = block_end + 1
        return sent

    def _send6(
        self, isock: IcmpSocket, first: int, last: int, skip: Container[int], stop: threading.Event
    ) -> int:
        sendto = isock.sock.sendto
        pack = _ECHO.pack
        pad = _PAD
        key = self.key
        now_ns = time.monotonic_ns
        take = self.bucket.take
        limited = not self.bucket.unlimited
        ntop = socket.inet_ntop
        af6 = socket.AF_INET6
        sent = 0
        pending = 0
        for a in range(first, last + 1):
            if sent & 0xFF == 0 and stop.is_set():
                break
            k = a + V6_TAG
            if k in skip:
                continue
            if limited:
                pending += 1
                if pending >= _PACE_BATCH:
                    take(pending)
                    pending = 0
            c = hash((key, k)) & 0xFFFFFFFF
            pkt = pack(ICMP6_ECHO_REQUEST, 0, 0, c, now_ns(), c) + pad
            dest = (ntop(af6, a.to_bytes(16, "big")), 0, 0, 0)
            try:
                sendto(pkt, dest)
            except OSError as exc:
                if not self._send_failed(exc, k, sendto, pkt, dest):
                    continue
            sent += 1
        return sent

    def send_loss_probes(self, hosts: Iterable[int], rounds: int) -> int:
        """Measure loss: `rounds` extra echo requests to each of `hosts` (keys of hosts that
        already answered an echo), each round under its own random key so their answers are
        counted in `loss_replies` and never mistaken for, nor recorded as, sweep results.
        Returns how many were sent."""
        keys = tuple(random.getrandbits(61) for _ in range(rounds))
        self.loss_keys = keys
        sent = 0
        for k in keys:
            for h in hosts:
                fam = 6 if h >= V6_TAG else 4
                isock = self.sockets.get(fam)
                if isock is None:
                    continue
                c = hash((k, h)) & 0xFFFFFFFF
                t = time.monotonic_ns()
                if fam == 4:
                    csum = 0xFFFF - (self._base4 + c + c + t) % 0xFFFF
                    pkt = _ECHO.pack(ICMP_ECHO_REQUEST, 0, csum, c, t, c) + _PAD
                    dest: tuple[object, ...] = (socket.inet_ntoa(h.to_bytes(4, "big")), 0)
                else:
                    pkt = _ECHO.pack(ICMP6_ECHO_REQUEST, 0, 0, c, t, c) + _PAD
                    raw = (h - V6_TAG).to_bytes(16, "big")
                    dest = (socket.inet_ntop(socket.AF_INET6, raw), 0, 0, 0)
                try:
                    isock.sock.sendto(pkt, dest)
                except OSError:
                    continue
                sent += 1
        self.loss_sent += sent
        return sent

    def _send_failed(
        self,
        exc: OSError,
        key: int,
        sendto: Callable[[bytes, tuple[object, ...]], int],
        pkt: bytes,
        dest: tuple[object, ...],
    ) -> bool:
        """Handle a failed sendto; True if the packet went out after all."""
        if exc.errno in (errno.ENOBUFS, errno.EAGAIN):
            # The device queue is full: back off briefly and try once more (zmap does the same).
            for delay in (0.0005, 0.002, 0.01):
                time.sleep(delay)
                try:
                    sendto(pkt, dest)
                    return True
                except OSError as again:
                    if again.errno not in (errno.ENOBUFS, errno.EAGAIN):
                        break
        elif exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            # Our own routing table has no way there: the host is unreachable, said at once.
            self.on_result(key, "host-unreach", None)
        self.send_errors += 1
        return False

    # -- receiving ----------------------------------------------------------------------------

    def _receive(self, isock: IcmpSocket) -> None:
        sock = isock.sock
        fam = isock.family
        key = self.key
        on_result = self.on_result
        now_ns = time.monotonic_ns
        stop = self._stop
        from_bytes = int.from_bytes
        raw4 = isock.ip_header
        dgram = not isock.raw
        echo_reply = ICMP_ECHO_REPLY if fam == 4 else ICMP6_ECHO_REPLY
        while not stop.is_set():
            try:
                data, src = sock.recvfrom(4096)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR) or isinstance(exc, TimeoutError):
                    continue
                if stop.is_set() or exc.errno == errno.EBADF:
                    return
                continue
            now = now_ns()
            # Fast path for echo replies, the bulk of what arrives: no object, a few slices.
            off = ((data[0] & 0x0F) << 2) if raw4 and data else 0
            if len(data) >= off + 8 and data[off] == echo_reply:
                if fam == 4:
                    addr = (
                        from_bytes(data[12:16], "big")
                        if raw4
                        else from_bytes(socket.inet_aton(src[0]), "big")
                    )
                else:
                    addr = (
                        from_bytes(socket.inet_pton(socket.AF_INET6, src[0].split("%")[0]), "big")
                        + V6_TAG
                    )
                c = hash((key, addr)) & 0xFFFFFFFF
                got = from_bytes(data[off + 4 : off + 8], "big")
                body = data[off + 8 :]
                if dgram:
                    # The kernel rewrote the identifier: check the sequence and the payload copy.
                    if len(body) >= 12:
                        got = (got & 0xFFFF) | (from_bytes(body[8:10], "big") << 16)
                    else:
                        got = -1
                if got != c:
                    if self.loss_keys and got in {
                        hash((k, addr)) & 0xFFFFFFFF for k in self.loss_keys
                    }:
                        self.loss_replies += 1  # an answer to a loss probe (see send_loss_probes)
                    continue
                rtt: float | None = None
                if len(body) >= 8:
                    delta = now - from_bytes(body[:8], "big")
                    if 0 <= delta < 3_600_000_000_000:
                        rtt = delta / 1e6
                on_result(addr, "echo-reply", rtt)
                continue
            reply = parse_reply(data, family=fam, ip_header=raw4, source=src[0] if src else None)
            if reply is None or reply.kind == "echo-reply":
                continue
            target = _addr_key(fam, reply.target)
            if reply.proto == socket.IPPROTO_TCP:
                # An error about a TCP discovery probe (ports 80/443) of this sweep.
                if len(reply.quoted) < 4 or from_bytes(reply.quoted[2:4], "big") not in (80, 443):
                    continue
            else:
                c = hash((key, target)) & 0xFFFFFFFF
                if dgram:
                    if reply.seq != (c & 0xFFFF):
                        continue
                elif reply.cookie != c:
                    continue
            on_result(target, reply.kind, None)


def _addr_key(family: int, text: str) -> int:
    if family == 4:
        return int.from_bytes(socket.inet_aton(text), "big")
    return int.from_bytes(socket.inet_pton(socket.AF_INET6, text.split("%")[0]), "big") + V6_TAG


# --------------------------------------------------------------------------------------------
# Link-layer transmit: IPv4 probes as Ethernet frames, past the scanner's own IP stack
# --------------------------------------------------------------------------------------------

_SOL_PACKET: Final = 263
_PACKET_QDISC_BYPASS: Final = 20
_ARPHRD_ETHER: Final = 1
_ETH_P_IP: Final = 0x0800
_IP_PREFIX = struct.Struct("!BBHHHBB")  # version/ihl .. protocol: the 10 bytes before the checksum


_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, proto,
#                                       scope, type, flags
_RTM_GETROUTE, _RTM_NEWROUTE, _NLMSG_ERROR = 26, 24, 2
_NLM_F_REQUEST = 1
_RTA_DST, _RTA_OIF, _RTA_GATEWAY = 1, 4, 5
_RTN_UNICAST = 1


def kernel_route_v4(dst: int) -> tuple[int, int, int, int] | None:
    """Ask the kernel (netlink RTM_GETROUTE) how it would send to `dst`, exactly as a socket
    would: (route type, output interface index, gateway or 0, prefix length of the query).

    Unlike /proc/net/route this sees the local table, policy rules and every routing table, so
    a frame is only ever sent where the kernel itself would send the packet.
    """
    try:
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)  # NETLINK_ROUTE
    except (OSError, AttributeError):
        return None
    try:
        nl.settimeout(1.0)
        rta = struct.pack("=HH", 8, _RTA_DST) + dst.to_bytes(4, "big")
        body = _RTMSG.pack(socket.AF_INET, 32, 0, 0, 0, 0, 0, 0, 0) + rta
        nl.send(_NLMSG.pack(_NLMSG.size + len(body), _RTM_GETROUTE, _NLM_F_REQUEST, 1, 0) + body)
        data = nl.recv(65536)
    except OSError:
        return None
    finally:
        nl.close()
    if len(data) < _NLMSG.size + _RTMSG.size:
        return None
    length, kind = _NLMSG.unpack_from(data)[:2]
    if kind != _RTM_NEWROUTE:
        return None  # NLMSG_ERROR: no route (ENETUNREACH) or a failure
    _fam, dst_len, _s, _t, _tab, _p, _scope, rtype, _f = _RTMSG.unpack_from(data, _NLMSG.size)
    oif = gateway = 0
    off = _NLMSG.size + _RTMSG.size
    end = min(length, len(data))
    while off + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, off)
        if alen < 4:
            break
        value = data[off + 4 : off + alen]
        if atype == _RTA_OIF and len(value) == 4:
            oif = struct.unpack("=I", value)[0]
        elif atype == _RTA_GATEWAY and len(value) == 4:
            gateway = int.from_bytes(value, "big")
        off += (alen + 3) & ~3
    return rtype, oif, gateway, dst_len


def _local_addresses_v4() -> set[int]:
    """Every IPv4 address of this namespace's local table (from /proc/net/fib_trie)."""
    found: set[int] = set()
    try:
        with open("/proc/net/fib_trie") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return found
    last: str | None = None
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif "/32 host LOCAL" in text and last is not None:
            with contextlib.suppress(OSError):
                found.add(int.from_bytes(socket.inet_aton(last), "big"))
    return found


def _routes_v4() -> list[tuple[int, int, int, str, int]]:
    """The main table's IPv4 routes from /proc: (prefix length, network, mask, iface, gateway)."""
    routes: list[tuple[int, int, int, str, int]] = []
    try:
        with open("/proc/net/route") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return routes
    for line in lines:
        f = line.split()
        if len(f) < 8:
            continue
        try:
            net = int.from_bytes(int(f[1], 16).to_bytes(4, "little"), "big")
            gw = int.from_bytes(int(f[2], 16).to_bytes(4, "little"), "big")
            flags = int(f[3], 16)
            mask = int.from_bytes(int(f[7], 16).to_bytes(4, "little"), "big")
        except (ValueError, OverflowError):
            continue
        if flags & 0x1:  # RTF_UP; RTF_GATEWAY (0x2) says whether gw is a next hop
            routes.append((bin(mask).count("1"), net, mask, f[0], gw if flags & 0x2 else 0))
    routes.sort(reverse=True)
    return routes


def _ifindex(iface: str) -> int:
    try:
        return socket.if_nametoindex(iface)
    except OSError:
        return -1


def _neighbour_mac(ip: int, iface: str) -> bytes | None:
    text = socket.inet_ntoa(ip.to_bytes(4, "big"))
    try:
        with open("/proc/net/arp") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        f = line.split()
        if len(f) >= 6 and f[0] == text and f[5] == iface and int(f[2], 16) & 0x2:
            mac = bytes.fromhex(f[3].replace(":", ""))
            return mac if len(mac) == 6 and any(mac) else None
    return None


class LinkTx:
    """Sends IPv4 packets as Ethernet frames to the gateway's MAC on an AF_PACKET socket.

    A raw IP socket costs a route lookup, netfilter hooks, a neighbour lookup and a qdisc per
    packet; with PACKET_QDISC_BYPASS a frame goes straight to the driver, about 40% less kernel
    time per probe in the lab (masscan and zmap send this way). Only for destinations routed via
    a gateway on an Ethernet interface (one next hop for all of them); on-link targets would each
    need ARP, so they keep the IP socket. Frames carry no IP options and IP id 0 (as nmap's).

        link = LinkTx.for_route(dst)   # None when not applicable
        if link: link.send(link.eth + ip_packet)
    """

    __slots__ = (
        "_by24",
        "_ifindex",
        "_local",
        "_long",
        "eth",
        "gateway",
        "iface",
        "sock",
        "source",
    )

    def __init__(
        self, sock: socket.socket, iface: str, gateway: int, eth: bytes, source: int
    ) -> None:
        # /25-/32 routes of the main table and the local addresses, by /24: inside such a /24
        # the kernel's answer for one address does not hold for the others.
        routes = _routes_v4()
        self._long = {net >> 8 for plen, net, _m, _i, _g in routes if plen > 24}
        self._local = {a >> 8 for a in _local_addresses_v4()}
        self._by24: dict[int, bool] = {}
        self._ifindex = _ifindex(iface)
        self.sock = sock
        self.iface = iface
        self.gateway = gateway
        self.eth = eth  # dst MAC, src MAC, ethertype: the 14-byte header of every frame
        self.source = source  # our IPv4 address toward the gateway, as an int

    @classmethod
    def for_route(cls, dst: int, *, resolve: Callable[[], object] | None = None) -> LinkTx | None:
        """A transmitter for `dst`'s route, or None (no gateway, not Ethernet, not privileged).

        The route is the kernel's own answer (netlink), never a guess: a local, loopback,
        blackhole or on-link destination gets None and stays on the IP socket. `resolve` is
        called once if the gateway's MAC is not yet known (send one ordinary probe so the
        kernel ARPs for it); the neighbour table is then polled for up to 1 s.
        """
        if dst >> 24 == 127 or dst in _local_addresses_v4():
            return None
        route = kernel_route_v4(dst)
        if route is None or route[0] != _RTN_UNICAST or not route[2]:
            return None
        _type, oif, gw, _plen = route
        try:
            iface = socket.if_indextoname(oif)
        except OSError:
            return None
        try:
            with open(f"/sys/class/net/{iface}/type") as fh:
                if int(fh.read().strip()) != _ARPHRD_ETHER:
                    return None
            with open(f"/sys/class/net/{iface}/address") as fh:
                own = bytes.fromhex(fh.read().strip().replace(":", ""))
        except (OSError, ValueError):
            return None
        mac = _neighbour_mac(gw, iface)
        if mac is None and resolve is not None:
            try:
                resolve()
            except OSError:
                return None
            deadline = time.monotonic() + 1.0
            while mac is None and time.monotonic() < deadline:
                time.sleep(0.01)
                mac = _neighbour_mac(gw, iface)
        if mac is None or len(own) != 6:
            return None
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((socket.inet_ntoa(dst.to_bytes(4, "big")), 9))
                source = int.from_bytes(socket.inet_aton(probe.getsockname()[0]), "big")
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError:
            return None
        try:
            sock.bind((iface, 0))
            with contextlib.suppress(OSError):
                sock.setsockopt(_SOL_PACKET, _PACKET_QDISC_BYPASS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        except OSError:
            sock.close()
            return None
        link = cls(sock, iface, gw, mac + own + _ETH_P_IP.to_bytes(2, "big"), source)
        if not link.covers(dst):
            link.close()
            return None
        return link

    def covers(self, dst: int) -> bool:
        """Whether the kernel sends `dst` (and, cached, its whole /24) by this interface and
        gateway. A /24 holding a local address or a /25-/32 route is never cached and never
        covered: those few blocks keep the IP socket."""
        block = dst >> 8
        hit = self._by24.get(block)
        if hit is None:
            hit = False
            if block not in self._long and block not in self._local and dst >> 24 != 127:
                route = kernel_route_v4(block << 8)
                hit = (
                    route is not None
                    and route[0] == _RTN_UNICAST
                    and route[1] == self._ifindex
                    and route[2] == self.gateway
                )
            self._by24[block] = hit
        return hit

    def covers_range(self, first: int, last: int) -> bool:
        """Whether every address of a range leaves by this gateway (checked per /24)."""
        if first == last:
            return self.covers(first)
        covers = self.covers
        return all(covers(b << 8) for b in range(first >> 8, (last >> 8) + 1))

    def ip_prefix(self, proto: int, total_len: int) -> tuple[bytes, int]:
        """The Ethernet header plus IPv4 bytes 0-9 for `proto`/`total_len`, and the checksum sum
        of every IPv4 header word except the destination (add dst mod 0xFFFF per packet)."""
        head = _IP_PREFIX.pack(0x45, 0, total_len, 0, 0x4000, 64, proto)  # DF, TTL 64
        total = int.from_bytes(head, "big") + self.source
        return self.eth + head, total % 0xFFFF

    def close(self) -> None:
        self.sock.close()
