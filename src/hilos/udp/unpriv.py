"""The UDP scan without raw sockets: connected UDP sockets read ICMP errors from their error queue.

A connected UDP socket with IP_RECVERR (IPV6_RECVERR) gets the ICMP errors about its datagrams
on its error queue (recvmsg with MSG_ERRQUEUE): a `sock_extended_err` whose origin is
SO_EE_ORIGIN_ICMP (ICMP6) carries the ICMP type and code, so port unreachable still means
closed. One socket per probe in flight, `WINDOW` at a time, in the same keyed walk and with the
same payloads and retries as the raw path; slower, the same states.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from hilos.probes.base import unreach_reason
from hilos.probes.udp_payloads import PORT_KINDS, ROTATION, build_payload, id_matches, kind_for
from hilos.udp.drain import drain_rate_limited
from hilos.udp.state import OPEN, REASON_CODE, UdpState
from hilos.udp.targets import UdpTargets
from hilos.wire.ratelimit import TokenBucket

if TYPE_CHECKING:
    from hilos.udp.scanner import UdpScanner

__all__ = ["WINDOW", "read_error", "run_unprivileged"]

WINDOW = 256  # sockets open at once
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
_EE = struct.Struct("=IBBBBII")  # struct sock_extended_err


def read_error(sock: socket.socket) -> str | None:
    """The reason word of the ICMP error queued on `sock` (port-unreach, host-unreach, ...),
    or None when the queue holds nothing from ICMP."""
    try:
        _data, anc, _flags, _addr = sock.recvmsg(512, 512, MSG_ERRQUEUE)
    except OSError:
        return None
    for level, _type, data in anc:
        if level not in (socket.IPPROTO_IP, socket.IPPROTO_IPV6) or len(data) < _EE.size:
            continue
        _errno, origin, icmp_type, code, _pad, _info, _data2 = _EE.unpack_from(data)
        if origin == SO_EE_ORIGIN_ICMP:
            return unreach_reason(4, icmp_type, code)
        if origin == SO_EE_ORIGIN_ICMP6:
            return unreach_reason(6, icmp_type, code)
    return None


def _open(family: int, sockaddr: tuple[str, int]) -> socket.socket:
    fam = socket.AF_INET if family == 4 else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if family == 4:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    else:
        s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    s.setblocking(False)
    s.connect(sockaddr)
    return s


class _Probe:
    __slots__ = ("attempt", "deadline", "idx", "sock")

    def __init__(self, sock: socket.socket, idx: int, attempt: int) -> None:
        self.sock, self.idx, self.attempt, self.deadline = sock, idx, attempt, 0.0


def run_unprivileged(
    scanner: UdpScanner, retries: int, bucket: TokenBucket, cancel: threading.Event
) -> None:
    """Probe every index of the scanner's walk (then the rate-limited hosts' silent ports once
    a second, hilos.udp.drain); answers go to its state, as from the receiver."""
    probe_round(scanner, scanner.walk(), 0, retries, bucket, cancel, loss=scanner.loss_retries)

    def send_round(indices: list[int], attempt: int) -> None:
        probe_round(scanner, indices, attempt, 0, bucket, cancel, every=False)

    if not cancel.is_set():
        drain_rate_limited(scanner, send_round, cancel)
    if not cancel.is_set():
        scanner.state.give_up(scanner.walk())


def probe_round(
    scanner: UdpScanner,
    indices: Iterable[int],
    first: int,
    retries: int,
    bucket: TokenBucket,
    cancel: threading.Event,
    every: bool = True,
    loss: int = 0,
) -> None:
    """Attempts `first` .. `first + retries` to each of `indices`, `WINDOW` sockets at a time;
    what stays silent is left for the caller to give up. As on the raw path, a retry to a port
    without a payload of its own on a host that answered sends every protocol's payload (on
    a lossy path each is one more chance at its ICMP error), unless `every` is False (the
    drain's rounds: one datagram per port, not to spend a rate-limited host's tokens twice).
    On a lossy path, up to `loss` retries, as many as the loss seen asks (state.loss_tries)."""
    st, tg = scanner.state, scanner.targets
    walk = iter(indices)
    poller = select.poll()
    live: dict[int, _Probe] = {}

    def send(p: _Probe) -> None:
        h, pi = divmod(p.idx, st.np)
        port = st.ports[pi]
        kinds: tuple[str, ...] = (kind_for(port, p.attempt),)
        if every and p.attempt and port not in PORT_KINDS and st.answered[h]:
            kinds = ROTATION[1:]
        bucket.take(len(kinds))
        st.mark_sent(p.idx)
        p.deadline = time.monotonic() + st.wait
        for kind in kinds:
            # An error here is one queued from an earlier datagram: read on POLLERR.
            with contextlib.suppress(OSError):
                p.sock.send(build_payload(kind, tg.value(h, port)))

    def close(fd: int) -> None:
        poller.unregister(fd)
        live.pop(fd).sock.close()

    exhausted = False
    while not cancel.is_set():
        while not exhausted and len(live) < WINDOW:
            idx = next(walk, None)
            if idx is None:
                exhausted = True
                break
            if st.is_final(idx):
                continue
            h = idx // st.np
            p = _Probe(_open(tg.families[h], (tg.names[h], st.ports[idx % st.np])), idx, first)
            live[p.sock.fileno()] = p
            poller.register(p.sock.fileno(), select.POLLIN | select.POLLERR)
            send(p)
        if exhausted and not live:
            break
        for fd, ev in poller.poll(5):
            p2 = live.get(fd)
            if p2 is not None:
                _event(st, tg, p2, ev)
                if st.is_final(p2.idx):
                    close(fd)
        now = time.monotonic()
        for fd in [fd for fd, p3 in live.items() if p3.deadline <= now]:
            p4 = live[fd]
            if p4.attempt < first + max(retries, min(loss, st.loss_tries() - 1)):
                p4.attempt += 1
                send(p4)
            else:
                close(fd)
    for fd in list(live):
        close(fd)


def _event(st: UdpState, tg: UdpTargets, p: _Probe, ev: int) -> None:
    """What arrived on a probe's socket: an ICMP error on its queue, or a reply."""
    h, pi = divmod(p.idx, st.np)
    port = st.ports[pi]
    data: bytes | None = None
    if not ev & select.POLLERR:
        try:
            data = p.sock.recv(4096)
        except OSError:
            data = None
    if data is None:
        reason = read_error(p.sock)
        if reason is not None:
            code = REASON_CODE.get(reason, REASON_CODE["unreach"])
            st.answer(h, pi, code, None, attempt=p.attempt)
        return
    kinds = PORT_KINDS.get(port)
    if kinds is None or any(id_matches(k, tg.value(h, port), data) for k in kinds):
        st.answer(h, pi, OPEN, data, attempt=p.attempt)
