"""The raw SYN scan: a stateless sender and receiver walking hosts x ports in a keyed random order.

One sender thread walks the (host x port) index space in the order of a keyed `Permutation`
(reproducible with `seed`; ``shard=(i, n)`` takes every n-th step of that walk, so shards are
disjoint and together the whole job) and sends a SYN per index, paced by the shared TokenBucket.
The receiver thread of `TcpTransport` validates each reply by recomputing its cookie. Per index
only one bit is kept ("final"), plus a small dict of the indices that answered:

    open      SYN-ACK                                         reason syn-ack
    closed    RST                                             reason reset
    filtered  no answer after `retries` resends               reason no-response
              ICMP/ICMPv6 destination unreachable             reason host-unreach, port-unreach,
                                                                     admin-prohibited, ...

Retries resend only indices still without an answer, pipelined: the retry pass follows the walk
`timeout` seconds behind the first pass, so a scan costs (probes sent) / rate + about two timeouts.
Without a fixed `timeout`, it adapts to the RTTs measured from the replies (srtt + 4 rttvar, RFC
6298, and 1.5x the recent peak RTT; clamped to 30 ms .. 2.5 s). A probe is given up only once the
receiver has drained everything that arrived before its deadline, so a busy receiver never turns a
late answer into "filtered". RTTs rising above the smallest one seen (a queue building up
somewhere) halve the send pace (delay-based congestion control); it grows back while they do not.
Two sender processes (fork) share the walk when the machine has two cores or more.

Usage::

    for host in syn_scan(["127.0.0.1"], [22, 80, 443], seed=1):
        print(host.host, [(p.port, p.state) for p in host.ports])
"""

from __future__ import annotations

import array
import contextlib
import errno
import ipaddress
import mmap
import os
import queue
import select
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from itertools import islice

from hilos.errors import NetworkError, UsageError, from_oserror
from hilos.probes.base import KIND_SYN_ACK, KIND_UNREACH, SPORT_BASE, SPORT_MASK, TICK_SHIFT, Reply
from hilos.probes.tcp_transport import TcpTransport
from hilos.results import PortResult, ScanHostResult, ScanStats
from hilos.targets import Permutation
from hilos.targets.ports import service_name
from hilos.validate import MAX_RETRIES
from hilos.wire.cookie import Cookie
from hilos.wire.frames import MSS, SYN, WINDOW, SynTemplate4
from hilos.wire.link import LinkTx
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.sockets import can_raw, source_address

__all__ = ["MAX_HOSTS", "SynScanner", "can_raw", "syn_scan"]

Address = str | ipaddress.IPv4Address | ipaddress.IPv6Address

