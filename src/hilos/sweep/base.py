"""The sweep's shared vocabulary: defaults, the (family, first, last) range, the engine protocol."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from hilos.errors import UsageError
from hilos.probes.icmp_echo import V6_TAG
from hilos.results import HostResult
from hilos.targets import TargetSpace
from hilos.validate import MAX_RETRIES

__all__ = [
    "DEFAULT_RATE",
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "MAX_V6_ADDRESSES",
    "MIN_WAIT",
    "PACE_BATCH",
    "TCP_PORTS",
    "UP_REASONS",
    "Address",
    "Engine",
    "Method",
    "Range",
    "Sink",
    "SweepProgress",
    "check_arguments",
    "check_space_size",
    "host_str",
]

Method = Literal["auto", "icmp", "tcp"]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address | str
Range = tuple[int, int, int]  # (family, first, last), inclusive
#: Where the engines' receivers report a validated answer: (address key, reason, RTT in ms).
Sink = Callable[[int, str, "float | None"], None]

#: Longest wait for an answer (seconds) when --timeout is not given; also the wait used before
#: any answer has been seen. LAN-friendly and the same as nmap's initial RTT timeout.
DEFAULT_TIMEOUT = 1.0
#: Shortest adaptive wait (nmap's --min-rtt-timeout at -T4 is 100 ms as well).
MIN_WAIT = 0.1
DEFAULT_RETRIES = 1
#: Packets per second when --rate is not given: a ceiling, not a pace. Two sender processes
#: reach ~250k frames/s on 2 cores (300k capped them in the lab); 1M 66-byte frames is ~530
#: Mbit/s, what a gigabit LAN carries. On slower links give --rate (nmap: --max-rate).
DEFAULT_RATE = 1_000_000.0
TCP_PORTS = (443, 80)  # raw: SYN to 443, ACK to 80 (nmap -PS443 -PA80); connect: both
PACE_BATCH = 32  # packets per token-bucket reservation
#: The largest IPv6 target space a sweep or scan accepts (see check_space_size).
MAX_V6_ADDRESSES = 1 << 24
#: The reasons that make a host up (the others: host-unreach, time-exceeded, no-response).
UP_REASONS = frozenset({"echo-reply", "syn-ack", "reset", "conn-refused"})


def check_space_size(space: TargetSpace) -> None:
    """Refuse, up front, an IPv6 space too big to probe address by address (UsageError).

    An IPv6 /64 is 2**64 addresses: a sweep at a million packets a second would take half a
    million years. nmap has no IPv6 netmask limit and just runs on; hilos refuses above
    MAX_V6_ADDRESSES (a /104, as many addresses as an IPv4 /8).
    """
    if space.size_v6 > MAX_V6_ADDRESSES:
        raise UsageError(
            f"IPv6 target space too big to probe: {space.size_v6} addresses; at most "
            f"{MAX_V6_ADDRESSES} (2^24, a /104) per run: give a narrower range or the "
            "addresses themselves"
        )


def check_arguments(
    method: str,
    timeout: float | None,
    retries: int | None,
    rate: float | None,
    threads: int | None,
) -> None:
    """Raise UsageError for a Sweeper argument out of range (sweep() checks more, earlier)."""
    if method not in ("auto", "icmp", "tcp"):
        raise UsageError(f"unknown sweep method {method!r} (auto, icmp or tcp)")
    if timeout is not None and not timeout > 0:
        raise UsageError(f"timeout must be positive, not {timeout!r}")
    if retries is not None and not 0 <= retries <= MAX_RETRIES:
        raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries!r}")
    if rate is not None and not rate > 0:
        raise UsageError(f"rate must be positive, not {rate!r}")
    if threads is not None and threads < 1:
        raise UsageError(f"threads must be at least 1, not {threads!r}")


_OCTETS = tuple(str(i) for i in range(256))


def up_results(
    keys: list[int],
    reasons: list[str],
    rtts: list[float | None],
    hostname: Callable[[str], str | None] | None = None,
) -> list[HostResult]:
    """HostResults "up" for IPv4 keys (65,536 at a dense /16): the address text from an octet
    table, ~1.5 us a host instead of ~4 through host_str and a call each."""
    o = _OCTETS
    hosts = [f"{o[k >> 24]}.{o[k >> 16 & 255]}.{o[k >> 8 & 255]}.{o[k & 255]}" for k in keys]
    if hostname is None:
        return [HostResult(h, "up", r, t) for h, r, t in zip(hosts, reasons, rtts, strict=True)]
    return [
        HostResult(h, "up", r, t, hostname(h)) for h, r, t in zip(hosts, reasons, rtts, strict=True)
    ]


def host_str(key: int) -> str:
    """The address text of a sweep key (an IPv4 int, or an IPv6 int plus V6_TAG)."""
    if key >= V6_TAG:
        return str(ipaddress.IPv6Address(key - V6_TAG))
    return socket.inet_ntoa(key.to_bytes(4, "big"))


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """A running sweep's state: `done` of `total` addresses probed in pass `pass_no` (of at most
    `passes`), `up` hosts found so far."""

    done: int
    total: int
    up: int
    pass_no: int
    passes: int
    elapsed: float


class Engine(Protocol):
    """One kind of discovery probe: sends a pass over ranges, its receivers call the Sink."""

    name: str

    def start(self) -> None: ...

    def run_pass(
        self, ranges: Iterable[Range], skip: dict[int, object], stop: threading.Event
    ) -> int: ...

    def close(self) -> None: ...
