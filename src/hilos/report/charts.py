"""Bar charts of a scan as inline SVG, drawn in Python: no script, no library, text escaped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape

from hilos.report.model import ScanRun

__all__ = ["bar_chart", "ports_per_host", "top_services"]

_BAR_H = 18
_GAP = 6
_LABEL_W = 170
_WIDTH = 560


def top_services(run: ScanRun, limit: int = 12) -> list[tuple[str, int]]:
    """The most common services among open ports (a port without a name: `port/proto`)."""
    counts: Counter[str] = Counter()
    for host in run.hosts:
        for p in host.open_ports:
            counts[p.service or f"{p.port}/{p.proto}"] += 1
    return counts.most_common(limit)


def ports_per_host(run: ScanRun, limit: int = 15) -> list[tuple[str, int]]:
    """The hosts with the most open ports, most first (address order among equals)."""
    counts = [(h.host, len(h.open_ports)) for h in run.hosts if h.open_ports]
    counts.sort(key=lambda item: -item[1])
    return counts[:limit]


def bar_chart(items: Sequence[tuple[str, int]], label: str, *, rest: str = "") -> str:
    """A horizontal bar chart: one bar per (name, count), `rest` as a last line of text."""
    if not items:
        return '<p class="empty">No open port.</p>'
    top = max(n for _, n in items) or 1
    room = _WIDTH - _LABEL_W - 50
    height = len(items) * (_BAR_H + _GAP) + (_BAR_H if rest else 0) + _GAP
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="100%" '
        f'style="max-width:{_WIDTH}px" viewBox="0 0 {_WIDTH} {height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (name, count) in enumerate(items):
        y = _GAP + i * (_BAR_H + _GAP)
        width = max(round(room * count / top), 2)
        shown = name if len(name) <= 22 else name[:21] + "\u2026"  # the label's 170 px
        parts.append(
            f'<text x="{_LABEL_W - 6}" y="{y + 13}" text-anchor="end">{escape(shown)}'
            f"<title>{escape(name)}</title></text>"
            f'<rect class="bar" x="{_LABEL_W}" y="{y}" width="{width}" height="{_BAR_H}" rx="3"/>'
            f'<text x="{_LABEL_W + width + 6}" y="{y + 13}">{count}</text>'
        )
    if rest:
        y = _GAP + len(items) * (_BAR_H + _GAP) + 12
        parts.append(f'<text x="{_LABEL_W}" y="{y}">{escape(rest)}</text>')
    parts.append("</svg>")
    return "".join(parts)
