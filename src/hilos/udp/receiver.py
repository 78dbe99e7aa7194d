"""The UDP scan's raw sockets and receiver thread: datagrams and ICMP errors, validated statelessly.

A datagram is accepted when it comes from a target's scanned port to the source port keyed for
that (host, port), and, for a port with a payload of its own, echoes the cookie in its id field
(hilos.probes.udp_payloads). An ICMP error is accepted when the IP and UDP headers it quotes name
a target's scanned port as destination and that pair's keyed source port. Everything else is
ignored, whatever it holds.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any, Final

from hilos.errors import NetworkError
from hilos.probes.udp_payloads import PORT_KINDS, id_matches
from hilos.probes.udp_reply import parse_icmp4, parse_icmp6, parse_udp4, parse_udp6
from hilos.udp.state import OPEN, REASON_CODE, UdpState
from hilos.wire.sockets import IPV6_CHECKSUM, enlarge_rcvbuf, poll_readable, raw_socket

__all__ = ["UdpReceiver", "Validator"]

_RCVBUF = 8 << 20
_SMALL = 64  # ICMP errors per batched read below which the reader pauses 1 ms
_UNREACH = REASON_CODE["unreach"]
# The kernel's arrival time of each packet (CLOCK_REALTIME, struct timespec): round trips are
# then the path's, not inflated by this thread's backlog after a burst of answers.
SO_TIMESTAMPNS: Final = 35  # = SCM_TIMESTAMPNS (Linux; not in Python's socket module)
_TIMESPEC = struct.Struct("@qq")
_ANC = socket.CMSG_SPACE(_TIMESPEC.size)


class Validator:
    """Checks what arrived against the scan's keys and hands valid answers to the state."""

    def __init__(self, state: UdpState) -> None:
        self.state = state
        self.targets = state.targets

    def datagram(
        self, family: int, addr: int, sport: int, dport: int, payload: bytes, at: int | None = None
    ) -> bool:
        """A datagram from `addr`:`sport` to our `dport`: True when it answers one of our probes.
        `at`: when it arrived (time.monotonic_ns(); None: now)."""
        h = self.targets.lookup(family, addr)
        pi = self.state.port_index[sport]
        if h is None or pi < 0 or dport != self.targets.sport(h, sport):
            return False
        kinds = PORT_KINDS.get(sport)
        if kinds is not None:
            value = self.targets.value(h, sport)
            if not any(id_matches(k, value, payload) for k in kinds):
                return False
        self.state.answer(h, pi, OPEN, payload, at)
        return True

    def icmp(
        self, family: int, addr: int, sport: int, dport: int, reason: str, at: int | None = None
    ) -> bool:
        """An ICMP error quoting a datagram to `addr`:`dport` from our `sport`."""
        h = self.targets.lookup(family, addr)
        pi = self.state.port_index[dport]
        if h is None or pi < 0 or sport != self.targets.sport(h, dport):
            return False
        self.state.answer(h, pi, REASON_CODE.get(reason, _UNREACH), None, at)
        return True


