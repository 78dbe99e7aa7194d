"""Read an `nmaprun` XML document (nmap -oX, hilos XML, masscan -oX) into a ScanRun.

Safety: a document declaring an entity (`<!ENTITY`) is refused before parsing, so no entity
expansion ("billion laughs") and no external entity can happen whatever the XML library does;
ElementTree never fetches a DTD. A document cut short (an interrupted scan, a full disk) keeps
every `<host>` that was complete and is marked incomplete, as python-libnmap's incomplete=True
reads it; a document broken in the middle is refused.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hilos.errors import InputError
from hilos.report.fields import address, make_port
from hilos.report.model import ScanRun, sorted_ports
from hilos.results import PortResult, ScanHostResult
from hilos.sanitize import FIELD_LIMIT, clean, clean_optional

__all__ = ["parse_nmap_xml"]


def parse_nmap_xml(text: str, source: str) -> ScanRun:
    """Parse `text`; InputError for a document that is not a readable `nmaprun`."""
    if "<!ENTITY" in text:
        raise InputError("XML with entity declarations is refused (<!ENTITY)")
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
    state = _State()
    try:
        parser.feed(text)
        state.take(parser)
    except ET.ParseError as exc:
        raise InputError(f"not well-formed XML ({_where(exc)})") from None
    complete = True
    try:
        parser.close()
        state.take(parser)
    except ET.ParseError as exc:
        if not state.seen_root or not state.hosts:
            # Nothing complete to keep: a broken file, not a scan (a diff would see every
            # host gone).
            raise InputError(f"not well-formed XML ({_where(exc)})") from None
        complete = False  # cut short: keep the hosts read so far
    if not state.seen_root:
        raise InputError("XML, but not a scan (no <nmaprun> element)")
    meta = state.meta
    scanner = clean(meta.get("scanner", "nmap"), 32) or "nmap"
    return ScanRun(
        hosts=tuple({h.host: h for h in state.hosts}.values()),
        tool=scanner,
        args=clean_optional(meta.get("args"), 4096),
        start=_num(meta.get("start")),
        end=_num(meta.get("time")),
        elapsed=_num(meta.get("elapsed")),
        targets=_int(meta.get("total")),
        source=source,
        format=f"{scanner}-xml",
        complete=complete and meta.get("exit") != "error",
    )


def _where(exc: ET.ParseError) -> str:
    line, column = exc.position
    return f"line {line}, column {column}"


def _num(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


class _State:
    """What the events have shown so far: the root's attributes, the hosts, the run stats."""

    def __init__(self) -> None:
        self.seen_root = False
        self.meta: dict[str, str] = {}
        self.hosts: list[ScanHostResult] = []
        self._depth = 0

    def take(self, parser: ET.XMLPullParser[ET.Element]) -> None:
        for event, elem in parser.read_events():  # type: ignore[misc]
            if not isinstance(elem, ET.Element):
                continue  # only start/end events were asked for: always elements
            if event == "start":
                self._start(elem)
            else:
                self._end(elem)

    def _start(self, elem: ET.Element) -> None:
        self._depth += 1
        if self._depth == 1:
            if elem.tag != "nmaprun":
                raise InputError(
                    f"XML, but not a scan (root <{clean(elem.tag, 32)}>, not <nmaprun>)"
                )
            self.seen_root = True
            self.meta.update(
                {k: elem.get(k, "") for k in ("scanner", "args", "start") if k in elem.attrib}
            )

    def _end(self, elem: ET.Element) -> None:
        self._depth -= 1
        if self._depth != 1:
            return  # only the root's children: <host>, <runstats>; nested ones are read there
        if elem.tag == "host":
            host = _host(elem)
            if host is not None:
                self.hosts.append(host)
        elif elem.tag == "runstats":
            finished = elem.find("finished")
            if finished is not None:
                self.meta.update(
                    {k: v for k, v in finished.attrib.items() if k in ("time", "elapsed", "exit")}
                )
            hosts = elem.find("hosts")
            if hosts is not None and "total" in hosts.attrib:
                self.meta["total"] = hosts.attrib["total"]
        elem.clear()  # a 10,000-host document is read in constant memory per host


def _host(elem: ET.Element) -> ScanHostResult | None:
    """One `<host>`; None for one without an IP address (a MAC-only entry)."""
    addr = next(
        (a.get("addr") for a in elem.iterfind("address") if a.get("addrtype") in ("ipv4", "ipv6")),
        None,
    )
    if not addr:
        return None
    status = elem.find("status")
    ports = sorted_ports(_port(p) for p in elem.iterfind("ports/port"))
    if status is not None:
        up = status.get("state") == "up"
    else:  # masscan -oX writes no <status>: a host it lists answered on a port
        up = any(p.state == "open" for p in ports)
    names = [h for h in elem.iterfind("hostnames/hostname") if h.get("name")]
    names.sort(key=lambda h: h.get("type") != "user")  # the name the user gave first
    times = elem.find("times")
    srtt = _num(times.get("srtt")) if times is not None else None
    return ScanHostResult(
        host=address(addr),
        status="up" if up else "down",
        reason=clean(status.get("reason", "") if status is not None else "syn-ack", FIELD_LIMIT),
        ports=ports,
        rtt_ms=srtt / 1000 if srtt is not None and srtt > 0 else None,
        hostname=clean_optional(names[0].get("name"), FIELD_LIMIT) if names else None,
    )


def _port(elem: ET.Element) -> PortResult:
    state = elem.find("state")
    service = elem.find("service")
    svc = service.attrib if service is not None else {}
    banner = next(
        (s.get("output") for s in elem.iterfind("script") if s.get("id") == "banner"), None
    )
    return make_port(
        port=elem.get("portid", ""),
        proto=elem.get("protocol", "tcp"),
        state=state.get("state", "") if state is not None else "",
        reason=state.get("reason", "") if state is not None else "",
        # A port number alone is not a service: nmap writes name="unknown" for "no idea".
        service=svc.get("name") if svc.get("name") not in (None, "unknown") else None,
        product=svc.get("product"),
        # extrainfo ("protocol 2.0", "(Debian)") is left out: hilos has no such field, and a
        # diff against a hilos scan would see every version change.
        version=svc.get("version"),
        banner=banner,
        tls=svc.get("tunnel") == "ssl",
    )
