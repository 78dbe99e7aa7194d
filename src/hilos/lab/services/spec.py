"""The spec of one service server: which kind listens on which (address, port)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import cast

from hilos.errors import LabError
from hilos.lab.services.catalog import DESCRIPTIONS, KINDS

DEFAULT_IDLE_TIMEOUT = 30.0


# The spec


@dataclass(frozen=True, slots=True)
class Service:
    """One listener: a kind of service on (addr, port)."""

    addr: str
    port: int
    kind: str


@dataclass(frozen=True, slots=True)
class Spec:
    """Every listener of one labsvc process, and the idle timeout for their connections."""

    services: tuple[Service, ...]
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT


def parse_spec(data: object) -> Spec:
    """Validate a decoded SPEC.json document; raise LabError naming the first problem."""
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        raise LabError('spec must be an object with a "services" list')
    idle = data.get("idle_timeout", DEFAULT_IDLE_TIMEOUT)
    if isinstance(idle, bool) or not isinstance(idle, (int, float)) or not 0 < idle <= 86400:
        raise LabError(
            f"spec: idle_timeout must be a number of seconds in (0, 86400], not {idle!r}"
        )
    services: list[Service] = []
    seen: set[tuple[str, int]] = set()
    for i, entry in enumerate(data["services"]):
        where = f"spec: services[{i}]"
        if not isinstance(entry, dict):
            raise LabError(f"{where} must be an object with addr, port and kind")
        addr, port, kind = entry.get("addr"), entry.get("port"), entry.get("kind")
        try:
            ip = ipaddress.ip_address(addr if isinstance(addr, str) else "")
        except ValueError:
            raise LabError(f"{where}: addr {addr!r} is not an IPv4 or IPv6 address") from None
        if ip.is_unspecified or ip.is_multicast:
            raise LabError(f"{where}: addr {addr} must be one unicast address")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise LabError(f"{where}: port {port!r} must be an integer in 1-65535")
        if kind not in DESCRIPTIONS:
            raise LabError(f"{where}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
        key = (ip.compressed, port)
        if key in seen:
            raise LabError(f"{where}: {hostport(ip.compressed, port)} is listed twice")
        seen.add(key)
        services.append(Service(ip.compressed, port, cast(str, kind)))
    return Spec(tuple(services), float(idle))


def load_spec(path: str) -> Spec:
    """Read and validate SPEC.json."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise LabError(f"cannot read spec {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise LabError(f"spec {path} is not valid JSON: {exc}") from exc
    return parse_spec(data)


def hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
