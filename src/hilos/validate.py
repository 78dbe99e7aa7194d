"""Argument checks shared by the library's public functions, the CLI and the scan pipeline.

One rule per option, so ``sweep(timeout=-1)``, ``connect_scan(threads=0)`` and
``hilos scan --timeout -1`` refuse the same values with the same words. Every check returns the
normalised value or raises InvalidArgument (a UsageError and a ValueError; the CLI exits 2)::

    timeout = check_timeout(timeout)            # None stays None (adaptive)
    ports = check_ports(ports)                  # a spec string or ints 1-65535, never empty
    hosts = check_hosts(hosts)                  # "127.0.0.1" is one target, not ten characters

Limits: ``MAX_THREADS`` (hilos.pool's) and ``MAX_RETRIES``; callers with a tighter bound (a
connect scan's descriptors) pass their own ``limit``.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Collection, Iterable, Iterator
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from typing import TypeVar

from hilos.errors import InvalidArgument, TargetError
from hilos.pool import MAX_THREADS
from hilos.results import HostResult, ScanHostResult
from hilos.targets import IPAddress, TargetSpace, parse_targets
from hilos.targets.ports import MAX_PORT, parse_ports

#: Most resends any scan or sweep makes (nmap's --max-retries default is 10): more only stretches
#: the wait for silent targets (issue 9 item 4). The engines check the same bound.
MAX_RETRIES = 20

__all__ = [
    "MAX_RETRIES",
    "MAX_THREADS",
    "check_hosts",
    "check_ports",
    "check_rate",
    "check_retries",
    "check_scan_hosts",
    "check_seed",
    "check_shard",
    "check_threads",
    "check_timeout",
    "with_hostnames",
]


_R = TypeVar("_R", HostResult, ScanHostResult)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{name} must be a number, not {type(value).__name__} {value!r}")
    return float(value)


def _positive(name: str, value: object) -> float:
    number = _number(name, value)
    if not (number > 0 and math.isfinite(number)):
        raise InvalidArgument(f"{name} must be a positive number, not {value!r}")
    return number


def _whole(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"{name} must be a whole number, not {type(value).__name__} {value!r}"
        )
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be {low} to {high}, not {value}")
    return value


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """A timeout in seconds: positive and finite; None (adaptive) stays None."""
    return None if value is None else _positive(name, value)


def check_rate(value: object, name: str = "rate") -> float | None:
    """A rate in packets (or connects) per second: positive and finite; None (no cap) stays."""
    return None if value is None else _positive(name, value)


def check_threads(value: object, limit: int = MAX_THREADS, name: str = "threads") -> int | None:
    """A thread count from 1 to ``limit``; None (the default) stays None."""
    return None if value is None else _whole(name, value, 1, limit)


def check_retries(value: object, limit: int = MAX_RETRIES, name: str = "retries") -> int | None:
    """A retry count from 0 to ``limit``; None (the default) stays None."""
    return None if value is None else _whole(name, value, 0, limit)


def check_seed(value: object) -> int | None:
    """A random-order seed: any whole number, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"seed must be a whole number, not {type(value).__name__} {value!r}")
    return value


def check_shard(value: object) -> tuple[int, int] | None:
    """``(i, n)`` with 1 <= i <= n (1-based, as ``--shard I/N``), or None."""
    if value is None:
        return None
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in value)
    ):
        raise InvalidArgument(f"shard must be a pair (i, n) of whole numbers, not {value!r}")
    i, n = value
    if not 1 <= i <= n:
        raise InvalidArgument(f"shard {i}/{n}: expected 1 <= i <= n")
    return i, n


def check_ports(ports: object, *, allow_empty: bool = False) -> tuple[int, ...]:
    """Ports to scan: a spec string (``"22,80-90,ssh"``), one int, or ints from 1 to 65535.

    Duplicates are dropped, the order kept. Raises PortSpecError for a bad spec string and
    InvalidArgument for anything else, and for an empty collection unless ``allow_empty`` (a
    spec string is never empty: ``-p ""`` is an error).
    """
    if isinstance(ports, str):
        return parse_ports(ports)
    if isinstance(ports, int) and not isinstance(ports, bool):
        ports = (ports,)
    if isinstance(ports, (bytes, bytearray)) or not isinstance(ports, Iterable):
        raise InvalidArgument(f"ports must be a spec string or ints 1-{MAX_PORT}, not {ports!r}")
    out: dict[int, None] = {}
    for port in ports:
        out[_whole("port", port, 1, MAX_PORT)] = None
    if not out and not allow_empty:
        raise InvalidArgument("no ports to scan: ports is empty")
    return tuple(out)


