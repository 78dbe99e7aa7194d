"""The echo engine: sends hilos echo requests and matches their replies, statelessly.

One socket per family, the caller's thread sends, one receiver thread per socket. Each request
carries the keyed cookie of its destination (hilos.wire.cookie.Cookie.echo, the one cookie,
inlined in the IPv4 loops) in its identifier, sequence and payload, and its send time in the
payload.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import socket
import struct
import threading
import time
from collections.abc import Callable, Container, Iterable
from typing import Final, Literal

from hilos.probes.icmp_echo import V6_TAG, addr_key, parse_reply
from hilos.wire.cookie import M1, M2, M3, MASK64, Cookie
from hilos.wire.frames import (
    ECHO,
    ECHO_PAD,
    ECHO_SUM4,
    ICMP6_ECHO_REPLY,
    ICMP6_ECHO_REQUEST,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
)
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import send_failed
from hilos.wire.sockets import IcmpSocket, open_icmp_socket

__all__ = ["EchoEngine"]

_OCTETS: Final = tuple(str(i) for i in range(256))
_RECV_POLL = struct.pack("@ll", 0, 50_000)  # SO_RCVTIMEO 50 ms: how fast a receiver notices stop
_PACE_BATCH = 32  # packets per token-bucket reservation


class EchoEngine:
    """Sends hilos echo requests and matches their replies, statelessly.

    `on_result(key, reason, rtt_ms)` is called from a receiver thread for every validated answer:
    reason "echo-reply" (up), "host-unreach" or "time-exceeded" (down). `key` is the address as an
    int (plus V6_TAG for IPv6). Nothing per probe is stored: the cookie in the identifier, sequence
    and payload is recomputed from the reply's source, and the send time travels in the payload.

        engine = EchoEngine(Cookie(), bucket, on_result, families=(4,))
        engine.start()
        engine.send_ranges([(4, first, last)], skip=answered, stop=event)
        ...
        engine.close()
    """

    def __init__(
        self,
        cookie: Cookie,
        bucket: TokenBucket,
        on_result: Callable[[int, str, float | None], None],
        *,
        families: Iterable[int] = (4, 6),
        mode: Literal["auto", "raw", "dgram"] = "auto",
    ) -> None:
        self.cookie = cookie
        self.bucket = bucket
        self.on_result = on_result
        self.sockets: dict[int, IcmpSocket] = {}
        self.sent = 0
        self.progress = 0  # addresses handled by the current send_ranges call
        self.send_errors = 0
        self.loss_keys: tuple[Cookie, ...] = ()
        self.loss_replies = 0
        self.loss_sent = 0
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
        pack = ECHO.pack
        pad = ECHO_PAD
        octets = _OCTETS
        k1, k2, m1, m2, m3, mask = self.cookie.k1, self.cookie.k2, M1, M2, M3, MASK64
        now_ns = time.monotonic_ns
        base = ECHO_SUM4
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
                x = ((b ^ k1) * m1) & mask  # Cookie.echo(b), inlined
                x ^= x >> 31
                x = ((x ^ k2) * m2) & mask
                x = ((x ^ (x >> 29)) * m3) & mask
                x ^= x >> 32
                c = ((x * m1) & mask) >> 32
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
        pack = ECHO.pack
        pad = ECHO_PAD
        echo = self.cookie.echo
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
            c = echo(a)
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
        already answered an echo), each round under its own random Cookie so their answers are
        counted in `loss_replies` and never mistaken for, nor recorded as, sweep results.
        Returns how many were sent."""
        keys = tuple(Cookie() for _ in range(rounds))
        self.loss_keys = keys
        sent = 0
        for k in keys:
            for h in hosts:
                fam = 6 if h >= V6_TAG else 4
                isock = self.sockets.get(fam)
                if isock is None:
                    continue
                c = k.echo(h)
                t = time.monotonic_ns()
                if fam == 4:
                    csum = 0xFFFF - (ECHO_SUM4 + c + c + t) % 0xFFFF
                    pkt = ECHO.pack(ICMP_ECHO_REQUEST, 0, csum, c, t, c) + ECHO_PAD
                    dest: tuple[object, ...] = (socket.inet_ntoa(h.to_bytes(4, "big")), 0)
                else:
                    pkt = ECHO.pack(ICMP6_ECHO_REQUEST, 0, 0, c, t, c) + ECHO_PAD
                    raw = (h - V6_TAG).to_bytes(16, "big")
                    dest = (socket.inet_ntop(socket.AF_INET6, raw), 0, 0, 0)
                resend = functools.partial(isock.sock.sendto, pkt, dest)
                try:
                    resend()
                except OSError as exc:
                    # The same policy; an unreachable host just gets no loss probe.
                    if send_failed(exc, resend, "sending loss probes") != "sent":
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
        """Apply hilos.wire.senders' policy to a failed sendto; True if the packet went out after
        all (a full queue drained). No route is said at once: the host is unreachable."""
        outcome = send_failed(exc, lambda: sendto(pkt, dest), "sending ICMP echo requests")
        if outcome == "sent":
            return True
        if outcome == "unreachable":
            self.on_result(key, "host-unreach", None)
        self.send_errors += 1
        return False

    # -- receiving ----------------------------------------------------------------------------

    def _receive(self, isock: IcmpSocket) -> None:
        sock = isock.sock
        fam = isock.family
        k1, k2, m1, m2, m3, mask = self.cookie.k1, self.cookie.k2, M1, M2, M3, MASK64
        echo = self.cookie.echo
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
                if _receive_ended(exc, stop):
                    return
                continue
            now = now_ns()
            # Fast path for echo replies, the bulk of what arrives: no object, a few slices.
            off = ((data[0] & 0x0F) << 2) if raw4 and data else 0
            if len(data) < off + 8 or data[off] != echo_reply:
                self._error_reply(data, src, fam, raw4, dgram)
                continue
            if fam == 4:
                addr = (
                    from_bytes(data[12:16], "big")
                    if raw4
                    else from_bytes(socket.inet_aton(src[0]), "big")
                )
                x = ((addr ^ k1) * m1) & mask  # Cookie.echo(addr), inlined
                x ^= x >> 31
                x = ((x ^ k2) * m2) & mask
                x = ((x ^ (x >> 29)) * m3) & mask
                x ^= x >> 32
                c = ((x * m1) & mask) >> 32
            else:
                addr = (
                    from_bytes(socket.inet_pton(socket.AF_INET6, src[0].split("%")[0]), "big")
                    + V6_TAG
                )
                c = echo(addr)  # V6_TAG drops out of host_seed
            got = from_bytes(data[off + 4 : off + 8], "big")
            body = data[off + 8 :]
            if dgram:
                # The kernel rewrote the identifier: check the sequence and the payload copy.
                got = (
                    (got & 0xFFFF) | (from_bytes(body[8:10], "big") << 16)
                    if len(body) >= 12
                    else -1
                )
            if got != c:
                if self.loss_keys:
                    self._loss_reply(got, addr)
                continue
            rtt: float | None = None
            if len(body) >= 8:
                delta = now - from_bytes(body[:8], "big")
                if 0 <= delta < 3_600_000_000_000:
                    rtt = delta / 1e6
            on_result(addr, "echo-reply", rtt)

    def _loss_reply(self, got: int, addr: int) -> None:
        """Count an echo reply carrying a loss probe's cookie (see send_loss_probes)."""
        if got in {k.echo(addr) for k in self.loss_keys}:
            self.loss_replies += 1

    def _error_reply(
        self, data: bytes, src: tuple[str, int] | None, fam: int, raw4: bool, dgram: bool
    ) -> None:
        """An ICMP error (unreachable, time exceeded) about one of our probes, if it is one."""
        reply = parse_reply(data, family=fam, ip_header=raw4, source=src[0] if src else None)
        if reply is None or reply.kind == "echo-reply":
            return
        target = addr_key(fam, reply.target)
        if reply.proto == socket.IPPROTO_TCP:
            # An error about a TCP discovery probe (ports 80/443) of this sweep.
            if len(reply.quoted) < 4 or int.from_bytes(reply.quoted[2:4], "big") not in (80, 443):
                return
        else:
            c = self.cookie.echo(target)
            if dgram:
                if reply.seq != (c & 0xFFFF):
                    return
            elif reply.cookie != c:
                return
        self.on_result(target, reply.kind, None)


def _receive_ended(exc: OSError, stop: threading.Event) -> bool:
    """Whether a failed recvfrom means the receiver should end (closed socket, or stopping)."""
    if exc.errno in (errno.EAGAIN, errno.EINTR) or isinstance(exc, TimeoutError):
        return False
    return stop.is_set() or exc.errno == errno.EBADF
