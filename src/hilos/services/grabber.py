"""BannerGrabber: the scan stage that names every open port's service, over a worker Pool.

Each open port is one work item (hilos.services.dialogue.identify); a host is passed on when all
its ports are named, so a slow service holds up only its own host.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace

from hilos.pool import Pool
from hilos.results import PortResult, ScanHostResult
from hilos.services.dialogue import DEFAULT_TIMEOUT, GREET_WAIT, PROBE_WAIT, ServiceInfo, identify

__all__ = ["DEFAULT_THREADS", "BannerGrabber"]

DEFAULT_THREADS = 128


class BannerGrabber:
    """Names the services of every open port of a stream of ScanHostResults, concurrently.

    `enrich(results)` yields each host again once all its open ports are identified (hosts
    without open ports pass straight through), so a slow service holds up only its own host.
    `pending()` gives, after an interruption, the hosts still being worked on as they were.

        grabber = BannerGrabber(threads=64)
        for host in grabber.enrich(scanner.results()):
            print(host.host, [(p.port, p.service, p.product) for p in host.open_ports])
    """

    def __init__(
        self,
        *,
        threads: int = DEFAULT_THREADS,
        timeout: float = DEFAULT_TIMEOUT,
        rtt: float = 0.0,
    ) -> None:
        self.threads = threads
        self.timeout = timeout
        # Waits grow with the path's round-trip time: a greeting needs one RTT to arrive.
        self.greet_wait = GREET_WAIT + 2 * rtt
        self.probe_wait = PROBE_WAIT + 4 * rtt
        self._lock = threading.Lock()
        self._open: dict[str, tuple[ScanHostResult, dict[int, PortResult], int]] = {}
        self._pool: Pool[tuple[ScanHostResult, PortResult | None], ServiceInfo | None] | None = None

    def _work(self, item: tuple[ScanHostResult, PortResult | None]) -> ServiceInfo | None:
        host, port = item
        if port is None:
            return None
        return identify(
            host.host,
            port.port,
            timeout=self.timeout,
            greet_wait=self.greet_wait,
            probe_wait=self.probe_wait,
        )

    def _units(
        self, results: Iterable[ScanHostResult]
    ) -> Iterator[tuple[ScanHostResult, PortResult | None]]:
        for host in results:
            # TCP only: UDP services were named from their replies by the UDP scan.
            opened = tuple(p for p in host.open_ports if p.proto == "tcp")
            if not opened:
                yield host, None
                continue
            with self._lock:
                self._open[host.host] = (host, {}, len(opened))
            for p in opened:
                yield host, p

    def enrich(self, results: Iterable[ScanHostResult]) -> Iterator[ScanHostResult]:
        pool: Pool[tuple[ScanHostResult, PortResult | None], ServiceInfo | None] = Pool(
            self._work, threads=self.threads, name="hilos-banner"
        )
        self._pool = pool
        with pool:
            for tr in pool.imap_unordered(self._units(results)):
                host, port = tr.item
                if port is None:
                    yield host
                    continue
                info = tr.value if tr.ok else None
                done = self._store(host, port, info)
                if done is not None:
                    yield done

    def _store(
        self, host: ScanHostResult, port: PortResult, info: ServiceInfo | None
    ) -> ScanHostResult | None:
        with self._lock:
            entry = self._open.get(host.host)
            if entry is None:
                return None
            base, found, count = entry
            found[port.port] = info.apply(port) if info is not None else port
            if len(found) < count:
                return None
            del self._open[host.host]
        ports = tuple(found.get(p.port, p) if p.proto == "tcp" else p for p in base.ports)
        return replace(base, ports=ports)

    def pending(self) -> list[ScanHostResult]:
        """Hosts whose banners were still being read, with what is known so far."""
        with self._lock:
            entries = list(self._open.values())
            self._open.clear()
        return [
            replace(
                base,
                ports=tuple(found.get(p.port, p) if p.proto == "tcp" else p for p in base.ports),
            )
            for base, found, _ in entries
        ]

    def cancel(self) -> None:
        if self._pool is not None:
            self._pool.cancel()
