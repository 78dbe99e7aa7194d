"""The batched sweep (issue 11): probes filled and validated a batch at a time in numpy
(hilos.wire.vector), one answered bit per address, for IPv4 targets reached by a raw IP socket
(127.0.0.0/8: where every address answers, the per-packet Python work was the wall)."""

from __future__ import annotations

import fcntl
import socket
import termios
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

import numpy as np
import numpy.typing as npt

from hilos.probes.base import KIND_SYN_ACK, SPORT_BASE, SPORT_COUNT
from hilos.probes.vector import KIND_ECHO, EchoVector, TcpVector
from hilos.results import HostResult
from hilos.sweep.base import Method
from hilos.targets.walk import Permutation
from hilos.wire.bpf import attach, reply_filter
from hilos.wire.cookie import Cookie
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.rx import RxBatch, grow_rcvbuf, raw_drops
from hilos.wire.vector import U16, Answers, FrameBatch, VectorProbe, median, walk_batches

__all__ = ["BATCH", "DenseSweep"]

SENDERS: Final = 2  # sender threads (the GIL is released during sendmmsg)
BATCH: Final = 512  # probes per sendmmsg (zmap's default is 64; numpy wants a few hundred)
_SOURCE: Final = 0x7F000001
_REASONS: Final = {KIND_ECHO: "echo-reply", KIND_SYN_ACK: "syn-ack"}  # else "reset"
_NONE, _ECHO, _SYNACK, _RESET = 0, 1, 2, 3

# (addresses, reasons, RTTs in ms) of newly found hosts -> their results, built in one go.
Found = Callable[[list[int], list[str], list[float | None]], list[HostResult]]


def _queued(sock: socket.socket) -> int:
    """Bytes of the next datagram waiting on `sock` (0: none)."""
    got = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(got, "little")


