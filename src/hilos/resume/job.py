"""A chunked job's whole configuration (JobSpec), its hash, and results to and from JSON."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from hilos.errors import UsageError
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.targets import TargetSpace, parse_targets

__all__ = [
    "ChunkResult",
    "JobSpec",
    "chunk_count",
    "host_from_json",
    "host_to_json",
    "measured_pace",
    "space_cidrs",
]

#: A local chunk holds about this many seconds of probes: at most that much is sent twice after
#: a crash (the issue's bound), and a chunk's fixed cost (its last answers' wait) stays small.
CHUNK_SECONDS = 1.0
#: The pace assumed for sizing chunks when the user gives no --rate (probes a second).
DEFAULT_PACE = {"syn": 20_000.0, "connect": 2_000.0, "sweep": 100_000.0}
#: The most a measured pace is trusted (probes a second).
MAX_MEASURED_PACE = 1_000_000.0


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Everything that decides a scan's results: the resolved targets (excludes applied, as
    CIDRs), ports, type, options and the one seed. Two runs with equal specs (and the same
    network) find the same hosts and ports, whatever machines run the chunks."""

    targets: tuple[str, ...]
    ports: tuple[int, ...]
    scan_type: str = "connect"
    discovery: bool = True
    rate: float | None = None
    timeout: float | None = None
    retries: int | None = None
    threads: int | None = None
    seed: int = 0
    banners: bool = False
    show_all: bool = False
    kind: str = "scan"  # or "sweep": host discovery alone, chunks of the address walk
    method: str = "auto"  # a sweep's probes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise UsageError(f"checkpoint: unknown job fields {sorted(unknown)}")
        values = dict(data)
        values["targets"] = tuple(str(t) for t in values["targets"])
        values["ports"] = tuple(int(p) for p in values["ports"])
        return cls(**values)

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical JSON: what a checkpoint and a chunk's task key name."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def space(self) -> TargetSpace:
        return parse_targets(list(self.targets), strict=True)

    def pace(self) -> float:
        """Probes a second a chunk is sized for."""
        kind = "sweep" if self.kind == "sweep" else self.scan_type
        return self.rate if self.rate else DEFAULT_PACE.get(kind, 2_000.0)


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """What one finished chunk (shard `number` of `count`) found, and how fast it went."""

    number: int
    hosts: tuple[ScanHostResult, ...]
    probes: int
    elapsed: float
    worker: str = "local"


def chunk_count(
    spec: JobSpec, live_hosts: int, seconds: float = CHUNK_SECONDS, pace: float | None = None
) -> int:
    """How many chunks (shards of the walk) a job is cut into: each about `seconds` of probes
    at the job's pace (or `pace`, one measured here), so a crash costs at most that much sent
    twice."""
    probes = max(live_hosts, 1) * max(len(spec.ports), 1)
    per_chunk = max((pace or spec.pace()) * seconds, 1.0)
    return max(1, math.ceil(probes / per_chunk))


def measured_pace(spec: JobSpec, addresses: int, seconds: float) -> float | None:
    """The pace a SYN scan's chunks are sized for after this machine's discovery pass swept
    `addresses` in `seconds` (None: keep the job's pace). The batched engine sends a SYN scan's
    probes at least as fast as discovery's addresses (each takes several probes, and the pass
    includes its last answers' wait), so the rate is a floor; the 20,000 a second guessed
    otherwise cut a lab /16 x 100 ports into three chunks of a third of a second each, and each
    chunk's fixed cost (engine start, last answers' wait) made the job 50% slower."""
    if spec.rate or spec.kind != "scan" or spec.scan_type != "syn" or seconds <= 0:
        return None
    return max(spec.pace(), min(addresses / seconds, MAX_MEASURED_PACE))


def space_cidrs(space: TargetSpace) -> tuple[str, ...]:
    """The space as CIDR strings (the checkpoint's and the workers' copy of the targets)."""
    out: list[str] = []
    for first, last in space.iter_ranges():
        nets = ipaddress.summarize_address_range(first, last)
        out.extend(str(n) for n in nets)
    return tuple(out)


_PORT_FIELDS = tuple(f.name for f in fields(PortResult))


def port_to_json(p: PortResult) -> dict[str, Any]:
    # Field by field, not dataclasses.asdict (which deep-copies every value): a checkpoint
    # holds every port answered of the hosts in flight (a /16 x 100 SYN scan: 56,000), and
    # asdict made each save cost more than half a second.
    out: dict[str, Any] = {}
    for name in _PORT_FIELDS:
        value = getattr(p, name)
        if value is not None and value is not False:
            out[name] = value
    return out


def host_to_json(h: ScanHostResult | HostResult) -> dict[str, Any]:
    """One result as a JSON object (the checkpoint keeps what chunks found)."""
    data: dict[str, Any] = {"host": h.host, "status": h.status, "reason": h.reason}
    if h.rtt_ms is not None:
        data["rtt_ms"] = h.rtt_ms
    if isinstance(h, ScanHostResult):
        data["ports"] = [port_to_json(p) for p in h.ports]
    return data


def host_from_json(data: Mapping[str, Any]) -> ScanHostResult:
    ports = tuple(PortResult(**p) for p in data.get("ports", ()))
    return ScanHostResult(data["host"], data["status"], data["reason"], ports, data.get("rtt_ms"))


def discovered_from_json(items: Iterable[Mapping[str, Any]]) -> list[HostResult]:
    return [HostResult(d["host"], d["status"], d["reason"], d.get("rtt_ms")) for d in items]


def discovered_to_json(items: Sequence[HostResult]) -> list[dict[str, Any]]:
    return [host_to_json(h) for h in items]
