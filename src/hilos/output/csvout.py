"""CSV output: a header row, then one row per host (sweep) or per listed port (scan)."""

from __future__ import annotations

import csv

from hilos.output.base import Result, Writer, clean_port, split_ports
from hilos.results import ScanHostResult
from hilos.sanitize import BANNER_DATA_LIMIT, FIELD_LIMIT, clean_optional

SWEEP_HEADER = ("host", "hostname", "status", "reason", "rtt_ms")
SCAN_HEADER = (
    "host",
    "hostname",
    "status",
    "port",
    "proto",
    "state",
    "reason",
    "service",
    "product",
    "version",
    "tls",
    "banner",
)

# A cell that starts with one of these is a formula to Excel/LibreOffice ("CSV injection",
# OWASP). Remote services choose banners and product names, so such cells get a leading
# apostrophe, which spreadsheets show as plain text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _untrusted(value: str | None) -> str:
    if not value:
        return ""
    return "'" + value if value.startswith(_FORMULA_START) else value


class CsvWriter(Writer):
    """Streams CSV rows (RFC 4180 quoting, "\\n" line ends); the header is written at open.

    Scan rows: one per listed port, each with the host's status. A host without a listed port
    gets one row with empty port, state and reason columns (`status` says up or down). Cells
    an attacker controls (service, product, version, banner) that start like a formula get a
    leading apostrophe (see `_untrusted`). `hostname` is the name the user gave, or empty.
    """

    def _setup(self) -> None:
        self._csv = csv.writer(self.stream, lineterminator="\n")

    def _header(self) -> None:
        self._csv.writerow(SCAN_HEADER if self.kind == "scan" else SWEEP_HEADER)

    def _write(self, result: Result) -> None:
        if not isinstance(result, ScanHostResult):
            rtt = "" if result.rtt_ms is None else f"{result.rtt_ms:.3f}"
            name = _untrusted(clean_optional(result.hostname, FIELD_LIMIT))
            self._csv.writerow((result.host, name, result.status, result.reason, rtt))
            return
        name = _untrusted(clean_optional(result.hostname, FIELD_LIMIT))
        view = split_ports(result.ports, self.show_all, fold_many=False)
        if not view.shown:
            # No port to list: one row with empty port columns; the status column tells a
            # down host (with --all) from an up one.
            self._csv.writerow(
                (result.host, name, result.status, "", "", "", "", "", "", "", "", "")
            )
            return
        rows = []
        for raw in view.shown:
            p = clean_port(raw, BANNER_DATA_LIMIT)
            rows.append(
                (
                    result.host,
                    name,
                    result.status,
                    p.port,
                    p.proto,
                    p.state,
                    p.reason,
                    _untrusted(p.service),
                    _untrusted(p.product),
                    _untrusted(p.version),
                    "true" if p.tls else "false",
                    _untrusted(p.banner),
                )
            )
        self._csv.writerows(rows)