#: A scan keeps a small table per host (address, cookie seed, checksum part): this bounds it.
MAX_HOSTS = 1 << 22
_CHUNK = 256  # indices per scheduling step; a retry pass follows the first pass chunk by chunk
_BATCH = 32  # packets per token-bucket take and per source-port (send time) tick update
_MIN_TIMEOUT = 0.03
_MAX_TIMEOUT = 2.5
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
_M2 = 0xBF58476D1CE4E5B9
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
    ) -> None:
        if not 0 <= retries <= MAX_RETRIES:
            raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries}")
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
        self._senders = max(1, senders)
        # Sender processes (fork): the kernel half of each send runs on its own core, and no GIL
        # is shared with the receiver. Default: one per core, at most 2 (measured on 2 cores).
        cpus = os.cpu_count() or 1
        self._processes = max(1, min(2, cpus) if processes is None else processes)
        self._rate = rate
        self._children: list[tuple[int, int]] = []  # (pid, read end of its pipe)
        self._child_fd: int | None = None  # in a child: the write end of its pipe to the parent
        self._child_sent = 0
        self._parent_pid = os.getpid()
        # Shared with sender processes: receiver idle_at, timeout, pace, cancel, sent counters.
        self._ctl = mmap.mmap(-1, _CTL_SENT + 8 * self._processes)
        self._child_slot = 0
        self._child_total = 0
        # Delay-based congestion control (see _control): a pace cap set when RTTs rise above
        # the smallest RTT seen, i.e. when probes or answers start waiting in some queue.
        self._pace = 0.0
        self._pace_next = 0.0
        self._rtt_min: float | None = None
        self._rtt_imax = 0.0
        self._rtt_isum = 0.0
        self._rtt_icount = 0
        self._rtt_peak = 0.0
        self._ctl_next = 0.0
        self._ctl_last = 0.0
        self._ctl_sent = 0
        self._ctl_hold = 0.0
        self._fixed_timeout = timeout
        self._seed = 0 if seed is None else seed
        self._shard = shard
        self._on_progress = on_progress
        self._bucket = TokenBucket(rate, burst=_BATCH * 2)
        self._cookie = Cookie()
        self._load_hosts(hosts)
        self._total = self._nh * self._np
        # `only`: the walk covers every host given but probes only these (discovery's answer),
        # so a shard does not depend on what discovery found, or in which order.
        self._skip: bytearray | None = None
        if only is not None:
            self._skip = bytearray(name not in only for name in self._names)
            if self._shard is None:
                self._shard = (1, 1)  # per-host expected counts leave the skipped hosts out
        self._goal = self._total  # final indices at which the scan is over (set in _prepare)
        # One bit per index: its state is known. Shared memory, so sender processes see it.
        self._final = mmap.mmap(-1, max(1, (self._total + 7) // 8))
        self._codes: dict[int, int] = {}  # index -> result code, only for answered indices
        self._done = [0] * self._nh  # final indices per host
        self._expected: list[int] | None = None  # per host, only when sharded (else = nports)
        self._rtt: dict[int, float] = {}  # host -> smallest RTT seen (ms), answering hosts only
        self._lock = threading.Lock()
        self._completed: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._reported = bytearray(self._nh)
        # Host has at least one answered port (shared: sender processes read it).
        self._has_code = mmap.mmap(-1, max(1, self._nh))
        self._recovered = 0  # probes answered only after a resend (per sender)
        self._silent: tuple[PortResult, ...] | None = None
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
        self._engine: TcpTransport | None = None
        self._link: LinkTx | None = None
        self._use_link = True
        self._thread: threading.Thread | None = None
        # Immutable PortResult objects shared by every host: (port index, code) -> result.
        self._port_results: dict[tuple[int, int], PortResult] = {}

    # ---------------------------------------------------------------- setup

    def _load_hosts(self, hosts: Iterable[Address] | Sequence[Address]) -> None:
        # Per host: ((text, 0) sendto address, cookie seed, packed v4 address or None, checksum
        # part (pseudo-header, constant words, destination), packet prefix). About 1 us a host.
        table: list[_Entry] = []
        names: list[str] = []
        self._index4: dict[int, int] = {}
        self._index6: dict[int, int] = {}
        templates: dict[int, SynTemplate4] = {}
        k1, k2 = self._cookie.k1, self._cookie.k2
        fams: set[int] = set()
        append, name_append = table.append, names.append
        index4, index6 = self._index4, self._index6
        for version, ip in _host_ints(hosts):
            if ip in (index4 if version == 4 else index6):
                continue  # a duplicate: scanned once, reported once
            h = len(table)
            if h >= MAX_HOSTS:
                raise UsageError(
                    f"a SYN scan takes at most {MAX_HOSTS} addresses per run: split the targets"
                )
            # Cookie.host_seed, inlined: this runs once per address of a possibly huge range.
            x = ((ip & _MASK64) ^ k1) * _M1 & _MASK64
            x ^= x >> 31
            x = ((x ^ (ip >> 64) ^ k2) * _M2) & _MASK64
            seed = x ^ (x >> 29)
            if version == 4:
                d4 = ip.to_bytes(4, "big")
                name = socket.inet_ntoa(d4)
                tpl = templates.get(ip >> 8)  # one route lookup per /24 (sends nothing)
                if tpl is None:
                    tpl = templates[ip >> 8] = SynTemplate4(source_address(name))
                base = tpl.const + (ip >> 16) + (ip & 0xFFFF) + _SYN_WORD
                append(((name, 0), seed, d4, base, tpl.prefix, None))
                index4[ip] = h
                fams.add(4)
            else:
                name = socket.inet_ntop(socket.AF_INET6, ip.to_bytes(16, "big"))
                append(((name, 0), seed, None, 0, b"", None))
                index6[ip] = h
                fams.add(6)
            name_append(name)
        self._nh = len(table)
        self._names = names
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
        self._engine = self._make_engine()
        target = self._sender_main
        # Forking pays off only for big jobs (a fork of a large process costs milliseconds).
        big = self._total >= _FORK_MIN_PROBES
        if self._processes > 1 and big and type(self._engine) is TcpTransport:
            # Fork before any thread of ours runs (a child inherits no half-held lock of ours).
            try:
                self._prepare()
                self._fork_senders()
            except BaseException:
                self.cancel()
                raise
            target = self._coordinate
        self._engine.start()
        self._thread = threading.Thread(target=target, name="hilos-syn-tx", daemon=True)
        self._thread.start()
        return self

    def _make_engine(self) -> TcpTransport:
        return TcpTransport(self._on_reply, families=self._families, cookie=self._cookie)

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
        self._ctl[_CTL_CANCEL] = 1
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._reap_children()
        if self._engine is not None:
            self._engine.close()
        if self._link is not None and (self._thread is None or not self._thread.is_alive()):
            self._link.close()

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
        # The smoothed estimate lags a queue building up: also cover 1.5x the recent peak RTT.
        t = max(self._srtt + 4 * self._rttvar, 1.5 * self._rtt_peak) + 0.002
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
            # RFC 6298 smoothing; samples are quantised to 0.26 ms ticks.
            rtt = r.rtt_ms / 1000.0
            if self._rtt_min is None or rtt < self._rtt_min:
                self._rtt_min = rtt
            if rtt > self._rtt_imax:
                self._rtt_imax = rtt
            self._rtt_isum += rtt
            self._rtt_icount += 1
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
            self._has_code[h] = 1
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

    def _prepare(self) -> None:
        if self._shard is not None:
            self._count_shard()
            assert self._expected is not None
            self._goal = sum(self._expected)
        if self._use_link and 4 in self._families:
            self._setup_link()

    def _parts(self, count: int) -> list[tuple[int, int]]:
        # Parts of shard (i, n): shards (i + n*j, n*count), j < count; disjoint, and together
        # exactly shard (i, n).
        i, n = self._shard or (1, 1)
        return [(i + n * j, n * count) for j in range(count)]

    # ---------------------------------------------------------------- sender processes

    def _fork_senders(self) -> None:
        parts = self._parts(self._processes)
        for slot, part in enumerate(parts):
            rfd, wfd = os.pipe()
            pid = os.fork()
            if pid == 0:  # the child: send this part, report through the pipe, never return
                code = 1
                try:
                    os.close(rfd)
                    for _pid, other in self._children:
                        os.close(other)
                    self._child_fd = wfd
                    self._child_slot = _CTL_SENT + 8 * slot
                    self._bucket = TokenBucket(
                        None if self._rate is None else self._rate / len(parts), burst=_BATCH * 2
                    )
                    self._send_all(part)
                    self._child_write(_MSG_SENT, struct.pack("!Q", self._child_sent))
                    code = 0
                except BaseException as exc:
                    with contextlib.suppress(BaseException):
                        self._child_write(_MSG_ERROR, repr(exc).encode()[:4000])
                finally:
                    os._exit(code)
            os.close(wfd)
            self._children.append((pid, rfd))

    def _child_write(self, kind: int, payload: bytes) -> None:
        fd = self._child_fd
        assert fd is not None
        data = _MSG.pack(kind, len(payload)) + payload
        while data:
            data = data[os.write(fd, data) :]

    def _coordinate(self) -> None:
        """Parent side of the sender processes: publish the receiver's progress and the timeout
        to them, finalize the probes they give up on, collect their errors."""
        engine = self._engine
        assert engine is not None
        bufs = {fd: b"" for _pid, fd in self._children}
        poller = select.poll()
        for fd in bufs:
            poller.register(fd, select.POLLIN | select.POLLHUP)
        open_fds = set(bufs)
        ctl = self._ctl
        next_progress = 0.0
        try:
            slots = range(_CTL_SENT, _CTL_SENT + 8 * len(self._children), 8)
            while open_fds:
                now = time.monotonic()
                self._control(now, sum(_COUNT.unpack_from(ctl, o)[0] for o in slots))
                _CTL.pack_into(ctl, 0, engine.idle_at, self.timeout, self._pace)
                engine.check()
                for fd, _ev in poller.poll(1):
                    chunk = os.read(fd, 1 << 16)
                    if not chunk:
                        poller.unregister(fd)
                        open_fds.discard(fd)
                        continue
                    bufs[fd] = self._handle_messages(bufs[fd] + chunk)
                now = time.monotonic()
                if now >= next_progress:
                    next_progress = now + 0.25
                    self._report_progress()
                if self._final_count >= self._goal:
                    ctl[_CTL_DONE] = 1  # every probe answered: the senders may stop
            with self._lock:
                children, self._children = self._children, []
            for pid, fd in children:
                os.close(fd)
                _pid, status = os.waitpid(pid, 0)
                if status != 0 and self._error is None and not self._cancel.is_set():
                    self._error = NetworkError(f"SYN sender process failed (status {status})")
        except BaseException as exc:
            if self._error is None:
                self._error = exc
        finally:
            self._report_progress()
            self._finished.set()

    def _handle_messages(self, buf: bytes) -> bytes:
        while len(buf) >= _MSG.size:
            kind, size = _MSG.unpack_from(buf)
            if len(buf) < _MSG.size + size:
                break
            payload = buf[_MSG.size : _MSG.size + size]
            buf = buf[_MSG.size + size :]
            if kind == _MSG_FINAL:
                idx = array.array("Q")
                idx.frombytes(payload)
                self._finalize(idx)
            elif kind == _MSG_SENT:
                with self._lock:
                    self._sent += struct.unpack("!Q", payload)[0]
            elif kind == _MSG_ERROR and self._error is None:
                self._error = NetworkError(
                    f"SYN sender process: {payload.decode(errors='replace')}"
                )
                self._cancel.set()
                self._ctl[_CTL_CANCEL] = 1
        return buf

    def _reap_children(self) -> None:
        with self._lock:
            children, self._children = self._children, []
        deadline = time.monotonic() + 1.0
        for pid, fd in children:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(pid, os.WNOHANG) == (0, 0):
                    if time.monotonic() > deadline:
                        os.kill(pid, signal.SIGKILL)
                        os.waitpid(pid, 0)
                        break
                    time.sleep(0.005)

    # ---------------------------------------------------------------- sender threads

    def _sender_main(self) -> None:
        try:
            self._prepare()
            # Each sender thread walks its own part of the shard: the Python half of one send
            # overlaps the kernel half (no GIL) of the other's.
            count = self._senders
            threads = [
                threading.Thread(
                    target=self._sender_part, args=(part,), name=f"hilos-syn-tx-{j}", daemon=True
                )
                for j, part in enumerate(self._parts(count))
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException as exc:  # handed to results(): a dead sender must not hang it
            self._error = exc
        finally:
            self._finished.set()

    def _setup_link(self) -> None:
        """Send IPv4 probes as Ethernet frames to the gateway (hilos.probes.icmp.LinkTx, shared
        with the sweep): no route, netfilter or qdisc work per packet in our own namespace,
        about 20-40% less kernel time per probe. Hosts it does not cover keep the IP socket."""
        table = self._table
        np_ = self._np
        # A probe of this walk (this shard, live hosts only): a probe outside it would be
        # counted final too, and the scan would end one answer early (it ends when every probe
        # of the walk is final).
        first = next(
            (i for i in islice(self._walk(), 4096) if table[i // np_][2] is not None), None
        )
        engine = self._engine
        if first is None or engine is None or engine.tx4 is None:
            return
        d4 = table[first // np_][2]
        assert d4 is not None

        def resolve() -> None:
            # The gateway's MAC is not known yet: send the first probe the ordinary way (a real
            # probe of the scan, answered and counted as usual) so the kernel resolves it.
            self._send_chunk(iter([first]), 1, False, None)

        link = LinkTx.for_route(int.from_bytes(d4, "big"), resolve=resolve)
        if link is None:
            return
        head, partial = link.ip_prefix(6, 44)
        src4 = link.source.to_bytes(4, "big")
        covers = link.covers
        used = 0
        for h, (addr, seed, d4h, base, prefix, _f) in enumerate(table):
            if d4h is None or prefix[12:16] != src4:
                continue  # IPv6, or another source address (the TCP checksum covers it)
            ip = int.from_bytes(d4h, "big")
            if not covers(ip):
                continue
            csum = 0xFFFF - (partial + (ip >> 16) + (ip & 0xFFFF)) % 0xFFFF
            table[h] = (addr, seed, d4h, base, prefix, head + csum.to_bytes(2, "big") + src4 + d4h)
            used += 1
        if used:
            self._link = link
        else:
            link.close()

    def _sender_part(self, part: tuple[int, int]) -> None:
        try:
            self._send_all(part)
        except BaseException as exc:
            self._error = exc
            self._cancel.set()

    def _walk(self, part: tuple[int, int] | None = None) -> Iterator[int]:
        perm = Permutation(self._total, self._seed)
        if part is None:
            part = self._shard or (1, 1)
        skip = self._skip
        if skip is not None:
            np_ = self._np
            return (i for i in perm.shard(*part) if not skip[i // np_])
        return perm.shard(*part)

    def _count_shard(self) -> None:
        # Each host is final once all of *its* probes in this shard are: count them first (one
        # cheap extra walk; a cyclic-group step is a multiplication).
        expected = [0] * self._nh
        np_ = self._np
        for idx in self._walk():
            expected[idx // np_] += 1
        self._expected = expected

    def _send_all(self, part: tuple[int, int]) -> None:
        engine = self._engine
        assert engine is not None
        child = self._child_fd is not None
        ctl = self._ctl
        parent = self._parent_pid
        passes = self._retries + 1
        last = passes - 1
        # Each pass re-walks the same order one chunk behind the previous one; a pass's walk is
        # made only when it first has something to resend (nothing up front per pass).
        walks: list[Iterator[int] | None] = [None] * passes
        walks[0] = self._walk(part)
        # pending[k]: chunks sent by pass k as (time sent, indices consumed, sent indices if last)
        pending: list[deque[tuple[float, int, list[int] | None]]] = [deque() for _ in range(passes)]
        # Extra rounds for live hosts once losses are seen: (time sent, indices, round).
        extra: deque[tuple[float, list[int], int]] = deque()
        first_done = False
        cancel = self._cancel
        next_progress = 0.0
        while not cancel.is_set():
            if child:
                # The parent publishes the receiver's progress and the timeout; stop if it is
                # gone (never keep sending for a dead scan).
                idle, timeout, _pace = _CTL.unpack_from(ctl, 0)
                if ctl[_CTL_CANCEL] or os.getppid() != parent:
                    break
            else:
                engine.check()
                self._control(time.monotonic(), self._sent)
                idle = engine.idle_at
                timeout = self.timeout
            worked = False
            # 1. give up on last-pass probes whose deadline the receiver has fully caught up with
            fin = pending[last]
            while fin and fin[0][0] + timeout <= idle:
                sent_last = fin.popleft()[2]
                assert sent_last is not None
                self._settle(sent_last, 0, extra)
                worked = True
            while extra and extra[0][0] + timeout <= idle:
                _t, again, rnd = extra.popleft()
                self._settle(again, rnd, extra)
                worked = True
            # 2. resend what is still unanswered, one chunk behind the previous pass each
            for k in range(last, 0, -1):
                prev = pending[k - 1]
                while prev and prev[0][0] + timeout <= idle and not cancel.is_set():
                    _t, count, _ = prev.popleft()
                    collect: list[int] | None = [] if k == last else None
                    walk = walks[k]
                    if walk is None:
                        walk = walks[k] = self._walk(part)
                    self._send_chunk(walk, count, True, collect)
                    pending[k].append((time.monotonic(), count, collect))
                    worked = True
            # 3. one new chunk of the first pass
            if not first_done:
                collect = [] if last == 0 else None
                first = walks[0]
                assert first is not None
                count = self._send_chunk(first, _CHUNK, False, collect)
                if count:
                    pending[0].append((time.monotonic(), count, collect))
                    worked = True
                if count < _CHUNK:
                    first_done = True
            now = time.monotonic()
            if now >= next_progress and not child:
                next_progress = now + 0.25
                self._report_progress()
            if first_done and not any(pending) and not extra:
                break
            # Every probe answered: nothing is outstanding, no resend or deadline is left to
            # wait for (a scan of open ports ends at once, not after (retries+1) x timeout).
            if first_done and (ctl[_CTL_DONE] if child else self._final_count >= self._goal):
                break
            if not worked:
                # Nothing due yet: sleep until the oldest deadline (or a short while when the
                # receiver has not caught up yet).
                heads = [q[0][0] for q in pending if q] + ([extra[0][0]] if extra else [])
                wait = min(heads) + timeout - now if heads else 0.005
                time.sleep(min(0.01, max(0.0005, wait)))
        if not child:
            self._report_progress()

    def _settle(
        self, sent: list[int], rnd: int, extra: deque[tuple[float, list[int], int]]
    ) -> None:
        """The deadline of probes sent by the last pass (or an extra round) has passed.

        Any of them answered now was lost or late before: evidence of loss. Once there is
        some, the still unanswered probes of hosts that did answer elsewhere (so they are up)
        get up to _EXTRA_ROUNDS more tries before they count as filtered; silent hosts do not
        (that would resend every probe of every dead address).
        """
        final, has = self._final, self._has_code
        unanswered = [i for i in sent if not final[i >> 3] >> (i & 7) & 1]
        self._recovered += len(sent) - len(unanswered)
        if unanswered and self._retries and self._recovered and rnd < _EXTRA_ROUNDS:
            np_ = self._np
            again = [i for i in unanswered if has[i // np_]]
            if again:
                self._send_chunk(iter(again), len(again), True, None)
                extra.append((time.monotonic(), again, rnd + 1))
                unanswered = [i for i in unanswered if not has[i // np_]]
        if self._child_fd is not None:
            self._child_write(_MSG_FINAL, array.array("Q", unanswered).tobytes())
            self._child_write(_MSG_SENT, struct.pack("!Q", self._child_sent))
            self._child_sent = 0
        else:
            self._finalize(unanswered)

    def _finalize(self, indices: Iterable[int]) -> None:
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
        many indices were consumed (fewer than `count` when the walk ends). The hot loop."""
        engine = self._engine
        assert engine is not None
        tx4, tx6 = engine.tx4, engine.tx6
        send4 = tx4.sendto if tx4 is not None else _no_socket
        send6 = tx6.sendto if tx6 is not None else _no_socket
        table = self._table
        ports = self._ports
        np_ = self._np
        final = self._final
        take = self._bucket.take
        mono_ns = time.monotonic_ns
        pack4 = _PACK4
        seg6 = _SEG6_PACK
        wf, suffix = _WIN_FLAGS_SYN, _SUFFIX
        link_send = self._link.sock.send if self._link is not None else _no_link
        pack_frame = _PACK_FRAME
        consumed = sent = budget = sport = 0
        for idx in islice(walk, count):
            consumed += 1
            if skip_final and final[idx >> 3] >> (idx & 7) & 1:
                continue
            if budget == 0:
                take(_BATCH)
                self._pace_wait()
                budget = _BATCH
                sport = SPORT_BASE + ((mono_ns() >> TICK_SHIFT) & SPORT_MASK)
            budget -= 1
            h, pi = divmod(idx, np_)
            addr, seed, d4, base, prefix, frame = table[h]
            port = ports[pi]
            x = (seed ^ (port << 16) ^ sport) * _M3 & _MASK64
            x ^= x >> 32
            seq = (x * _M1 & _MASK64) >> 32
            if d4 is not None:
                c = base + port + sport + (seq >> 16) + (seq & 0xFFFF)
                c = (c & 0xFFFF) + (c >> 16)
                c = ~((c & 0xFFFF) + (c >> 16)) & 0xFFFF
                if frame is not None:
                    pkt = pack_frame(frame, sport, port, seq, 0, wf, c, suffix)
                    try:
                        link_send(pkt)
                    except OSError as exc:
                        self._send_error(exc, link_send, pkt, None)
                else:
                    pkt = pack4(prefix, d4, sport, port, seq, 0, wf, c, suffix)
                    try:
                        send4(pkt, addr)
                    except OSError as exc:
                        self._send_error(exc, send4, pkt, addr)
            else:
                pkt = seg6(sport, port, seq, 0, _SEG6_FLAGS, WINDOW, 0, 0, 2, 4, MSS)
                try:
                    send6(pkt, addr)
                except OSError as exc:
                    self._send_error(exc, send6, pkt, addr)
            sent += 1
            if collect is not None:
                collect.append(idx)
        if self._child_fd is None:
            with self._lock:
                self._sent += sent
        else:
            self._child_sent += sent
            self._child_total += sent
            _COUNT.pack_into(self._ctl, self._child_slot, self._child_total)
        return consumed

    def _pace_wait(self) -> None:
        """Hold this sender to its share of the congestion pace (if one is set)."""
        child = self._child_fd is not None
        pace = _PACE.unpack_from(self._ctl, 16)[0] if child else self._pace
        if pace <= 0:
            return
        share = pace / self._processes if child else pace
        now = time.monotonic()
        nxt = max(self._pace_next, now - 0.005)  # after a pause, no catch-up burst
        nxt += _BATCH / share
        self._pace_next = nxt
        if nxt > now:
            time.sleep(nxt - now)

    def _control(self, now: float, sent: int) -> None:
        """Delay-based congestion control, about once per RTT (parent side only).

        RTT samples well above the smallest one mean our probes or their answers queue up
        somewhere (a slow link, a router, our own receiver): halve the pace to the rate
        actually achieved, and hold it while the queue drains; otherwise grow it by 15% per
        interval. nmap's -T5 without this lost answers under 40 ms of latency.
        """
        if now < self._ctl_next:
            return
        dt = now - self._ctl_last if self._ctl_last else 0.0
        rate = (sent - self._ctl_sent) / dt if dt > 0 else 0.0
        self._ctl_last, self._ctl_sent = now, sent
        peak, self._rtt_imax = self._rtt_imax, 0.0
        total, count = self._rtt_isum, self._rtt_icount
        self._rtt_isum, self._rtt_icount = 0.0, 0
        self._rtt_peak = max(peak, self._rtt_peak * 0.8)
        srtt = self._srtt or 0.0
        self._ctl_next = now + min(0.2, max(0.02, 2 * srtt))
        base = self._rtt_min
        if base is None or count == 0:
            return
        # The interval's mean, not its peak: one answer that waited for our own receiver thread
        # (the GIL) is not a queue in the network.
        if total / count > base + max(0.03, base):
            if now >= self._ctl_hold and rate > 0:
                cur = min(self._pace, rate) if self._pace > 0 else rate
                self._pace = max(_MIN_PACE, cur * 0.5)
                self._ctl_hold = now + max(0.05, 2 * peak)
        elif self._pace > 0 and now >= self._ctl_hold:
            self._pace *= 1.15

    @staticmethod
    def _send_error(
        exc: OSError, send: Callable[..., int], pkt: bytes, addr: tuple[str, int] | None
    ) -> None:
        """A send failed: wait out a full queue and resend, or leave the probe unanswered."""
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EPERM, errno.EACCES):
            return  # no route, or a local firewall: the probe stays unanswered (filtered)
        if exc.errno not in _RETRY_SEND:
            raise exc
        for attempt in range(1, 200):
            time.sleep(0.0002 * attempt)  # the device queue is full: let it drain
            try:
                if addr is None:
                    send(pkt)
                else:
                    send(pkt, addr)
                return
            except OSError as again:
                if again.errno not in _RETRY_SEND:
                    raise
        raise from_oserror(exc, "sending SYN probes")

    # ---------------------------------------------------------------- results

    def _report_progress(self) -> None:
        if self._on_progress is not None and self._started:
            self._on_progress(self.stats)

    def _port_result(self, pi: int, code: int) -> PortResult:
        key = (pi, code)
        r = self._port_results.get(key)
        if r is None:
            state, reason = _CODES[code]
            port = self._ports[pi]
            # Like nmap's SYN scan, name open/filtered ports from the port table (the CLI would
            # do it per host otherwise: sharing one object per (port, state) keeps it cheap).
            # Closed ports too, as nmap does (`22/tcp closed ssh`).
            service = service_name(port)
            r = self._port_results[key] = PortResult(port, state, reason, service=service)  # type: ignore[arg-type]
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
        sharded = self._expected is not None
        if not self._has_code[h] and not sharded:
            # Most hosts of a big sweep never answer: one shared all-filtered port tuple.
            if self._silent is None:
                self._silent = tuple(self._port_result(i, _NO_RESPONSE) for i in range(self._np))
            return ScanHostResult(self._names[h], "down", "no-response", self._silent, None)
        with self._lock:
            codes = [self._codes.pop(base + i, _NO_RESPONSE) for i in range(self._np)]
        ports = tuple(
            self._port_result(i, c)
            for i, c in enumerate(codes)
            if not sharded or final[(base + i) >> 3] >> ((base + i) & 7) & 1
        )
        return self._host_result(h, ports)


# Per host: ((text, 0) sendto address, cookie seed, packed v4 address or None, TCP checksum part,
# IP_HDRINCL packet prefix, Ethernet frame prefix when the LinkTx path covers the host).
_Entry = tuple[tuple[str, int], int, bytes | None, int, bytes, bytes | None]


def _host_ints(hosts: Iterable[Address] | Sequence[Address]) -> Iterator[tuple[int, int]]:
    """(version, integer address) of each target, without building ipaddress objects."""
    ranges = getattr(hosts, "iter_ranges", None)
    if ranges is not None:  # a hilos.targets.TargetSpace: walk its runs of consecutive addresses
        for first, last in ranges():
            v = first.version
            for ip in range(int(first), int(last) + 1):
                yield v, ip
        return
    for a in hosts:
        if isinstance(a, str):
            try:
                yield 4, int.from_bytes(socket.inet_pton(socket.AF_INET, a), "big")
                continue
            except OSError:
                pass
            try:
                yield 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, a.split("%")[0]), "big")
            except OSError:
                raise UsageError(f"not an IP address: {a!r}") from None
        else:
            yield a.version, int(a)


def _no_socket(pkt: bytes, addr: tuple[str, int]) -> int:
    raise NetworkError(f"no raw socket for the address family of {addr[0]}")


def _no_link(pkt: bytes) -> int:
    raise NetworkError("no link-layer socket")


# Parent <-> sender processes: a shared control block and framed messages on a pipe.
_CTL = struct.Struct("=ddd")  # receiver idle_at, current timeout, pace (packets/s, 0: none)
_CTL_CANCEL = _CTL.size  # one byte after the doubles: set when the scan is cancelled
_CTL_DONE = _CTL.size + 1  # set when every probe is final: the senders stop waiting
_CTL_SENT = _CTL.size + 8  # then one 8-byte counter of packets sent per sender process
_PACE = struct.Struct("=d")
_COUNT = struct.Struct("=Q")
_MIN_PACE = 500.0  # congestion control never slows below this many packets/s
_FORK_MIN_PROBES = 20_000  # smaller jobs stay in one process
_EXTRA_ROUNDS = 3  # more tries for unanswered ports of live hosts once losses are seen
_MSG = struct.Struct("=BQ")  # kind, payload length
_MSG_FINAL, _MSG_SENT, _MSG_ERROR = 1, 2, 3

_SYN_WORD = (6 << 12) | SYN
_SEG6_PACK = struct.Struct("!HHIIHHHHBBH").pack
_PACK4 = struct.Struct("!16s4sHHII4sH6s").pack
# An Ethernet frame: eth header, IPv4 header (with its checksum) up to the destination, then TCP.
_PACK_FRAME = struct.Struct("!34sHHII4sH6s").pack
_WIN_FLAGS_SYN = struct.pack("!HH", (6 << 12) | SYN, WINDOW)
_SUFFIX = struct.pack("!HBBH", 0, 2, 4, MSS)


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
