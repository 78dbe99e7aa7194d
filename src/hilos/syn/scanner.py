"""The raw SYN scan: a stateless sender and receiver walking hosts x ports in a keyed random order.

One sender thread walks the (host x port) index space in the order of a keyed `Permutation`
(reproducible with `seed`; ``shard=(i, n)`` takes every n-th step of that walk, so shards are
disjoint and together the whole job) and sends a SYN per index, paced by the shared TokenBucket.
The receiver thread of `TcpTransport` validates each reply by recomputing its cookie
(hilos.probes.tcp_reply). The pieces: hosts, plan (the walk), state (what is final, the
results), control (timeout, congestion control), send (the hot loop, resends), fork.

Usage::

    for host in syn_scan(["127.0.0.1"], [22, 80, 443], seed=1):
        print(host.host, [(p.port, p.state) for p in host.ports])
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from typing import Any

from hilos.errors import NetworkError, UsageError, from_oserror
from hilos.probes.tcp_transport import TcpTransport
from hilos.results import ScanHostResult, ScanStats, Written, nothing_written
from hilos.syn.control import Control
from hilos.syn.coord import LocalCoordination
from hilos.syn.fork import FORK_MIN_PROBES, ChildCoordination, ForkedSenders, SharedControl
from hilos.syn.hosts import Address, HostTable
from hilos.syn.link import attach_link
from hilos.syn.plan import Plan, check_args
from hilos.syn.resume import Cursors, restore, snapshot
from hilos.syn.send import BATCH, Sender
from hilos.syn.state import ScanState
from hilos.wire.cookie import Cookie
from hilos.wire.ratelimit import TokenBucket

__all__ = ["SynScanner", "syn_scan"]


class SynScanner:
    """A running SYN scan; `results()` yields one ScanHostResult per host as soon as it is final.

    Hosts are yielded when every probe of theirs is final (answered, or unanswered after the last
    resend and its timeout), so a silent host never holds up the others; the order is that of
    completion. With `shard`, hosts without a probe in this shard are not reported. A host is
    "up" (reason syn-ack or reset) when any port answered with SYN-ACK or RST, else "down" with
    the reason of its answers (no-response, host-unreach, ...). Duplicate addresses are scanned
    once. Open and filtered ports carry the port table's service name (nmap's "table" method).

    `processes` sender processes (default: one per core, at most 2; jobs under 20,000 probes
    stay in one process) each walk a disjoint part of the shard; `senders` threads per process
    do the same inside it. `cancel()` stops everything; `partial()` returns what is known about
    hosts not yet yielded; `stats` and `on_progress` report ScanStats.
    """

    def __init__(
        self,
        hosts: Iterable[Address] | Sequence[Address],
        ports: Sequence[int],
        *,
        rate: float | None = None,
        timeout: float | None = None,
        retries: int = 1,
        seed: int | None = None,
        shard: tuple[int, int] | None = None,
        on_progress: Callable[[ScanStats], None] | None = None,
        senders: int = 1,
        processes: int | None = None,
        only: Container[str] | None = None,
        resume: dict[str, Any] | None = None,
        written: Written | None = None,
        archive: bool = False,
    ) -> None:
        check_args(ports, retries, timeout, shard)
        self._retries = retries
        self._senders = max(1, senders)
        # Sender processes (fork): the kernel half of each send runs on its own core, and no GIL
        # is shared with the receiver. Default: one per core, at most 2 (measured on 2 cores).
        cpus = os.cpu_count() or 1
        self._processes = max(1, min(2, cpus) if processes is None else processes)
        self._rate = rate
        self._on_progress = on_progress
        self._bucket = TokenBucket(rate, burst=BATCH * 2)
        self._cookie = Cookie()
        self._hosts = HostTable(hosts, self._cookie)
        nh = len(self._hosts)
        # `only`: the walk covers every host given but probes only these (discovery's answer),
        # so a shard does not depend on what discovery found, or in which order.
        skip: bytearray | None = None
        if only is not None:
            skip = bytearray(name not in only for name in self._hosts.names)
            if shard is None:
                shard = (1, 1)  # per-host expected counts leave the skipped hosts out
        self._plan = Plan(nh, len(ports), 0 if seed is None else seed, shard, skip)
        self._control = Control(timeout)
        self._state = ScanState(self._hosts, ports, self._control, self._plan.total)
        self._state.archive = {} if archive or resume else None  # answers kept for snapshot()
        self._ctl = SharedControl(self._processes)
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._forked = ForkedSenders(self._ctl, self._state, self._cancel)
        self._error: BaseException | None = None
        self._started = 0.0
        self._engine: TcpTransport | None = None
        self._sender: Sender | None = None
        #: answers the kernel dropped for a full receive buffer (known once the scan ends)
        self.drops: int | None = None
        self._forks, self._prepared = 0, False  # processes forked (sent counts: _ctl); _prepare ran
        self._thread: threading.Thread | None = None
        self._resume, self._written = resume, written or nothing_written  # (syn.resume)
        self._cursors: Cursors | None = None

    # ---------------------------------------------------------------- public

    def start(self) -> SynScanner:
        """Open the raw sockets (PrivilegeError without CAP_NET_RAW) and start sending."""
        if self._thread is not None:
            return self
        self._started = time.monotonic()
        if self._plan.total == 0:
            self._finish()
            return self
        self._engine = engine = self._make_engine()
        local = LocalCoordination(engine, self._control, self._state, self._report_progress)
        self._sender = Sender(
            engine,
            self._hosts,
            self._state,
            self._plan,
            self._bucket,
            local,
            self._cancel,
            self._retries,
        )
        target = self._sender_main
        # Forking pays off only for big jobs (a fork of a large process costs milliseconds).
        big = self._plan.total >= FORK_MIN_PROBES
        fork = self._processes > 1 and big and type(engine) is TcpTransport
        self._cursors = self._make_cursors(fork)
        self._sender.cursors = self._cursors
        if fork:
            # Fork before any thread of ours runs (a child inherits no half-held lock of ours).
            try:
                self._prepare()
                # Batched frames too: most of a send is the kernel's work per packet (and the
                # lab's, on one machine), done on the sending core; two senders ~1.9x.
                self._forked.fork(self._cursors.parts, self._child_run)
                self._forks = len(self._cursors.parts)
                target = self._coordinate
            except BaseException:
                self.cancel()
                raise
        engine.start()
        self._thread = threading.Thread(target=target, name="hilos-syn-tx", daemon=True)
        self._thread.start()
        return self

    def _make_engine(self) -> TcpTransport:
        """The raw sockets and receiver (tests substitute a simulated network here)."""
        fams = self._hosts.families
        # Big scans read IPv4 answers in batches (numpy): a -p- scan's RST per closed port
        # costs ~8 us of Python one by one, and that capped it at ~125k answers/s.
        batched = self._plan.total >= FORK_MIN_PROBES
        return TcpTransport(
            self._state.on_reply,
            families=fams,
            cookie=self._cookie,
            batched=batched,
            on_batch=self._state.on_replies if batched else None,
        )

    def results(self) -> Iterator[ScanHostResult]:
        """Yield each host's result once it is final; raises the sender's error, if any."""
        self.start()
        completed = self._state.completed
        try:
            while True:
                try:
                    h = completed.get(timeout=0.1)
                except queue.Empty:
                    if self._finished.is_set() and completed.empty():
                        break
                    self._report_progress()
                    continue
                if h < 0:
                    break  # the senders' end mark: every host was queued before it
                yield self._state.build(h)
            self._raise_error()
            if self._engine is not None:
                self._engine.check()
        finally:
            self.cancel()

    def ready(self) -> bool:
        """Whether `results()` has another host ready now, without waiting (the end mark, once
        the scan is over, is not a host)."""
        return self._state.completed.qsize() > self._finished.is_set()

    def _raise_error(self) -> None:
        err = self._error or self._forked.error
        if err is None:
            return
        if isinstance(err, (NetworkError, UsageError)) or not isinstance(err, OSError):
            raise err
        raise from_oserror(err, "sending SYN probes") from err

    def cancel(self) -> None:
        """Stop sending and receiving (results already yielded stay valid)."""
        self._cancel.set()
        self._ctl.cancel()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._forked.reap()
        if self._engine is not None:
            if self.drops is None and isinstance(self._engine, TcpTransport):
                self.drops = self._engine.drops()
            self._engine.close()
        link = self._sender.link if self._sender is not None else None
        if link is not None and (self._thread is None or not self._thread.is_alive()):
            link.close()

    def partial(self) -> list[ScanHostResult]:
        """Hosts not yet yielded that have answers, with those ports (an interrupted scan's)."""
        return self._state.partial()

    @property
    def stats(self) -> ScanStats:
        state = self._state
        total = self._plan.total if state.expected is None else state.goal
        return ScanStats(
            done=state.final_count,
            total=total,
            hosts_done=state.hosts_done,
            hosts_total=len(self._hosts),
            elapsed=time.monotonic() - self._started,
            window=state.sent - state.final_count,
            sent=max(state.sent, self._ctl.sent(self._forks)),
        )

    @property
    def timeout(self) -> float:
        """The per-probe timeout in use now (fixed, or adapted from measured RTTs)."""
        return self._control.timeout

    # ---------------------------------------------------------------- sending

    def _make_cursors(self, fork: bool) -> Cursors:
        """The parts of the walk (one per sender process, or per sender thread) and how far
        each first pass got: a resumed scan's own, for the same parts."""
        saved = self._resume
        if saved is None:
            return Cursors(self._plan.parts(self._processes if fork else self._senders))
        if bool(saved.get("forked")) != fork:
            raise ValueError("the saved scan state does not fit this scan")
        return Cursors([(int(i), int(n)) for i, n in saved["parts"]], saved["cursors"])

    def snapshot(self, written: Written) -> dict[str, Any] | None:
        """Where the scan stands (syn.resume), for a checkpoint; None before it starts."""
        if self._cursors is None or not self._prepared or self._state.archive is None:
            return None  # (without the archive, hosts reported but not written are lost)
        saved = snapshot(self._state, self._cursors, written)
        return {**saved, "forked": self._forks > 0, "sent": self.stats.sent}

    def _prepare(self) -> None:
        if self._prepared:
            return
        if self._plan.shard is not None:
            self._state.set_expected(self._plan.expected(len(self._hosts)))
        if self._resume is not None:
            restore(self._state, self._resume, self._written)
        self._prepared = True
        if 4 in self._hosts.families:
            assert self._sender is not None
            attach_link(self._sender)
            link = self._sender.link
            covered = self._sender.vector is not None  # the link sends every host's probes
            if link is not None and covered and type(self._engine) is TcpTransport:
                # Every IPv4 probe leaves from the link's address: nothing else is a reply.
                self._engine.filter_replies(link.source)

    def _sender_main(self) -> None:
        try:
            self._prepare()
            sender = self._sender
            assert sender is not None
            # Each sender thread walks its own part of the shard: the Python half of one send
            # overlaps the kernel half (no GIL) of the other's.
            threads = [
                threading.Thread(
                    target=self._sender_part, args=(part,), name=f"hilos-syn-tx-{j}", daemon=True
                )
                for j, part in enumerate(self._cursors.parts if self._cursors else ())
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException as exc:  # handed to results(): a dead sender must not hang it
            self._error = exc
        finally:
            self._finish()

    def _sender_part(self, part: tuple[int, int]) -> None:
        try:
            assert self._sender is not None
            self._sender.run(part)
        except BaseException as exc:
            self._error = exc
            self._cancel.set()

    def _child_run(self, part: tuple[int, int], coord: ChildCoordination) -> None:
        """In a sender process: send `part` at its share of the rate."""
        parent = self._sender
        assert parent is not None and self._engine is not None
        rate = None if self._rate is None else self._rate / coord.share
        sender = Sender(
            self._engine,
            self._hosts,
            self._state,
            self._plan,
            TokenBucket(rate, burst=BATCH * 2),
            coord,
            self._cancel,
            self._retries,
        )
        sender.link, sender.cursors = parent.link, self._cursors
        if parent.vector is not None:
            from hilos.syn.vsend import VectorSend

            sender.vector = VectorSend.serving(sender)
        sender.run(part)

    def _coordinate(self) -> None:
        assert self._engine is not None
        try:
            self._forked.coordinate(self._engine, self._control, self._report_progress)
        finally:
            self._finish()

    def _finish(self) -> None:
        """The scan is over: results() stops at once, not at its next 0.1 s poll."""
        self._finished.set()
        self._state.completed.put(-1)

    def _report_progress(self) -> None:
        if self._on_progress is not None and self._started:
            self._on_progress(self.stats)


def syn_scan(
    hosts: Iterable[Address] | Sequence[Address] | Address,
    ports: Sequence[int] | str | int,
    *,
    rate: float | None = None,
    timeout: float | None = None,
    retries: int = 1,
    seed: int | None = None,
    shard: tuple[int, int] | None = None,
    on_progress: Callable[[ScanStats], None] | None = None,
) -> Iterator[ScanHostResult]:
    """SYN-scan `hosts` x `ports`; yields one ScanHostResult per host as soon as it is final.

    `rate` caps packets per second (None: as fast as the sender goes); `timeout` fixes the
    per-probe timeout (None: adaptive); `retries` resends to unanswered (host, port) pairs;
    `seed` makes the random walk reproducible and `shard=(i, n)` (1-based) scans only every n-th
    step of it. Needs CAP_NET_RAW: raises PrivilegeError naming the fix otherwise (check first
    with `can_raw()`). Closing the generator stops the scan. `hosts` may be one spec (a lone
    ``"127.0.0.1"`` is one target) and `ports` a spec string; every argument is checked when
    syn_scan is called, as the CLI checks it (only HilosError subclasses; see hilos.validate).

        >>> for host in syn_scan(["127.0.0.1"], [22, 80], timeout=0.2):  # doctest: +SKIP
        ...     print(host.host, [(p.port, p.state, p.reason) for p in host.ports])
        127.0.0.1 [(22, 'closed', 'reset'), (80, 'closed', 'reset')]
    """
    from hilos import validate

    checked_hosts = validate.check_hosts(hosts)
    scanner = SynScanner(
        checked_hosts,
        validate.check_ports(ports, allow_empty=True),  # no ports: nothing to do, no results
        rate=validate.check_rate(rate),
        timeout=validate.check_timeout(timeout),
        retries=validate.check_retries(1 if retries is None else retries) or 0,
        seed=validate.check_seed(seed),
        shard=validate.check_shard(shard),
        on_progress=on_progress,
    )
    return validate.with_hostnames(scanner.results(), checked_hosts)
