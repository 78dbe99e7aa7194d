"""JSON Lines output: one object per host, exactly the keys of the CLI contract, nothing else."""

from __future__ import annotations

import functools
import json
import math
import re
from json.encoder import encode_basestring_ascii

from hilos.output.base import CleanPort, Result, Writer, clean_port, split_ports
from hilos.results import HostResult, PortResult, ScanHostResult
from hilos.sanitize import BANNER_DATA_LIMIT, FIELD_LIMIT, clean

# ASCII-only: the file reads the same whatever encoding the reader assumes.
_encode = json.JSONEncoder(ensure_ascii=True, separators=(", ", ": "), allow_nan=False).encode


def _rtt(value: float | None) -> float | None:
    # Microsecond resolution is all a measurement from Python can claim.
    return None if value is None else round(value, 3)


def sweep_object(result: HostResult) -> dict[str, object]:
    """{"host", ["hostname",] "status", "reason", "rtt_ms"}."""
    obj: dict[str, object] = {"host": result.host}
    if result.hostname:
        obj["hostname"] = clean(result.hostname, FIELD_LIMIT)
    obj.update(status=result.status, reason=result.reason, rtt_ms=_rtt(result.rtt_ms))
    return obj


def scan_object(result: ScanHostResult, show_all: bool) -> dict[str, object]:
    """{"host", ["hostname",] "status", "ports": [...], ["complete": false]}.

    Closed ports only with show_all. "hostname" appears for a target given as a name,
    "complete" (always false) for a host an interrupted scan had not finished: the keys of
    the common case stay exactly those of earlier versions.
    """
    view = split_ports(result.ports, show_all, fold_many=False)
    ports = [_port_object(clean_port(raw, BANNER_DATA_LIMIT)) for raw in view.shown]
    obj: dict[str, object] = {"host": result.host}
    if result.hostname:
        obj["hostname"] = clean(result.hostname, FIELD_LIMIT)
    obj.update(status=result.status, ports=ports)
    if not result.complete:
        obj["complete"] = False
    return obj


def scan_line(result: ScanHostResult, show_all: bool) -> str:
    """`_encode(scan_object(result, show_all))`, byte for byte, without building a dict per
    port: a /16 x 16 ports -Pn scan writes a million port objects (issue 11)."""
    head = '{"host": ' + encode_basestring_ascii(result.host)
    if result.hostname:
        head += ', "hostname": ' + encode_basestring_ascii(clean(result.hostname, FIELD_LIMIT))
    tail = ', "complete": false}' if not result.complete else "}"
    ports = _ports_json(result.ports, show_all)
    return f'{head}, "status": {encode_basestring_ascii(result.status)}, "ports": [{ports}]{tail}'


def _ports_json(ports: tuple[PortResult, ...], show_all: bool) -> str:
    """The "ports" list's items. Hosts of a big scan share port tuples (every silent host has
    the same one): the last tuple's text is kept (with the tuple, so its id is not reused)."""
    global _last_ports
    last = _last_ports
    if last is not None and last[0] is ports and last[1] == show_all:
        return last[2]
    view = split_ports(ports, show_all, fold_many=False)
    text = ", ".join([_port_json(clean_port(p, BANNER_DATA_LIMIT)) for p in view.shown])
    _last_ports = (ports, show_all, text)
    return text


_last_ports: tuple[tuple[PortResult, ...], bool, str] | None = None


def _port_json(p: CleanPort) -> str:
    # Ports a service told nothing (all but a few) repeat: their text is cached.
    return _plain_port_json(p) if not p.probed else _encode_port(p)


@functools.lru_cache(maxsize=8192)
def _plain_port_json(p: CleanPort) -> str:
    return _encode_port(p)


def _encode_port(p: CleanPort) -> str:
    return _encode(_port_object(p))


def _port_object(p: CleanPort) -> dict[str, object]:
    """{"port", "proto", "state", "reason", "service", "product", "version", "banner", "tls"}."""
    return {
        "port": p.port,
        "proto": p.proto,
        "state": p.state,
        "reason": p.reason,
        "service": p.service,
        "product": p.product,
        "version": p.version,
        "banner": p.banner,
        "tls": p.tls,
    }


class JsonLinesWriter(Writer):
    """Streams one JSON object per line; no header, no trailer (the stream stays pure data)."""

    def _write(self, result: Result) -> None:
        if isinstance(result, ScanHostResult):
            self.stream.write(scan_line(result, self.show_all) + "\n")
        else:
            self.stream.write(_encode(sweep_object(result)) + "\n")

    def _text_many(self, results: list[Result]) -> str | None:
        scans = [r for r in results if isinstance(r, ScanHostResult)]
        if scans and len(scans) == len(results):
            show_all = self.show_all
            return "".join([scan_line(r, show_all) + "\n" for r in scans])
        hosts = [r for r in results if isinstance(r, HostResult)]
        if len(hosts) != len(results):
            return None
        if not _plain(hosts):
            return "".join([_encode(sweep_object(r)) + "\n" for r in hosts])
        # What the encoder writes for these, by one format per host: ~5x faster.
        return "".join(
            [
                f'{{"host": "{r.host}", "status": "{r.status}", "reason": "{r.reason}", '
                f'"rtt_ms": {"null" if r.rtt_ms is None else repr(round(r.rtt_ms, 3))}}}\n'
                for r in hosts
            ]
        )


# A character JSON would escape (ensure_ascii): control, non-ASCII, quote, backslash.
_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def _plain(hosts: list[HostResult]) -> bool:
    """Whether every field of `hosts` encodes as itself: no hostname, nothing to escape, and
    finite RTTs (floats or none)."""
    if any(r.hostname for r in hosts):
        return False
    if _UNSAFE.search("".join([r.host + r.status + r.reason for r in hosts])):
        return False
    return all(
        r.rtt_ms is None or (type(r.rtt_ms) is float and math.isfinite(r.rtt_ms)) for r in hosts
    )
