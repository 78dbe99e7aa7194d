"""The pieces of a chunked job: one discovery pass, one chunk (a shard of the walk), the merge.

Every piece is a plain function of a JobSpec, so a local run, a resumed run and a Dask worker
run the same code. A chunk may run twice (a worker died after finishing it, a resumed run redoes
the chunk that was in flight): the Merger keeps one answer per (host, proto, port).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hilos.pipeline import Scan
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.resume.job import ChunkResult, JobSpec
from hilos.targets import TargetSpace

__all__ = ["Discovery", "Merger", "run_chunk", "run_discovery"]


@dataclass(frozen=True, slots=True)
class Discovery:
    """Discovery's answer for a whole job: hosts up (scanned) and down (listed with --all).
    `ran` is False when the chunks decide host states themselves (-Pn, loopback targets)."""

    up: tuple[HostResult, ...] = ()
    down: tuple[HostResult, ...] = ()
    ran: bool = False


def _loopback(space: TargetSpace) -> bool:
    return all(a.is_loopback and b.is_loopback for a, b in space.iter_ranges())


def needs_discovery(spec: JobSpec) -> bool:
    """Does the job start with a discovery pass (a scan without -Pn, not of loopback)?"""
    return spec.kind != "sweep" and spec.discovery and not _loopback(spec.space())


def discovery_sweep(spec: JobSpec) -> JobSpec:
    """The sweep a scan's discovery is (Scan's own: default method and threads), for running
    it in chunks on several machines."""
    return replace(spec, kind="sweep", ports=(), threads=None, method="auto", banners=False)


def discovered(chunks: Iterable[ChunkResult]) -> Discovery:
    """A discovery pass put together from its sweep chunks."""
    up: list[HostResult] = []
    down: list[HostResult] = []
    for chunk in chunks:
        for h in chunk.hosts:
            found = HostResult(h.host, h.status, h.reason, h.rtt_ms)
            (up if h.status == "up" else down).append(found)
    return Discovery(tuple(up), tuple(down), True)


def run_discovery(
    spec: JobSpec, cancelled: Callable[[], bool] | None = None, rate: float | None = None
) -> Discovery:
    """One discovery pass over the job's targets (what `Scan` would run), or nothing to run."""
    if not needs_discovery(spec):
        return Discovery()
    space = spec.space()
    from hilos.sweep import Sweeper

    sweeper = Sweeper(
        space,
        rate=_capped(spec.rate, rate),
        timeout=spec.timeout,
        retries=spec.retries,
        all_hosts=spec.show_all,
    )
    up: list[HostResult] = []
    down: list[HostResult] = []
    for h in sweeper:
        (up if h.status == "up" else down).append(h)
        if cancelled is not None and cancelled():
            sweeper.cancel()
            raise KeyboardInterrupt
    return Discovery(tuple(up), tuple(down), True)


def _capped(job_rate: float | None, cap: float | None) -> float | None:
    if cap is None:
        return job_rate
    return cap if job_rate is None else min(job_rate, cap)


def run_chunk(
    spec: JobSpec,
    found: Discovery,
    number: int,
    count: int,
    *,
    rate: float | None = None,
    worker: str = "local",
    on_scan: Callable[[Any], None] | None = None,
    sink: list[ScanHostResult] | None = None,
) -> ChunkResult:
    """Chunk `number` of `count`: shard (number, count) of the job's keyed walk, every host it
    holds a probe for with the ports it probed. `rate` caps the job's rate (a worker's
    --rate); `on_scan` sees the Scan (a sweep's Sweeper) before it runs, to cancel and drain
    it; `sink` gets each host as it comes (what an interrupted chunk had found)."""
    got: list[ScanHostResult] = [] if sink is None else sink
    if spec.kind == "sweep":
        return _sweep_chunk(spec, number, count, _capped(spec.rate, rate), worker, on_scan, got)
    started = time.monotonic()
    space = spec.space()
    if found.ran:
        # The walk over discovery's up hosts only (every chunk gets the same answer, so the
        # shards stay disjoint and complete): a walk over the whole space x ports that skips
        # the dead hosts costs each chunk a pass over millions of indices.
        if not found.up:
            return ChunkResult(number, (), 0, 0.0, worker)
        space = _hosts_space(h.host for h in found.up)
    job = Scan(
        space,
        spec.ports,
        scan_type="syn" if spec.scan_type == "syn" else "connect",
        discovery=spec.discovery,
        rate=_capped(spec.rate, rate),
        timeout=spec.timeout,
        retries=spec.retries,
        threads=spec.threads,
        seed=spec.seed,
        shard=(number, count),
        banners=spec.banners,
        known=found.up if found.ran else None,
    )
    if on_scan is not None:
        on_scan(job)
    got.extend(replace(h, hostname=None) for h in job)
    hosts = tuple(got)
    probes = job.stats.done
    if job.stats.phase != "scan" or probes == 0:
        probes = sum(len(h.ports) for h in hosts)
    return ChunkResult(number, hosts, probes, time.monotonic() - started, worker)


def _sweep_chunk(
    spec: JobSpec,
    number: int,
    count: int,
    rate: float | None,
    worker: str,
    on_scan: Callable[[Any], None] | None,
    got: list[ScanHostResult],
) -> ChunkResult:
    """Chunk `number` of a sweep: shard (number, count) of the keyed walk over the addresses.
    Every host is in one chunk only, so each is final when its chunk is."""
    from hilos.sweep import Sweeper

    started = time.monotonic()
    part = _shard_space(spec.space(), number, count, spec.seed)
    if not part:
        return ChunkResult(number, (), 0, 0.0, worker)
    sweeper = Sweeper(
        part,
        method=spec.method,  # type: ignore[arg-type]
        rate=rate,
        timeout=spec.timeout,
        retries=spec.retries,
        threads=spec.threads,
        all_hosts=spec.show_all,
    )
    if on_scan is not None:
        on_scan(sweeper)
    got.extend(as_scan_host(h) for h in sweeper)
    return ChunkResult(number, tuple(got), part.size, time.monotonic() - started, worker)


