"""Reports and diffs of scans: read hilos, nmap and masscan files, compare two, draw a page.

readers (load_scan, load_scans: any known format, detected from content), model (ScanRun,
merge_runs), diff (diff_runs, Change, text and JSON lines), html (render_html: one
self-contained page). Nothing here prints or imports the CLI.
"""

from __future__ import annotations

from hilos.report.model import ScanRun, merge_runs
from hilos.report.readers import detect_format, load_scan, load_scans, parse_scan

__all__ = ["ScanRun", "detect_format", "load_scan", "load_scans", "merge_runs", "parse_scan"]
