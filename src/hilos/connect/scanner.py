"""ConnectScanner and connect_scan: the connect scan's threads, options, stats and results."""

from __future__ import annotations

import queue
import select
import threading
import time
from collections.abc import Container, Iterable, Iterator, Sequence

from hilos.connect.feed import HostFeed
from hilos.connect.hosts import Address, Windows
from hilos.connect.loop import Worker
from hilos.errors import HilosError, UsageError, from_oserror
from hilos.results import HostResult, ScanHostResult, ScanStats
from hilos.validate import MAX_RETRIES
from hilos.wire.limits import check_thread_limit, raise_nofile_limit, window_for_limit
from hilos.wire.ratelimit import TokenBucket

__all__ = ["DEFAULT_THREADS", "DEFAULT_WINDOW", "ConnectScanner", "connect_scan"]

# Measured on the 2-core lab machine, -p- of one host (issue 4's closing note): at rtt 0 the cost
# is the kernel's per-connect work, so 2 threads (one per core) beat 1 (1.2 s vs 1.9 s) and the
# window hardly matters; at rtt 40 the window is what counts (1024: 3.1 s, 4096: 1.9 s) and
# threads do not. 4 threads or 8192 sockets bought nothing more.
DEFAULT_THREADS = 2
DEFAULT_WINDOW = 4096
# Slow start: each worker begins with this window, +1 per answer doubles it every round trip.
_INITIAL_WINDOW = 512


class ConnectScanner:
    """A TCP connect scan of `hosts` x `ports`; see the hilos.connect docstring.

    `hosts` may be any iterable (a TargetSpace, a list, or a generator fed by a discovery sweep that
    is still running): a feeder thread pulls it, so ports of the first live hosts are probed while
    discovery goes on. `shard=(i, n)` scans only the i-th of n disjoint parts of the (host, port)
    index space walked in the keyed order of `targets.Permutation(seed)`; it needs the host list
    complete first, so results then come at the end.

    >>> scanner = ConnectScanner(["127.0.0.1"], parse_ports("1-1024"))  # doctest: +SKIP
    >>> for host in scanner.results(): ...  # one ScanHostResult per host, as each finishes
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
        self._windows = Windows(self._threads, min(per, _INITIAL_WINDOW), per)
        # --rate: new connections per second, paced by the bucket the sweep and SYN scan use.
        bucket = TokenBucket(rate, burst=max(1, min(64, int(rate // 50) or 1))) if rate else None
        self._feed = HostFeed(
            self._ports, bucket=bucket, max_active=max(1, max_active_hosts), shard=shard
        )
        # With a shard: the walk covers every host given, but probes only those in `only`
        # (discovery's answer), so shards do not depend on what discovery found, or when.
        self._only = only
        self._seed = seed
        self._stop = threading.Event()
        self._started = 0.0
        self._workers: list[threading.Thread] = []
        self._epolls: list[select.epoll] = []
        self._feeder: threading.Thread | None = None
        self._error: BaseException | None = None

    # ----------------------------------------------------------------- public
    @property
    def resource_waits(self) -> int:
        """Times EMFILE & co. shrank a worker's window."""
        return self._windows.resource_waits

    @property
    def stats(self) -> ScanStats:
        feed = self._feed
        with feed.lock:
            return ScanStats(
                done=feed.done,
                total=feed.total,
                hosts_done=feed.hosts_done,
                hosts_total=len(feed.hosts),
                elapsed=time.monotonic() - self._started if self._started else 0.0,
                window=sum(self._windows.win),
            )

    def start(self) -> ConnectScanner:
        """Start the worker threads (results() does it too); returns self."""
        self._start()
        return self

    def results(self) -> Iterator[ScanHostResult]:
        """Start the scan (once) and yield each host's result as soon as all its ports answered."""
        self._start()
        out = self._feed.out
        while True:
            try:
                item = out.get(timeout=0.25)
            except queue.Empty:
                if self._stop.is_set() and out.empty():
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
        self._feed.source_done()

    def join(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.0, deadline - time.monotonic()))

    def partial(self) -> list[ScanHostResult]:
        """Hosts not yet reported, with the ports answered so far (Ctrl-C keeps every result)."""
        return self._feed.partial()

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
        self._feed.out.put(None)

    def _pull_hosts(self) -> None:
        """Feeder thread: turns the host iterable into hosts of the feed (it may block on
        discovery); with a shard, the whole list first, then the shard's walk."""
        feed = self._feed
        try:
            if feed.shard is not None:
                seed = self._seed if self._seed is not None else 0
                feed.prepare_shard(self._hosts_src, seed, self._only)
                return
            for addr in self._hosts_src:
                if self._stop.is_set():
                    break
                feed.add(addr)
        except BaseException as exc:
            self._error = exc
            self._stop.set()
        finally:
            feed.source_done()

    def _worker_main(self, wid: int) -> None:
        ep = self._epolls[wid]
        try:
            Worker(
                wid,
                ep,
                self._feed,
                self._windows,
                tries=self._tries,
                stop=self._stop,
                timeout=self._fixed_timeout,
            ).run()
        except BaseException as exc:
            self._error = exc
            self._stop.set()
        finally:
            ep.close()


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
