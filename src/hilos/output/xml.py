"""nmap-compatible XML output (`nmaprun`, nmap.dtd 1.05), streamed one `<host>` at a time.

The header (`<nmaprun>`, `<scaninfo>`) is written when the output opens, each host as it
arrives, `<runstats>` and `</nmaprun>` at close, also after Ctrl-C (then exit="error",
errormsg="interrupted"). A run killed hard leaves every host written so far; tools that read
interrupted nmap scans (python-libnmap `incomplete=True`) read it too.

scanner="hilos": hilos is not nmap and says so; python-libnmap, the reader our tests use,
does not look at the attribute. Output is ASCII-only (other characters as character
references), so the UTF-8 declaration holds whatever encoding the stream was opened with.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from hilos.output.base import CleanPort, Result, Summary, Writer, clean_port, split_ports
from hilos.results import ScanHostResult
from hilos.sanitize import BANNER_DATA_LIMIT, clean

__all__ = ["XmlWriter", "compress_ports"]

XML_OUTPUT_VERSION = "1.05"
# nmap's floor for a probe timeout, in microseconds (timing.h: MIN_RTT_TIMEOUT 100 ms).
_MIN_TIMEOUT_US = 100_000


def compress_ports(ports: Iterable[int]) -> str:
    """`1-3,22,80-81` from any iterable of port numbers (nmap's `services` attribute)."""
    out: list[str] = []
    run_start = prev = -2
    for p in sorted(set(ports)):
        if p == prev + 1:
            prev = p
            continue
        if prev >= 0:
            out.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
        run_start = prev = p
    if prev >= 0:
        out.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
    return ",".join(out)


def _ascii(text: str) -> str:
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _start_tag(name: str, attrs: dict[str, str], empty: bool = False) -> str:
    # Imported here: xml.sax.saxutils pulls in urllib.request (~40 ms), which every command
    # would pay at startup for a format only scans use.
    from xml.sax.saxutils import quoteattr

    body = "".join(
        f" {k}={quoteattr(v, {chr(10): '&#10;', chr(13): '&#13;'})}" for k, v in attrs.items()
    )
    return f"<{name}{body}{'/' if empty else ''}>"


def _timestr(epoch: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(epoch))


def _times(rtt_ms: float) -> dict[str, str]:
    # One RTT sample, RFC 6298 section 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4*RTTVAR,
    # with nmap's 100 ms floor on the timeout. Microseconds, as nmap writes them.
    srtt = max(round(rtt_ms * 1000), 0)
    rttvar = srtt // 2
    return {
        "srtt": str(srtt),
        "rttvar": str(rttvar),
        "to": str(max(srtt + 4 * rttvar, _MIN_TIMEOUT_US)),
    }


def host_element(
    result: ScanHostResult, show_all: bool, start: float, now: float, *, with_ports: bool = True
) -> ET.Element:
    """One `<host>` element, nmap's layout (without `<ports>` for a sweep, as nmap -sn)."""
    h = ET.Element("host", starttime=str(int(start)), endtime=str(int(now)))
    ET.SubElement(h, "status", state=result.status, reason=result.reason, reason_ttl="0")
    family = "ipv6" if ":" in result.host else "ipv4"
    ET.SubElement(h, "address", addr=result.host, addrtype=family)
    names = ET.SubElement(h, "hostnames")
    if result.hostname:
        # type "user": the name was given on the command line (nmap's word); "PTR" would be
        # a reverse lookup, which hilos never does.
        ET.SubElement(names, "hostname", name=clean(result.hostname, 255), type="user")
    if result.status == "up" and with_ports:
        _ports_element(h, result, show_all)
    if result.rtt_ms is not None:
        ET.SubElement(h, "times", _times(result.rtt_ms))
    return h


def _ports_element(h: ET.Element, result: ScanHostResult, show_all: bool) -> None:
    """`<ports>`: nmap's `<extraports>` for the folded states, then one `<port>` each."""
    ports = ET.SubElement(h, "ports")
    view = split_ports(result.ports, show_all, fold_many=True)
    for state, reasons in view.hidden.items():
        extra = ET.SubElement(ports, "extraports", state=state, count=str(sum(reasons.values())))
        for reason, count in reasons.most_common():
            numbers = (p.port for p in result.ports if p.state == state and p.reason == reason)
            ET.SubElement(
                extra,
                "extrareasons",
                reason=reason,
                count=str(count),
                proto=next(p.proto for p in result.ports if (p.state, p.reason) == (state, reason)),
                ports=compress_ports(numbers),
            )
    for raw in view.shown:
        p = clean_port(raw, BANNER_DATA_LIMIT)
        port = ET.SubElement(ports, "port", protocol=p.proto, portid=str(p.port))
        ET.SubElement(port, "state", state=p.state, reason=p.reason, reason_ttl="0")
        if p.service or p.product or p.version or p.tls:
            ET.SubElement(port, "service", _service(p))
        if p.banner:
            ET.SubElement(port, "script", id="banner", output=p.banner)


def _service(p: CleanPort) -> dict[str, str]:
    """`<service>`'s attributes: what was named, and how sure (nmap's method and conf)."""
    svc: dict[str, str] = {"name": p.service or "unknown"}
    if p.product:
        svc["product"] = p.product
    if p.version:
        svc["version"] = p.version
    if p.tls:
        svc["tunnel"] = "ssl"
    # "probed": learned from the service itself; "table": guessed from the port.
    svc["method"], svc["conf"] = ("probed", "10") if p.probed else ("table", "3")
    return svc


class XmlWriter(Writer):
    """Streams an nmap `nmaprun` document; well-formed after close(), parseable before it."""

    def _header(self) -> None:
        if self.kind == "sweep":
            self._write_header(None)
            return
        scan_type = str(self.meta.get("scan_type", "connect"))
        udp = self.meta.get("udp_ports")
        infos = [] if scan_type == "udp" else [self._scaninfo(scan_type, "tcp", "ports")]
        if scan_type == "udp" or udp:  # nmap -sU: one <scaninfo> per protocol
            infos.append(self._scaninfo("udp", "udp", "udp_ports" if udp else "ports"))
        self._write_header(infos)

    def _scaninfo(self, scan_type: str, protocol: str, key: str) -> dict[str, str]:
        ports = self.meta.get(key, ())
        if isinstance(ports, str):
            services = ports
            numservices = len(_expand(ports))
        elif isinstance(ports, Iterable):
            numbers = [int(p) for p in ports]
            services = compress_ports(numbers)
            numservices = len(set(numbers))
        else:
            services, numservices = "", 0
        return {
            "type": scan_type,
            "protocol": protocol,
            "numservices": str(numservices),
            "services": services,
        }

    def _write_header(self, info: list[dict[str, str]] | None) -> None:
        """`<nmaprun>`, then `<scaninfo>` for a port scan (nmap -sn writes none)."""
        run = {
            "scanner": "hilos",
            "args": self.args,
            "start": str(int(self.start)),
            "startstr": _timestr(self.start),
            "version": self.version,
            "xmloutputversion": XML_OUTPUT_VERSION,
        }
        self.stream.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
            + _ascii(_start_tag("nmaprun", run))
            + "\n"
            + "".join(_ascii(_start_tag("scaninfo", i, empty=True)) + "\n" for i in info or ())
            + '<verbose level="0"/>\n<debugging level="0"/>\n'
        )

    def _write(self, result: Result) -> None:
        with_ports = isinstance(result, ScanHostResult)
        if not isinstance(result, ScanHostResult):
            result = ScanHostResult(
                result.host, result.status, result.reason, (), result.rtt_ms, result.hostname
            )
        element = host_element(
            result, self.show_all, self.start, time.time(), with_ports=with_ports
        )
        if not result.complete:
            # The DTD has no attribute for it; a comment is valid anywhere and tools skip it.
            self.stream.write(f"<!-- {_incomplete_note(result.host)} -->\n")
        self.stream.write(_ascii(ET.tostring(element, encoding="unicode")) + "\n")

    def _trailer(self, summary: Summary) -> None:
        now = time.time()
        finished = {
            "time": str(int(now)),
            "timestr": _timestr(now),
            "summary": f"hilos {'interrupted' if summary.error else 'done'} at "
            f"{_timestr(now)}; {summary.sentence()}",
            "elapsed": f"{summary.elapsed:.2f}",
            "exit": "error" if summary.error else "success",
        }
        if summary.error:
            finished["errormsg"] = clean(summary.error, 1024)
        hosts = {"up": str(summary.up), "down": str(summary.down), "total": str(summary.addresses)}
        self.stream.write(
            "<runstats>"
            + _ascii(_start_tag("finished", finished, empty=True))
            + _start_tag("hosts", hosts, empty=True)
            + "\n</runstats>\n</nmaprun>\n"
        )


def _incomplete_note(host: str) -> str:
    """The comment before a host an interrupted scan had not finished (no `--` inside)."""
    return f"hilos: scan of {host} was not completed (interrupted); its ports are partial"


def _expand(spec: str) -> set[int]:
    """Port numbers of a `1-3,22` spec (for numservices when meta gives a string)."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a = int(lo) if lo else 1
            b = int(hi) if hi else (65535 if "-" in part else a)
        except ValueError:
            continue
        out.update(range(a, b + 1))
    return out
