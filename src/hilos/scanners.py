"""The port scan engines by scan type: SYN, connect, UDP, and TCP beside UDP (nmap -sS -sU).

The pipeline's one door to the engines' constructors: it says what to scan, this picks the
engine and its defaults (UDP: `DEFAULT_RETRIES`, replies named by hilos.services.udp).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

__all__ = ["tcp_scanner", "udp_scanner"]


def tcp_scanner(
    scan_type: str,
    hosts: Iterable[Any],
    ports: Sequence[int],
    *,
    only: frozenset[str] | None,
    **opts: Any,
) -> Any:
    """A SynScanner (scan_type "syn") or ConnectScanner; `opts`: rate, timeout, retries,
    threads, seed, shard."""
    threads = opts.pop("threads", None)
    if scan_type == "syn":
        from hilos.syn import SynScanner

        return SynScanner(hosts, ports, only=only, **opts)
    from hilos.connect import ConnectScanner

    return ConnectScanner(hosts, ports, threads=threads, only=only, **opts)


def udp_scanner(
    hosts: Iterable[Any],
    ports: Sequence[int],
    *,
    only: frozenset[str] | None,
    retries: int | None,
    on_notice: Callable[[str], None] | None,
    **opts: Any,
) -> Any:
    """A UdpScanner (raw sockets, or the unprivileged path, said once through `on_notice`);
    `opts`: rate, timeout, seed, shard."""
    from hilos.services.udp import describe
    from hilos.udp import DEFAULT_RETRIES, UdpScanner

    scanner = UdpScanner(
        hosts,
        ports,
        retries=DEFAULT_RETRIES if retries is None else retries,
        only=only,
        namer=describe,
        **opts,
    )
    if scanner.unprivileged and on_notice is not None:
        on_notice("UDP scan without raw sockets: connected UDP sockets (slower; root is faster)")
    return scanner


def combined(tcp: Any, udp: Any) -> Any:
    """Both scans of the same hosts at once, one result per host."""
    from hilos.udp.combined import Combined

    return Combined(tcp, udp)
