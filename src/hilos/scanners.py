"""The port scan engines by scan type: SYN, connect, UDP, and TCP beside UDP (nmap -sS -sU).

The pipeline's one door to the engines' constructors: it says what to scan, this picks the
engine and its defaults (UDP: `DEFAULT_RETRIES`, replies named by hilos.services.udp).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from hilos.errors import UsageError
from hilos.results import PortResult, ScanHostResult
from hilos.targets import TargetSpace
from hilos.targets.ports import service_name

__all__ = ["check", "combined", "for_scan", "table_names", "tcp_scanner", "udp_scan", "udp_scanner"]


def check(
    targets: TargetSpace,
    ports: Sequence[int],
    scan_type: str,
    discovery: bool,
    retries: int | None,
    threads: int | None,
) -> None:
    """A scan's arguments, checked before any output is opened (UsageError)."""
    from hilos.sweep import check_space_size
    from hilos.syn import MAX_HOSTS
    from hilos.validate import MAX_RETRIES
    from hilos.wire.limits import check_thread_limit

    if targets.size == 0:
        raise UsageError("no targets to scan")
    check_space_size(targets)
    if not ports:
        raise UsageError("no ports to scan")
    if retries is not None and not 0 <= retries <= MAX_RETRIES:
        raise UsageError(f"retries must be between 0 and {MAX_RETRIES}, not {retries}")
    if scan_type == "connect" and threads is not None:
        check_thread_limit(threads)
    if scan_type != "connect" and not discovery and targets.size > MAX_HOSTS:
        # The scanner is made only after discovery: its limit is checked here.
        raise UsageError(
            f"a SYN scan takes at most {MAX_HOSTS} addresses per run, not {targets.size}: "
            "split the targets, or let discovery (no -Pn) pick the live ones"
        )


def for_scan(
    scan_type: str,
    hosts: Iterable[Any],
    ports: Sequence[int],
    udp_ports: Sequence[int],
    *,
    only: frozenset[str] | None,
    retries: int,
    udp_retries: int | None,
    threads: int | None,
    on_notice: Callable[[str], None] | None,
    **opts: Any,
) -> Any:
    """The scan of `hosts`: SYN or connect (`ports`), UDP (scan_type "udp": `ports`), or TCP
    and UDP side by side (`udp_ports`); `opts` as for tcp_scanner."""
    udp = None
    both = scan_type != "udp" and bool(udp_ports)
    tcp_opts, udp_opts = _split_resume(opts) if both else (opts, opts)
    if scan_type == "udp" or udp_ports:
        hosts = list(hosts)
        udp = udp_scanner(hosts, udp_ports or ports, only=only, retries=udp_retries,
                          on_notice=on_notice, **udp_opts)  # fmt: skip
        if scan_type == "udp":
            return udp
    tcp = tcp_scanner(scan_type, hosts, ports, only=only, retries=retries, threads=threads,
                      **tcp_opts)  # fmt: skip
    return combined(tcp, udp) if udp is not None else tcp


def _split_resume(opts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """TCP beside UDP: each scan's own part of a saved state (udp.combined's snapshot)."""
    state = opts.get("resume")
    if state is None:
        return opts, opts
    return {**opts, "resume": state["tcp"]}, {**opts, "resume": state["udp"]}


def table_names(host: ScanHostResult) -> ScanHostResult:
    """Ports nothing was learned from (a banner read that identified nothing) get the port
    table's name, as nmap's "table" method; closed ones too (nmap: `22/tcp closed ssh`). The
    scanners name every port themselves: only banners can leave a gap."""
    if not any(_unnamed(p) for p in host.ports):
        return host
    ports = tuple(
        replace(p, service=service_name(p.port)) if _unnamed(p) else p for p in host.ports
    )
    return replace(host, ports=ports)


def _unnamed(p: PortResult) -> bool:
    return p.service is None and not (p.banner or p.product) and p.proto == "tcp"


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
    if scan_type != "syn":
        for key in ("resume", "written", "archive"):  # a connect scan keeps no state of its own
            opts.pop(key, None)
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
    from hilos.udp import DEFAULT_RETRIES, LOSS_RETRIES, UdpScanner

    scanner = UdpScanner(
        hosts,
        ports,
        retries=DEFAULT_RETRIES if retries is None else retries,
        loss_retries=LOSS_RETRIES if retries is None else None,  # --retries is a cap
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