def _shard_space(space: TargetSpace, number: int, count: int, seed: int) -> TargetSpace:
    """Shard (number, count) of the keyed walk as a space: the whole space for one chunk (a
    CIDR stays one range for the batched engine), else the shard's addresses as intervals
    (parsing them back from strings cost a /16 sweep over two seconds)."""
    if count == 1:
        return space
    return _hosts_space(space.shard(number, count, seed=seed))


def _hosts_space(
    hosts: Iterable[str | ipaddress.IPv4Address | ipaddress.IPv6Address],
) -> TargetSpace:
    """These addresses as a space of one-address intervals (no target parsing)."""
    v4: list[tuple[int, int]] = []
    v6: list[tuple[int, int]] = []
    for host in hosts:
        a = ipaddress.ip_address(host)
        if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
            a = a.ipv4_mapped  # as parse_targets takes it
        n = int(a)
        (v4 if a.version == 4 else v6).append((n, n))
    return TargetSpace.from_intervals(v4, v6)


def as_scan_host(h: HostResult | ScanHostResult) -> ScanHostResult:
    """A sweep's host as the chunks report hosts (no ports, no name)."""
    if isinstance(h, ScanHostResult):
        return replace(h, hostname=None)
    return ScanHostResult(h.host, h.status, h.reason, (), h.rtt_ms)


@dataclass
class Merger:
    """The job's results so far: one entry per host, one answer per (proto, port), whatever
    chunk (or second run of a chunk) brought it. `done` holds the chunk numbers counted;
    `written` the hosts already in the outputs, dropped from here (memory, checkpoint size)
    and ignored if a chunk run twice brings them again."""

    done: set[int] = field(default_factory=set)
    written: dict[str, str] = field(default_factory=dict)  # host -> status
    _hosts: dict[str, ScanHostResult] = field(default_factory=dict)
    _ports: dict[str, dict[tuple[str, int], PortResult]] = field(default_factory=dict)

    def add(self, chunk: ChunkResult) -> bool:
        """Count a finished chunk; False (and nothing added) when it was counted already."""
        if chunk.number in self.done:
            return False
        self.done.add(chunk.number)
        for h in chunk.hosts:
            self.add_host(h)
        return True

    def add_host(self, h: ScanHostResult) -> None:
        if h.host in self.written:
            return
        base = self._hosts.get(h.host)
        if base is None or (base.status != "up" and h.status == "up"):
            self._hosts[h.host] = replace(h, ports=())
        ports = self._ports.setdefault(h.host, {})
        for p in h.ports:
            ports.setdefault((p.proto, p.port), p)

    def drop(self, hosts: Iterable[ScanHostResult]) -> None:
        """These hosts went to the outputs: keep only their addresses and states."""
        for h in hosts:
            self.written[h.host] = h.status
            self._hosts.pop(h.host, None)
            self._ports.pop(h.host, None)

    def count(self) -> int:
        """Hosts with something found."""
        return len(self._hosts)

    def complete(self, addr: str, nports: int) -> bool:
        """Has every port of the host been answered for (every chunk with its probes in)?"""
        return len(self._ports.get(addr, ())) >= nports

    def host(self, addr: str, order: Sequence[int] = ()) -> ScanHostResult:
        return self._host(addr, {p: i for i, p in enumerate(order)})

    def _host(self, addr: str, rank: Mapping[int, int]) -> ScanHostResult:
        ports = self._ports.get(addr, {})
        keys = sorted(ports, key=lambda k: (rank.get(k[1], len(rank) + k[1]), k[0]))
        return replace(self._hosts[addr], ports=tuple(ports[k] for k in keys))

    def hosts(self, order: Sequence[int] = ()) -> list[ScanHostResult]:
        """Every host found, ports in the job's port order (`order`, as one machine lists
        them), else by number."""
        rank = {p: i for i, p in enumerate(order)}
        return [self._host(addr, rank) for addr in self._hosts]

    def final(
        self,
        found: Discovery,
        names: Mapping[str, str],
        show_all: bool,
        order: Sequence[int] = (),
    ) -> list[ScanHostResult]:
        """The job's result as one machine reports it: every host up (discovery's up hosts
        included even when no chunk had an answer for them), then the down ones with --all;
        names as the user gave them."""
        merged = {h.host: h for h in self.hosts(order)}
        for h in found.up:
            if h.host not in merged:
                merged[h.host] = ScanHostResult(h.host, "up", h.reason, (), h.rtt_ms)
        out = sorted(merged.values(), key=lambda h: _order(h.host))
        if show_all:
            out.extend(
                ScanHostResult(h.host, "down", h.reason, (), h.rtt_ms)
                for h in sorted(found.down, key=lambda h: _order(h.host))
                if h.host not in merged
            )
        return [named(h, names) for h in out]


def named(h: ScanHostResult, names: Mapping[str, str]) -> ScanHostResult:
    """The host with the name the user gave for it (the chunks report addresses only)."""
    name = names.get(h.host)
    return h if name is None else replace(h, hostname=name)


def _order(addr: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(addr)
    return (ip.version, int(ip))


def chunk_numbers(count: int, done: Iterable[int]) -> Sequence[int]:
    """The chunks still to run, in order."""
    finished = set(done)
    return [k for k in range(1, count + 1) if k not in finished]
