"""The SYN scan's sender: the per-probe hot loop and the schedule of passes, resends and give-ups.

Retries resend only indices still without an answer, pipelined: the retry pass follows the walk
`timeout` seconds behind the first pass, so a scan costs (probes sent) / rate + about two
timeouts. A probe is given up only once the receiver has drained everything that arrived before
its deadline (`idle_at`), so a busy receiver never turns a late answer into "filtered".
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from itertools import islice
from typing import TYPE_CHECKING

from hilos.errors import NetworkError
from hilos.probes.base import SPORT_BASE, SPORT_MASK, TICK_SHIFT
from hilos.probes.tcp_transport import TcpTransport
from hilos.syn.coord import Coordination
from hilos.syn.hosts import HostTable
from hilos.syn.plan import Plan
from hilos.syn.resume import Cursors, walked
from hilos.syn.state import ScanState
from hilos.wire.cookie import M1, M3, MASK64
from hilos.wire.frames import MSS, PACK4, PACK_FRAME, SEG6, SUFFIX, SYN_WORD, WIN_FLAGS_SYN, WINDOW
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import send_failed

if TYPE_CHECKING:
    from hilos.syn.vsend import VectorSend

__all__ = ["BATCH", "CHUNK", "Sender"]

CHUNK = 1024  # indices per scheduling step; a retry pass follows the first pass chunk by chunk
CHUNK_SECONDS = 0.02  # at a --rate, chunks of this long (32 at least): a resume goes by chunks
BATCH = 32  # packets per token-bucket take and per source-port (send time) tick update
EXTRA_ROUNDS = 3  # late tries for unanswered probes once losses are seen (at least retries)
FEW_SILENT = 4096  # silent hosts' probes resent even without evidence of loss (cheap)

# One chunk's record: (time sent, indices consumed, the indices sent when it is the last pass).
Chunk = tuple[float, int, list[int] | None]
# One late round's record: (time sent, indices, tries left after this one).
Late = tuple[float, list[int], int]


class Sender:
    """Sends the SYN probes of one part of the walk (`run`), through `engine`'s raw sockets or,
    for the hosts a LinkTx covers, as Ethernet frames. One Sender per process; sender threads
    share it (and its pace)."""

    def __init__(
        self,
        engine: TcpTransport,
        hosts: HostTable,
        state: ScanState,
        plan: Plan,
        bucket: TokenBucket,
        coord: Coordination,
        cancel: threading.Event,
        retries: int,
    ) -> None:
        self.engine = engine
        self.hosts = hosts
        self.state = state
        self.plan = plan
        self.bucket = bucket
        self.coord = coord
        self.cancel = cancel
        self.retries = retries
        self.link: LinkTx | None = None
        self.vector: VectorSend | None = None  # batched frames, when the link covers all hosts
        self.recovered = 0  # probes answered only after a resend
        self._deferred: bytearray | None = None  # probes for the late rounds (see `run`)
        self._held: bytearray | None = None  # live hosts' probes unanswered after every pass
        self.cursors: Cursors | None = None  # how far each part's first pass is settled
        self._slot = -1
        rate = bucket.rate  # at a --rate, a chunk takes CHUNK_SECONDS of this sender's
        self._chunk = CHUNK if rate is None else min(CHUNK, max(32, int(rate * CHUNK_SECONDS)))
        self._pace_next = 0.0

    # ---------------------------------------------------------------- the hot loop

    def send_chunk(
        self,
        walk: Iterator[int],
        count: int,
        skip_final: bool,
        collect: list[int] | None,
        defer: bytearray | None = None,
    ) -> int:
        """Consume `count` indices of `walk`, sending a SYN for each not yet final; return how
        many indices were consumed (fewer than `count` when the walk ends). The hot loop.
        With `defer` (a bitmap like the final bits), probes of hosts that have not answered
        anything yet are marked there instead of being sent (see `run`)."""
        if self.vector is not None:
            return self.vector.send_chunk(walk, count, skip_final, collect, defer)
        engine = self.engine
        tx4, tx6 = engine.tx4, engine.tx6
        send4 = tx4.sendto if tx4 is not None else _no_socket
        send6 = tx6.sendto if tx6 is not None else _no_socket
        table = self.hosts.entries
        ports = self.state.ports
        np_ = self.state.np
        final = self.state.final
        has = self.state.has_code
        take = self.bucket.take
        mono_ns = time.monotonic_ns
        pack4 = PACK4.pack
        seg6 = SEG6.pack
        wf, suffix = WIN_FLAGS_SYN, SUFFIX
        link_send = self.link.sock.send if self.link is not None else _no_link
        pack_frame = PACK_FRAME.pack
        m1, m3, mask = M1, M3, MASK64
        consumed = sent = budget = sport = 0
        for idx in islice(walk, count):
            consumed += 1
            if skip_final and final[idx >> 3] >> (idx & 7) & 1:
                continue
            if defer is not None and not has[idx // np_]:
                defer[idx >> 3] |= 1 << (idx & 7)
                continue
            if budget == 0:
                take(BATCH)
                self.pace_wait()
                budget = BATCH
                sport = SPORT_BASE + ((mono_ns() >> TICK_SHIFT) & SPORT_MASK)
            budget -= 1
            h, pi = divmod(idx, np_)
            addr, seed, d4, base, prefix, frame = table[h]
            port = ports[pi]
            # Cookie.value, inlined (hilos.wire.cookie).
            x = (seed ^ (port << 16) ^ sport) * m3 & mask
            x ^= x >> 32
            seq = (x * m1 & mask) >> 32
            if d4 is not None:
                c = base + port + sport + (seq >> 16) + (seq & 0xFFFF)
                c = (c & 0xFFFF) + (c >> 16)
                c = ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF
                if frame is not None:
                    pkt = pack_frame(frame, sport, port, seq, 0, wf, c, suffix)
                    try:
                        link_send(pkt)
                    except OSError as exc:
                        _send_error(exc, link_send, pkt, None)
                else:
                    pkt = pack4(prefix, d4, sport, port, seq, 0, wf, c, suffix)
                    try:
                        send4(pkt, addr)
                    except OSError as exc:
                        _send_error(exc, send4, pkt, addr)
            else:
                pkt = seg6(sport, port, seq, 0, SYN_WORD, WINDOW, 0, 0, 2, 4, MSS)
                try:
                    send6(pkt, addr)
                except OSError as exc:
                    _send_error(exc, send6, pkt, addr)
            sent += 1
            if collect is not None:
                collect.append(idx)
        self.coord.sent(sent)
        return consumed

    def pace_wait(self) -> None:
        """Hold this sender to its share of the congestion pace (if one is set)."""
        pace = self.coord.pace()
        if pace <= 0:
            return
        now = time.monotonic()
        nxt = max(self._pace_next, now - 0.005)  # after a pause, no catch-up burst
        nxt += BATCH / pace
        self._pace_next = nxt
        if nxt > now:
            time.sleep(nxt - now)

    # ---------------------------------------------------------------- the schedule

    def run(self, part: tuple[int, int]) -> None:
        """Send every probe of `part`: the first pass chunk by chunk, each resend pass one chunk
        behind the previous one, and give up on probes whose last deadline has passed.

        Resend passes skip hosts that have answered nothing yet (with -Pn, most of a big
        space: resending all their probes would double the scan). After the passes, the
        deferred probes of hosts that answered since get their resends, and those of hosts
        still silent get them only when the scan has seen loss (an answer to a resend) or when
        they are few: without loss, a live host that lost every probe is all but impossible.
        Once loss is seen, the unanswered probes of hosts that answered elsewhere are kept for
        the late rounds too (EXTRA_ROUNDS tries): resent in the middle of the first pass's
        flood, they were dropped again where the first try was (a full router queue).
        """
        passes = self.retries + 1
        # A pass's walk is made only when it first has something to resend.
        walks: list[Iterator[int] | None] = [None] * passes
        walks[0] = first_walk = self.plan.walk(part)
        pending: list[deque[Chunk]] = [deque() for _ in range(passes)]
        pending[0].extend(self._walked_before(part, first_walk, passes == 1))
        late: deque[Late] = deque()
        deferred = self._deferred = bytearray(len(self.state.final)) if passes > 1 else None
        self._held = bytearray(len(self.state.final)) if passes > 1 else None
        late_started = deferred is None
        first_done = False
        coord = self.coord
        while not self.cancel.is_set():
            status = coord.status()
            if status is None:
                break
            idle, timeout = status
            worked = self._settle_due(pending[-1], idle, timeout)
            worked = self._late_due(late, idle, timeout) or worked
            worked = self._resend_due(part, walks, pending, idle, timeout, deferred) or worked
            if not first_done:
                first = walks[0]
                assert first is not None
                first_done = self._first_chunk(first, pending, passes == 1)
                worked = True
            now = time.monotonic()
            coord.tick(now)
            # Done when nothing is outstanding, or when every probe is answered (a scan of open
            # ports ends at once, not after (retries+1) x timeout).
            if first_done and not any(pending) and not late_started:
                assert deferred is not None
                self._start_late(deferred, late)
                late_started = worked = True
            if first_done and ((late_started and not late) or coord.all_final()):
                break
            if not worked:
                _nap(pending, late, timeout, now)
        coord.finish()

    def _first_chunk(self, first: Iterator[int], pending: list[deque[Chunk]], last: bool) -> bool:
        """Send the first pass's next chunk; True once its walk is done. (A resumed scan's
        first pass skips what is final: hosts written before.)"""
        collect: list[int] | None = [] if last else None
        resumed = self.cursors is not None and self.cursors.resumed
        count = self.send_chunk(first, self._chunk, resumed, collect)
        if count:
            pending[0].append((time.monotonic(), count, collect))
        return count < self._chunk

    def _settle_due(self, last: deque[Chunk], idle: float, timeout: float) -> bool:
        """Settle last-pass probes whose deadline the receiver has fully caught up with."""
        worked = False
        while last and last[0][0] + timeout <= idle:
            t, count, sent_last = last.popleft()
            assert sent_last is not None
            self._settle(sent_last)
            self._walked(count, first=self.retries == 0 and t > 0)
            worked = True
        return worked

    def _walked_before(self, part: tuple[int, int], walk: Iterator[int], last: bool) -> list[Chunk]:
        """A resumed scan's first chunks of `part`, walked before it stopped (syn.resume)."""
        cursors = self.cursors
        self._slot = slot = cursors.slot(part) if cursors is not None else -1
        if cursors is None or not cursors.start[slot]:
            return []
        return walked(walk, cursors.start[slot], self._chunk, last)

    def _walked(self, count: int, first: bool) -> None:
        """A first-pass chunk's deadline passed: its answers are in (syn.resume.Cursors; a
        resumed scan's chunks walked before, sent at time 0, are counted there already)."""
        if first and self.cursors is not None:
            self.cursors.add(self._slot, count)

    def _resend_due(
        self,
        part: tuple[int, int],
        walks: list[Iterator[int] | None],
        pending: list[deque[Chunk]],
        idle: float,
        timeout: float,
        deferred: bytearray | None,
    ) -> bool:
        """Resend what is still unanswered, each pass one chunk behind the previous one."""
        worked = False
        last = len(pending) - 1
        for k in range(last, 0, -1):
            prev = pending[k - 1]
            while prev and prev[0][0] + timeout <= idle and not self.cancel.is_set():
                t, count, _ = prev.popleft()
                self._walked(count, first=k == 1 and t > 0)
                collect: list[int] | None = [] if k == last else None
                walk = walks[k]
                if walk is None:
                    walk = walks[k] = self.plan.walk(part)
                self.send_chunk(walk, count, True, collect, deferred)
                pending[k].append((time.monotonic(), count, collect))
                worked = True
        return worked

    def _start_late(self, deferred: bytearray, late: deque[Late]) -> None:
        """The passes are over: resend the deferred probes that are due a resend (see `run`),
        give up on the rest."""
        import numpy as np  # a million deferred probes in a /16 -Pn: bits, not lists

        state = self.state
        final = np.frombuffer(state.final, np.uint8)
        has = np.frombuffer(state.has_code, np.uint8)
        todo = np.flatnonzero(
            np.unpackbits(np.frombuffer(deferred, np.uint8) & ~final, bitorder="little")
        )
        live = has[todo // state.np] != 0
        silent = todo[~live]
        if len(silent) and (self.recovered or len(silent) <= FEW_SILENT):
            self._late_round(silent.tolist(), self.retries, late)
        elif len(silent):
            self.coord.give_up(silent.tolist())
        # Hosts that answered elsewhere are up: their probes skipped by a resend pass get the
        # resends they missed, and once loss is seen EXTRA_ROUNDS tries, as do their probes
        # unanswered after every pass (`_held`; given up at once without loss): a lost
        # answer would misreport an open port as filtered.
        extra = EXTRA_ROUNDS if self.recovered else 0
        self._late_round(todo[live].tolist(), max(self.retries, extra), late)
        if self._held is not None:
            held = np.frombuffer(self._held, np.uint8) & ~final
            self._late_round(
                np.flatnonzero(np.unpackbits(held, bitorder="little")).tolist(), extra, late
            )

    def _late_round(self, todo: list[int], tries: int, late: deque[Late]) -> None:
        if not todo:
            return
        if tries <= 0:
            self.coord.give_up(todo)
            return
        self.send_chunk(iter(todo), len(todo), True, None)
        late.append((time.monotonic(), todo, tries - 1))

    def _late_due(self, late: deque[Late], idle: float, timeout: float) -> bool:
        worked = False
        while late and late[0][0] + timeout <= idle:
            _t, sent, tries = late.popleft()
            final = self.state.final
            unanswered = [i for i in sent if not final[i >> 3] >> (i & 7) & 1]
            self.recovered += len(sent) - len(unanswered)
            self._late_round(unanswered, tries, late)
            worked = True
        return worked

    def _settle(self, sent: list[int]) -> None:
        """The deadline of probes sent by the last pass has passed.

        Any of them answered now was lost or late before: evidence of loss. The still
        unanswered probes of hosts that did answer elsewhere (so they are up) wait for the
        late rounds, which resend them if loss is seen by then; the others count as filtered.
        """
        final, has = self.state.final, self.state.has_code
        unanswered = [i for i in sent if not final[i >> 3] >> (i & 7) & 1]
        self.recovered += len(sent) - len(unanswered)
        held = self._held
        if unanswered and held is not None:
            np_ = self.state.np
            for i in unanswered:
                if has[i // np_]:
                    held[i >> 3] |= 1 << (i & 7)
            unanswered = [i for i in unanswered if not has[i // np_]]
        self.coord.give_up(unanswered)


def _nap(pending: list[deque[Chunk]], late: deque[Late], timeout: float, now: float) -> None:
    """Nothing due yet: sleep until the oldest deadline (or a short while when the receiver
    has not caught up yet)."""
    heads = [q[0][0] for q in pending if q] + ([late[0][0]] if late else [])
    wait = min(heads) + timeout - now if heads else 0.005
    time.sleep(min(0.01, max(0.0005, wait)))


def _send_error(
    exc: OSError, send: Callable[..., int], pkt: bytes, addr: tuple[str, int] | None
) -> None:
    """A send failed: hilos.wire.senders' policy (a full queue waits and resends; no route or
    a local firewall leaves the probe unanswered, i.e. filtered; anything else raises)."""
    if addr is None:
        send_failed(exc, lambda: send(pkt), "sending SYN probes")
    else:
        send_failed(exc, lambda: send(pkt, addr), "sending SYN probes")


def _no_socket(pkt: bytes, addr: tuple[str, int]) -> int:
    raise NetworkError(f"no raw socket for the address family of {addr[0]}")


def _no_link(pkt: bytes) -> int:
    raise NetworkError("no link-layer socket")
