"""Raw TCP probes: SYN/ACK packet build and parse, keyed cookies, the stateless raw-socket engine.

Wire format (RFC 9293, formerly RFC 793; IPv4 RFC 791; checksum RFC 1071 with the pseudo-header)::

    IPv4 header (20 bytes, IP_HDRINCL)  |  TCP header (20 bytes) + MSS option (4 bytes)
    0x45 tos len id frag ttl=64 p=6 sum  |  sport dport seq ack off=6|flags win sum urp 02 04 05 b4
        src           dst                |

For IPv6 the probe is the TCP segment alone: the raw IPPROTO_TCP socket lets the kernel add the IPv6
header, and IPV6_CHECKSUM makes the kernel fill the TCP checksum (so the source address it picks is
always the one in the pseudo-header).

Stateless matching (masscan/zmap style): a probe to (dst, dport) from source port `sport`
carries ``cookie = H_key(dst, dport, sport)`` (a keyed multiply-xorshift hash, 32 bits) as its
sequence number (SYN) or as sequence and acknowledgement number (ACK). A reply is accepted only if
recomputing the cookie from its own fields matches: SYN-ACK and RST-ACK acknowledge cookie + 1; the
RST answering an ACK probe carries seq == cookie; an ICMP/ICMPv6 destination-unreachable quotes our
header, whose seq is the cookie. Nothing is stored per probe. The source port comes from a small
range below the kernel's ephemeral ports (16384-32767) and encodes the send time in 0.26 ms ticks,
so each reply also yields an RTT sample without any per-probe table.

Discovery API (used by the sweep; the engine below is shared with `hilos.synscan`)::

    from hilos.probes.tcp import tcp_discover
    found = tcp_discover(["127.0.0.1"], rate=10_000, timeout=1.0, retries=1)
    found["127.0.0.1"]  # HostResult(host='127.0.0.1', status='up', reason='rst', rtt_ms=0.262)

`tcp_discover` sends a SYN to 443 and an ACK to 80 per address (as nmap -PS443 -PA80); any
SYN-ACK or RST means up (reason "syn-ack" or "rst"), an ICMP unreachable is reported with its
reason and status "down". For finer control (e.g. interleaving with ICMP in one loop) use
`TcpProber` directly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from hilos.errors import NetworkError, from_oserror
from hilos.probes.ratelimit import TokenBucket
from hilos.results import HostResult

__all__ = [
    "ACK",
    "FIN",
    "KIND_RST",
    "KIND_SYN_ACK",
    "PRIVILEGE_FIX",
    "RST",
    "SPORT_BASE",
    "SPORT_COUNT",
    "SYN",
    "Cookie",
    "RawTcpEngine",
    "Reply",
    "TcpProber",
    "addr_str",
    "build_ipv4_packet",
    "build_tcp_segment",
    "can_raw",
    "checksum",
    "parse_icmp4",
    "parse_icmp6",
    "parse_ipv4",
    "parse_tcp6",
    "source_address",
    "tcp_discover",
    "unreach_reason",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

# The source port carries the send time (the answer echoes it back). Ports 16384..32767 sit below
# Linux's default ephemeral range (32768-60999), so the kernel's own connections never collide
# with ours. 16384 ports x 0.262 ms ticks: RTTs are measured to a quarter millisecond (1.05 ms
# steps before, from 4096 ports above the range) and samples still wrap only after 4.3 s (a
# shorter window aliased the RTTs of a congested link to near zero).
SPORT_BASE = 16384
SPORT_COUNT = 16384
SPORT_MASK = SPORT_COUNT - 1
TICK_SHIFT = 18  # monotonic_ns >> 18: one tick = 0.262144 ms
TICK_MS = (1 << TICK_SHIFT) / 1e6

MSS = 1460
WINDOW = 1024  # nmap's SYN window; any non-zero value works
TTL = 64

PRIVILEGE_FIX = "run as root, or grant the capability: sudo setcap cap_net_raw+ep $(which python3)"

# Reply kinds: small ints so the hot path compares ints, not strings.
KIND_SYN_ACK = 1
KIND_RST = 2  # RST-ACK to a SYN, or bare RST to an ACK probe
KIND_UNREACH = 3  # ICMP/ICMPv6 destination unreachable; the reason is in Reply.reason

_MASK64 = 0xFFFFFFFFFFFFFFFF
_M1 = 0x9E3779B97F4A7C15  # splitmix64 constants (Steele et al.); odd multipliers are bijective
_M2 = 0xBF58476D1CE4E5B9
_M3 = 0x94D049BB133111EB


class Reply(NamedTuple):
    """One validated reply: who answered (address as int), on which port, what it means.

    `sport` is our source port the reply went to; `rtt_ms` comes from the send tick in that port.
    """

    family: int  # 4 or 6
    addr: int
    port: int
    sport: int
    kind: int  # KIND_SYN_ACK, KIND_RST, KIND_UNREACH
    reason: str  # "syn-ack", "reset", or an unreachable reason ("host-unreach", ...)
    rtt_ms: float


class Cookie:
    """The keyed hash that makes probes self-validating.

    ``seed = host_seed(ip)`` once per address, then ``value(seed, dport, sport)`` per probe: two
    splitmix64-style multiply-xorshift rounds on Python ints (about 0.3 us inlined; blake2b with a
    key costs about 1.4 us here). It is not a MAC against an attacker who sees many cookies, but
    stray and blindly spoofed packets match with probability 2**-32, which is what a scanner needs
    (masscan uses a similar non-cryptographic keyed hash).
    """

    __slots__ = ("k1", "k2")

    def __init__(self, secret: int | None = None) -> None:
        if secret is None:
            secret = int.from_bytes(os.urandom(16), "big")
        self.k1 = secret & _MASK64
        self.k2 = (secret >> 64) & _MASK64 or _M3

    def host_seed(self, ip: int) -> int:
        """Per-address part of the hash (128-bit IPv6 addresses are folded in two rounds)."""
        x = ((ip & _MASK64) ^ self.k1) * _M1 & _MASK64
        x ^= x >> 31
        x = ((x ^ (ip >> 64) ^ self.k2) * _M2) & _MASK64
        return x ^ (x >> 29)

    def value(self, seed: int, dport: int, sport: int) -> int:
        """The 32-bit cookie for a probe to `dport` from `sport` at the address with `seed`."""
        x = (seed ^ (dport << 16) ^ sport) * _M3 & _MASK64
        x ^= x >> 32
        return (x * _M1 & _MASK64) >> 32


def checksum(data: bytes | bytearray | memoryview) -> int:
    """RFC 1071 Internet checksum of `data` (odd length padded with a zero byte)."""
    if len(data) % 2:
        data = bytes(data) + b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _tcp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    proto = 6
    if len(src) == 4:
        pseudo = src + dst + struct.pack("!BBH", 0, proto, len(segment))
    else:  # RFC 8200 section 8.1: 32-bit length, 24 zero bits, next header
        pseudo = src + dst + struct.pack("!I3xB", len(segment), proto)
    return checksum(pseudo + segment)


def build_tcp_segment(
    src: IPAddress | str,
    dst: IPAddress | str,
    sport: int,
    dport: int,
    seq: int,
    ack: int = 0,
    flags: int = SYN,
    *,
    mss: int | None = MSS,
    window: int = WINDOW,
) -> bytes:
    """A TCP header (+ MSS option) with a correct checksum over the IPv4/IPv6 pseudo-header."""
    s = ipaddress.ip_address(src).packed
    d = ipaddress.ip_address(dst).packed
    if len(s) != len(d):
        raise ValueError("source and destination must be the same IP family")
    opts = struct.pack("!BBH", 2, 4, mss) if mss is not None else b""
    offset = (20 + len(opts)) // 4
    hdr = (
        struct.pack("!HHIIHHHH", sport, dport, seq, ack, (offset << 12) | flags, window, 0, 0)
        + opts
    )
    csum = _tcp_checksum(s, d, hdr)
    return hdr[:16] + struct.pack("!H", csum) + hdr[18:]


def build_ipv4_packet(
    src: IPAddress | str, dst: IPAddress | str, segment: bytes, *, ttl: int = TTL, ident: int = 0
) -> bytes:
    """An IPv4 header (with its checksum) in front of `segment` (protocol TCP)."""
    s = ipaddress.IPv4Address(src).packed
    d = ipaddress.IPv4Address(dst).packed
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ident, 0, ttl, 6, 0, s, d)
    return hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:] + segment


class SynTemplate4:
    """Precomputed IPv4 SYN/ACK probe: per packet only ports, seq and a folded checksum change.

    ``pack(dst4, host_sum, dport, sport, seq)`` builds the 44-byte packet; `host_sum` is
    ``dst_sum(dst4)``. The kernel fills the IP id and header checksum for IP_HDRINCL (raw(7)).
    """

    __slots__ = (
        "ack_const",
        "const",
        "prefix",
        "struct",
        "suffix",
        "win_flags_ack",
        "win_flags_syn",
    )

    def __init__(self, src: IPAddress | str) -> None:
        s = ipaddress.IPv4Address(src).packed
        self.prefix = struct.pack("!BBHHHBBH", 0x45, 0, 44, 0, 0, TTL, 6, 0) + s
        self.win_flags_syn = struct.pack("!HH", (6 << 12) | SYN, WINDOW)
        self.win_flags_ack = struct.pack("!HH", (6 << 12) | ACK, WINDOW)
        self.suffix = struct.pack("!HBBH", 0, 2, 4, MSS)
        s1, s2 = struct.unpack("!HH", s)
        # Pseudo-header (src, proto, TCP length) + header words that never change (urp, MSS).
        self.const = s1 + s2 + 6 + 24 + WINDOW + 0x0204 + MSS
        self.ack_const = (6 << 12) | ACK
        self.struct = struct.Struct("!16s4sHHII4sH6s")

    @staticmethod
    def dst_sum(dst4: bytes) -> int:
        return (dst4[0] << 8 | dst4[1]) + (dst4[2] << 8 | dst4[3])

    def syn(self, dst4: bytes, host_sum: int, dport: int, sport: int, seq: int) -> bytes:
        s = self.const + host_sum + dport + sport + (seq >> 16) + (seq & 0xFFFF) + ((6 << 12) | SYN)
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return self.struct.pack(
            self.prefix, dst4, sport, dport, seq, 0, self.win_flags_syn, ~s & 0xFFFF, self.suffix
        )

    def ack(self, dst4: bytes, host_sum: int, dport: int, sport: int, cookie: int) -> bytes:
        """An ACK probe: seq = ack = cookie (the RST answer carries seq == our ack)."""
        c = (cookie >> 16) + (cookie & 0xFFFF)
        s = self.const + host_sum + dport + sport + c + c + self.ack_const
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return self.struct.pack(
            self.prefix,
            dst4,
            sport,
            dport,
            cookie,
            cookie,
            self.win_flags_ack,
            ~s & 0xFFFF,
            self.suffix,
        )


_SEG6 = struct.Struct("!HHIIHHHHBBH")


def tcp6_probe(dport: int, sport: int, seq: int, ack: int = 0, flags: int = SYN) -> bytes:
    """A 24-byte TCP segment with a zero checksum: the kernel fills it (IPV6_CHECKSUM)."""
    return _SEG6.pack(sport, dport, seq, ack, (6 << 12) | flags, WINDOW, 0, 0, 2, 4, MSS)


def unreach_reason(family: int, icmp_type: int, code: int) -> str | None:
    """nmap's reason word for an ICMP (v4 type 3) or ICMPv6 (type 1) destination unreachable."""
    if family == 4:
        if icmp_type != 3:
            return None
        return _UNREACH4.get(code, "unreach")
    if icmp_type != 1:
        return None
    return _UNREACH6.get(code, "unreach")