class DenseSweep:
    """Sends passes over `ranges` in batches and marks answers in a bitmap (1 byte/address: a
    /10 takes 4 MB, flat). `on_results(list)` gets each batch of new up hosts as HostResults
    (`found(addr, reason, rtt_ms)` makes one); `on_rtt(seconds)` a sample per reply batch.

    Method auto sends echo requests first and adds TCP SYN 443 + ACK 80 in the retry passes,
    to the addresses that stayed silent (with no retry pass: all three at once)."""

    def __init__(
        self,
        ranges: list[tuple[int, int]],
        method: Method,
        cookie: Cookie,
        bucket: TokenBucket,
        found: Found,
        on_results: Callable[[list[HostResult]], None],
        on_rtt: Callable[[float], None],
        order_seed: int | None,
    ) -> None:
        self.firsts = np.array([a for a, _ in ranges], dtype=np.int64)
        self.lasts = np.array([b for _, b in ranges], dtype=np.int64)
        sizes = self.lasts - self.firsts + 1
        self.starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.size = int(sizes.sum())
        self.reason = np.zeros(self.size, dtype=np.uint8)  # _NONE, _ECHO, _SYNACK, _RESET
        self.method = method
        self.bucket = bucket
        self.found = found
        self.on_results = on_results
        self.on_rtt = on_rtt
        self.order_seed = order_seed
        self.up = 0
        self.progress = 0
        self.sent = 0  # frames handed to the kernel
        self.drops = 0  # replies the kernel dropped (full receive buffer), known after settle
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.echo = EchoVector(cookie, b"", _SOURCE)  # the sweep's one cookie keys all three
        self.syn = TcpVector(cookie, b"", _SOURCE)
        self.ack = TcpVector(cookie, b"", _SOURCE, ack=True)
        # One socket and batch set per sender thread: on loopback the kernel answers inside
        # the sending system call, so a second sender puts that work on the second core.
        self._tx: list[socket.socket] = []
        self._batches: list[dict[int, FrameBatch]] = []
        for _ in range(SENDERS):
            tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            tx.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            self._tx.append(tx)
            self._batches.append(
                {
                    id(p): FrameBatch(p, tx, BATCH, addressed=True)
                    for p in (self.echo, self.syn, self.ack)
                }
            )
        self._rx: list[tuple[socket.socket, VectorProbe]] = []
        for proto, probe, types, ports in (
            (socket.IPPROTO_ICMP, self.echo, (0,), None),
            (socket.IPPROTO_TCP, self.syn, (), (SPORT_BASE, SPORT_BASE + SPORT_COUNT - 1)),
        ):
            if method == ("icmp" if proto == socket.IPPROTO_TCP else "tcp"):
                continue  # no probes of this protocol go out
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
            attach(sock, reply_filter(_SOURCE, icmp_types=types, tcp_ports=ports))
            grow_rcvbuf(sock, 256 << 20)
            self._rx.append((sock, probe))
        self.error: BaseException | None = None  # a receiver's failure
        self._busy = [False] * len(self._rx)  # a receiver holds a batch not yet marked
        self._threads = [
            threading.Thread(target=self._receive, args=(*rx, k), name="hilos-rx", daemon=True)
            for k, rx in enumerate(self._rx)
        ]

    # -- sending ------------------------------------------------------------------------------

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def probes(self, retry: bool, last: bool) -> list[VectorProbe]:
        """What a pass sends (see the class docstring)."""
        if self.method == "icmp":
            return [self.echo]
        if self.method == "tcp":
            return [self.syn, self.ack]
        return [self.echo, self.syn, self.ack] if retry or last else [self.echo]

    def _order(self) -> Iterator[npt.NDArray[np.int64]]:
        if self.order_seed is None:
            for s in range(0, self.size, BATCH):
                yield np.arange(s, min(self.size, s + BATCH), dtype=np.int64)
            return
        yield from walk_batches(Permutation(self.size, self.order_seed), BATCH)

    def send_pass(self, retry: bool, last: bool, stop: threading.Event) -> int:
        """One pass over the addresses that have not answered, by SENDERS threads taking
        batches from one walk; returns frames sent."""
        self.settle(stop, 10.0 if retry else 0.0)
        probes = self.probes(retry, last)
        order = self._order()
        self.progress = 0
        counts = [0] * SENDERS
        errors: list[BaseException] = []

        def run(k: int) -> None:
            try:
                counts[k] = self._send(order, probes, self._batches[k], stop)
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(SENDERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return sum(counts)

    def _send(
        self,
        order: Iterator[npt.NDArray[np.int64]],
        probes: list[VectorProbe],
        batches: dict[int, FrameBatch],
        stop: threading.Event,
    ) -> int:
        ports = {id(self.syn): 443, id(self.ack): 80}
        limited = not self.bucket.unlimited
        sent = counted = 0
        while not stop.is_set():
            with self._lock:
                idx = next(order, None)
                if idx is None:
                    break
                self.progress += len(idx)
                self.sent += sent - counted  # live, for the progress line's packets/s
                counted = sent
            todo = idx[self.reason[idx] == _NONE]
            if not len(todo):
                continue
            dst = self.addrs(todo).astype(np.uint32)
            for probe in probes:
                if limited:
                    self.bucket.take(len(dst))
                port: U16 = np.full(len(dst), ports.get(id(probe), 0), dtype=np.uint16)
                sent += batches[id(probe)].send(dst, port)
        with self._lock:
            self.sent += sent - counted
        return sent

    # -- index <-> address --------------------------------------------------------------------

    def addrs(self, idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        r = np.searchsorted(self.starts, idx, side="right") - 1
        out: npt.NDArray[np.int64] = self.firsts[r] + (idx - self.starts[r])
        return out

    def indices(self, addr: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """Indices of the addresses that are targets (others dropped)."""
        r = np.searchsorted(self.firsts, addr, side="right") - 1
        ok = r >= 0
        r = np.where(ok, r, 0)
        ok &= addr <= self.lasts[r]
        out: npt.NDArray[np.int64] = (self.starts[r] + (addr - self.firsts[r]))[ok]
        return out

    # -- receiving ----------------------------------------------------------------------------

    def _receive(self, sock: socket.socket, probe: VectorProbe, slot: int) -> None:
        """One receiver thread: batches of replies validated and marked; a failure is kept
        for the sender to raise."""
        rx = RxBatch(sock, 1024, 128)
        try:
            while not self._stop.is_set():
                if not rx.wait(0.05):
                    continue
                # Busy from before the queue is read until its batch is marked: settle() sees
                # either packets queued or a receiver busy, never a batch in between.
                self._busy[slot] = True
                try:
                    n = rx.take()
                    if n:
                        now = time.monotonic_ns()
                        self._mark(probe.validate(rx.pkts[:n], rx.lens(n)), now)
                finally:
                    self._busy[slot] = False
        except BaseException as exc:
            if not self._stop.is_set():
                self.error = exc

    def settle(self, stop: threading.Event, limit: float = 10.0) -> None:
        """Wait (at most `limit` s) until the receivers took every reply the kernel queued for
        them: a retry pass or the end must not outrun a backlog of answers. Raises what a
        receiver failed with."""
        deadline = time.monotonic() + limit
        while not stop.is_set() and time.monotonic() < deadline and self.error is None:
            # Queue first, then busy: a batch taken after the first check was queued at it.
            if any(_queued(sock) for sock, _probe in self._rx) or any(
                busy and t.is_alive() for busy, t in zip(self._busy, self._threads, strict=True)
            ):
                time.sleep(0.001)
                continue
            break
        self.drops = sum(raw_drops(sock) or 0 for sock, _probe in self._rx)
        if self.error is not None:
            raise self.error

    def _mark(self, ans: Answers, now: int) -> None:
        ok = ans.ok
        if not ok.any():
            return
        addr = ans.addr[ok].astype(np.int64)
        kind = ans.kind[ok]
        sent = ans.sent_ns[ok]
        with self._lock:
            idx = self.indices(addr)  # every validated reply names a target of ours
            fresh = self.reason[idx] == _NONE
            idx, first = np.unique(idx[fresh], return_index=True)
            kind = kind[fresh][first]
            codes = np.where(
                kind == KIND_ECHO, _ECHO, np.where(kind == KIND_SYN_ACK, _SYNACK, _RESET)
            ).astype(np.uint8)
            self.reason[idx] = codes
            self.up += len(idx)
        if not len(idx):
            return
        rtt_ns = now - sent[fresh][first].astype(np.int64)
        rtt = np.where((sent[fresh][first] > 0) & (rtt_ns >= 0), rtt_ns / 1e6, np.nan).tolist()
        if rtt and rtt[0] == rtt[0]:
            self.on_rtt(median(np.asarray(rtt)) / 1000.0)
        names = ("", "echo-reply", "syn-ack", "reset")
        reasons = [names[c] for c in codes.tolist()]
        rtts = [None if r != r else round(r, 3) for r in rtt]
        self.on_results(self.found(self.addrs(idx).tolist(), reasons, rtts))

    def down(self) -> Iterator[int]:
        """The addresses that never answered, in address order."""
        for s in range(0, self.size, 65536):
            idx = np.flatnonzero(self.reason[s : s + 65536] == _NONE) + s
            yield from self.addrs(idx).tolist()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t.ident is not None:  # started
                t.join(timeout=1.0)
        for sock, _probe in self._rx:
            sock.close()
        for tx in self._tx:
            tx.close()
