"""What changed between two scans: hosts up or gone, ports opened or closed, services moved.

The rules, chosen so that files of different tools compare cleanly:

* A host is compared when it is up in either scan. Up only in NEW: "host-up" (listing its
  open ports); up only in OLD: "host-down". Hosts up in both have their ports compared.
* Open or not is exact in every format (each lists every open port it found), so a port open
  on one side and not open on the other (another state, or not listed) is "port-opened" or
  "port-closed". A port listed on both sides in two different non-open states (filtered ->
  closed) is "port-state". A non-open port listed on one side only is no change: formats
  differ in what they leave out (closed ports, nmap's extraports, masscan's open-only lists).
* Services are compared only on ports open in both scans that were *probed* on both sides
  (version detection or banners: a product, version or banner is known). A service name
  guessed from the port number (nmap's table, hilos without --banners) is not evidence.
  Between two files of the same tool, service name, product and version are compared as they
  are; between different tools (nmap -sV and hilos --banners name services differently) only
  product and version, case-insensitively, and only where both sides have a value.

So a hilos scan and nmap's scan of the same hosts and ports show no change. What is not
compared: reasons, RTTs, host names, hosts down on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from hilos.report.model import ScanRun, port_probed
from hilos.results import PortResult, ScanHostResult
from hilos.sanitize import FIELD_LIMIT, clean, clean_optional

__all__ = ["Change", "diff_runs", "format_json", "format_text"]

_FIELDS = ("service", "product", "version")


@dataclass(frozen=True, slots=True)
class Change:
    """One difference. `kind`: host-up, host-down, port-opened, port-closed, port-state,
    service (then `field` names service, product or version). `old`/`new` are the values on
    each side (a state, a field's value; None for "not listed"); `ports` the open ports of a
    host that appeared or went away ("22/tcp ssh")."""

    kind: str
    host: str
    port: int | None = None
    proto: str | None = None
    field: str | None = None
    old: str | None = None
    new: str | None = None
    ports: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        """The JSON object of --format json: only the keys that apply to this kind."""
        obj: dict[str, object] = {"change": self.kind, "host": self.host}
        if self.port is not None:
            obj.update(port=self.port, proto=self.proto)
        if self.field is not None:
            obj["field"] = self.field
        if self.kind not in ("host-up", "host-down"):
            obj.update(old=self.old, new=self.new)
        else:
            obj["ports"] = list(self.ports)
        return obj

    def text(self) -> str:
        """One line: `+` something new, `-` something gone, `~` something different."""
        where = f"{self.host} {self.port}/{self.proto}" if self.port is not None else self.host
        if self.kind == "host-up":
            return f"+ {where} up" + (f" (open: {', '.join(self.ports)})" if self.ports else "")
        if self.kind == "host-down":
            gone = f" (was open: {', '.join(self.ports)})" if self.ports else ""
            return f"- {where} no longer up{gone}"
        if self.kind == "port-opened":
            return f"+ {where} open (was {self.old or 'not listed'})"
        if self.kind == "port-closed":
            return f"- {where} {self.new or 'not listed'} (was open)"
        if self.kind == "port-state":
            return f"~ {where} {self.new} (was {self.old})"
        return f"~ {where} {self.field}: {self.old or '-'} -> {self.new or '-'}"


def diff_runs(old: ScanRun, new: ScanRun) -> list[Change]:
    """Every change from `old` to `new`, hosts in address order, ports by number."""
    same_tool = old.tool == new.tool
    before = {h.host: h for h in old.hosts if h.status == "up"}
    after = {h.host: h for h in new.hosts if h.status == "up"}
    changes: list[Change] = []
    for host in sorted(before.keys() | after.keys(), key=_address_key):
        a, b = before.get(host), after.get(host)
        if a is None and b is not None:
            changes.append(Change("host-up", host, ports=_labels(b)))
        elif b is None and a is not None:
            changes.append(Change("host-down", host, ports=_labels(a)))
        elif a is not None and b is not None:
            changes.extend(_host_changes(a, b, same_tool))
    return changes


def _host_changes(a: ScanHostResult, b: ScanHostResult, same_tool: bool) -> Iterator[Change]:
    old = {(p.port, p.proto): p for p in a.ports}
    new = {(p.port, p.proto): p for p in b.ports}
    for key in sorted(old.keys() | new.keys()):
        p, q = old.get(key), new.get(key)
        port, proto = key
        was_open = p is not None and p.state == "open"
        is_open = q is not None and q.state == "open"
        if is_open and not was_open:
            yield Change("port-opened", a.host, port, proto, old=p.state if p else None, new="open")
        elif was_open and not is_open:
            yield Change("port-closed", a.host, port, proto, old="open", new=q.state if q else None)
        elif p is not None and q is not None and p.state != q.state:
            yield Change("port-state", a.host, port, proto, old=p.state, new=q.state)
        elif was_open and p is not None and q is not None:
            yield from _service_changes(a.host, p, q, same_tool)


def _service_changes(host: str, p: PortResult, q: PortResult, same_tool: bool) -> Iterator[Change]:
    if not (port_probed(p) and port_probed(q)):
        return
    for name in _FIELDS if same_tool else _FIELDS[1:]:
        # In-memory results of a scan (--baseline) are not cleaned yet, files are: compare
        # (and print) both cleaned, so a control character is no change and reaches no terminal.
        x = clean_optional(getattr(p, name), FIELD_LIMIT)
        y = clean_optional(getattr(q, name), FIELD_LIMIT)
        if same_tool:
            differ = x != y
        else:
            differ = x is not None and y is not None and x.casefold() != y.casefold()
        if differ:
            yield Change("service", host, p.port, p.proto, field=name, old=x, new=y)


def _labels(host: ScanHostResult) -> tuple[str, ...]:
    return tuple(
        f"{p.port}/{p.proto}" + (f" {clean(p.service, FIELD_LIMIT)}" if p.service else "")
        for p in host.open_ports
    )


def _address_key(address: str) -> tuple[int, int]:
    import ipaddress

    ip = ipaddress.ip_address(address)
    return ip.version, int(ip)


def format_text(changes: list[Change]) -> str:
    """The changes as lines of text (empty when there is none: `diff`'s silence)."""
    return "".join(c.text() + "\n" for c in changes)


def format_json(changes: list[Change]) -> str:
    """One JSON object a line, ASCII-only (see Change.as_dict for the keys)."""
    return "".join(json.dumps(c.as_dict(), ensure_ascii=True) + "\n" for c in changes)
