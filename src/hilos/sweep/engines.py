"""The sweep's raw probe engines: ICMP echo (IcmpDiscovery) and raw TCP SYN/ACK (TcpDiscovery)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable

from hilos.probes.base import KIND_UNREACH, Reply, send_tick
from hilos.probes.echo_engine import EchoEngine
from hilos.probes.icmp_echo import V6_TAG
from hilos.probes.tcp_transport import TcpProber
from hilos.sweep.base import PACE_BATCH, TCP_PORTS, Range, Sink
from hilos.wire.cookie import Cookie
from hilos.wire.frames import SynTemplate4
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import send_failed
from hilos.wire.sockets import source_address

__all__ = ["IcmpDiscovery", "TcpDiscovery"]

_OCTETS = tuple(str(i) for i in range(256))


class IcmpDiscovery:
    """ICMP echo through hilos.probes.echo_engine.EchoEngine (raw or datagram sockets)."""

    def __init__(self, cookie: Cookie, bucket: TokenBucket, sink: Sink, families: set[int]) -> None:
        self.engine = EchoEngine(cookie, bucket, sink, families=families)
        kinds = set(self.engine.kinds.values())
        self.raw = kinds == {"raw"}
        self.name = "ICMP echo" + ("" if self.raw else " (unprivileged ping socket)")

    def start(self) -> None:
        self.engine.start()

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        return self.engine.send_ranges(ranges, skip, stop)

    def close(self) -> None:
        self.engine.close()


class TcpDiscovery:
    """Raw SYN to 443 and ACK to 80 through hilos.probes.tcp_transport.

    The packets, cookies (sequence numbers), send-time source ports and the validating receiver
    are the probe modules' (TcpProber, SynTemplate4, wire.cookie): one mechanism with the SYN scan.
    Only the loop is local, working on int addresses so no ipaddress object is made per probe.
    IPv4 probes behind a gateway leave as Ethernet frames instead (hilos.sweep.frames).
    """

    name = "TCP SYN 443 + ACK 80 (raw)"

    def __init__(
        self, bucket: TokenBucket, sink: Sink, families: set[int], cookie: Cookie | None = None
    ) -> None:
        self.bucket = bucket

        def on_reply(r: Reply) -> None:
            if r.port not in TCP_PORTS:
                return
            key = r.addr + (V6_TAG if r.family == 6 else 0)
            # syn-ack, reset, or an unreachable reason (host-unreach, ...: no RTT, down)
            sink(key, r.reason, None if r.kind == KIND_UNREACH else round(r.rtt_ms, 3))

        self.prober = TcpProber(
            on_reply, syn_port=443, ack_port=80, families=families, cookie=cookie
        )
        self._templates: dict[int, SynTemplate4] = {}

    @property
    def cookie(self) -> Cookie:
        """The keyed cookie the receiver validates answers with (the frame sender's too)."""
        return self.prober.engine.cookie

    def start(self) -> None:
        self.prober.engine.start()

    def close(self) -> None:
        self.prober.close()

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        sent = 0
        for fam, first, last in ranges:
            if stop.is_set():
                break
            if fam == 6:
                sent += self._pass6(first, last, skip, stop)
            else:
                sent += self._pass4(first, last, skip, stop)
        self.prober.engine.check()
        return sent

    def _pass4(self, first: int, last: int, skip: dict[int, object], stop: threading.Event) -> int:
        # Through the IP socket (IP_HDRINCL): used when no LinkTx covers the range (on-link
        # targets, loopback). The frame path is hilos.sweep.frames.
        eng = self.prober.engine
        if eng.tx4 is None:
            return 0
        cookie = eng.cookie
        host_seed, value = cookie.host_seed, cookie.value
        tick = send_tick
        take = self.bucket.take
        limited = not self.bucket.unlimited
        octets = _OCTETS
        sendto = eng.tx4.sendto
        sent = pending = 0
        a = first
        while a <= last:
            if stop.is_set():
                break
            block_end = min(last, a | 0xFF)
            template = self._template4(a)
            prefix = f"{a >> 24}.{(a >> 16) & 255}.{(a >> 8) & 255}."
            syn, ack = template.syn, template.ack
            for b in range(a, block_end + 1):
                if b in skip:
                    continue
                if limited:
                    pending += 2
                    if pending >= PACE_BATCH:
                        take(pending)
                        pending = 0
                seed = host_seed(b)
                sport = tick()
                d4 = b.to_bytes(4, "big")
                hs = (b >> 16) + (b & 0xFFFF)
                dest = (prefix + octets[b & 255], 0)
                p_syn = syn(d4, hs, 443, sport, value(seed, 443, sport))
                p_ack = ack(d4, hs, 80, sport, value(seed, 80, sport))
                try:
                    sendto(p_syn, dest)
                    sendto(p_ack, dest)
                except OSError as exc:
                    if not self._resend(exc, sendto, (p_syn, p_ack), dest):
                        continue  # this address waits for the retry pass
                sent += 2
            a = block_end + 1
        return sent

    @staticmethod
    def _resend(
        exc: OSError,
        sendto: Callable[[bytes, tuple[str, int]], int],
        packets: tuple[bytes, bytes],
        dest: tuple[str, int],
    ) -> bool:
        """A send failed: the send-error policy decides (both probes go again, if at all)."""

        def again() -> None:
            for p in packets:
                sendto(p, dest)

        return send_failed(exc, again, f"sending TCP probes to {dest[0]}") == "sent"

    def _template4(self, a: int) -> SynTemplate4:
        net = a >> 8
        t = self._templates.get(net)
        if t is None:
            src = source_address(ipaddress.IPv4Address(a))
            t = self._templates[net] = SynTemplate4(src)
        return t

    def _pass6(self, first: int, last: int, skip: dict[int, object], stop: threading.Event) -> int:
        probe = self.prober.probe
        take = self.bucket.take
        limited = not self.bucket.unlimited
        sent = pending = 0
        for a in range(first, last + 1):
            if a + V6_TAG in skip:
                continue
            if sent & 0xFF == 0 and stop.is_set():
                break
            if limited:
                pending += 2
                if pending >= PACE_BATCH:
                    take(pending)
                    pending = 0
            probe(ipaddress.IPv6Address(a))
            sent += 2
        return sent