def _address(item: object) -> IPAddress | None:
    """``item`` as one address, or None when it is a spec of another kind (a name, a range)."""
    if isinstance(item, bool):
        raise TargetError(f"invalid target {item!r}: expected an address, not bool")
    addr: IPAddress
    if isinstance(item, (IPv4Address, IPv6Address)):
        addr = item
    elif isinstance(item, int):
        try:
            addr = ipaddress.ip_address(item)
        except ValueError:
            raise TargetError(
                f"invalid target {item}: an integer address must be 0 to 2**128-1"
            ) from None
    elif isinstance(item, str):
        try:
            addr = ipaddress.ip_address(item.strip())
        except ValueError:
            return None
    else:
        raise TargetError(
            f"invalid target {item!r}: expected an address, a spec string or an int, "
            f"not {type(item).__name__}"
        )
    if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # as parse_targets does: ::ffff:127.0.0.1 is 127.0.0.1
    return addr


def _spec_addresses(item: object) -> Iterator[IPAddress]:
    """The addresses of one spec (a name, a CIDR block, a range), names resolved strictly."""
    return iter(parse_targets([item], strict=True))  # type: ignore[list-item]


def _lazy(items: Iterable[object], results: bool) -> Iterator[IPAddress | HostResult]:
    for item in items:
        if results and isinstance(item, HostResult):
            yield item
            continue
        addr = _address(item)
        if addr is not None:
            yield addr
        else:
            yield from _spec_addresses(item)


def _check(hosts: object, results: bool) -> TargetSpace | Iterable[IPAddress | HostResult]:
    if isinstance(hosts, TargetSpace):
        return hosts
    if isinstance(hosts, (str, int, IPv4Address, IPv6Address)):
        if isinstance(hosts, bool):
            raise TargetError(f"invalid target {hosts!r}: expected an address, not bool")
        return parse_targets([hosts], strict=True)
    if isinstance(hosts, (bytes, bytearray)) or not isinstance(hosts, Iterable):
        raise TargetError(
            f"invalid targets {hosts!r}: expected a spec string, a TargetSpace or an iterable "
            "of addresses"
        )
    if isinstance(hosts, Collection) and not isinstance(hosts, Iterator):
        items: list[IPAddress | HostResult] = []
        specs: list[object] = []
        for item in hosts:
            if results and isinstance(item, HostResult):
                items.append(item)
                continue
            addr = _address(item)
            if addr is None:
                specs.append(item)
            else:
                items.append(addr)
        if not specs:
            return items
        if any(isinstance(i, HostResult) for i in items):
            return list(_lazy(hosts, results))
        # Names, ranges or blocks among them: one exact, lazy space (a /64 costs nothing).
        return parse_targets([*items, *specs], strict=True)  # type: ignore[list-item]
    return _lazy(hosts, results)


def check_hosts(hosts: object) -> TargetSpace | Iterable[IPAddress]:
    """The targets of a sweep or scan, checked: what the engines can iterate safely.

    - a TargetSpace is returned as it is;
    - one target (a str spec such as ``"127.0.0.1"`` or ``"127.0.0.0/30"``, an int, an address)
      becomes a TargetSpace: a lone str is one target, never its characters;
    - a collection (list, tuple, set) of single addresses keeps its order, as addresses; one with
      names, ranges or CIDR blocks among them becomes one TargetSpace (ascending, exact, lazy);
    - an iterator (a generator, perhaps fed by a running discovery) is checked item by item as
      it is consumed.

    Names that do not resolve raise ResolveError; other bad targets TargetError.
    """
    return _check(hosts, False)  # type: ignore[return-value]  # no HostResult without results


def check_scan_hosts(hosts: object) -> TargetSpace | Iterable[IPAddress | HostResult]:
    """check_hosts for a connect scan, whose input may also be HostResults of a discovery."""
    return _check(hosts, True)


def with_hostnames(results: Iterator[_R], hosts: object) -> Iterator[_R]:
    """``results`` with ``hostname`` set from the names targets were given as (``localhost``),
    when ``hosts`` is a TargetSpace that has any; otherwise ``results`` itself.

    Closing the returned generator closes ``results`` (which stops its scan).
    """
    if not isinstance(hosts, TargetSpace) or not hosts.names:
        return results
    return _named(results, hosts)


def _named(results: Iterator[_R], space: TargetSpace) -> Iterator[_R]:
    try:
        for host in results:
            name = host.hostname or space.hostname(host.host)
            yield host if name == host.hostname else replace(host, hostname=name)
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
