"""Read a scan file of any tool hilos knows, detected from its content, into one ScanRun.

Formats: hilos JSON Lines (scan or sweep), hilos XML, nmap -oX and masscan -oX (`nmaprun`, see
hilos.report.nmapxml), masscan -oJ (a JSON array, or one object a line as -oD writes) and
masscan -oL (`open tcp 22 198.18.0.1 1700000000`). The extension is never looked at: a
`scan.txt` holding XML is read as XML. An empty file is a hilos JSON Lines file without hosts
(what `hilos scan --format json` writes when nothing answered).

Every string from the file is cleaned as hilos cleans banners (hilos.sanitize): a file from
another tool, or edited by hand, may hold terminal escapes or control characters. A file that
is missing, unreadable or of no known format raises InputError (the CLI exits 2) naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from hilos.errors import InputError
from hilos.report.fields import address, make_port, opt_str
from hilos.report.model import ScanRun, merge_runs, sorted_ports
from hilos.results import HostStatus, PortResult, ScanHostResult
from hilos.sanitize import FIELD_LIMIT, clean, clean_optional

__all__ = ["detect_format", "load_scan", "load_scans", "parse_scan"]

FORMATS = ("hilos-jsonl", "xml", "masscan-json", "masscan-list")
_KNOWN = "hilos JSON Lines or XML, nmap -oX, masscan -oJ or -oL"
# A scan file larger than this is refused rather than read into memory (a 10,000-host scan
# of every port in nmap XML is well under it).
MAX_BYTES = 1 << 30


def load_scans(paths: Sequence[str]) -> ScanRun:
    """Read every file and merge them (hosts by address); InputError names a bad one."""
    if not paths:
        raise InputError("no scan file given")
    return merge_runs([load_scan(p) for p in paths])


def load_scan(path: str) -> ScanRun:
    """Read one scan file ("-" is stdin); InputError when missing, unreadable or unknown."""
    text = _read_text(path)
    return parse_scan(text, source=path)


def _read_text(path: str) -> str:
    import sys

    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_BYTES + 1)
        else:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a scan file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        raise InputError(f"{path}: larger than {MAX_BYTES >> 20} MiB, not read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not a text file ({_KNOWN}): {exc.reason}") from None


def detect_format(text: str) -> str:
    """The format of a scan file's content (one of FORMATS); InputError when none fits."""
    head = text.lstrip()
    if not head:
        return "hilos-jsonl"
    if head.startswith("<"):
        return "xml"
    if head.startswith("#masscan") or re.match(r"(open|closed|banner) (tcp|udp|sctp) \d", head):
        return "masscan-list"
    if head.startswith("["):
        return "masscan-json"
    if head.startswith("{"):
        first = head.split("\n", 1)[0]
        return "masscan-json" if re.search(r'"ip"\s*:', first) else "hilos-jsonl"
    raise InputError(f"not a scan file hilos reads ({_KNOWN})")


def parse_scan(text: str, source: str = "-") -> ScanRun:
    """Parse a scan file's content (see the module docstring); InputError names `source`."""
    fmt = "scan"
    try:
        fmt = detect_format(text)
        return _PARSERS[fmt](text, source)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # A field of the wrong type or value deep in an entry: one line, not a traceback.
        raise InputError(f"{source}: not a valid {fmt} file ({exc})") from None


# --- hilos JSON Lines ---------------------------------------------------------------------------


def _jsonl(text: str, source: str) -> ScanRun:
    hosts: list[ScanHostResult] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("host"), str):
            raise InputError(f'line {number}: not a hilos result (no "host")')
        try:
            hosts.append(_jsonl_host(obj))
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"line {number}: not a hilos result ({exc})") from None
    return ScanRun(hosts=_unique(hosts), tool="hilos", source=source, format="hilos-jsonl")


def _jsonl_host(obj: Mapping[str, object]) -> ScanHostResult:
    status = _status(obj.get("status", "up"))
    ports = obj.get("ports", [])
    if not isinstance(ports, list):
        raise ValueError('"ports" is not a list')
    rtt = obj.get("rtt_ms")
    return ScanHostResult(
        host=address(obj["host"]),
        status=status,
        reason=clean(str(obj.get("reason", "user-set")), FIELD_LIMIT),
        ports=sorted_ports(_jsonl_port(p) for p in ports),
        rtt_ms=float(rtt) if isinstance(rtt, (int, float)) and not isinstance(rtt, bool) else None,
        hostname=clean_optional(opt_str(obj.get("hostname")), FIELD_LIMIT),
        complete=obj.get("complete", True) is not False,
    )


def _jsonl_port(p: object) -> PortResult:
    if not isinstance(p, dict):
        raise ValueError("a port is not an object")
    return make_port(
        port=p["port"],
        proto=p.get("proto", "tcp"),
        state=p["state"],
        reason=p.get("reason", ""),
        service=p.get("service"),
        product=p.get("product"),
        version=p.get("version"),
        banner=p.get("banner"),
        tls=p.get("tls") is True,
    )


