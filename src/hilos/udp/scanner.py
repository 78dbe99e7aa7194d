"""The UDP scan (nmap -sU): stateless probes over raw sockets, walking hosts x ports in keyed order.

One sender thread walks the (host x port) indices in the order of a keyed `Permutation`
(reproducible with `seed`; ``shard=(i, n)`` takes every n-th step), so consecutive probes go to
different hosts and each host sees few per second: Linux's per-destination ICMP rate limit then
costs little. Each pass sends only what is still unanswered (retries of the unanswered), with
the next payload of the port's rotation (hilos.probes.udp_payloads); after the last pass's
timeout the rest is open|filtered. Without raw sockets (no CAP_NET_RAW) the same walk runs over
connected UDP sockets that read ICMP errors from their error queue (hilos.udp.unpriv): slower,
the same states.
"""

from __future__ import annotations

import functools
import itertools
import queue
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from hilos.errors import UsageError
from hilos.probes.udp_payloads import PORT_KINDS, ROTATION, build_payload, kind_for
from hilos.probes.udp_reply import build_udp
from hilos.results import ScanHostResult, ScanStats, Written, nothing_written
from hilos.targets import Permutation
from hilos.targets.udp_ports import udp_service_name
from hilos.udp.drain import drain_rate_limited
from hilos.udp.receiver import UdpReceiver
from hilos.udp.resume import Marks
from hilos.udp.state import Namer, UdpState
from hilos.udp.targets import Address, UdpTargets
from hilos.validate import MAX_RETRIES
from hilos.wire.cookie import Cookie
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import send_failed
from hilos.wire.sockets import can_raw

if TYPE_CHECKING:
    from hilos.udp.vsend import VectorSend

__all__ = ["DEFAULT_RETRIES", "UdpScanner"]

DEFAULT_RETRIES = 5  # six attempts: every payload of the rotation once (ports without their own)
_SMALL_PASS = 256  # probes still unanswered at most for a pass to time the unqueued path
_BATCH = 32


