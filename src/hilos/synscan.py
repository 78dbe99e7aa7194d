"""The raw SYN scan: a stateless sender and receiver walking hosts x ports in a keyed random order.

One sender thread walks the (host x port) index space in the order of a keyed `Permutation`
(reproducible with `seed`; ``shard=(i, n)`` takes every n-th step of that walk, so shards are
disjoint and together the whole job) and sends a SYN per index, paced by the shared TokenBucket.
The receiver thread of `RawTcpEngine` validates each reply by recomputing its cookie. Per index
only one bit is kept ("final"), plus a small dict of the indices that answered:

    open      SYN-ACK                                         reason syn-ack
    closed    RST                                             reason reset
    filtered  no answer after `retries` resends               reason no-response
              ICMP/ICMPv6 destination unreachable             reason host-unreach, port-unreach,
                                                                     admin-prohibited, ...

Retries resend only indices still without an answer, pipelined: the retry pass follows the walk
`timeout` seconds behind the first pass, so a scan costs (probes sent) / rate + about two timeouts.
Without a fixed `timeout`, it adapts to the RTTs measured from the replies (srtt + 4 rttvar, RFC
6298, clamped to 30 ms .. 1 s). A probe is given up only once the receiver has drained everything
that arrived before its deadline, so a busy receiver never turns a late answer into "filtered".

Usage::

    for host in syn_scan(["127.0.0.1"], [22, 80, 443], seed=1):
        print(host.host, [(p.port, p.state) for p in host.ports])
"""

from __future__ import annotations

import errno
import ipaddress
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice

from hilos.errors import NetworkError, UsageError, from_oserror
from hilos.portscan import ScanStats
from hilos.probes.ratelimit import TokenBucket
from hilos.probes.tcp import (
    KIND_SYN_ACK,
    KIND_UNREACH,
    MSS,
    SPORT_BASE,
    SPORT_MASK,
    SYN,
    TICK_SHIFT,
    WINDOW,
    Cookie,
    RawTcpEngine,
    Reply,
    SynTemplate4,
    can_raw,
    source_address,
)
from hilos.results import PortResult, ScanHostResult
from hilos.targets import Permutation

__all__ = ["MAX_HOSTS", "SynScanner", "can_raw", "syn_scan"]

Address = str | ipaddress.IPv4Address | ipaddress.IPv6Address

#: A scan keeps a small table per host (address, cookie seed, checksum part): this bounds it.
MAX_HOSTS = 1 << 22
_CHUNK = 256  # indices per scheduling step; a retry pass follows the first pass chunk by chunk
_BATCH = 32  # packets per token-bucket take and per source-port (send time) tick update
_MIN_TIMEOUT = 0.03
_MAX_TIMEOUT = 1.0
_INITIAL_TIMEOUT = 1.0

# Result codes kept for answered indices; everything final without a code is "no-response".
_OPEN, _CLOSED = 1, 2
_CODES: dict[int, tuple[str, str]] = {_OPEN: ("open", "syn-ack"), _CLOSED: ("closed", "reset")}
_REASON_CODE: dict[str, int] = {}
for _i, _reason in enumerate(
    (
        "net-unreach",
        "host-unreach",
        "proto-unreach",
        "port-unreach",
        "net-prohibited",
        "host-prohibited",
        "admin-prohibited",
        "no-route",
        "beyond-scope",
        "unreach",
    ),
    start=3,
):
    _CODES[_i] = ("filtered", _reason)
    _REASON_CODE[_reason] = _i
_NO_RESPONSE = 0
_CODES[_NO_RESPONSE] = ("filtered", "no-response")

_M1 = 0x9E3779B97F4A7C15
_M3 = 0x94D049BB133111EB
_MASK64 = 0xFFFFFFFFFFFFFFFF
_SEG6_FLAGS = (6 << 12) | SYN
# Local trouble sending one packet: not an answer. ENOBUFS = send queue full: wait and resend.
_RETRY_SEND = frozenset({errno.ENOBUFS, errno.EAGAIN, errno.ENOMEM})