class UdpReceiver:
    """Raw sockets for the families scanned (UDP to send and read replies, ICMP/ICMPv6 to read
    errors) and the thread that reads them. `idle_at`: everything that arrived before this
    monotonic time has been handled."""

    def __init__(self, state: UdpState, families: frozenset[int], batched: bool = False) -> None:
        """`batched`: ICMP errors over IPv4 by recvmmsg and numpy (hilos.udp.rx4)."""
        self.validator = Validator(state)
        self._batch: Any = None
        self.tx4: socket.socket | None = None
        self.tx6: socket.socket | None = None
        self._recv: list[tuple[socket.socket, int]] = []
        try:
            if 4 in families:
                self.tx4 = self._add(raw_socket(socket.AF_INET, socket.IPPROTO_UDP, "UDP"), 4)
                icmp4 = self._add(raw_socket(socket.AF_INET, socket.IPPROTO_ICMP, "ICMP"), 1)
                if batched:
                    from hilos.udp.rx4 import Icmp4Batch

                    self._batch = Icmp4Batch(icmp4, state)
            if 6 in families:
                s6 = raw_socket(socket.AF_INET6, socket.IPPROTO_UDP, "UDP")
                s6.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 6)  # the kernel sums it
                self.tx6 = self._add(s6, 6)
                self._add(raw_socket(socket.AF_INET6, socket.IPPROTO_ICMPV6, "ICMPv6"), 58)
        except BaseException:
            self.close()
            raise
        self.idle_at = 0.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hilos-udp-rx", daemon=True)

    def _add(self, s: socket.socket, kind: int) -> socket.socket:
        enlarge_rcvbuf(s, _RCVBUF)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._recv.append((s, kind))
        return s

    def start(self) -> UdpReceiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop = getattr(self, "_stop", threading.Event())
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=1.0)
        for s, _ in self._recv:
            s.close()

    def check(self) -> None:
        """Re-raise a receiver-thread failure in the caller's thread."""
        if self.error is not None:
            raise NetworkError(f"UDP receiver failed: {self.error}") from self.error

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # stored for the owner: a dead receiver must not go unnoticed
            self.error = exc

    def _loop(self) -> None:
        poller, by_fd = poll_readable(self._recv)
        buf = bytearray(4096)
        stop, mono = self._stop, time.monotonic
        while not stop.is_set():
            t0 = mono()
            # Short polls: the sender's waits end on `idle_at`, which a quiet poll moves on.
            events = poller.poll(3)
            if not events:
                self.idle_at = mono()
                continue
            drained = True
            for fd, _ev in events:
                s, kind = by_fd[fd]
                if kind == 1 and self._batch is not None:
                    if not self._batch.drain():
                        drained = False
                    elif self._batch.last < _SMALL:
                        # A trickle (answers arriving as the sender sends): let a batch
                        # gather instead of waking per packet; arrival times are the kernel's.
                        stop.wait(0.001)
                elif not self.drain(s, kind, buf):
                    drained = False
                if stop.is_set():
                    return
            if drained:
                self.idle_at = t0

    def drain(self, s: socket.socket, kind: int, buf: bytearray, most: int = 4096) -> bool:
        """Handle what `s` holds (at most `most` packets, so the other sockets get a turn);
        True when it was emptied. Each packet's round trip ends at its kernel arrival time."""
        offset = time.time_ns() - time.monotonic_ns()  # realtime -> monotonic, this round
        unpack, level = _TIMESPEC.unpack_from, socket.SOL_SOCKET
        view = [memoryview(buf)]
        for _ in range(most):
            try:
                n, anc, _flags, addr = s.recvmsg_into(view, _ANC)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return True
            at = None
            for lvl, typ, data in anc:
                if lvl == level and typ == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
                    sec, nsec = unpack(data)
                    at = sec * 1_000_000_000 + nsec - offset
            self.handle(kind, addr[0], bytes(buf[:n]), at)
        return False

    def handle(self, kind: int, src: str, data: bytes, at: int | None = None) -> bool:
        """One packet from socket `kind` (4, 6: UDP; 1, 58: ICMP, ICMPv6); True if it counted.
        `at`: its arrival (time.monotonic_ns(); None: now)."""
        v = self.validator
        n = len(data)
        if kind == 4:
            d = parse_udp4(data, n)
            return d is not None and v.datagram(
                4, d.addr, d.sport, d.dport, data[d.offset : d.end], at
            )
        if kind == 6:
            a6 = int.from_bytes(socket.inet_pton(socket.AF_INET6, src.split("%")[0]), "big")
            d = parse_udp6(a6, data, n)
            return d is not None and v.datagram(
                6, d.addr, d.sport, d.dport, data[d.offset : d.end], at
            )
        q = parse_icmp4(data, n) if kind == 1 else parse_icmp6(data, n)
        return q is not None and v.icmp(
            4 if kind == 1 else 6, q.addr, q.sport, q.dport, q.reason, at
        )