class UdpScanner:
    """A running UDP scan; `results()` yields one ScanHostResult per host once it is final.

    Ports are named from the UDP port table; an open port's reply is described by `namer`
    (hilos.services.udp.describe in the pipeline). `privileged=None` uses raw sockets when this
    process may open them, else the unprivileged path (`unprivileged` then says so). Other
    arguments as for the SYN scan: `rate` (probes/s), `timeout` (fixed per-probe wait; None:
    adaptive), `retries`, `seed`, `shard`, `only` (probe only these of the hosts walked).
    """

    def __init__(
        self,
        hosts: Iterable[Address],
        ports: Sequence[int],
        *,
        rate: float | None = None,
        timeout: float | None = None,
        retries: int = DEFAULT_RETRIES,
        loss_retries: int | None = None,
        seed: int | None = None,
        shard: tuple[int, int] | None = None,
        only: Container[str] | None = None,
        namer: Namer | None = None,
        privileged: bool | None = None,
        names: Callable[[int], str | None] | None = None,
        batched: bool = True,
        resume: dict[str, Any] | None = None,
        written: Written | None = None,
        archive: bool = False,
    ) -> None:
        if not 0 <= max(retries, loss_retries or 0) <= MAX_RETRIES:
            raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries}")
        if timeout is not None and not timeout > 0:
            raise UsageError(f"timeout must be positive: {timeout}")
        if any(not 0 < p < 65536 for p in ports):
            raise UsageError("port out of range")
        self.targets = UdpTargets(hosts, Cookie())
        self.state = UdpState(self.targets, ports, timeout, namer)
        self.retries = retries
        # On a lossy path, up to this many (state.loss_tries); a --retries given is the cap.
        self.loss_retries = max(retries, loss_retries or 0)
        self._bucket = TokenBucket(rate, burst=_BATCH * 2)
        self.seed = 0 if seed is None else seed
        self.shard = shard or (1, 1)
        self.skip = None if only is None else bytearray(n not in only for n in self.targets.names)
        if only is not None or shard is not None:
            self.state.set_expected(self._expected())
        self._names = names or udp_service_name
        self.unprivileged = not can_raw() if privileged is None else not privileged
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._rx: UdpReceiver | None = None
        self._batched = batched
        # A checkpoint's state to go on from (udp.resume); how far the passes got, and when.
        self._resume, self._written = resume, written
        self.state.archive = {} if archive or resume is not None else None  # for snapshot()
        self._marks = Marks(tuple(resume["at"]) if resume else (0, 0, 0))
        self._batches, self._lossy = 0, bool(resume and resume["lossy"])
        self._vector: VectorSend | None = None
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._last = retries  # the last pass: `retries`, or more once loss is measured

    # ---------------------------------------------------------------- the walk

    def walk(self) -> Iterator[int]:
        """This scan's indices (host * nports + port) in the keyed order, skipped hosts left out."""
        perm = Permutation(self.state.total, self.seed)
        skip, np_ = self.skip, self.state.np
        if skip is None:
            return perm.shard(*self.shard)
        return (i for i in perm.shard(*self.shard) if not skip[i // np_])

    def _expected(self) -> list[int]:
        counts = [0] * len(self.targets)
        np_ = self.state.np
        for idx in self.walk():
            counts[idx // np_] += 1
        return counts

    # ---------------------------------------------------------------- public

    def start(self) -> UdpScanner:
        if self._thread is not None:
            return self
        self._started = time.monotonic()
        if self._resume is not None:
            from hilos.udp.resume import restore

            restore(self.state, self._resume, self._written or nothing_written)
        if self.state.goal == 0:
            self._finish()
            return self
        if self.unprivileged:
            from hilos.udp.unpriv import run_unprivileged

            def target() -> None:
                run_unprivileged(self, self.retries, self._bucket, self._cancel)

        else:
            batched = self._batched and 4 in self.targets.family_set
            self._rx = UdpReceiver(self.state, self.targets.family_set, batched).start()
            if batched:
                # IPv4 probes by the batched engine (numpy frames, sendmmsg); IPv6 per probe.
                from hilos.udp.vsend import VectorSend

                self._vector = VectorSend(self)
            target = self._send_all
        self._thread = threading.Thread(target=self._main, args=(target,), daemon=True)
        self._thread.start()
        return self

    def results(self) -> Iterator[ScanHostResult]:
        """Yield each host's result once it is final; raises the sender's error, if any."""
        self.start()
        completed = self.state.completed
        try:
            while True:
                try:
                    h = completed.get(timeout=0.1)
                except queue.Empty:
                    if self._finished.is_set() and completed.empty():
                        break
                    continue
                if h < 0:
                    break  # the sender's end mark: every host was queued before it
                yield self.state.build(h, self._names)
            if self._error is not None:
                raise self._error
            if self._rx is not None:
                self._rx.check()
        finally:
            self.cancel()

    def cancel(self) -> None:
        self._cancel.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._rx is not None:
            self._rx.close()
        if self._vector is not None and not (self._thread and self._thread.is_alive()):
            self._vector.close()

    def partial(self) -> list[ScanHostResult]:
        return self.state.partial(self._names)

    @property
    def stats(self) -> ScanStats:
        st = self.state
        return ScanStats(
            done=st.final_count,
            total=st.goal,
            hosts_done=st.hosts_done,
            hosts_total=len(self.targets),
            elapsed=time.monotonic() - self._started if self._started else 0.0,
            window=max(0, st.sent - st.final_count),
            sent=st.sent,
        )

    # ---------------------------------------------------------------- sending

    def _main(self, target: Callable[[], None]) -> None:
        try:
            target()
        except BaseException as exc:  # handed to results(): a dead sender must not hang it
            self._error = exc
        finally:
            self._finish()

    def _finish(self) -> None:
        """The scan is over: results() stops at once, not at its next poll of `_finished`."""
        self._finished.set()
        self.state.completed.put(-1)

    def _send_all(self) -> None:
        """Every pass, then open|filtered for what is still silent.

        Fewer passes on a path that loses nothing (nmap stops one try past the last that
        needed a resend): when no retry pass so far brought a sign of loss (an ICMP error, or
        a reply to a port's own payload, for a resent probe; a reply to another payload of the
        rotation is the payload's doing, not loss), while every silent port's host answers (so
        the silence is the ports', and the rotation for a silent host is not cut short), one
        full wait, and if that brings no sign of loss either, the rest is open|filtered. Once
        a sign of loss was seen, every retry is made (a DNS server on port 5000 answers only
        one payload of the rotation), and more, up to `loss_retries`, as many as the loss seen
        asks (state.loss_tries): with 10% lost each way, 10 tries for a /24 x 100 ports."""
        rx = self._rx
        assert rx is not None
        st = self.state
        pending: list[int] | None = None
        first, skip_batches, skip = self._marks.start  # a resumed scan's pass goes on
        attempt, self._last = first, max(self.retries, min(first, self.loss_retries))
        while attempt <= self._last:
            signs, silent, self._batches = st.loss_signs, st.goal - st.final_count, skip_batches
            st.attempt = attempt
            # A small pass: its answers time the path without a queue (UdpState.wait), and
            # it goes over the few silent indices, not the whole walk (vectorised or not).
            st.small_pass = attempt > 0 and silent <= _SMALL_PASS
            if st.small_pass:
                final = st.final
                pending = [
                    i
                    for i in (self.walk() if pending is None else pending)
                    if not final[i >> 3] >> (i & 7) & 1
                ]
            elif self._vector is not None:
                mark = functools.partial(self._mark_batches, attempt)
                self._vector.send_pass(attempt, self._bucket, self._cancel, skip_batches, mark)
            last = self.send_pass(rx, attempt, pending, all_payloads=True, skip=skip)
            skip_batches = skip = 0
            # Between passes the estimator's timeout (a late answer costs one resend); the
            # last pass waits long enough for the longest round trip seen (a late answer
            # there would be a wrong state).
            self.wait_answers(rx, last, final=attempt == self._last)
            self._marks.mark((attempt + 1, 0, 0), -1.0)  # its answers are in: settled at once
            if self._passes_done(rx, attempt, last, signs):
                break
            if self._lossy:  # as many tries as the loss measured so far asks
                self._last = max(self._last, min(self.loss_retries, st.loss_tries() - 1))
            attempt += 1
        if not self._cancel.is_set():
            self._marks.mark((self._last + 1, 0, 0), -1.0)  # the passes are over
        self._drain_and_give_up(rx)

    def _passes_done(self, rx: UdpReceiver, attempt: int, last: float, signs: int) -> bool:
        """After a pass's wait: whether no pass is needed any more (see _send_all)."""
        st = self.state
        if self._cancel.is_set() or st.final_count >= st.goal:
            return True
        lossy = self._lossy = self._lossy or (attempt > 0 and st.loss_signs != signs)
        quiet = bool(attempt) and not lossy and attempt < self._last
        if quiet and st.silent_on_answering_hosts(self.walk()):
            self.wait_answers(rx, last, final=True)
            return st.loss_signs == signs
        return False

    def _mark_batches(self, attempt: int, batches: int) -> None:
        self._batches = batches
        self._marks.mark((attempt, batches, 0), time.monotonic())

    def _walk_from(self, attempt: int, skip: int) -> Iterator[int]:
        """The walk from position `skip` on (a resumed pass's), marking how far it got."""
        marks, mono = self._marks, time.monotonic
        for pos, idx in enumerate(itertools.islice(self.walk(), skip, None), start=skip):
            if not pos & 255:
                marks.mark((attempt, self._batches, pos), mono())  # the ones before are sent
            yield idx

    def snapshot(self, written: Written) -> dict[str, Any] | None:
        """Where the scan stands, for a checkpoint (udp.resume): the last mark whose answers
        the receiver has handled; None without raw sockets, or before the scan starts."""
        rx = self._rx
        if self.unprivileged or rx is None or self.state.archive is None:
            return None
        from hilos.udp.resume import snapshot

        at = self._marks.settled(rx.idle_at - self.state.wait)
        return {**snapshot(self.state, at, self._lossy, written), "sent": self.state.sent}

    def _drain_and_give_up(self, rx: UdpReceiver) -> None:
        """Slow rounds for hosts behind an ICMP rate limit, then open|filtered for the rest."""
        if not self._cancel.is_set() and self.state.final_count < self.state.goal:

            def send_round(indices: list[int], attempt: int) -> None:
                last = self.send_pass(rx, attempt, indices)
                self.wait_answers(rx, last, final=False)

            drain_rate_limited(self, send_round, self._cancel)
        if not self._cancel.is_set():
            self.state.give_up(self.walk())

    def send_pass(
        self,
        rx: UdpReceiver,
        attempt: int,
        indices: Iterable[int] | None = None,
        all_payloads: bool = False,
        skip: int = 0,
    ) -> float:
        """Send attempt `attempt` to every index not yet final; returns the last send time.

        A port without a payload of its own gets the empty datagram first; from the second
        attempt on, one payload of the rotation per attempt, or, once its host has answered
        anything (it is up, so the silence is the port's), every protocol's payload at each
        attempt: on a lossy path each then gets every retry, not one try. `indices`: only
        those, all here (not the batched engine); one payload each unless `all_payloads` (drain
        rounds: a second datagram to a port would spend a rate-limited host's next token)."""
        st, tg = self.state, self.targets
        ports, np_, final = st.ports, st.np, st.final
        families, sockaddrs = tg.families, tg.sockaddrs
        tx = {4: rx.tx4, 6: rx.tx6}
        take, budget, sent = self._bucket.take, 0, 0
        kinds = [(kind_for(p, attempt),) for p in ports]
        every = [
            ROTATION[1:] if attempt and p not in PORT_KINDS else kinds[i]
            for i, p in enumerate(ports)
        ]
        # A drain round (chosen indices, behind an ICMP rate limit): one payload per port, else
        # a second datagram to a port could spend the host's next token on a known answer.
        answered = st.answered if indices is None or all_payloads else bytearray(len(tg))
        vector = self._vector is not None
        if indices is not None:
            vector = False  # a few chosen probes: all of them here
        for idx in self._walk_from(attempt, skip) if indices is None else indices:
            if final[idx >> 3] >> (idx & 7) & 1:
                continue
            if vector and families[idx // np_] == 4:
                continue  # sent by the batched engine
            if self._cancel.is_set():
                break
            if budget == 0:
                take(_BATCH)
                budget = _BATCH
            budget -= 1
            h, pi = divmod(idx, np_)
            port = ports[pi]
            sport, value = tg.sport(h, port), tg.value(h, port)
            sock = tx[families[h]]
            assert sock is not None
            st.mark_sent(idx)
            for kind in every[pi] if answered[h] else kinds[pi]:
                pkt = build_udp(sport, port, build_payload(kind, value))
                try:
                    sock.sendto(pkt, sockaddrs[h])
                except OSError as exc:
                    # wire.senders' policy: a full queue is waited out, no route leaves the
                    # probe to a retry pass, anything else raises
                    resend = functools.partial(sock.sendto, pkt, sockaddrs[h])
                    send_failed(exc, resend, "sending UDP probes")
                sent += 1
        with st.lock:
            st.sent += sent
        return time.monotonic()

    def wait_answers(self, rx: UdpReceiver, last: float, final: bool) -> None:
        """Until the receiver has handled everything up to `last` + the timeout, and no new
        answer came for a quarter of the resend time: answers still streaming in (a queue on
        the path drains them after a big pass) are not resent to."""
        st = self.state
        seen, seen_at = st.final_count, time.monotonic()
        while not self._cancel.is_set() and st.final_count < st.goal:
            rx.check()
            now = time.monotonic()
            if st.final_count != seen:
                seen, seen_at = st.final_count, now
            due = rx.idle_at >= last + (st.wait if final else st.resend_after)
            if due and now - seen_at >= st.resend_after / 4 + 0.003:
                return
            time.sleep(0.002)