# --- masscan ------------------------------------------------------------------------------------


def _masscan_json(text: str, source: str) -> ScanRun:
    body = text.strip()
    objects: list[object]
    if body.startswith("["):
        # masscan writes "},\n]" or a trailing "{finished: 1}" in some versions: tolerate both.
        if not body.endswith("]"):
            body += "]"  # an interrupted masscan run never wrote the closing bracket
        body = re.sub(r",\s*\]\s*$", "]", body)
        body = re.sub(r",?\s*\{\s*finished\s*:\s*1\s*\}\s*", "", body)
        try:
            loaded = json.loads(body)
        except json.JSONDecodeError as exc:
            raise InputError(f"not masscan JSON (line {exc.lineno}: {exc.msg})") from None
        objects = loaded if isinstance(loaded, list) else [loaded]
    else:
        objects = []
        for number, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    objects.append(json.loads(line.rstrip().rstrip(",")))
                except json.JSONDecodeError as exc:
                    raise InputError(f"line {number}: not JSON ({exc.msg})") from None
    found: dict[str, dict[tuple[str, int], PortResult]] = {}
    for obj in objects:
        if not isinstance(obj, dict) or not isinstance(obj.get("ip"), str):
            raise InputError('not masscan JSON (an entry without "ip")')
        for p in obj.get("ports") or ():
            if isinstance(p, dict):
                _masscan_add(found, obj["ip"], p)
    return _masscan_run(found, source, "masscan-json")


def _masscan_add(
    found: dict[str, dict[tuple[str, int], PortResult]], ip: str, p: dict[str, object]
) -> None:
    try:
        number = int(str(p["port"]))
    except (KeyError, ValueError):
        raise InputError(f"not masscan JSON (a port of {clean(ip, 64)} without a number)") from None
    proto = str(p.get("proto", "tcp"))
    ports = found.setdefault(address(ip), {})
    before = ports.get((proto, number))
    service = p.get("service")
    if isinstance(service, dict):  # a banner record: masscan --banners
        name = opt_str(service.get("name"))
        banner = opt_str(service.get("banner"))
        state = before.state if before else "open"
        reason = before.reason if before else "syn-ack"
        ports[(proto, number)] = make_port(number, proto, state, reason, name, None, None, banner)
        return
    ports[(proto, number)] = make_port(
        number, proto, str(p.get("status", "open")), str(p.get("reason", "syn-ack")),
        before.service if before else None, None, None, before.banner if before else None,
    )  # fmt: skip


def _masscan_list(text: str, source: str) -> ScanRun:
    found: dict[str, dict[tuple[str, int], PortResult]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(" ", 5)
        if len(parts) < 4 or parts[0] not in ("open", "closed", "banner") or not parts[2].isdigit():
            raise InputError(f"line {number}: not a masscan -oL line")
        what, proto, port, ip = parts[0], parts[1], int(parts[2]), address(parts[3])
        ports = found.setdefault(ip, {})
        if what == "banner":
            before = ports.get((proto, port))
            name = parts[5].split(" ", 1) if len(parts) > 5 else [""]
            ports[(proto, port)] = make_port(
                port, proto, before.state if before else "open",
                before.reason if before else "syn-ack", name[0] or None, None, None,
                name[1] if len(name) > 1 else None,
            )  # fmt: skip
        else:
            ports[(proto, port)] = make_port(
                port, proto, what, "syn-ack" if what == "open" else "reset"
            )
    return _masscan_run(found, source, "masscan-list")


def _masscan_run(
    found: Mapping[str, Mapping[tuple[str, int], PortResult]], source: str, fmt: str
) -> ScanRun:
    # masscan lists a host only for its ports: every host it names answered.
    hosts = tuple(
        ScanHostResult(host=ip, status="up", reason="syn-ack", ports=sorted_ports(ports.values()))
        for ip, ports in found.items()
    )
    return ScanRun(hosts=hosts, tool="masscan", source=source, format=fmt)


# --- shared -------------------------------------------------------------------------------------


def _status(value: object) -> HostStatus:
    if value not in ("up", "down"):
        raise ValueError(f"unknown host status {clean(str(value), 32)!r}")
    return "up" if value == "up" else "down"


def _unique(hosts: Iterable[ScanHostResult]) -> tuple[ScanHostResult, ...]:
    """One entry per address (a file listing a host twice: the later entry wins)."""
    return tuple({h.host: h for h in hosts}.values())


def _xml(text: str, source: str) -> ScanRun:
    from hilos.report.nmapxml import parse_nmap_xml

    return parse_nmap_xml(text, source)


_PARSERS: dict[str, Callable[[str, str], ScanRun]] = {
    "hilos-jsonl": _jsonl,
    "xml": _xml,
    "masscan-json": _masscan_json,
    "masscan-list": _masscan_list,
}
