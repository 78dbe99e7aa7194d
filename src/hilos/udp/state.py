"""What the UDP scan knows: one "final" bit per probe, the answers, and the results built from them.

open           a UDP datagram from the port                  reason udp-response
closed         ICMP port unreachable (ICMPv6 1/4)            reason port-unreach
filtered       any other ICMP/ICMPv6 destination unreachable host-unreach, admin-prohibited, ...
open|filtered  nothing after every retry                     reason no-response
"""

from __future__ import annotations

import math
import queue
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

from hilos.probes.udp_payloads import PORT_KINDS
from hilos.results import PortResult, ScanHostResult, host_from_ports
from hilos.udp.targets import UdpTargets
from hilos.wire.rtt import RttEstimator

__all__ = ["Namer", "UdpState"]

# namer(port, reply payload) -> PortResult fields (service, product, version, banner) or {}.
Namer = Callable[[int, bytes], Mapping[str, str | None]]

NO_RESPONSE, OPEN = 0, 1
_REASONS = (
    "port-unreach",
    "net-unreach",
    "host-unreach",
    "proto-unreach",
    "net-prohibited",
    "host-prohibited",
    "admin-prohibited",
    "no-route",
    "beyond-scope",
    "unreach",
)
REASON_CODE: dict[str, int] = {r: i for i, r in enumerate(_REASONS, start=2)}
CLOSED = REASON_CODE["port-unreach"]
CODES: dict[int, tuple[str, str]] = {
    NO_RESPONSE: ("open|filtered", "no-response"),
    OPEN: ("open", "udp-response"),
}
CODES.update(
    {i: ("closed" if r == "port-unreach" else "filtered", r) for r, i in REASON_CODE.items()}
)
# ICMP errors about the host, not the port (admin-prohibited may be one port's firewall rule).
HOST_LEVEL = frozenset(
    REASON_CODE[r]
    for r in ("net-unreach", "host-unreach", "net-prohibited", "host-prohibited", "no-route")
)
_TICK_SHIFT = 20  # send times in ~1.05 ms ticks, 16 bits: RTTs up to ~34 s (the rest: early)
REPLY_KEEP = 1024  # bytes of an open port's reply kept for naming it