_UNREACH4 = {
    0: "net-unreach",
    1: "host-unreach",
    2: "proto-unreach",
    3: "port-unreach",
    9: "net-prohibited",
    10: "host-prohibited",
    13: "admin-prohibited",
}
_UNREACH6 = {
    0: "no-route",
    1: "admin-prohibited",
    2: "beyond-scope",
    3: "host-unreach",
    4: "port-unreach",
    5: "admin-prohibited",
    6: "admin-prohibited",
}

_IP4_TCP = struct.Struct("!12xII")
_TCP_HEAD = struct.Struct("!HHIIxB")


def _match_tcp(
    cookie: Cookie, family: int, addr: int, buf: bytes | bytearray | memoryview, off: int, n: int
) -> Reply | None:
    if n - off < 14:
        return None
    port, sport, seq, ack, flags = _TCP_HEAD.unpack_from(buf, off)
    if (sport - SPORT_BASE) & 0xFFFF >= SPORT_COUNT:
        return None
    if flags & SYN:
        if flags & (ACK | RST) != ACK:
            return None  # a SYN (our own, seen on loopback) or a nonsensical SYN+RST
        kind, reason, expect, got = KIND_SYN_ACK, "syn-ack", ack - 1, ack
    elif flags & RST:
        kind, reason = KIND_RST, "reset"
        if flags & ACK:
            expect, got = ack - 1, ack  # RST-ACK answering a SYN acknowledges cookie + 1
        else:
            expect, got = (
                seq,
                seq,
            )  # bare RST answering an ACK probe: seq == our ack (RFC 9293 3.10.7.1)
    else:
        return None
    del got
    if expect & 0xFFFFFFFF != cookie.value(cookie.host_seed(addr), port, sport):
        return None
    rtt = (((time.monotonic_ns() >> TICK_SHIFT) - sport + SPORT_BASE) & SPORT_MASK) * TICK_MS
    return Reply(family, addr, port, sport, kind, reason, rtt)


