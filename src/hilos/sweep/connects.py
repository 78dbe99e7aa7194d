"""The sweep's unprivileged TCP engine: non-blocking connect() to 80 and 443, many in flight."""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from hilos.errors import HilosError
from hilos.pool import Pool
from hilos.probes.icmp_echo import V6_TAG
from hilos.sweep.base import TCP_PORTS, Range, Sink
from hilos.wire.limits import raise_nofile_limit
from hilos.wire.ratelimit import TokenBucket
from hilos.wire.senders import NO_ROUTE

__all__ = ["CONNECT_CHUNK", "ConnectDiscovery"]

CONNECT_CHUNK = 256  # addresses per connect worker task (2 sockets each)
_LINGER_RST = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close sends a RST


class ConnectDiscovery:
    """Unprivileged TCP discovery: non-blocking connect() to 80 and 443, many in flight.

    Work is cut into chunks of addresses run by `threads` workers (hilos.pool); each worker
    starts its chunk's connects at once and waits on one selector until every socket resolved or
    the wait ran out. Accepted (syn-ack) or refused (conn-refused) means up; EHOSTUNREACH /
    ENETUNREACH means down (host-unreach).
    """

    name = "TCP connect to 80 and 443"

    def __init__(
        self, bucket: TokenBucket, sink: Sink, threads: int, wait: Callable[[], float]
    ) -> None:
        self.bucket = bucket
        self.sink = sink
        self.wait = wait
        soft = raise_nofile_limit(ceiling=1 << 16)
        budget = max(64, soft - 128)
        # Two sockets per address in flight, across all workers: stay inside RLIMIT_NOFILE.
        self.chunk = max(1, min(CONNECT_CHUNK, budget // (2 * threads)))
        self.threads = max(1, min(threads, budget // (2 * self.chunk)))

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int:
        def chunks() -> Iterator[list[tuple[int, int]]]:
            chunk: list[tuple[int, int]] = []
            for fam, first, last in ranges:
                tag = V6_TAG if fam == 6 else 0
                for a in range(first, last + 1):
                    if a + tag in skip:
                        continue
                    chunk.append((fam, a))
                    if len(chunk) >= self.chunk:
                        if stop.is_set():
                            return
                        yield chunk
                        chunk = []
            if chunk and not stop.is_set():
                yield chunk

        sent = 0

        def work(chunk: list[tuple[int, int]]) -> int:
            return self._probe_chunk(chunk, stop)

        with Pool(work, threads=self.threads, name="hilos-connect") as pool:
            for res in pool.imap_unordered(chunks()):
                if res.error is not None and not isinstance(res.error, Exception):
                    raise res.error
                if isinstance(res.error, HilosError):
                    raise res.error
                sent += res.value or 0
                if stop.is_set():
                    pool.cancel()
                    break
        return sent

    def _probe_chunk(self, chunk: list[tuple[int, int]], stop: threading.Event) -> int:
        """Connect to both ports of every address of `chunk` at once, then wait for them all
        (until the sweep's wait ran out). Returns how many connects were started."""
        self.bucket.take(2 * len(chunk))
        sel = selectors.DefaultSelector()
        pending: dict[socket.socket, tuple[int, float]] = {}
        try:
            sent = self._start(chunk, sel, pending)
            self._await(sel, pending, stop)
        finally:
            for s in pending:
                s.close()
            sel.close()
        return sent

    def _start(
        self,
        chunk: list[tuple[int, int]],
        sel: selectors.BaseSelector,
        pending: dict[socket.socket, tuple[int, float]],
    ) -> int:
        sent = 0
        for fam, a in chunk:
            af = socket.AF_INET if fam == 4 else socket.AF_INET6
            host = (
                socket.inet_ntoa(a.to_bytes(4, "big"))
                if fam == 4
                else socket.inet_ntop(socket.AF_INET6, a.to_bytes(16, "big"))
            )
            key = a + (V6_TAG if fam == 6 else 0)
            for port in TCP_PORTS:
                try:
                    s = socket.socket(af, socket.SOCK_STREAM)
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        return sent  # the rest of this chunk stays unanswered: a retry gets it
                    raise
                s.setblocking(False)
                # RST on close: no TIME_WAIT pile-up after thousands of probes.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                t0 = time.monotonic()
                err = s.connect_ex((host, port))
                sent += 1
                if err == errno.EINPROGRESS:
                    pending[s] = (key, t0)
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    s.close()
                    self._classify(key, err, t0)
        return sent

    def _await(
        self,
        sel: selectors.BaseSelector,
        pending: dict[socket.socket, tuple[int, float]],
        stop: threading.Event,
    ) -> None:
        deadline = time.monotonic() + self.wait()
        while pending and not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for skey, _ in sel.select(min(left, 0.05)):
                done = skey.fileobj
                assert isinstance(done, socket.socket)
                key, t0 = pending.pop(done)
                sel.unregister(done)
                err = done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                done.close()
                self._classify(key, err, t0)

    def _classify(self, key: int, err: int, t0: float) -> None:
        """Report what a finished connect says: accepted or refused is up, no route down."""
        if err == 0:
            self.sink(key, "syn-ack", (time.monotonic() - t0) * 1000)
        elif err == errno.ECONNREFUSED:
            self.sink(key, "conn-refused", (time.monotonic() - t0) * 1000)
        elif err in NO_ROUTE:
            self.sink(key, "host-unreach", None)
