"""A connect scan's feed: hosts as they come, their ports interleaved or a shard's walk, answers."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Container, Iterable, Iterator
from itertools import repeat

from hilos.connect.hosts import UNKNOWN, Address, Host, Item, build_result
from hilos.results import HostResult, ScanHostResult
from hilos.targets import Permutation
from hilos.wire.ratelimit import TokenBucket

__all__ = ["HostFeed"]


class HostFeed:
    """The state the feeder thread and the workers share, under one lock: every host seen, the
    hosts whose ports are being handed out, the answers counted, finished hosts' results queued
    on `out` (None ends it).

    Without a shard, ports of up to `max_active` hosts are interleaved, hosts joining as the
    source yields them. With `shard=(i, n)`, probes come from the i-th of n parts of the keyed
    permutation of the (host, port) index space, after the host list is complete.
    """

    def __init__(
        self,
        ports: tuple[int, ...],
        *,
        bucket: TokenBucket | None,
        max_active: int,
        shard: tuple[int, int] | None,
    ) -> None:
        self.ports = ports
        self.shard = shard
        self.lock = threading.Lock()
        self.out: queue.Queue[ScanHostResult | None] = queue.Queue()
        self.hosts: list[Host] = []  # every host seen, in arrival order
        self.done = 0  # ports answered (final)
        self.total = 0  # ports known so far
        self.hosts_done = 0
        self._bucket = bucket
        self._max_active = max_active
        self._active: list[Host] = []  # hosts whose ports are being fed
        self._rr = 0
        self._incoming: deque[Host] = deque()
        self._source_done = False
        self._perm_iter: Iterator[int] | None = None
        self._shard_fed = False

    # ----------------------------------------------------------- the feeder thread
    def add(self, item: Address | HostResult) -> None:
        """A host from the source: its ports join the interleaved feed."""
        nports = len(self.ports)
        with self.lock:
            h = Host(item, len(self.hosts), nports, nports)
            self.hosts.append(h)
            self._incoming.append(h)
            self.total += nports

    def source_done(self) -> None:
        """No more hosts will come (the source ended, failed or the scan was cancelled)."""
        with self.lock:
            self._source_done = True

    def prepare_shard(
        self, hosts_src: Iterable[Address | HostResult], seed: int, only: Container[str] | None
    ) -> None:
        """Walk this shard's indices once to count each host's probes (so a host is reported
        when it completes), then start the walk for the workers. With `only`, hosts outside it
        are in the walk (shards do not depend on what discovery found) but not probed."""
        assert self.shard is not None
        index, count = self.shard
        nports = len(self.ports)
        hosts = [Host(a, i, nports, 0) for i, a in enumerate(hosts_src)]
        total = len(hosts) * nports
        expected = [0] * len(hosts)
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
        with self.lock:
            self.hosts = hosts
            self.total = n
            if total:
                self._perm_iter = iter(Permutation(total, seed).shard(index, count))
            for h in hosts:
                if h.remaining == 0:
                    h.remaining = -1  # nothing of this host in this shard
        # Hosts without a probe in this shard are not reported at all: another shard has them.

    # ------------------------------------------------------------------ workers
    def take(self, wanted: int) -> list[Item]:
        """Up to `wanted` new probes (host, port index, attempt 0), interleaving active hosts."""
        out: list[Item] = []
        with self.lock:
            if self._bucket is not None:
                # Grant only what the bucket allows now: a worker never sleeps holding the lock.
                while wanted >= 1 and not self._bucket.try_take(wanted):
                    wanted //= 2
                if wanted == 0:
                    return out
            if self._perm_iter is not None:
                return self._take_shard(wanted, out)
            active = self._active
            nports = len(self.ports)
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

    def _take_shard(self, wanted: int, out: list[Item]) -> list[Item]:
        """take() for a shard: the next indices of its walk (the lock is held)."""
        assert self._perm_iter is not None
        nports = len(self.ports)
        hosts = self.hosts
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

    def exhausted(self) -> bool:
        """True when take() will never give a probe again."""
        with self.lock:
            if self.shard is not None:
                # The lazy permutation cannot say it is empty without a peek: take() marks it.
                return self._shard_fed or (self._source_done and self._perm_iter is None)
            return self._source_done and not self._active and not self._incoming

    def record(self, batch: list[Item]) -> None:
        """Store final answers (host, port index, code); emit hosts whose every port answered."""
        done_hosts: list[Host] = []
        with self.lock:
            for h, p_i, code in batch:
                if h.codes[p_i] == UNKNOWN:
                    h.codes[p_i] = code
                    h.remaining -= 1
                    self.done += 1
                    if h.remaining == 0:
                        done_hosts.append(h)
                        self.hosts_done += 1
        for h in done_hosts:
            self.out.put(build_result(h, self.ports))

    def partial(self) -> list[ScanHostResult]:
        """Hosts not yet reported, with the ports answered so far (Ctrl-C keeps every result)."""
        with self.lock:
            return [
                build_result(h, self.ports) for h in self.hosts if h.remaining > 0 and any(h.codes)
            ]
