"""Which probes a sweep sends: the engines this process may use, and the frame path if routed."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from hilos.errors import PrivilegeError
from hilos.sweep.base import Engine, Method, Sink
from hilos.sweep.connects import ConnectDiscovery
from hilos.sweep.engines import IcmpDiscovery, TcpDiscovery
from hilos.sweep.frames import MAX_SENDERS, FrameSender
from hilos.sweep.targets import Targets
from hilos.wire.cookie import Cookie
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.sockets import ping_group_allows

__all__ = ["attach_link", "choose_engines"]

_NO_ICMP = "ICMP echo (needs root, or net.ipv4.ping_group_range)"
_NO_PING_SOCKET = "ICMP echo (needs root, or sysctl net.ipv4.ping_group_range covering your group)"


def choose_engines(
    method: Method,
    families: set[int],
    raw: bool,
    cookie: Cookie,
    bucket: TokenBucket,
    sink: Sink,
    threads: int,
    wait: Callable[[], float],
) -> tuple[list[Engine], list[str]]:
    """The engines for `method` given the privilege (`raw`), and what is missing without it.

    "auto" takes every probe this process may send (and says what it could not); a forced
    "icmp" without any way to send echo requests raises the socket layer's PrivilegeError,
    which names the sysctl fix. Engines made before a failure are closed. The raw engines share
    the sweep's `cookie` (the frame path computes each address's seed once for all three).
    """
    engines: list[Engine] = []
    missing: list[str] = []
    try:
        if method in ("auto", "icmp"):
            icmp, why = _icmp_engine(method, families, raw, cookie, bucket, sink)
            engines.extend(icmp)
            missing.extend(why)
        if method in ("auto", "tcp"):
            if raw:
                engines.append(TcpDiscovery(bucket, sink, families, cookie))
            else:
                engines.append(ConnectDiscovery(bucket, sink, threads, wait))
                if method == "auto":
                    missing.append("raw TCP SYN/ACK probes (need root)")
    except BaseException:
        for e in engines:
            e.close()
        raise
    return engines, missing


def _icmp_engine(
    method: Method, families: set[int], raw: bool, cookie: Cookie, bucket: TokenBucket, sink: Sink
) -> tuple[list[Engine], list[str]]:
    if raw or ping_group_allows() or 6 in families:
        try:
            return [IcmpDiscovery(cookie, bucket, sink, families)], []
        except PrivilegeError:
            if method == "icmp":
                raise
            return [], [_NO_ICMP]
    if method == "icmp":
        # Let the socket layer produce the precise error (names the sysctl fix).
        return [IcmpDiscovery(cookie, bucket, sink, families)], []
    return [], [_NO_PING_SOCKET]


def attach_link(
    targets: Targets, engines: list[Engine], rate: float | None
) -> tuple[LinkTx | None, FrameSender | None]:
    """An Ethernet-frame transmitter for the raw engines when the targets sit behind a gateway
    (the common routed case), and the frame sender over it; (None, None) otherwise, and the
    engines keep their IP sockets."""
    first = next((a for fam, a, _ in targets.ranges() if fam == 4), None)
    if first is None:
        return None, None
    icmp = next((e for e in engines if isinstance(e, IcmpDiscovery)), None)
    tcpe = next((e for e in engines if isinstance(e, TcpDiscovery)), None)

    def resolve() -> None:
        # One ordinary packet makes the kernel resolve the gateway's MAC (ARP). It goes to
        # the first target, which is probed anyway; its answer is validated as usual.
        dest = socket.inet_ntoa(first.to_bytes(4, "big"))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"", (dest, 9))

    link = LinkTx.for_route(first, resolve=resolve)
    if link is None:
        return None, None
    if icmp is not None and not icmp.raw:
        icmp = None  # a datagram ICMP socket cannot be bypassed: it keeps its own pass
    frames = None
    if icmp is not None or tcpe is not None:
        parts = min(MAX_SENDERS, len(os.sched_getaffinity(0)))
        frames = FrameSender(link, icmp, tcpe, rate, parts)
    return link, frames
