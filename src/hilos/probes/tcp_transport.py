"""Raw sockets for TCP probes with one validating receiver thread, and the discovery prober.

`TcpTransport` owns the sending sockets (IPv4 IP_HDRINCL, IPv6 with kernel checksums) and the
raw TCP and ICMP receiving sockets; its receiver calls ``on_reply(reply)`` for each reply whose
cookie matches (hilos.probes.tcp_reply). The SYN scan sends through it. `TcpProber` pairs a
transport with the discovery probes (a SYN to 443 and an ACK to 80, as nmap -PS443 -PA80): the
sweep holds one (its own loops build the packets), `probe` sends the pair to one address.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from hilos.errors import NetworkError
from hilos.probes.base import SPORT_BASE, SPORT_COUNT, Reply, send_tick
from hilos.probes.tcp_ack import AckProbe
from hilos.probes.tcp_reply import parse_icmp4, parse_icmp6, parse_ipv4, parse_tcp6
from hilos.probes.tcp_syn import SynProbe
from hilos.wire.cookie import Cookie
from hilos.wire.senders import send_failed
from hilos.wire.sockets import (
    ICMP6_FILTER,
    IPV6_CHECKSUM,
    RX_ANCILLARY,
    enlarge_rcvbuf,
    kernel_lag_ms,
    poll_readable,
    raw_drops,
    raw_socket,
    rx_timestamps,
)

if TYPE_CHECKING:
    from hilos.probes.tcp_batch import BatchDrain, OnBatch

__all__ = ["TcpProber", "TcpTransport"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SMALL = 256  # answers per batched read below which the reader pauses 1 ms


class TcpTransport:
    """Raw sockets for TCP probes plus one receiver thread that validates every reply.

    One sending socket per family (IPv4: IPPROTO_RAW, our own IP header; IPv6: IPPROTO_TCP,
    kernel header and checksum), raw TCP and ICMP/ICMPv6 receiving sockets with 32 MB buffers, and
    a receiver thread that calls ``on_reply(reply)`` for each reply whose cookie matches.
    Usage::

        with TcpTransport(on_reply, families=(4,)) as eng:
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
        batched: bool = False,
        on_batch: OnBatch | None = None,
    ) -> None:
        self.cookie = cookie or Cookie()
        self.on_reply = on_reply
        # batched: IPv4 TCP answers read and validated a batch at a time (probes.tcp_batch;
        # numpy, imported only then): for scans whose answers come by the hundred thousand.
        self._batch: BatchDrain | None = None
        if batched and 4 in set(families):
            from hilos.probes.tcp_batch import BatchDrain

            self._batch = BatchDrain(self.cookie, on_reply, on_batch)
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
                tx4 = self._add(raw_socket(socket.AF_INET, socket.IPPROTO_RAW, "IPv4"))
                tx4.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                tx4.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                self.tx4 = tx4
                rx4 = self._add(raw_socket(socket.AF_INET, socket.IPPROTO_TCP, "TCP"))
                ic4 = self._add(raw_socket(socket.AF_INET, socket.IPPROTO_ICMP, "ICMP"))
                for s in (rx4, ic4):
                    enlarge_rcvbuf(s, rcvbuf)
                    rx_timestamps(s)
                    # Never send on the receiving sockets: a zero-length shutdown is not possible on
                    # raw sockets, so they simply stay receive-only by use.
                self._recv += [(rx4, 4), (ic4, 1)]
            if 6 in fams and socket.has_ipv6:
                tx6 = self._add(raw_socket(socket.AF_INET6, socket.IPPROTO_TCP, "IPv6 TCP"))
                tx6.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 16)
                tx6.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
                enlarge_rcvbuf(tx6, rcvbuf)
                self.tx6 = tx6
                rx_timestamps(tx6)
                ic6 = self._add(raw_socket(socket.AF_INET6, socket.IPPROTO_ICMPV6, "ICMPv6"))
                enlarge_rcvbuf(ic6, rcvbuf)
                rx_timestamps(ic6)
                # Let only destination-unreachable (type 1) through: echo replies of a concurrent
                # sweep and neighbour discovery never reach Python (RFC 3542 section 3.2).
                blocked = [0xFFFFFFFF] * 8
                blocked[0] &= ~(1 << 1)
                ic6.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("8I", *blocked))
                self._recv += [(tx6, 6), (ic6, 58)]
        except BaseException:
            self.close()
            raise

    def drops(self) -> int | None:
        """Packets the kernel dropped on our receive sockets (full buffers); None if unknown."""
        counts = [raw_drops(s) for s, _kind in self._recv]
        known = [c for c in counts if c is not None]
        return sum(known) if known else None

    def filter_replies(self, source4: int) -> None:
        """Let the kernel drop, before they are queued to us, IPv4 packets that cannot answer
        a probe sent from `source4`: TCP to a port outside our source-port range, ICMP other
        than destination unreachable, anything to another address (classic BPF)."""
        from hilos.wire.bpf import attach, reply_filter

        tcp = reply_filter(source4, tcp_ports=(SPORT_BASE, SPORT_BASE + SPORT_COUNT - 1))
        for s, kind in self._recv:
            if kind == 4:
                attach(s, tcp)
            elif kind == 1:
                attach(s, reply_filter(source4, icmp_types=(3,)))

    def _add(self, s: socket.socket) -> socket.socket:
        self._socks.append(s)
        return s

    def start(self) -> TcpTransport:
        self._thread = threading.Thread(target=self._run, name="hilos-tcp-rx", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> TcpTransport:
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
        poller, by_fd = poll_readable(self._recv)
        buf = bytearray(2048)
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
                if kind == 4 and self._batch is not None:
                    drained = self._batch.drain(s) and drained
                    if self._batch.last < _SMALL:
                        # A trickle (answers arriving as the probes go): let a batch gather
                        # rather than pay numpy's per-batch cost for a few; RTTs are the
                        # kernel's receive stamps, so the wait is not counted in them.
                        stop.wait(0.001)
                else:
                    drained = self._drain(s, kind, buf) and drained
            if drained:
                # Sockets not ready at poll time were empty then, ready ones were read to EAGAIN:
                # every packet that arrived before t0 has been handled.
                self.idle_at = t0

    def _drain(self, s: socket.socket, kind: int, buf: bytearray) -> bool:
        """Read `s` to EAGAIN, validating each packet; False if it stopped at 4096 packets (so
        the other sockets and `stop` get a turn). RTTs exclude the time a reply waited for us
        (the kernel's receive stamp): a busy core is not a queue in the network."""
        view = memoryview(buf)
        bufs = [buf]
        cookie, on_reply = self.cookie, self.on_reply
        offset = time.time_ns() - time.monotonic_ns()
        for _ in range(4096):
            try:
                n, anc, _flags, addr = s.recvmsg_into(bufs, RX_ANCILLARY)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return True  # a closed socket at shutdown: the loop sees `stop`
            if kind == 4:
                r = parse_ipv4(cookie, view, n)
            elif kind == 1:
                r = parse_icmp4(cookie, view, n)
            elif kind == 6:
                src = int.from_bytes(
                    socket.inet_pton(socket.AF_INET6, addr[0].split("%")[0]), "big"
                )
                r = parse_tcp6(cookie, src, view, n)
            else:
                r = parse_icmp6(cookie, view, n)
            if r is not None:
                lag = kernel_lag_ms(anc, offset)
                if lag > 0:
                    r = r._replace(rtt_ms=max(0.0, r.rtt_ms - lag))
                on_reply(r)
        return False

    def check(self) -> None:
        """Re-raise a receiver-thread failure in the caller's thread."""
        if self.error is not None:
            raise NetworkError(f"TCP receiver failed: {self.error}") from self.error


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
        self.engine = TcpTransport(on_reply, families=families, cookie=cookie)
        self.syn_probe = SynProbe()
        self.ack_probe = AckProbe(self.syn_probe)

    def __enter__(self) -> TcpProber:
        self.engine.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.close()

    def probe(self, addr: IPAddress) -> None:
        """Send both probes to `addr` (2 packets), built by the SYN and ACK probe modules. A
        send error follows hilos.wire.senders' policy: the address stays unanswered, unless it
        is a real failure (a HilosError)."""
        eng = self.engine
        cookie = eng.cookie
        ip = int(addr)
        seed = cookie.host_seed(ip)
        sport = send_tick()
        version = addr.version
        packets = [
            module.build(version, ip, port, sport, cookie.value(seed, port, sport))
            for module, port in ((self.syn_probe, self.syn_port), (self.ack_probe, self.ack_port))
        ]
        send = eng.send4 if version == 4 else eng.send6
        dst = str(addr)

        def both() -> None:
            for packet in packets:
                send(packet, dst)

        try:
            both()
        except OSError as exc:
            send_failed(exc, both, f"sending TCP probes to {dst}")
