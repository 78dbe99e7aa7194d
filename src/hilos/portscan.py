"""The TCP connect scan: thousands of non-blocking connects in flight, exact open/closed/filtered.

A few worker threads each drive their own epoll set of non-blocking sockets. They pull (host, port)
probes lazily from one shared feeder, which interleaves the ports of every active host, and keep a
sliding window full: each time a connect finishes (SYN-ACK, RST, ICMP error) or times out, a new one
starts (RustScan's design). States follow nmap's connect scan:

    open      the handshake completed                       reason syn-ack
    closed    refused: the host answered with a RST         reason conn-refused
    filtered  no answer after every try                     reason no-response
              or an ICMP unreachable (EHOSTUNREACH, ...)    reason host-unreach, net-unreach, ...

Only ports still without an answer are probed again (`retries`). Per-probe timeouts adapt to the
round-trip times measured (srtt + 4 rttvar, RFC 6298), clamped, unless a fixed `timeout` is given.
The window is sized from RLIMIT_NOFILE (raised soft to hard); EMFILE/ENFILE/ENOBUFS/EADDRNOTAVAIL
shrink it and the probe is queued again, so no port is ever lost. It also behaves like TCP's
congestion window: slow start, a cut when a resend is answered (its first probe was lost in a
queue we overflowed), additive growth, so a slow or shallow path stays exact.

Syscalls per closed port: two connect() calls on a reused socket. On a fast path the RST is
processed before connect() returns and a second connect() reports it and resets the socket; on a
slow path the socket waits in epoll, and after its answer the same reset makes it the next probe's
socket while it stays registered. Only open and silent ports cost a socket of their own.

Usage::

    scanner = ConnectScanner(["127.0.0.1"], parse_ports("1-1024"))
    for host in scanner.results():          # one ScanHostResult per host, streamed as each finishes
        print(host.host, [p.port for p in host.open_ports])
"""

from __future__ import annotations

import _socket
import errno
import ipaddress
import queue
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Container, Iterable, Iterator, Sequence
from itertools import repeat

from hilos.errors import HilosError, UsageError, from_oserror
from hilos.probes.ratelimit import TokenBucket
from hilos.results import HostResult, PortResult, ScanHostResult, ScanStats
from hilos.targets.ports import service_name
from hilos.validate import MAX_RETRIES
from hilos.wire.limits import check_thread_limit, raise_nofile_limit, window_for_limit
from hilos.wire.rtt import RttEstimator

__all__ = [
    "DEFAULT_THREADS",
    "DEFAULT_WINDOW",
    "ConnectScanner",
    "connect_scan",
]

Address = str | ipaddress.IPv4Address | ipaddress.IPv6Address

# Measured on the 2-core lab machine, -p- of one host (issue 4's closing note): at rtt 0 the cost
# is the kernel's per-connect work, so 2 threads (one per core) beat 1 (1.2 s vs 1.9 s) and the
# window hardly matters; at rtt 40 the window is what counts (1024: 3.1 s, 4096: 1.9 s) and
# threads do not. 4 threads or 8192 sockets bought nothing more.
DEFAULT_THREADS = 2
DEFAULT_WINDOW = 4096
# Per fill step at most this many connects, so answers already in are read without delay.
_FILL_STEP = 256
# Adaptive timeout bounds (seconds); nmap -T4 uses 0.1 / 1.25 with a 0.5 initial value.
_MIN_TIMEOUT = 0.15
_MAX_TIMEOUT = 1.25
_INITIAL_TIMEOUT = 1.0
# Congestion control never cuts a worker's window below this (EMFILE may).
_MIN_WINDOW = 256
_INITIAL_WINDOW = 512

# Result codes stored per port in a bytearray (compact: a /24 x 65535 ports is 16 MB).
_UNKNOWN, _OPEN, _CLOSED, _NO_RESPONSE = 0, 1, 2, 3
_CODE_STATE_REASON: dict[int, tuple[str, str]] = {
    _OPEN: ("open", "syn-ack"),
    _CLOSED: ("closed", "conn-refused"),
    _NO_RESPONSE: ("filtered", "no-response"),
    4: ("filtered", "host-unreach"),
    5: ("filtered", "net-unreach"),
    6: ("filtered", "admin-prohibited"),
    7: ("filtered", "host-prohibited"),
    8: ("closed", "reset"),
    9: ("filtered", "error"),
}
_ERRNO_CODE = {
    errno.ECONNREFUSED: _CLOSED,
    errno.EHOSTUNREACH: 4,
    errno.ENETUNREACH: 5,
    errno.EACCES: 6,
    errno.EPERM: 6,
    errno.EHOSTDOWN: 4,
    errno.ECONNRESET: 8,
    errno.ETIMEDOUT: _NO_RESPONSE,
}
# Local shortages: not an answer from the network. Shrink the window and try the probe again.
_RESOURCE_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL, errno.EAGAIN}
)