def parse_ipv4(
    cookie: Cookie, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate an IPv4 packet from a raw IPPROTO_TCP socket; None unless it answers our probe."""
    try:
        if n is None:
            n = len(buf)
        if n < 20 or buf[0] >> 4 != 4 or buf[9] != 6:
            return None
        ihl = (buf[0] & 15) * 4
        if ihl < 20 or (buf[6] & 0x3F) or buf[7]:  # MF or an offset: replies are never fragments
            return None
        src, _dst = _IP4_TCP.unpack_from(buf, 0)
        return _match_tcp(cookie, 4, src, buf, ihl, n)
    except (struct.error, IndexError, ValueError):
        return None


def parse_tcp6(
    cookie: Cookie, src: int, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate a TCP segment from a raw AF_INET6 socket (no IPv6 header) sent by address `src`."""
    try:
        return _match_tcp(cookie, 6, src, buf, 0, len(buf) if n is None else n)
    except (struct.error, IndexError, ValueError):
        return None


def _match_quote(
    cookie: Cookie,
    family: int,
    reason: str,
    dst: int,
    buf: bytes | bytearray | memoryview,
    off: int,
    n: int,
) -> Reply | None:
    if n - off < 8:
        return None  # RFC 792 quotes at least 8 bytes of the original datagram: sport, dport, seq
    sport, port, seq = struct.unpack_from("!HHI", buf, off)
    if (sport - SPORT_BASE) & 0xFFFF >= SPORT_COUNT:
        return None
    if seq != cookie.value(cookie.host_seed(dst), port, sport):
        return None
    rtt = (((time.monotonic_ns() >> TICK_SHIFT) - sport + SPORT_BASE) & SPORT_MASK) * TICK_MS
    return Reply(family, dst, port, sport, KIND_UNREACH, reason, rtt)


def parse_icmp4(
    cookie: Cookie, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate an ICMP destination-unreachable (raw IPPROTO_ICMP socket) quoting our probe.

    The reply's `addr` is the probed destination taken from the quoted header (the ICMP may come
    from a router), `port` the probed port.
    """
    try:
        if n is None:
            n = len(buf)
        if n < 20 or buf[0] >> 4 != 4 or buf[9] != 1:
            return None
        ihl = (buf[0] & 15) * 4
        if ihl < 20 or n < ihl + 8 + 20:
            return None
        reason = unreach_reason(4, buf[ihl], buf[ihl + 1])
        if reason is None:
            return None
        q = ihl + 8
        if buf[q] >> 4 != 4 or buf[q + 9] != 6:
            return None
        qihl = (buf[q] & 15) * 4
        if qihl < 20:
            return None
        (qdst,) = struct.unpack_from("!I", buf, q + 16)
        return _match_quote(cookie, 4, reason, qdst, buf, q + qihl, n)
    except (struct.error, IndexError, ValueError):
        return None


def parse_icmp6(
    cookie: Cookie, buf: bytes | bytearray | memoryview, n: int | None = None
) -> Reply | None:
    """Validate an ICMPv6 destination-unreachable (raw IPPROTO_ICMPV6 socket, no IPv6 header).

    The quoted packet is our IPv6 header (40 bytes, next header TCP) followed by our TCP header.
    """
    try:
        if n is None:
            n = len(buf)
        if n < 8 + 40 + 8:
            return None
        reason = unreach_reason(6, buf[0], buf[1])
        if reason is None:
            return None
        q = 8
        if buf[q] >> 4 != 6 or buf[q + 6] != 6:
            return None
        qdst = int.from_bytes(bytes(buf[q + 24 : q + 40]), "big")
        return _match_quote(cookie, 6, reason, qdst, buf, q + 40, n)
    except (struct.error, IndexError, ValueError):
        return None


def source_address(dst: IPAddress | str) -> IPAddress:
    """The local address the kernel would use for `dst` (a connected UDP socket sends nothing)."""
    addr = ipaddress.ip_address(dst)
    fam = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    try:
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.connect((str(addr), 9))
            return ipaddress.ip_address(s.getsockname()[0].split("%")[0])
    except OSError as exc:
        raise from_oserror(exc, f"finding a route to {addr}") from exc


def can_raw() -> bool:
    """True if this process may open raw sockets (root or CAP_NET_RAW)."""
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except OSError:
        return False
    return True


def _raw_socket(family: int, proto: int, what: str) -> socket.socket:
    try:
        return socket.socket(family, socket.SOCK_RAW, proto)
    except OSError as exc:
        err = from_oserror(exc, f"opening a raw {what} socket", fix=PRIVILEGE_FIX)
        raise err from exc


def _enlarge_rcvbuf(sock: socket.socket, size: int) -> None:
    # SO_RCVBUFFORCE ignores net.core.rmem_max (root/CAP_NET_ADMIN); fall back to SO_RCVBUF.
    force = getattr(socket, "SO_RCVBUFFORCE", 33)
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, size)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


_IPV6_CHECKSUM = getattr(socket, "IPV6_CHECKSUM", 7)
_ICMP6_FILTER = 1  # <netinet/icmp6.h>; not exported by Python's socket module


class RawTcpEngine:
    """Raw sockets for TCP probes plus one receiver thread that validates every reply.

    One sending socket per family (IPv4: IPPROTO_RAW, our own IP header; IPv6: IPPROTO_TCP,
    kernel header and checksum), raw TCP and ICMP/ICMPv6 receiving sockets with 32 MB buffers, and
    a receiver thread that calls ``on_reply(reply)`` for each reply whose cookie matches.
    Usage::

        with RawTcpEngine(on_reply, families=(4,)) as eng:
            eng.send4(packet_bytes, "127.0.0.1")

    Raises PrivilegeError (naming the fix) without CAP_NET_RAW.
    """

    def __init__(
        self,
        on_reply: Callable[[Reply], None],
        *,
        families: Iterable[int] = (4, 6),
        cookie: Cookie | None = None,
        rcvbuf: int = 32 << 20,
    ) -> None:
        self.cookie = cookie or Cookie()
        self.on_reply = on_reply
        fams = set(families)
        self._socks: list[socket.socket] = []
        self._recv: list[tuple[socket.socket, int]] = []  # (socket, handler kind)
        self.tx4: socket.socket | None = None
        self.tx6: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        #: monotonic time before which every packet that arrived has been handled (see _loop)
        self.idle_at = 0.0
        try:
            if 4 in fams:
                tx4 = self._add(_raw_socket(socket.AF_INET, socket.IPPROTO_RAW, "IPv4"))
                tx4.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                tx4.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                self.tx4 = tx4
                rx4 = self._add(_raw_socket(socket.AF_INET, socket.IPPROTO_TCP, "TCP"))
                ic4 = self._add(_raw_socket(socket.AF_INET, socket.IPPROTO_ICMP, "ICMP"))
                for s in (rx4, ic4):
                    _enlarge_rcvbuf(s, rcvbuf)
                    # Never send on the receiving sockets: a zero-length shutdown is not possible on
                    # raw sockets, so they simply stay receive-only by use.
                self._recv += [(rx4, 4), (ic4, 1)]
            if 6 in fams and socket.has_ipv6:
                tx6 = self._add(_raw_socket(socket.AF_INET6, socket.IPPROTO_TCP, "IPv6 TCP"))
                tx6.setsockopt(socket.IPPROTO_IPV6, _IPV6_CHECKSUM, 16)
                tx6.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                _enlarge_rcvbuf(tx6, rcvbuf)
                self.tx6 = tx6
                ic6 = self._add(_raw_socket(socket.AF_INET6, socket.IPPROTO_ICMPV6, "ICMPv6"))
                _enlarge_rcvbuf(ic6, rcvbuf)
                # Let only destination-unreachable (type 1) through: echo replies of a concurrent
                # sweep and neighbour discovery never reach Python (RFC 3542 section 3.2).
                blocked = [0xFFFFFFFF] * 8
                blocked[0] &= ~(1 << 1)
                ic6.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("8I", *blocked))
                self._recv += [(tx6, 6), (ic6, 58)]
        except BaseException:
            self.close()
            raise

    def _add(self, s: socket.socket) -> socket.socket:
        self._socks.append(s)
        return s

    def start(self) -> RawTcpEngine:
        self._thread = threading.Thread(target=self._run, name="hilos-tcp-rx", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> RawTcpEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send4(self, packet: bytes, dst: str) -> None:
        assert self.tx4 is not None
        self.tx4.sendto(packet, (dst, 0))

    def send6(self, segment: bytes, dst: str) -> None:
        assert self.tx6 is not None
        self.tx6.sendto(segment, (dst, 0))

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        for s in self._socks:
            s.close()
        self._socks.clear()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # stored for the owner: a dead receiver must not go unnoticed
            self.error = exc

    def _loop(self) -> None:
        poller = select.poll()
        by_fd: dict[int, tuple[socket.socket, int]] = {}
        for s, kind in self._recv:
            s.setblocking(False)
            poller.register(s.fileno(), select.POLLIN)
            by_fd[s.fileno()] = (s, kind)
        buf = bytearray(2048)
        view = memoryview(buf)
        cookie = self.cookie
        on_reply = self.on_reply
        stop = self._stop
        mono = time.monotonic
        while not stop.is_set():
            t0 = mono()
            events = poller.poll(10)
            if not events:
                # Nothing arrived while we waited: everything up to now has been handled.
                self.idle_at = mono()
                continue
            drained = True
            for fd, _ev in events:
                s, kind = by_fd[fd]
                for _ in range(4096):  # drain, but let the other sockets and `stop` get a turn
                    try:
                        if kind == 4 or kind == 1:
                            n = s.recv_into(buf)
                            src = 0
                        else:
                            n, addr = s.recvfrom_into(buf)
                            src = int.from_bytes(
                                socket.inet_pton(socket.AF_INET6, addr[0].split("%")[0]), "big"
                            )
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        if stop.is_set():
                            return
                        break
                    if kind == 4:
                        r = parse_ipv4(cookie, view, n)
                    elif kind == 1:
                        r = parse_icmp4(cookie, view, n)
                    elif kind == 6:
                        r = parse_tcp6(cookie, src, view, n)
                    else:
                        r = parse_icmp6(cookie, view, n)
                    if r is not None:
                        on_reply(r)
                else:
                    drained = False
            if drained:
                # Sockets not ready at poll time were empty then, ready ones were read to EAGAIN:
                # every packet that arrived before t0 has been handled.
                self.idle_at = t0

    def check(self) -> None:
        """Re-raise a receiver-thread failure in the caller's thread."""
        if self.error is not None:
            raise NetworkError(f"TCP receiver failed: {self.error}") from self.error


def addr_str(family: int, addr: int) -> str:
    """The text form of an address given as an int (as in Reply.addr)."""
    return str(ipaddress.IPv4Address(addr) if family == 4 else ipaddress.IPv6Address(addr))


def send_tick() -> int:
    """The source port for a probe sent now (it encodes the send time, see the module docstring)."""
    return SPORT_BASE + ((time.monotonic_ns() >> TICK_SHIFT) & SPORT_MASK)


class _Source4:
    """Per-/24 cache of the IPv4 source address and its precomputed probe template."""

    def __init__(self) -> None:
        self._by_net: dict[int, SynTemplate4] = {}

    def template(self, ip: int) -> SynTemplate4:
        net = ip >> 8
        t = self._by_net.get(net)
        if t is None:
            t = SynTemplate4(source_address(ipaddress.IPv4Address(ip)))
            self._by_net[net] = t
        return t


class TcpProber:
    """Raw TCP discovery probes: a SYN to `syn_port` and an ACK to `ack_port` per address.

    ``on_reply(reply)`` runs in the receiver thread for each validated answer; a SYN-ACK or RST
    means the host is up. Usage::

        with TcpProber(print) as p:
            p.probe(ipaddress.ip_address("127.0.0.1"))   # two packets; pace the calls yourself
    """

    def __init__(
        self,
        on_reply: Callable[[Reply], None],
        *,
        syn_port: int = 443,
        ack_port: int = 80,
        families: Iterable[int] = (4, 6),
        cookie: Cookie | None = None,
    ) -> None:
        self.syn_port = syn_port
        self.ack_port = ack_port
        self.engine = RawTcpEngine(on_reply, families=families, cookie=cookie)
        self._src4 = _Source4()

    def __enter__(self) -> TcpProber:
        self.engine.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    def probe(self, addr: IPAddress) -> None:
        """Send both probes to `addr` (2 packets)."""
        eng = self.engine
        cookie = eng.cookie
        ip = int(addr)
        seed = cookie.host_seed(ip)
        sport = send_tick()
        syn_c = cookie.value(seed, self.syn_port, sport)
        ack_c = cookie.value(seed, self.ack_port, sport)
        dst = str(addr)
        try:
            if addr.version == 4:
                t = self._src4.template(ip)
                d4 = addr.packed
                hs = t.dst_sum(d4)
                eng.send4(t.syn(d4, hs, self.syn_port, sport, syn_c), dst)
                eng.send4(t.ack(d4, hs, self.ack_port, sport, ack_c), dst)
            else:
                eng.send6(tcp6_probe(self.syn_port, sport, syn_c), dst)
                eng.send6(tcp6_probe(self.ack_port, sport, ack_c, ack_c, ACK), dst)
        except OSError as exc:
            if exc.errno in _TRANSIENT:
                return  # no route / buffer full for this one address: it just stays unanswered
            raise from_oserror(exc, f"sending TCP probes to {dst}") from exc


_TRANSIENT = {
    getattr(__import__("errno"), name)
    for name in ("EHOSTUNREACH", "ENETUNREACH", "ENOBUFS", "EADDRNOTAVAIL", "EINVAL", "EAGAIN")
}


def tcp_discover(
    addresses: Iterable[IPAddress | str],
    *,
    rate: float | None = None,
    timeout: float = 1.0,
    retries: int = 1,
    syn_port: int = 443,
    ack_port: int = 80,
    on_reply: Callable[[HostResult], None] | None = None,
    stop: threading.Event | None = None,
) -> dict[str, HostResult]:
    """Find hosts answering raw TCP probes; returns {address: HostResult} for those that answered.

    Per address a SYN to `syn_port` and an ACK to `ack_port` (2 packets, `rate` counts packets/s);
    after all addresses, `timeout` seconds for late replies; then `retries` more rounds to the
    addresses still silent. `addresses` is iterated once per round (a list or a TargetSpace; an
    iterator is first turned into a list). A SYN-ACK or RST gives status "up" (reason "syn-ack" /
    "rst"); an ICMP unreachable gives status "down" with its reason (e.g. "host-unreach") unless
    the host also answered. `on_reply` is called once per host, from the receiver thread, when it
    first turns up (or is first reported unreachable; unreachable hosts are not retried). Setting
    `stop` ends the run early. Needs CAP_NET_RAW (PrivilegeError otherwise). Example::

        found = tcp_discover(["127.0.0.1"], timeout=0.5)
        assert found["127.0.0.1"].status == "up"
    """
    addrs = (
        [ipaddress.ip_address(a) if isinstance(a, str) else a for a in addresses]
        if isinstance(addresses, Iterator)
        else addresses
    )
    results: dict[str, HostResult] = {}
    answered: set[tuple[int, int]] = set()  # (family, address): only hosts that answered
    lock = threading.Lock()

    def handle(r: Reply) -> None:
        if r.port not in (syn_port, ack_port):
            return
        host = addr_str(r.family, r.addr)
        if r.kind == KIND_UNREACH:
            res = HostResult(host, "down", r.reason, None)
        else:
            res = HostResult(
                host, "up", "syn-ack" if r.kind == KIND_SYN_ACK else "rst", round(r.rtt_ms, 3)
            )
        with lock:
            old = results.get(host)
            if old is not None and (old.is_up or not res.is_up):
                return
            results[host] = res
            answered.add((r.family, r.addr))
        if on_reply is not None:
            on_reply(res)

    def norm(a: IPAddress | str) -> IPAddress:
        return ipaddress.ip_address(a) if isinstance(a, str) else a

    families = {4, 6}
    with TcpProber(handle, syn_port=syn_port, ack_port=ack_port, families=families) as prober:
        take = TokenBucket(rate, burst=64).take
        for _round in range(retries + 1):
            sent = 0
            batch = 0
            for a in addrs:
                addr = norm(a)
                if (addr.version, int(addr)) in answered:
                    continue
                if stop is not None and stop.is_set():
                    return results
                if batch == 0:
                    take(64)
                    batch = 32
                batch -= 1
                prober.probe(addr)
                sent += 1
            prober.engine.check()
            if sent == 0:
                break
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if stop is not None and stop.is_set():
                    return results
                time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))
    return results
