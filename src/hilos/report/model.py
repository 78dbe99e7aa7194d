"""One scan read from any tool's file: its hosts as hilos results, and what the run said."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from hilos.results import HostStatus, PortResult, ScanHostResult

__all__ = ["ScanRun", "merge_runs", "port_probed"]


@dataclass(frozen=True, slots=True)
class ScanRun:
    """The hosts of one scan (or of several merged) and its meta data.

    `tool` is "hilos", "nmap" or "masscan" ("hilos+nmap" once merged); `args` the command
    line when the file records one; `start`/`end` epoch seconds; `elapsed` seconds; `targets`
    the addresses the run covered (None when the file does not say); `source` the file(s);
    `complete` False when the file was cut short (an interrupted run). Hosts keep the order of
    the file, one entry per address.
    """

    hosts: tuple[ScanHostResult, ...]
    tool: str = "hilos"
    args: str | None = None
    start: float | None = None
    end: float | None = None
    elapsed: float | None = None
    targets: int | None = None
    source: str = ""
    format: str = ""
    complete: bool = True
    sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def hosts_up(self) -> int:
        return sum(1 for h in self.hosts if h.status == "up")

    @property
    def open_ports(self) -> int:
        return sum(len(h.open_ports) for h in self.hosts)

    @property
    def duration(self) -> float | None:
        """How long the scan ran: `elapsed`, or end - start when the file gives both."""
        if self.elapsed is not None:
            return self.elapsed
        if self.start is not None and self.end is not None:
            return max(self.end - self.start, 0.0)
        return None


def port_probed(port: PortResult) -> bool:
    """Was the service asked (version detection, banners), rather than named from its number?"""
    return bool(port.product or port.version or port.banner)


def merge_runs(runs: Sequence[ScanRun]) -> ScanRun:
    """One run from several (`hilos report a.xml b.jsonl`): hosts merged by address.

    A host seen twice keeps the union of its ports; where both list a port, the later file
    wins (an open port stays open: a later file that did not see it open cannot close it in
    a merged view). The meta data spans them all: earliest start, latest end, summed targets.
    """
    if len(runs) == 1:
        return runs[0]
    merged: dict[str, ScanHostResult] = {}
    for run in runs:
        for host in run.hosts:
            old = merged.get(host.host)
            merged[host.host] = host if old is None else _merge_host(old, host)
    return ScanRun(
        hosts=tuple(merged.values()),
        tool="+".join(dict.fromkeys(r.tool for r in runs)),
        args="; ".join(r.args for r in runs if r.args) or None,
        start=_pick(min, [r.start for r in runs]),
        end=_pick(max, [r.end for r in runs]),
        elapsed=_total([r.elapsed for r in runs]),
        targets=_targets(runs, len(merged)),
        source=", ".join(r.source for r in runs),
        format="+".join(dict.fromkeys(r.format for r in runs)),
        complete=all(r.complete for r in runs),
        sources=tuple(s for r in runs for s in (r.sources or (r.source,))),
    )


def _pick(choose: Callable[[list[float]], float], values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return choose(known) if known else None


def _total(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if len(known) == len(values) else None


def _targets(runs: Sequence[ScanRun], distinct: int) -> int | None:
    """Addresses covered: the sum for scans of different hosts, the largest for overlapping
    ones (the same network scanned twice is not twice the targets)."""
    known = [r.targets for r in runs if r.targets is not None]
    if len(known) != len(runs):
        return None
    overlap = sum(len(r.hosts) for r in runs) > distinct
    return max(max(known), distinct) if overlap else sum(known)


def _merge_host(old: ScanHostResult, new: ScanHostResult) -> ScanHostResult:
    ports: dict[tuple[str, int], PortResult] = {(p.proto, p.port): p for p in old.ports}
    for p in new.ports:
        before = ports.get((p.proto, p.port))
        if before is not None and before.state == "open" and p.state != "open":
            continue
        ports[(p.proto, p.port)] = p
    up: HostStatus = "up" if "up" in (old.status, new.status) else "down"
    return replace(
        new,
        status=up,
        reason=new.reason if new.status == "up" else old.reason,
        ports=tuple(sorted(ports.values(), key=lambda p: (p.port, p.proto))),
        rtt_ms=new.rtt_ms if new.rtt_ms is not None else old.rtt_ms,
        hostname=new.hostname or old.hostname,
    )


def sorted_ports(ports: Iterable[PortResult]) -> tuple[PortResult, ...]:
    """Ports by number, then protocol (the order every hilos output uses)."""
    return tuple(sorted(ports, key=lambda p: (p.port, p.proto)))
