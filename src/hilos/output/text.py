"""Human-readable output: one aligned line per host for sweeps, nmap-style reports for scans."""

from __future__ import annotations

import time

from hilos.output.base import (
    CleanPort,
    Result,
    Summary,
    Writer,
    clean_port,
    hidden_phrase,
    split_ports,
)
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.sanitize import BANNER_TEXT_LIMIT, FIELD_LIMIT, clean

# Address column: wide enough for every IPv4 address; longer (IPv6) addresses just push.
_HOST_WIDTH = 15
_REASON_WIDTH = 13


def format_latency(rtt_ms: float) -> str:
    """nmap's `0.00042s`: two significant digits, never scientific notation."""
    seconds = rtt_ms / 1000.0
    text = f"{seconds:.2g}"
    if "e" in text:
        text = f"{seconds:.{2 - int(f'{seconds:e}'.split('e')[1]) - 1}f}"
    return f"{text}s"


def sweep_line(result: HostResult) -> str:
    """`198.18.0.5       up    echo-reply       0.42 ms`, then `  (name)` for a named target."""
    rtt = f"{result.rtt_ms:.2f} ms" if result.rtt_ms is not None else "-"
    name = f"  ({clean(result.hostname, FIELD_LIMIT)})" if result.hostname else ""
    return (
        f"{result.host:<{_HOST_WIDTH}}  {result.status:<4}  "
        f"{result.reason:<{_REASON_WIDTH}}  {rtt:>9}{name}".rstrip()
    )


def report_name(host: str, hostname: str | None) -> str:
    """nmap's `localhost (127.0.0.1)` for a named target, else the address alone."""
    return f"{clean(hostname, FIELD_LIMIT)} ({host})" if hostname else host


def _service_name(p: CleanPort) -> str:
    name = p.service or "unknown"
    return f"ssl/{name}" if p.tls else name


def _protos(result: ScanHostResult, state: str) -> str:
    """The protocols of `result`'s ports in `state` ("tcp", "udp" or "tcp/udp")."""
    return "/".join(sorted({p.proto for p in result.ports if p.state == state}))


def scan_report(result: ScanHostResult, show_all: bool) -> list[str]:
    """The lines of one host's report, nmap's normal output in spirit."""
    lines = [f"hilos scan report for {report_name(result.host, result.hostname)}"]
    if not result.complete:
        # nmap's words for a host it gave up on; the ports below are those answered so far.
        lines.append("Scan of this host was not completed (interrupted): partial results.")
    if result.status != "up":
        lines.append(f"Host is down ({result.reason}).")
        return lines
    if result.rtt_ms is not None and result.rtt_ms <= 0:
        # A zero comes from a clock coarser than the path (the SYN engine's 1 ms ticks on loopback).
        lines.append("Host is up (<0.001s latency).")
    elif result.rtt_ms is not None:
        lines.append(f"Host is up ({format_latency(result.rtt_ms)} latency).")
    else:
        lines.append("Host is up.")
    lines.extend(_port_section(result, show_all))
    return lines


def _port_section(result: ScanHostResult, show_all: bool) -> list[str]:
    """The "Not shown" line and the PORT table. A table names no host, and hosts of a big scan
    share port tuples (every silent host of a -Pn /16): the last tuple's lines are kept."""
    global _last_section
    last = _last_section
    if last is not None and last[0] is result.ports and last[1] == show_all:
        return last[2]
    view = split_ports(result.ports, show_all, fold_many=True)
    not_shown = [hidden_phrase(s, r, _protos(result, s)) for s, r in view.hidden.items()]
    lines: list[str] = []
    if not view.shown:
        if result.ports:
            lines.append(
                f"All {len(result.ports)} scanned ports on {result.host} are in ignored states."
            )
        if not_shown:
            lines.append("Not shown: " + ", ".join(not_shown))
        return lines  # names the host: not kept
    if not_shown:
        lines.append("Not shown: " + ", ".join(not_shown))
    ports = [clean_port(p, BANNER_TEXT_LIMIT) for p in view.shown]
    rows = [(f"{p.port}/{p.proto}", p.state, _service_name(p), p.product_version) for p in ports]
    w_port = max(len("PORT"), *(len(r[0]) for r in rows))
    w_state = max(len("STATE"), *(len(r[1]) for r in rows))
    w_service = max(len("SERVICE"), *(len(r[2]) for r in rows))
    with_version = any(r[3] for r in rows)

    def _row(cols: tuple[str, str, str, str]) -> str:
        line = f"{cols[0]:<{w_port}} {cols[1]:<{w_state}} {cols[2]:<{w_service}}"
        return f"{line} {cols[3]}".rstrip() if with_version else line.rstrip()

    lines.append(_row(("PORT", "STATE", "SERVICE", "VERSION")))
    for p, row in zip(ports, rows, strict=True):
        lines.append(_row(row))
        if p.banner:
            lines.append(f"    banner: {p.banner}")
    _last_section = (result.ports, show_all, lines)
    return lines


_last_section: tuple[tuple[PortResult, ...], bool, list[str]] | None = None


class TextWriter(Writer):
    """Streams the human-readable output; to a file it adds nmap's `# ... initiated` header."""

    def _header(self) -> None:
        if self.owns_stream:
            started = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(self.start))
            version = f" {self.version}" if self.version else ""
            self.stream.write(f"# hilos{version} {self.kind} initiated {started} as: {self.args}\n")

    def _write(self, result: Result) -> None:
        if isinstance(result, ScanHostResult):
            self.stream.write("\n".join(scan_report(result, self.show_all)) + "\n\n")
        else:
            self.stream.write(sweep_line(result) + "\n")

    def _text_many(self, results: list[Result]) -> str | None:
        scans = [r for r in results if isinstance(r, ScanHostResult)]
        if scans and len(scans) == len(results):
            return "".join(["\n".join(scan_report(r, self.show_all)) + "\n\n" for r in scans])
        hosts = [r for r in results if isinstance(r, HostResult)]
        if len(hosts) != len(results):
            return None
        return "".join([sweep_line(r) + "\n" for r in hosts])

    def _trailer(self, summary: Summary) -> None:
        if summary.error is None:
            self.stream.write(f"hilos done: {summary.sentence()}\n")
        elif self.owns_stream:
            # A file says how it ended; on stdout an unfinished run ends without a trailer
            # (the reason, and an interrupted run's numbers, go to stderr, as nmap's do).
            self.stream.write(f"# hilos {_ended(summary.error)}: {summary.sentence()}\n")


def _ended(error: str) -> str:
    return "interrupted" if error == "interrupted" else f"failed ({clean(error, FIELD_LIMIT)})"
