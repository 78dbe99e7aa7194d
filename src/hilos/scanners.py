"""The port scan engines by scan type: SYN, connect, UDP, and TCP beside UDP (nmap -sS -sU).

The pipeline's one door to the engines' constructors: it says what to scan, this picks the
engine and its defaults (UDP: `DEFAULT_RETRIES`, replies named by hilos.services.udp).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from hilos.results import ScanHostResult

__all__ = ["combined", "tcp_scanner", "udp_scan", "udp_scanner"]


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


def preload_udp() -> None:
    """Start loading the UDP scan's numpy in the background (the caller has discovery to run)."""
    from hilos.udp import preload_batched

    preload_batched()


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


def udp_scan(
    hosts: Any,
    ports: Sequence[int] | str | int,
    *,
    rate: float | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    seed: int | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[ScanHostResult]:
    """UDP-scan `hosts` x `ports` (nmap -sU); yields one ScanHostResult per host once final,
    open ports named from their replies. Arguments as for hilos.syn.syn_scan, checked when
    called (UsageError subclasses); raw sockets when this process may open them, else
    connected UDP sockets (slower, the same states).

        >>> for host in udp_scan("127.0.0.1", "53,161", timeout=0.2):  # doctest: +SKIP
        ...     print(host.host, [(p.port, p.proto, p.state, p.reason) for p in host.ports])
        127.0.0.1 [(53, 'udp', 'closed', 'port-unreach'), (161, 'udp', 'closed', 'port-unreach')]
    """
    from hilos import validate

    checked = validate.check_hosts(hosts)
    scanner = udp_scanner(
        checked,
        validate.check_ports(ports, allow_empty=True),
        only=None,
        retries=validate.check_retries(retries),
        on_notice=None,
        rate=validate.check_rate(rate),
        timeout=validate.check_timeout(timeout),
        seed=validate.check_seed(seed),
        shard=validate.check_shard(shard),
    )
    return validate.with_hostnames(scanner.results(), checked)