class UdpState:
    """The scan's progress, shared by the receiver thread, the sender and `results()`."""

    def __init__(
        self,
        targets: UdpTargets,
        ports: Sequence[int],
        timeout: float | None,
        namer: Namer | None = None,
    ) -> None:
        self.targets = targets
        self.ports = tuple(ports)
        self.np = len(self.ports)
        self.port_index = [-1] * 65536
        for i, p in enumerate(self.ports):
            self.port_index[p] = i
        total = len(targets) * self.np
        self.total = total
        self.final = bytearray((total + 7) // 8 or 1)
        self.ticks = array("H", bytes(2 * max(1, total)))
        self.codes: dict[int, int] = {}
        self.replies: dict[int, bytes] = {}
        self.host_unreach: dict[int, int] = {}  # host -> a host-level unreachable code
        self.answered = bytearray(len(targets))  # host h answered something
        self.closed = [0] * len(targets)  # port unreachables per host
        self.done = [0] * len(targets)
        self.expected: list[int] | None = None
        self.goal = total
        self.rtt: dict[int, float] = {}
        self.peak_ms = 0.0  # the longest round trip seen (a queue on the path, once)
        self.min_ms = float("inf")  # the shortest: the path itself, without any queue
        self.est = RttEstimator(initial=1.0, minimum=0.02, maximum=3.0, fixed=timeout, margin=0.01)
        # Round trips of answers to small passes (the retries): the path without the queue a
        # big first pass builds on it (a slow router, a shaper); what a last pass will see.
        self.small_pass = False  # the sender says whether the pass in flight is small
        self.small = RttEstimator(initial=1.0, minimum=0.02, maximum=3.0, margin=0.01)
        self.small_peak_ms = 0.0
        # The pass in flight (the sender's); of the answered probes, how many needed more than
        # their first try (one datagram each: the path's loss), and all (loss_tries).
        self.attempt = 0
        self.late = [0, 0]
        self.lock = threading.Lock()
        self.completed: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.reported = bytearray(len(targets))
        self.namer = namer
        #: with a checkpoint, the answers of hosts reported, until it finds them written
        self.archive: dict[int, tuple[dict[int, int], dict[int, bytes]]] | None = None
        self._plain: dict[tuple[int, int, Callable[[int], str | None]], PortResult] = {}
        self.final_count = 0
        # Answers that show a probe was lost when resent: ICMP errors, replies to a port's own
        # payload (a reply to another payload of the rotation shows the payload, not loss).
        self.loss_signs = 0
        self._rotating = bytes(p not in PORT_KINDS for p in self.ports)
        self.hosts_done = 0
        self.sent = 0

    @property
    def wait(self) -> float:
        """How long to wait for answers after a pass: the estimator's timeout, and at least 1.5x
        the longest round trip seen (which the smoothed estimate forgets); at most 3 s. Once
        small passes were answered, from their round trips only: the last pass is small too,
        and a queue the first pass built (its samples) is gone by then."""
        if self.est.fixed is not None:
            return self.est.timeout
        if self.small.measured:
            return max(self.small.timeout, min(3.0, 1.5 * self.small_peak_ms / 1000.0))
        return max(self.est.timeout, min(3.0, 1.5 * self.peak_ms / 1000.0))

    @property
    def resend_after(self) -> float:
        """How long to wait before resending to the silent: the timeout, but at most 1.25x the
        shortest round trip + 5 ms (samples are the kernel's arrival times, and the sender also
        waits until the receiver has handled everything that arrived, its idle time); an
        answer later than this costs one resend, never a state (the last pass waits `wait`)."""
        if self.est.fixed is not None or self.min_ms == float("inf"):
            return self.est.timeout
        return min(self.est.timeout, max(0.005, 1.25 * self.min_ms / 1000.0 + 0.005))

    def loss_tries(self, aim: float = 0.01) -> int:
        """Tries the loss seen so far asks for (tries_for, over every probe): a first try, one
        datagram, fails as often as the answered probes needed more than theirs; and one more,
        since a port of the rotation gets an empty datagram first, which no service answers."""
        late, answered = self.late
        return tries_for(self.goal, late / answered, aim) + 1 if answered else 1

    def silent_on_answering_hosts(self, walk: Iterable[int]) -> bool:
        """Whether every index of `walk` still silent is on a host that answered something."""
        answered, final, np_ = self.answered, self.final, self.np
        return all(answered[i // np_] for i in walk if not final[i >> 3] >> (i & 7) & 1)

    def set_expected(self, expected: list[int]) -> None:
        self.expected = expected
        self.goal = sum(expected)
        for h, n in enumerate(expected):
            if n == 0:
                self.reported[h] = 1  # nothing of this host in this shard: never reported

    def add_sent(self, n: int) -> None:
        with self.lock:
            self.sent += n

    def mark_sent(self, idx: int) -> None:
        self.ticks[idx] = (time.monotonic_ns() >> _TICK_SHIFT) & 0xFFFF

    def answer(
        self,
        h: int,
        pi: int,
        code: int,
        payload: bytes | None,
        at: int | None = None,
        attempt: int | None = None,
    ) -> None:
        """Runs in the receiver thread for each validated reply or ICMP error; `at`: when it
        arrived (time.monotonic_ns(), the kernel's timestamp; None: now); `attempt`: the try
        it answers (None: the pass in flight)."""
        idx = h * self.np + pi
        byte, bit = idx >> 3, 1 << (idx & 7)
        now = ((time.monotonic_ns() if at is None else at) >> _TICK_SHIFT) & 0xFFFF
        ticks = (now - self.ticks[idx]) & 0xFFFF
        # "Before the send": the kernel's clock against ours, or an answer to the same probe's
        # earlier payload (sent again since); 0, not a 68 s round trip.
        rtt_ms = (0 if ticks & 0x8000 else ticks) * ((1 << _TICK_SHIFT) / 1e6)
        with self.lock:
            if self.final[byte] & bit:
                return  # a duplicate, or an answer after the probe was given up
            self.final[byte] |= bit
            self.codes[idx] = code
            if code != OPEN or not self._rotating[pi]:
                self.loss_signs += 1
            self.answered[h] = 1
            self.late[0] += (self.attempt if attempt is None else attempt) > 0
            self.late[1] += 1
            if code == CLOSED:
                self.closed[h] += 1
            if code in HOST_LEVEL:
                self.host_unreach[h] = code
            if payload is not None:
                self.replies[idx] = payload[:REPLY_KEEP]
            self.est.sample(rtt_ms / 1000.0)
            if rtt_ms > self.peak_ms:
                self.peak_ms = rtt_ms
            if self.small_pass:
                self.small.sample(rtt_ms / 1000.0)
                self.small_peak_ms = max(self.small_peak_ms, rtt_ms)
            if rtt_ms < self.min_ms:
                self.min_ms = rtt_ms
            old = self.rtt.get(h)
            if old is None or rtt_ms < old:
                self.rtt[h] = rtt_ms
            self._count_final(h)

    def _count_final(self, h: int) -> None:
        self.final_count += 1
        self.done[h] += 1
        expected = self.np if self.expected is None else self.expected[h]
        if self.done[h] == expected:
            self.hosts_done += 1
            self.completed.put(h)

    def is_final(self, idx: int) -> bool:
        return bool(self.final[idx >> 3] >> (idx & 7) & 1)

    def give_up(self, indices: Iterable[int]) -> None:
        """These probes got nothing after the last retry: open|filtered, unless a router said
        their host is unreachable (a host-level ICMP error for another of its ports: routers
        rate-limit those, net.ipv4.route.error_cost, so one stands for the host)."""
        final, np_, unreach = self.final, self.np, self.host_unreach
        with self.lock:
            for idx in indices:
                byte, bit = idx >> 3, 1 << (idx & 7)
                if not final[byte] & bit:
                    final[byte] |= bit
                    h = idx // np_
                    if h in unreach:
                        self.codes[idx] = unreach[h]
                    self._count_final(h)

    # ---------------------------------------------------------------- results

    def _port(self, idx: int, pi: int, code: int, names: Callable[[int], str | None]) -> PortResult:
        data = self.replies.pop(idx, None)
        if data is None:
            # Nothing learned from the port (closed, filtered, silent): the same frozen result
            # for every host, built once (a /24 x 100 ports is 6,000 alike, mostly closed).
            key = (pi, code, names)
            cached = self._plain.get(key)
            if cached is None:
                cached = self._plain[key] = self._new_port(pi, code, names)
            return cached
        result = self._new_port(pi, code, names)
        if self.namer is not None:
            fields = dict(self.namer(self.ports[pi], data))
            if fields:
                result = replace(result, **fields)  # type: ignore[arg-type]
        return result

    def _new_port(self, pi: int, code: int, names: Callable[[int], str | None]) -> PortResult:
        state, reason = CODES[code]
        port = self.ports[pi]
        return PortResult(port, state, reason, proto="udp", service=names(port))  # type: ignore[arg-type]

    def build(
        self, h: int, names: Callable[[int], str | None], partial: bool = False
    ) -> ScanHostResult:
        """Host h's result (all its probes final; with `partial`, only those answered)."""
        self.reported[h] = 1
        base = h * self.np
        sharded = self.expected is not None
        with self.lock:
            codes = {i: self.codes.pop(base + i) for i in range(self.np) if base + i in self.codes}
            if self.archive is not None and not partial:  # until the outputs have it
                replies = {
                    base + i: self.replies[base + i] for i in codes if base + i in self.replies
                }
                self.archive[h] = ({base + i: c for i, c in codes.items()}, replies)
        ports = []
        for i in range(self.np):
            if i in codes:
                ports.append(self._port(base + i, i, codes[i], names))
            elif not partial and (not sharded or self.is_final(base + i)):
                ports.append(self._port(base + i, i, NO_RESPONSE, names))
        return self._host(h, tuple(ports))

    def _host(self, h: int, ports: tuple[PortResult, ...]) -> ScanHostResult:
        return host_from_ports(self.targets.names[h], ports, self.rtt.get(h))

    def partial(self, names: Callable[[int], str | None]) -> list[ScanHostResult]:
        with self.lock:
            hosts = sorted({idx // self.np for idx in self.codes})
        return [self.build(h, names, partial=True) for h in hosts if not self.reported[h]]


LOSS_RETRIES = 9  # retries on a lossy path when the user set none (nmap: --max-retries 10)


def tries_for(probes: int, fail: float, aim: float = 0.01) -> int:
    """Enough tries that no probe of `probes` stays silent by bad luck, when a try fails with
    chance `fail`, with a chance over `aim`: probes x fail**tries <= aim (19% of tries lost,
    10% each way, x 6,000 probes: 9 tries)."""
    if probes <= 0 or fail <= 0:
        return 1
    f = min(fail, 0.95)
    return max(1, math.ceil(math.log(aim / probes) / math.log(f)))
