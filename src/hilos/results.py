"""Result records of sweeps and scans: small frozen dataclasses that every writer understands."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

HostStatus = Literal["up", "down"]
PortState = Literal["open", "closed", "filtered", "open|filtered"]


@dataclass(frozen=True, slots=True)
class HostResult:
    """What a sweep learned about one address.

    `reason` follows nmap's words: echo-reply, syn-ack, reset, host-unreach, no-response, ...
    `rtt_ms` is None when the host never answered.
    """

    host: str
    status: HostStatus
    reason: str
    rtt_ms: float | None = None
    hostname: str | None = None  # the name the user gave, when the target was a name

    @property
    def is_up(self) -> bool:
        return self.status == "up"


@dataclass(frozen=True, slots=True)
class PortResult:
    """The state of one port of one host, with what its service said when banners were read."""

    port: int
    state: PortState
    reason: str
    proto: str = "tcp"
    service: str | None = None
    product: str | None = None
    version: str | None = None
    banner: str | None = None
    tls: bool = False

    @property
    def is_open(self) -> bool:
        return self.state == "open"


@dataclass(frozen=True, slots=True)
class ScanHostResult:
    """Every port result of one host (ports sorted by number), plus how the host was found."""

    host: str
    status: HostStatus
    reason: str = "user-set"
    ports: tuple[PortResult, ...] = field(default_factory=tuple)
    rtt_ms: float | None = None
    hostname: str | None = None  # the name the user gave, when the target was a name
    complete: bool = True  # False for a host an interrupted scan had not finished

    @property
    def open_ports(self) -> tuple[PortResult, ...]:
        return tuple(p for p in self.ports if p.state == "open")


def host_from_ports(
    host: str, ports: tuple[PortResult, ...], rtt_ms: float | None
) -> ScanHostResult:
    """A scanned host as its ports tell it: "up" with the reason of its first open port (else
    of a closed one) when any port answered; else "down" with the first reason other than
    no-response (an ICMP unreachable), or no-response."""
    status, reason = "down", "no-response"
    for p in ports:
        if p.state in ("open", "closed"):
            status, reason = "up", p.reason
            if p.state == "open":
                break
        elif reason == "no-response" and p.reason != "no-response":
            reason = p.reason
    rtt = None if rtt_ms is None else round(rtt_ms, 3)
    return ScanHostResult(host, "up" if status == "up" else "down", reason, ports, rtt)


@dataclass(frozen=True, slots=True)
class ScanStats:
    """Progress of a scan: probes answered (final), probes known so far, hosts finished."""

    done: int
    total: int
    hosts_done: int
    hosts_total: int
    elapsed: float
    window: int
    sent: int = 0  # packets sent, resends included (the packets/s beside --rate)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ScanProgress:
    """Where a running scan is: `phase` ("discovery" or "scan"), `done` of `total` probes (or
    addresses, in discovery; total None while unknown), `up` hosts found so far."""

    phase: str
    done: int
    total: int | None
    up: int
    sent: int | None = None  # packets sent by a raw scan (SYN, UDP), resends included


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """`addresses` actually probed (not the space's size when cut short), hosts `up`, seconds."""

    addresses: int
    up: int
    elapsed: float


#: written(addresses) -> one flag per address: whether a run's outputs already hold that host
#: (what a checkpoint's saved state is taken back against: hilos.scanstate and the engines')
Written = Callable[[Sequence[str]], Sequence[bool]]


def nothing_written(hosts: Sequence[str]) -> list[bool]:
    """A `Written` for a run whose outputs hold no host yet."""
    return [False] * len(hosts)


_Saved = TypeVar("_Saved")


def unwritten_archive(
    archive: Mapping[int, _Saved], names: Sequence[str], written: Written
) -> tuple[list[int], list[_Saved]]:
    """A scan state's archive (host index -> the answers of a host reported, kept until the
    outputs hold it): the hosts written since (to drop from it), and the saved answers of
    the others (for the checkpoint: a resumed scan reports those hosts again)."""
    hosts = list(archive)
    flags = written([names[h] for h in hosts]) if hosts else []
    done = [h for h, f in zip(hosts, flags, strict=True) if f]
    return done, [archive[h] for h, f in zip(hosts, flags, strict=True) if not f]