class SynScanner:
    """A running SYN scan; `results()` yields one ScanHostResult per host as soon as it is final.

    Hosts are yielded when every probe of theirs is final (answered, or unanswered after the last
    resend and its timeout), so a silent host never holds up the others; the order is that of
    completion. With `shard`, hosts without a probe in this shard are not reported. A host is
    "up" (reason syn-ack or reset) when any port answered with SYN-ACK or RST, else "down" with
    the reason of its answers (no-response, host-unreach, ...).
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
    ) -> None:
        if retries < 0:
            raise UsageError(f"retries must not be negative: {retries}")
        if timeout is not None and not timeout > 0:
            raise UsageError(f"timeout must be positive: {timeout}")
        if shard is not None and not (shard[1] >= 1 and 1 <= shard[0] <= shard[1]):
            raise UsageError(f"invalid shard {shard[0]}/{shard[1]}: expected 1 <= I <= N")
        self._ports = tuple(ports)
        for p in self._ports:
            if not 0 < p < 65536:
                raise UsageError(f"port out of range: {p}")
        self._np = len(self._ports)
        self._port_index = [-1] * 65536
        for i, p in enumerate(self._ports):
            self._port_index[p] = i
        self._retries = retries
        self._fixed_timeout = timeout
        self._seed = 0 if seed is None else seed
        self._shard = shard
        self._on_progress = on_progress
        self._bucket = TokenBucket(rate, burst=_BATCH * 2)
        self._cookie = Cookie()
        self._load_hosts(hosts)
        self._total = self._nh * self._np
        self._final = bytearray((self._total + 7) // 8)  # one bit per index: its state is known
        self._codes: dict[int, int] = {}  # index -> result code, only for answered indices
        self._done = [0] * self._nh  # final indices per host
        self._expected: list[int] | None = None  # per host, only when sharded (else = nports)
        self._rtt: dict[int, float] = {}  # host -> smallest RTT seen (ms), answering hosts only
        self._lock = threading.Lock()
        self._completed: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._reported = bytearray(self._nh)
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._error: BaseException | None = None
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._sent = 0
        self._answered = 0
        self._final_count = 0
        self._hosts_done = 0
        self._started = 0.0
        self._engine: RawTcpEngine | None = None
        self._thread: threading.Thread | None = None
        # Immutable PortResult objects shared by every host: (port index, code) -> result.
        self._port_results: dict[tuple[int, int], PortResult] = {}

    # ---------------------------------------------------------------- setup

    def _load_hosts(self, hosts: Iterable[Address] | Sequence[Address]) -> None:
        addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        for a in hosts:
            addrs.append(ipaddress.ip_address(a) if isinstance(a, str) else a)
            if len(addrs) > MAX_HOSTS:
                raise UsageError(
                    f"a SYN scan takes at most {MAX_HOSTS} addresses per run: split the targets"
                )
        self._nh = len(addrs)
        self._names = [str(a) for a in addrs]
        self._index4: dict[int, int] = {}
        self._index6: dict[int, int] = {}
        # Per host: (text, cookie seed, packed v4 address or None, checksum part, template).
        table: list[tuple[str, int, bytes | None, int, SynTemplate4 | None]] = []
        templates: dict[int, SynTemplate4] = {}
        fams = set()
        for h, a in enumerate(addrs):
            ip = int(a)
            seed = self._cookie.host_seed(ip)
            if a.version == 4:
                self._index4.setdefault(ip, h)
                net = ip >> 8  # one route lookup per /24 (sends nothing)
                tpl = templates.get(net)
                if tpl is None:
                    tpl = templates[net] = SynTemplate4(source_address(a))
                d4 = a.packed
                table.append((self._names[h], seed, d4, tpl.dst_sum(d4), tpl))
                fams.add(4)
            else:
                self._index6.setdefault(ip, h)
                table.append((self._names[h], seed, None, 0, None))
                fams.add(6)
        self._table = table
        self._families = fams

    # ---------------------------------------------------------------- public

    def start(self) -> SynScanner:
        """Open the raw sockets (PrivilegeError without CAP_NET_RAW) and start sending."""
        if self._thread is not None:
            return self
        self._started = time.monotonic()
        if self._total == 0:
            self._finished.set()
            return self
        self._engine = RawTcpEngine(self._on_reply, families=self._families, cookie=self._cookie)
        self._engine.start()
        self._thread = threading.Thread(target=self._sender_main, name="hilos-syn-tx", daemon=True)
        self._thread.start()
        return self

    def results(self) -> Iterator[ScanHostResult]:
        """Yield each host's result once it is final; raises the sender's error, if any."""
        self.start()
        try:
            while True:
                try:
                    h = self._completed.get(timeout=0.1)
                except queue.Empty:
                    if self._finished.is_set() and self._completed.empty():
                        break
                    self._report_progress()
                    continue
                yield self._build(h)
            if self._error is not None:
                err = self._error
                if isinstance(err, (NetworkError, UsageError)) or not isinstance(err, OSError):
                    raise err
                raise from_oserror(err, "sending SYN probes") from err
            if self._engine is not None:
                self._engine.check()
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop sending and receiving (results already yielded stay valid)."""
        self._cancel.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        if self._engine is not None:
            self._engine.close()

    def partial(self) -> list[ScanHostResult]:
        """Hosts not yet yielded that have at least one answer, with only their answered ports
        (for writing what was found when a scan is interrupted)."""
        with self._lock:
            codes = dict(self._codes)
        hosts = sorted({idx // self._np for idx in codes})
        out = []
        for h in hosts:
            if self._reported[h]:
                continue
            base = h * self._np
            ports = tuple(
                self._port_result(i, codes[base + i]) for i in range(self._np) if base + i in codes
            )
            out.append(self._host_result(h, ports))
        return out

    @property
    def stats(self) -> ScanStats:
        total = self._total if self._expected is None else sum(self._expected)
        return ScanStats(
            done=self._final_count,
            total=total,
            hosts_done=self._hosts_done,
            hosts_total=self._nh,
            elapsed=time.monotonic() - self._started,
            window=self._sent - self._final_count,
        )

    @property
    def timeout(self) -> float:
        """The per-probe timeout in use now (fixed, or adapted from measured RTTs)."""
        if self._fixed_timeout is not None:
            return self._fixed_timeout
        if self._srtt is None:
            return _INITIAL_TIMEOUT
        t = self._srtt + 4 * self._rttvar + 0.002
        return min(_MAX_TIMEOUT, max(_MIN_TIMEOUT, t))

    # ---------------------------------------------------------------- receiving

    def _on_reply(self, r: Reply) -> None:
        """Runs in the receiver thread for each validated reply."""
        h = (self._index4 if r.family == 4 else self._index6).get(r.addr)
        pi = self._port_index[r.port]
        if h is None or pi < 0:
            return
        idx = h * self._np + pi
        if r.kind == KIND_UNREACH:
            code = _REASON_CODE.get(r.reason, _REASON_CODE["unreach"])
        else:
            code = _OPEN if r.kind == KIND_SYN_ACK else _CLOSED
            # RFC 6298 smoothing; samples are quantised to 262 us ticks.
            rtt = r.rtt_ms / 1000.0
            if self._srtt is None:
                self._srtt, self._rttvar = rtt, rtt / 2
            else:
                self._rttvar += (abs(self._srtt - rtt) - self._rttvar) / 4
                self._srtt += (rtt - self._srtt) / 8
            old = self._rtt.get(h)
            if old is None or r.rtt_ms < old:
                self._rtt[h] = r.rtt_ms
        byte, bit = idx >> 3, 1 << (idx & 7)
        final = self._final
        with self._lock:
            if final[byte] & bit:
                return  # a duplicate, or an answer after the probe was given up
            final[byte] |= bit
            self._codes[idx] = code
            self._answered += 1
            self._count_final(h)

    def _count_final(self, h: int) -> None:
        # Called with the lock held.
        self._final_count += 1
        done = self._done[h] + 1
        self._done[h] = done
        expected = self._np if self._expected is None else self._expected[h]
        if done == expected:
            self._hosts_done += 1
            self._completed.put(h)

    # ---------------------------------------------------------------- sending

    def _sender_main(self) -> None:
        try:
            self._send_all()
        except BaseException as exc:  # handed to results(): a dead sender must not hang it
            self._error = exc
        finally:
            self._finished.set()

    def _walk(self) -> Iterator[int]:
        perm = Permutation(self._total, self._seed)
        if self._shard is None:
            return iter(perm)
        return perm.shard(*self._shard)

    def _count_shard(self) -> None:
        # Each host is final once all of *its* probes in this shard are: count them first (one
        # cheap extra walk; a cyclic-group step is a multiplication).
        expected = [0] * self._nh
        np_ = self._np
        for idx in self._walk():
            expected[idx // np_] += 1
        self._expected = expected

    def _send_all(self) -> None:
        if self._shard is not None:
            self._count_shard()
        engine = self._engine
        assert engine is not None
        passes = self._retries + 1
        last = passes - 1
        walks = [self._walk() for _ in range(passes)]
        # pending[k]: chunks sent by pass k as (time sent, indices consumed, sent indices if last)
        pending: list[deque[tuple[float, int, list[int] | None]]] = [deque() for _ in range(passes)]
        first_done = False
        cancel = self._cancel
        next_progress = 0.0
        while not cancel.is_set():
            engine.check()
            idle = engine.idle_at
            timeout = self.timeout
            worked = False
            # 1. give up on last-pass probes whose deadline the receiver has fully caught up with
            fin = pending[last]
            while fin and fin[0][0] + timeout <= idle:
                self._finalize(fin.popleft()[2])
                worked = True
            # 2. resend what is still unanswered, one chunk behind the previous pass each
            for k in range(last, 0, -1):
                prev = pending[k - 1]
                while prev and prev[0][0] + timeout <= idle and not cancel.is_set():
                    _t, count, _ = prev.popleft()
                    collect: list[int] | None = [] if k == last else None
                    self._send_chunk(walks[k], count, True, collect)
                    pending[k].append((time.monotonic(), count, collect))
                    worked = True
            # 3. one new chunk of the first pass
            if not first_done:
                collect = [] if last == 0 else None
                count = self._send_chunk(walks[0], _CHUNK, False, collect)
                if count:
                    pending[0].append((time.monotonic(), count, collect))
                    worked = True
                if count < _CHUNK:
                    first_done = True
            now = time.monotonic()
            if now >= next_progress:
                next_progress = now + 0.25
                self._report_progress()
            if first_done and not any(pending):
                break
            if not worked:
                # Nothing due yet: sleep until the oldest deadline (or a short while when the
                # receiver has not caught up yet).
                heads = [q[0][0] for q in pending if q]
                wait = min(heads) + timeout - now if heads else 0.005
                time.sleep(min(0.01, max(0.0005, wait)))
        self._report_progress()

    def _finalize(self, indices: list[int] | None) -> None:
        assert indices is not None
        final = self._final
        np_ = self._np
        with self._lock:
            for idx in indices:
                byte, bit = idx >> 3, 1 << (idx & 7)
                if not final[byte] & bit:
                    final[byte] |= bit
                    self._count_final(idx // np_)

    def _send_chunk(
        self, walk: Iterator[int], count: int, skip_final: bool, collect: list[int] | None
    ) -> int:
        """Consume `count` indices of `walk`, sending a SYN for each not yet final; return how
        many indices were consumed (fewer than `count` when the walk ends)."""
        engine = self._engine
        assert engine is not None
        tx4, tx6 = engine.tx4, engine.tx6
        send4 = tx4.sendto if tx4 is not None else None
        send6 = tx6.sendto if tx6 is not None else None
        table = self._table
        ports = self._ports
        np_ = self._np
        final = self._final
        take = self._bucket.take
        mono_ns = time.monotonic_ns
        seg6 = _SEG6_PACK
        consumed = 0
        sent = 0
        budget = 0
        sport = 0
        for idx in islice(walk, count):
            consumed += 1
            if skip_final and final[idx >> 3] >> (idx & 7) & 1:
                continue
            if budget == 0:
                take(_BATCH)
                budget = _BATCH
                sport = SPORT_BASE + ((mono_ns() >> TICK_SHIFT) & SPORT_MASK)
            budget -= 1
            h, pi = divmod(idx, np_)
            dst, seed, d4, hsum, tpl = table[h]
            port = ports[pi]
            x = (seed ^ (port << 16) ^ sport) * _M3 & _MASK64
            x ^= x >> 32
            seq = (x * _M1 & _MASK64) >> 32
            if d4 is not None:
                assert tpl is not None and send4 is not None
                s = tpl.const + hsum + port + sport + (seq >> 16) + (seq & 0xFFFF) + _SYN_WORD
                s = (s & 0xFFFF) + (s >> 16)
                s = (s & 0xFFFF) + (s >> 16)
                pkt = tpl.struct.pack(
                    tpl.prefix, d4, sport, port, seq, 0, tpl.win_flags_syn, ~s & 0xFFFF, tpl.suffix
                )
                self._send(send4, pkt, dst)
            else:
                assert send6 is not None
                self._send(
                    send6, seg6(sport, port, seq, 0, _SEG6_FLAGS, WINDOW, 0, 0, 2, 4, MSS), dst
                )
            sent += 1
            if collect is not None:
                collect.append(idx)
        self._sent += sent
        return consumed

    @staticmethod
    def _send(sendto: Callable[[bytes, tuple[str, int]], int], pkt: bytes, dst: str) -> None:
        for attempt in range(200):
            try:
                sendto(pkt, (dst, 0))
                return
            except OSError as exc:
                if exc.errno in _RETRY_SEND:
                    time.sleep(0.0005 * (attempt + 1))  # the device queue is full: let it drain
                    continue
                if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM, errno.EACCES):
                    return  # no route, or a local firewall: the probe stays unanswered
                raise
        return

    # ---------------------------------------------------------------- results

    def _report_progress(self) -> None:
        if self._on_progress is not None and self._started:
            self._on_progress(self.stats)

    def _port_result(self, pi: int, code: int) -> PortResult:
        key = (pi, code)
        r = self._port_results.get(key)
        if r is None:
            state, reason = _CODES[code]
            r = self._port_results[key] = PortResult(self._ports[pi], state, reason)  # type: ignore[arg-type]
        return r

    def _host_result(self, h: int, ports: tuple[PortResult, ...]) -> ScanHostResult:
        reason = "no-response"
        status = "down"
        for p in ports:
            if p.state in ("open", "closed"):
                status, reason = "up", p.reason
                if p.state == "open":
                    break
            elif reason == "no-response" and p.reason != "no-response":
                reason = p.reason
        rtt = self._rtt.get(h)
        return ScanHostResult(
            self._names[h],
            "up" if status == "up" else "down",
            reason,
            ports,
            None if rtt is None else round(rtt, 3),
        )

    def _build(self, h: int) -> ScanHostResult:
        self._reported[h] = 1
        base = h * self._np
        final = self._final
        with self._lock:
            codes = [self._codes.pop(base + i, _NO_RESPONSE) for i in range(self._np)]
        sharded = self._expected is not None
        ports = tuple(
            self._port_result(i, c)
            for i, c in enumerate(codes)
            if not sharded or final[(base + i) >> 3] >> ((base + i) & 7) & 1
        )
        return self._host_result(h, ports)


_SYN_WORD = (6 << 12) | SYN
_SEG6_PACK = __import__("struct").Struct("!HHIIHHHHBBH").pack


def syn_scan(
    hosts: Iterable[Address] | Sequence[Address],
    ports: Sequence[int],
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
    with `can_raw()`). Closing the generator stops the scan.

        >>> for host in syn_scan(["127.0.0.1"], [22, 80], timeout=0.2):  # doctest: +SKIP
        ...     print(host.host, [(p.port, p.state, p.reason) for p in host.ports])
        127.0.0.1 [(22, 'closed', 'reset'), (80, 'closed', 'reset')]
    """
    scanner = SynScanner(
        hosts,
        ports,
        rate=rate,
        timeout=timeout,
        retries=retries,
        seed=seed,
        shard=shard,
        on_progress=on_progress,
    )
    yield from scanner.results()
