"""Grepable output in the layout of nmap's -oG: one `Host:` line per fact, tab-separated fields."""

from __future__ import annotations

import time

from hilos.output.base import CleanPort, Result, Summary, Writer, clean_port, split_ports
from hilos.results import ScanHostResult
from hilos.sanitize import BANNER_TEXT_LIMIT, FIELD_LIMIT, clean

__all__ = ["GrepableWriter", "port_field"]

# Inside a port field "/" separates subfields and ", " separates ports; nmap writes "|" for
# a "/" in the version, we also keep "," out so `cut`/`awk` pipelines stay correct.
_FIELD_SAFE = str.maketrans({"/": "|", ",": ";"})


def _safe(text: str | None) -> str:
    return text.translate(_FIELD_SAFE) if text else ""


def port_field(p: CleanPort) -> str:
    """`22/open/tcp//ssh//OpenSSH 9.2p1/`: port/state/proto/owner/service/rpc/version/."""
    service = _safe(p.service)
    if p.tls:
        service = f"ssl|{service or 'unknown'}"
    return f"{p.port}/{p.state}/{p.proto}//{service}//{_safe(p.product_version)}/"


def _timestr(epoch: float) -> str:
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(epoch))


class GrepableWriter(Writer):
    """Streams `Host: …` lines; `# hilos … initiated` header, `# hilos done at …` trailer."""

    def _header(self) -> None:
        version = f" {self.version}" if self.version else ""
        self.stream.write(
            f"# hilos{version} {self.kind} initiated {_timestr(self.start)} as: {self.args}\n"
        )

    def _write(self, result: Result) -> None:
        name = (
            _safe(clean(result.hostname, FIELD_LIMIT)).replace(")", "]") if result.hostname else ""
        )
        prefix = f"Host: {result.host} ({name})"
        lines = [f"{prefix}\tStatus: {result.status.capitalize()}"]
        if isinstance(result, ScanHostResult) and not result.complete:
            lines.insert(0, f"# {result.host}: scan not completed (interrupted), ports partial")
        if isinstance(result, ScanHostResult) and result.status == "up":
            view = split_ports(result.ports, self.show_all, fold_many=True)
            fields = []
            if view.shown:
                ports = ", ".join(port_field(clean_port(p, BANNER_TEXT_LIMIT)) for p in view.shown)
                fields.append(f"Ports: {ports}")
            if view.hidden:
                ignored = ", ".join(f"{s} ({sum(r.values())})" for s, r in view.hidden.items())
                fields.append(f"Ignored State: {ignored}")
            if fields:
                lines.append(prefix + "\t" + "\t".join(fields))
        self.stream.write("\n".join(lines) + "\n")

    def _trailer(self, summary: Summary) -> None:
        verb = "interrupted" if summary.error else "done"
        self.stream.write(f"# hilos {verb} at {_timestr(time.time())} -- {summary.sentence()}\n")