_SOCK_TYPE = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
# Closed-port results are immutable and identical for every host: shared, one per port number.
_CLOSED_RESULTS: dict[int, PortResult] = {}
_LINGER_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # struct linger {1, 0}: close with RST


class _Host:
    """Book-keeping of one host: its ports' result codes and how many still lack an answer."""

    __slots__ = ("addr", "codes", "family", "found", "index", "pos", "remaining")

    def __init__(self, item: Address | HostResult, index: int, nports: int, expected: int) -> None:
        self.found = item if isinstance(item, HostResult) else None
        self.addr = item.host if isinstance(item, HostResult) else str(item)
        self.family = socket.AF_INET6 if ":" in self.addr else socket.AF_INET
        self.index = index
        self.pos = 0  # next port index to feed (interleaved mode)
        self.remaining = expected
        self.codes = bytearray(nports)


class _Probe:
    """A connect in flight."""

    __slots__ = ("attempt", "done", "host", "p_i", "sock", "start")

    def __init__(self, sock: _socket.socket, host: _Host, p_i: int, start: float, attempt: int):
        self.sock = sock
        self.host = host
        self.p_i = p_i
        self.start = start
        self.attempt = attempt
        self.done = False


class ConnectScanner:
    """A TCP connect scan of `hosts` x `ports`; see the module docstring.

    `hosts` may be any iterable (a TargetSpace, a list, or a generator fed by a discovery sweep that
    is still running): a feeder thread pulls it, so ports of the first live hosts are probed while
    discovery goes on. `shard=(i, n)` scans only the i-th of n disjoint parts of the (host, port)
    index space walked in the keyed order of `targets.Permutation(seed)`; it needs the host list
    complete first, so results then come at the end.
    """

    def __init__(
        self,
        hosts: Iterable[Address | HostResult],
        ports: Sequence[int],
        *,
        timeout: float | None = None,
        retries: int = 1,
        window: int | None = None,
        threads: int | None = None,
        rate: float | None = None,
        shard: tuple[int, int] | None = None,
        seed: int | None = None,
        max_active_hosts: int = 256,
        only: Container[str] | None = None,
    ) -> None:
        if not ports:
            raise UsageError("no ports to scan")
        if not 0 <= retries <= MAX_RETRIES:
            raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries}")
        self._ports = tuple(ports)
        self._hosts_src = hosts
        self._fixed_timeout = timeout
        self._tries = retries + 1
        if threads is not None:
            check_thread_limit(threads)  # up front, not "Too many open files" half-way
        soft = raise_nofile_limit()
        self._threads = max(1, threads or DEFAULT_THREADS)
        # An explicit window is taken as asked (EMFILE shrinks it at run time if it must);
        # the default one is sized to the descriptors this process may open.
        limit = window if window else window_for_limit(soft, DEFAULT_WINDOW)
        self.window = limit
        per = max(1, limit // self._threads)
        # Slow start: begin small, +1 per answer doubles the window every round trip.
        self.resource_waits = 0  # times EMFILE & co. shrank a window
        self._win = [min(per, _INITIAL_WINDOW)] * self._threads  # the window in use, per worker
        self._cap = [per] * self._threads  # its ceiling
        # --rate: new connections per second, paced by the bucket the sweep and SYN scan use.
        self._bucket = (
            TokenBucket(rate, burst=max(1, min(64, int(rate // 50) or 1))) if rate else None
        )
        self._shard = shard
        # With a shard: the walk covers every host given, but probes only those in `only`
        # (discovery's answer), so shards do not depend on what discovery found, or when.
        self._only = only
        self._seed = seed
        self._max_active = max(1, max_active_hosts)

        self._lock = threading.Lock()
        self._out: queue.Queue[ScanHostResult | None] = queue.Queue()
        self._stop = threading.Event()
        self._hosts: list[_Host] = []  # every host seen, in arrival order
        self._active: list[_Host] = []  # hosts whose ports are being fed
        self._rr = 0
        self._incoming: deque[_Host] = deque()
        self._source_done = False
        self._perm_iter: Iterator[int] | None = None
        self._shard_fed = False
        self._done = 0
        self._total = 0
        self._hosts_done = 0
        self._started = 0.0
        self._workers: list[threading.Thread] = []
        self._epolls: list[select.epoll] = []
        self._feeder: threading.Thread | None = None
        self._error: BaseException | None = None
        self._finished = False

    # ----------------------------------------------------------------- public
    @property
    def stats(self) -> ScanStats:
        with self._lock:
            return ScanStats(
                done=self._done,
                total=self._total,
                hosts_done=self._hosts_done,
                hosts_total=len(self._hosts),
                elapsed=time.monotonic() - self._started if self._started else 0.0,
                window=sum(self._win),
            )

    def start(self) -> ConnectScanner:
        """Start the worker threads (results() does it too); returns self."""
        self._start()
        return self

    def results(self) -> Iterator[ScanHostResult]:
        """Start the scan (once) and yield each host's result as soon as all its ports answered."""
        self._start()
        while True:
            try:
                item = self._out.get(timeout=0.25)
            except queue.Empty:
                if self._stop.is_set() and self._out.empty():
                    break
                continue
            if item is None:
                break
            yield item
        if self._error is not None:
            err = self._error
            if isinstance(err, HilosError):
                raise err
            raise HilosError(f"scan failed: {err}") from err

    def cancel(self) -> None:
        """Stop feeding and probing; results() ends soon after. Safe to call twice."""
        self._stop.set()
        with self._lock:
            self._source_done = True

    def join(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))

    def partial(self) -> list[ScanHostResult]:
        """Hosts not yet reported, with the ports answered so far (Ctrl-C keeps every result)."""
        with self._lock:
            return [self._build(h) for h in self._hosts if h.remaining > 0 and any(h.codes)]

    # --------------------------------------------------------------- internals
    def _start(self) -> None:
        if self._started:
            return
        # One epoll set per worker, made here so a shortage of descriptors is a clear error
        # before anything starts rather than a dead worker.
        try:
            self._epolls = [select.epoll() for _ in range(self._threads)]
        except OSError as exc:
            for e in self._epolls:
                e.close()
            raise from_oserror(exc, "creating the scan's epoll sets") from exc
        self._started = time.monotonic()
        self._feeder = threading.Thread(
            target=self._pull_hosts, name="hilos-scan-feed", daemon=True
        )
        self._feeder.start()
        for i in range(self._threads):
            t = threading.Thread(
                target=self._worker_main, args=(i,), name=f"hilos-scan-{i}", daemon=True
            )
            self._workers.append(t)
            t.start()
        threading.Thread(target=self._reaper, name="hilos-scan-reaper", daemon=True).start()

    def _reaper(self) -> None:
        for t in self._workers:
            t.join()
        if self._feeder is not None:
            self._feeder.join(0.5)
        self._stop.set()
        self._out.put(None)

    def _pull_hosts(self) -> None:
        """Feeder thread: turns the host iterable into _Host records (it may block on discovery)."""
        nports = len(self._ports)
        try:
            if self._shard is not None:
                self._prepare_shard()
                return
            for addr in self._hosts_src:
                if self._stop.is_set():
                    break
                with self._lock:
                    h = _Host(addr, len(self._hosts), nports, nports)
                    self._hosts.append(h)
                    self._incoming.append(h)
                    self._total += nports
        except BaseException as exc:
            self._error = exc
            self._stop.set()
        finally:
            with self._lock:
                self._source_done = True

    def _prepare_shard(self) -> None:
        from hilos.targets import Permutation

        assert self._shard is not None
        index, count = self._shard
        nports = len(self._ports)
        hosts = [_Host(a, i, nports, 0) for i, a in enumerate(self._hosts_src)]
        seed = self._seed if self._seed is not None else 0
        total = len(hosts) * nports
        # Count this shard's probes per host first, so each host is reported when it completes.
        expected = [0] * len(hosts)
        only = self._only
        if only is not None:
            for h in hosts:
                if h.addr not in only:
                    h.remaining = -1  # not live: its indices are skipped in the walk
        n = 0
        if total:
            for idx in Permutation(total, seed).shard(index, count):
                h_i = idx // nports
                if hosts[h_i].remaining == 0:
                    expected[h_i] += 1
                    n += 1
        for h, e in zip(hosts, expected, strict=True):
            h.remaining = e
        with self._lock:
            self._hosts = hosts
            self._total = n
            if total:
                self._perm_iter = iter(Permutation(total, seed).shard(index, count))
            for h in hosts:
                if h.remaining == 0:
                    h.remaining = -1  # nothing of this host in this shard
        # Hosts without a probe in this shard are not reported at all: another shard has them.

    def _take(self, wanted: int) -> list[tuple[_Host, int, int]]:
        """Up to `wanted` new probes (host, port index, attempt 0), interleaving active hosts."""
        out: list[tuple[_Host, int, int]] = []
        with self._lock:
            if self._bucket is not None:
                # Grant only what the bucket allows now: a worker never sleeps holding the lock.
                while wanted >= 1 and not self._bucket.try_take(wanted):
                    wanted //= 2
                if wanted == 0:
                    return out
            if self._perm_iter is not None:
                nports = len(self._ports)
                hosts = self._hosts
                for idx in self._perm_iter:
                    h_i, p_i = divmod(idx, nports)
                    h = hosts[h_i]
                    if h.remaining < 0:
                        continue  # a host outside `only`
                    out.append((h, p_i, 0))
                    if len(out) >= wanted:
                        break
                else:
                    self._perm_iter = None
                    self._shard_fed = True
                return out
            active = self._active
            nports = len(self._ports)
            while len(active) < self._max_active and self._incoming:
                active.append(self._incoming.popleft())
            # Runs per host: each step spreads over every active host, none gets a burst.
            run = max(4, wanted // max(1, len(active)))
            while len(out) < wanted and active:
                i = self._rr % len(active)
                h = active[i]
                stop = min(nports, h.pos + run, h.pos + wanted - len(out))
                out.extend(zip(repeat(h), range(h.pos, stop), repeat(0)))
                h.pos = stop
                if h.pos >= nports:
                    active.pop(i)
                    if self._incoming:
                        active.append(self._incoming.popleft())
                else:
                    self._rr = i + 1
        return out

    def _exhausted(self) -> bool:
        with self._lock:
            if self._shard is not None:
                # The lazy permutation cannot say it is empty without a peek: _take() marks it.
                return self._shard_fed or (self._source_done and self._perm_iter is None)
            return self._source_done and not self._active and not self._incoming

    def _record(self, batch: list[tuple[_Host, int, int]]) -> None:
        """Store final answers; emit hosts whose every port has answered."""
        done_hosts: list[_Host] = []
        with self._lock:
            for h, p_i, code in batch:
                if h.codes[p_i] == _UNKNOWN:
                    h.codes[p_i] = code
                    h.remaining -= 1
                    self._done += 1
                    if h.remaining == 0:
                        done_hosts.append(h)
                        self._hosts_done += 1
        for h in done_hosts:
            self._out.put(self._build(h))

    def _build(self, h: _Host) -> ScanHostResult:
        """The host's result. Discovered hosts keep the sweep's reason and RTT; without
        discovery (-Pn) a host is up when any port answered (open or closed), as in the SYN scan."""
        ports = self._ports
        res: list[PortResult] = []
        closed = _CLOSED_RESULTS
        codes = h.codes
        for i, code in enumerate(codes):
            if code == _CLOSED:
                port = ports[i]
                pr = closed.get(port)
                if pr is None:
                    # Named from the port table, as nmap does (`22/tcp closed ssh`).
                    pr = closed[port] = PortResult(
                        port, "closed", "conn-refused", service=service_name(port)
                    )
                res.append(pr)
            elif code != _UNKNOWN:
                state, reason = _CODE_STATE_REASON[code]
                port = ports[i]
                res.append(PortResult(port, state, reason, service=service_name(port)))  # type: ignore[arg-type]
        found = h.found
        if found is not None:
            return ScanHostResult(h.addr, "up", found.reason, tuple(res), found.rtt_ms)
        if _OPEN in codes:
            return ScanHostResult(h.addr, "up", "syn-ack", tuple(res))
        if _CLOSED in codes or 8 in codes:
            return ScanHostResult(h.addr, "up", "conn-refused", tuple(res))
        reason = res[0].reason if res else "no-response"
        return ScanHostResult(h.addr, "down", reason, tuple(res))

    # ----------------------------------------------------------------- worker
    def _worker_main(self, wid: int) -> None:
        try:
            self._worker(wid)
        except BaseException as exc:
            self._error = exc
            self._stop.set()

    def _worker(self, wid: int) -> None:
        ep = self._epolls[wid]
        try:
            self._loop(wid, ep)
        finally:
            ep.close()

    def _loop(self, wid: int, ep: select.epoll) -> None:
        # The C socket type: socket.socket's Python __init__/close wrappers cost ~5 us per probe.
        new_socket = _socket.socket
        epollout = select.EPOLLOUT
        sol_socket, so_error = socket.SOL_SOCKET, socket.SO_ERROR
        einprogress, ealready, eisconn = errno.EINPROGRESS, errno.EALREADY, errno.EISCONN
        af_inet = socket.AF_INET
        spare4: _socket.socket | None = None  # a socket reset by a refused connect, reused
        spare6: _socket.socket | None = None
        reg4: list[_socket.socket] = []  # reset sockets still in the epoll set, reused next fill
        reg6: list[_socket.socket] = []
        econnaborted, econnrefused = errno.ECONNABORTED, errno.ECONNREFUSED
        errno_code = _ERRNO_CODE
        resource_errnos = _RESOURCE_ERRNOS
        monotonic = time.monotonic
        ports = self._ports
        tries = self._tries
        stop = self._stop
        rtt = RttEstimator(
            initial=_INITIAL_TIMEOUT,
            minimum=_MIN_TIMEOUT,
            maximum=_MAX_TIMEOUT,
            fixed=self._fixed_timeout,
        )

        active: dict[int, _Probe] = {}  # fd -> probe in flight
        order: deque[_Probe] = deque()  # probes by start time, for timeouts
        retry: deque[tuple[_Host, int, int]] = deque()
        results: list[tuple[_Host, int, int]] = []
        source_empty = False
        win = self._win
        cap = self._cap
        next_cut = 0.0

        while not stop.is_set():
            # ---- fill the window
            room = win[wid] - len(active)
            starved = False
            items: list[tuple[_Host, int, int]] = []
            if room > 0:
                step = min(room, max(_FILL_STEP, len(reg4) + len(reg6)))
                while retry and len(items) < step:
                    items.append(retry.popleft())
                if len(items) < step and not source_empty:
                    got = self._take(step - len(items))
                    if got:
                        items.extend(got)
                    elif self._exhausted():
                        source_empty = True
                starved = not items
                now = monotonic()
                for n_item, item in enumerate(items):
                    h, p_i, attempt = item
                    fam = h.family
                    regs = reg4 if fam == af_inet else reg6
                    if regs:
                        # A socket reset by its last answer, still in our epoll set: one
                        # connect() is the whole cost of this probe until its answer.
                        rs = regs.pop()
                        rc = rs.connect_ex((h.addr, ports[p_i]))
                        if rc == einprogress:
                            probe = _Probe(rs, h, p_i, now, attempt)
                            active[rs.fileno()] = probe
                            order.append(probe)
                        else:  # an odd state: drop the socket, the probe goes the usual way
                            rs.close()
                            retry.append(item)
                        continue
                    s = spare4 if fam == af_inet else spare6
                    if s is None:
                        try:
                            s = new_socket(fam, _SOCK_TYPE)
                        except OSError as exc:
                            if exc.errno in resource_errnos:
                                retry.extendleft(reversed(items[n_item:]))
                                self._shrink(wid, len(active))
                                break
                            raise
                    addr = (h.addr, ports[p_i])
                    if not n_item & 7:  # a fresh clock now and then is plenty (RTT samples)
                        now = monotonic()
                    rc = s.connect_ex(addr)
                    if rc == einprogress:
                        # On a fast path (loopback, a LAN without delay) the answer is usually
                        # processed before connect() returns. A second connect() then reports
                        # it (ECONNREFUSED, ...) AND resets the socket for the next probe: two
                        # syscalls per closed port instead of socket+connect+getsockopt+close.
                        rc = s.connect_ex(addr)
                        if rc == ealready:
                            # An ICMP error that came back while connect() still held the
                            # socket is only kept as a "soft" error: no epoll event will tell.
                            soft = s.getsockopt(sol_socket, so_error)
                            if soft:
                                s.close()
                                s = None
                                results.append((h, p_i, errno_code.get(soft, 9)))
                                rtt.sample(monotonic() - now)  # an ICMP answer is a round trip
                                if fam == af_inet:
                                    spare4 = s
                                else:
                                    spare6 = s
                                continue
                            # No answer yet: epoll tells when it comes.
                            fd = s.fileno()
                            ep.register(fd, epollout)
                            probe = _Probe(s, h, p_i, now, attempt)
                            active[fd] = probe
                            order.append(probe)
                            s = None
                        else:
                            if not n_item & 7:
                                rtt.sample(monotonic() - now)
                                if win[wid] < cap[wid]:
                                    win[wid] = min(cap[wid], win[wid] + 8)
                            if rc == econnrefused:
                                results.append((h, p_i, _CLOSED))
                            elif rc == 0 or rc == eisconn:
                                if self._opened(s, h, p_i):
                                    results.append((h, p_i, _OPEN))
                                else:
                                    retry.append(item)
                                s = None
                            elif rc in resource_errnos:
                                s.close()
                                s = None
                                retry.append(item)
                            else:
                                results.append((h, p_i, errno_code.get(rc, 9)))
                    elif rc == 0:
                        if self._opened(s, h, p_i):
                            results.append((h, p_i, _OPEN))
                        else:
                            retry.append(item)
                        s = None
                    elif rc in resource_errnos:
                        s.close()
                        s = None
                        retry.extendleft(reversed(items[n_item:]))
                        self._shrink(wid, len(active))
                        break
                    else:
                        # Refused at once (no route, local firewall): a fresh socket is safest.
                        s.close()
                        s = None
                        results.append((h, p_i, errno_code.get(rc, 9)))
                    if fam == af_inet:
                        spare4 = s
                    else:
                        spare6 = s

            # Reset sockets not reused now would wake every epoll wait (level-triggered): close.
            if reg4 or reg6:
                for rs in reg4:
                    rs.close()
                for rs in reg6:
                    rs.close()
                reg4.clear()
                reg6.clear()

            if not active:
                if results:
                    self._record(results)
                    results = []
                if retry or not starved:
                    continue
                if source_empty:
                    break
                # Paced, or hosts may still arrive from discovery: wait a little, look again.
                stop.wait(0.002)
                continue

            # ---- wait for answers or the oldest probe's deadline
            if room > _FILL_STEP and len(items) == _FILL_STEP:
                wait = 0.0  # the window is still filling: only collect what is already in
            else:
                wait = order[0].start + rtt.timeout - monotonic()
                if not source_empty and win[wid] > len(active):
                    wait = min(wait, 0.002)  # paced or waiting for hosts: look again soon
            events = ep.poll(max(0.0, min(wait, 0.05)), len(active))
            now = monotonic()
            for fd, ev in events:
                probe = active.pop(fd)
                probe.done = True
                sock = probe.sock
                if ev == epollout:
                    err = 0
                else:
                    # connect() again on the same address reports the error (ECONNREFUSED,
                    # EHOSTUNREACH, ...) and resets the socket: it is reused, still registered.
                    err = sock.connect_ex((probe.host.addr, ports[probe.p_i]))
                    if err == eisconn:
                        err = 0
                    elif err == ealready:  # not finished after all: keep waiting
                        probe.done = False
                        active[fd] = probe
                        continue
                # Congestion: an answer to a resend means its first probe was lost on the way.
                # Cut the window (once per timeout period, as TCP does once per RTT) so a
                # queue we overflow can drain; grow it back by one per first-try answer.
                if probe.attempt:
                    if now >= next_cut:
                        win[wid] = max(min(cap[wid], _MIN_WINDOW), int(win[wid] * 0.7))
                        next_cut = now + rtt.timeout
                elif win[wid] < cap[wid]:
                    win[wid] += 1
                if err == 0:
                    if self._opened(sock, probe.host, probe.p_i):
                        results.append((probe.host, probe.p_i, _OPEN))
                        rtt.sample(now - probe.start)
                    else:
                        retry.append((probe.host, probe.p_i, probe.attempt))
                    continue
                if err in resource_errnos or err == econnaborted:
                    sock.close()  # closing removes it from the epoll set: no unregister call
                    retry.append((probe.host, probe.p_i, probe.attempt))
                    continue
                (reg4 if probe.host.family == af_inet else reg6).append(sock)
                code = errno_code.get(err, 9)
                results.append((probe.host, probe.p_i, code))
                rtt.sample(now - probe.start)  # a RST or an ICMP error: both are round trips
            # ---- expire probes that got no answer in time
            limit = now - rtt.timeout
            while order and (order[0].done or order[0].start <= limit):
                probe = order.popleft()
                if probe.done:
                    continue
                probe.done = True
                sock = probe.sock
                active.pop(sock.fileno(), None)
                # A soft error (an ICMP unreachable that came while connect() held the socket)
                # is an answer, not silence.
                soft = sock.getsockopt(sol_socket, so_error)
                sock.close()
                if soft and soft not in resource_errnos:
                    results.append((probe.host, probe.p_i, errno_code.get(soft, 9)))
                    continue
                attempt = probe.attempt + 1
                if attempt < tries:
                    retry.append((probe.host, probe.p_i, attempt))
                else:
                    results.append((probe.host, probe.p_i, _NO_RESPONSE))
            if results:
                self._record(results)
                results = []
        # Cancelled or finished: close whatever is still open.
        for probe in active.values():
            probe.sock.close()
        for spare in (spare4, spare6, *reg4, *reg6):
            if spare is not None:
                spare.close()

    def _opened(self, s: _socket.socket, h: _Host, p_i: int) -> bool:
        """Close a connected socket with a RST (no TIME_WAIT left behind); False when it was a
        self-connect: Linux lets a connect to a local closed port pick that very port as its
        source and "connect" to itself (TCP simultaneous open). Not an open port: probe again,
        the next try gets another source port."""
        selfc = False
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
            local = s.getsockname()
            selfc = local[1] == self._ports[p_i] and local[0] == h.addr
        except OSError:
            pass
        s.close()
        return not selfc

    def _shrink(self, wid: int, in_flight: int) -> None:
        """Out of descriptors or ports: the window becomes what actually fitted, minus a margin."""
        self.resource_waits += 1
        # The window grows back by itself as answers come (descriptors held elsewhere, e.g. by
        # banner grabs, may be freed later); each new shortage costs only one failed call.
        self._win[wid] = max(4, min(self._win[wid] - 1, int(in_flight * 0.9)))
        if in_flight == 0:
            time.sleep(0.01)  # nothing of ours to wait for: someone else holds the descriptors


def connect_scan(
    hosts: Iterable[Address] | Address,
    ports: Sequence[int] | str | int,
    **options: object,
) -> Iterator[ScanHostResult]:
    """Scan `hosts` x `ports` with TCP connects; yields each host's result as it completes.

    `hosts`: a TargetSpace, one spec (``"127.0.0.1"``, ``"localhost"``) or an iterable of them;
    `ports`: ints 1-65535 or a spec string (``"22,80,ssh"``). `options` are ConnectScanner's
    (timeout, retries, threads, rate, shard, seed, window, max_active_hosts). Everything is
    checked before the scan starts, as the CLI checks it, raising only HilosError subclasses
    (InvalidArgument, TargetError, ResolveError, PortSpecError; see hilos.validate).

    >>> for h in connect_scan(["127.0.0.1"], [22, 80]): ...  # doctest: +SKIP
    """
    import inspect
    from collections.abc import Callable

    from hilos import validate
    from hilos.errors import InvalidArgument

    known = set(inspect.signature(ConnectScanner.__init__).parameters) - {"self", "hosts", "ports"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidArgument(f"connect_scan got unknown option(s): {', '.join(unknown)}")
    checks: dict[str, Callable[[object], object]] = {
        "timeout": validate.check_timeout,
        "rate": validate.check_rate,
        "threads": validate.check_threads,
        "seed": validate.check_seed,
        "shard": validate.check_shard,
        "retries": lambda v: validate.check_retries(1 if v is None else v),
        "window": lambda v: validate.check_threads(v, limit=1 << 20, name="window"),
        "max_active_hosts": lambda v: validate.check_threads(
            v, limit=1 << 20, name="max_active_hosts"
        ),
    }
    checked = {k: checks[k](v) if k in checks else v for k, v in options.items()}
    checked_hosts = validate.check_scan_hosts(hosts)
    scanner = ConnectScanner(
        checked_hosts,
        validate.check_ports(ports),
        **checked,  # type: ignore[arg-type]
    )
    return validate.with_hostnames(_connect_results(scanner), checked_hosts)


def _connect_results(scanner: ConnectScanner) -> Iterator[ScanHostResult]:
    """connect_scan's generator: its arguments were checked when it was called, not here."""
    try:
        yield from scanner.results()
    finally:
        scanner.cancel()
