"""One self-contained HTML page of a scan: summary, charts, a sortable and filterable table.

Nothing is fetched: style and script are inline, charts are SVG drawn here, and a Content
Security Policy forbids every network access and any script but the page's own (its SHA-256
is in the policy), so the page works from a file:// URL or an e-mail attachment and an
injected `<script>` or `onerror=` would not run even if one got through. None gets through:
every string put in the HTML goes through html.escape; the hosts reach the script as JSON in
`<script type="application/json">`, with `<`, `>`, `&` and U+2028/9 as \\u escapes, read with
JSON.parse and shown with textContent (hilos.report.page).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from html import escape

from hilos.report.charts import bar_chart, ports_per_host, top_services
from hilos.report.model import ScanRun
from hilos.report.page import SCRIPT, STYLE
from hilos.sanitize import BANNER_DATA_LIMIT, FIELD_LIMIT, clean, clean_optional

__all__ = ["render_html", "script_json"]

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
_CSP = (
    "default-src 'none'; "
    f"script-src 'sha256-{_SCRIPT_HASH}'; "
    "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
)
_JS_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def script_json(value: object) -> str:
    """JSON safe inside a `<script>` element: no `</script>`, `<!--`, `&` nor raw U+2028/9.

    ensure_ascii turns every non-ASCII character (U+2028/9 too) into \\u escapes; the three
    HTML-significant ASCII characters are escaped the same way (they occur only in strings).
    """
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    for char, code in _JS_ESCAPES.items():
        text = text.replace(char, code)
    return text


def _host_rows(run: ScanRun) -> list[list[object]]:
    """[address, hostname, status, rtt_ms, [[port, proto, state, reason, service, product,
    version, banner, tls], ...]] per host: compact, as 10,000 hosts make a large page."""
    out: list[list[object]] = []
    for h in run.hosts:
        ports = [
            [
                p.port,
                p.proto,
                p.state,
                p.reason,
                clean_optional(p.service, FIELD_LIMIT),
                clean_optional(p.product, FIELD_LIMIT),
                clean_optional(p.version, FIELD_LIMIT),
                clean_optional(p.banner, BANNER_DATA_LIMIT),
                1 if p.tls else 0,
            ]
            for p in h.ports
        ]
        rtt = round(h.rtt_ms, 3) if h.rtt_ms is not None else None
        out.append([h.host, clean_optional(h.hostname, FIELD_LIMIT), h.status, rtt, ports])
    return out


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "not recorded"
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(epoch))


def _summary(run: ScanRun) -> str:
    up = run.hosts_up
    cards = [
        ("targets", f"{run.targets:,}" if run.targets is not None else "?"),
        ("hosts up", f"{up:,}"),
        ("open ports", f"{run.open_ports:,}"),
        ("scan time", f"{run.duration:.2f} s" if run.duration is not None else "?"),
    ]
    html = ['<section class="cards">']
    html += [
        f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in cards
    ]
    html.append('</section><dl class="meta">')
    meta = [
        ("tool", run.tool),
        ("command line", run.args or "not recorded"),
        ("started", _when(run.start)),
        ("finished", _when(run.end)),
        ("files", ", ".join(s for s in run.sources or (run.source,) if s)),
        ("formats", run.format),
    ]
    html += [f"<dt>{escape(k)}</dt><dd>{escape(clean(v, 4096))}</dd>" for k, v in meta if v]
    html.append("</dl>")
    if not run.complete:
        html.append('<p class="warn">This scan did not finish: its results are partial.</p>')
    return "".join(html)


def _charts(run: ScanRun) -> str:
    services = top_services(run)
    busiest = ports_per_host(run)
    with_open = sum(1 for h in run.hosts if h.open_ports)
    rest = f"and {with_open - len(busiest):,} more hosts" if with_open > len(busiest) else ""
    return (
        '<section class="charts">'
        "<figure><figcaption>Most common open services</figcaption>"
        f"{bar_chart(services, 'open ports by service')}</figure>"
        "<figure><figcaption>Open ports per host</figcaption>"
        f"{bar_chart(busiest, 'open ports per host', rest=rest)}</figure></section>"
    )


_TABLE = """<section id="hosts"><h2>Hosts and ports</h2>
<div class="tools">
<input id="f-text" type="search" placeholder="filter: any text" aria-label="filter by text">
<select id="f-service" aria-label="service"><option value="">any service</option></select>
<input id="f-port" size="10" placeholder="ports: 22,80" aria-label="filter by port">
<select id="f-state" aria-label="state"><option value="">any state</option>
<option>open</option><option>filtered</option><option>closed</option>
<option>open|filtered</option></select>
<select id="f-size" aria-label="rows per page"><option>100</option><option selected>500</option>
<option>2000</option><option value="all">all rows</option></select>
<button id="prev" type="button">previous</button><button id="next" type="button">next</button>
<span id="count"></span></div>
<div id="detail" hidden></div>
<table><thead><tr><th data-col="host">host</th><th data-col="port">port</th>
<th data-col="state">state</th><th data-col="service">service</th>
<th data-col="product">product / version</th><th data-col="banner">banner</th></tr></thead>
<tbody id="rows"></tbody></table>
<noscript><p>The table needs JavaScript; the summary and charts above do not.</p></noscript>
</section>"""


def render_html(run: ScanRun, title: str | None = None) -> str:
    """The page of `run` as one string (UTF-8 when written; every byte of it is ASCII but
    what html.escape leaves of the file's own names)."""
    heading = title or f"{run.tool} scan report"
    data = script_json({"hosts": _host_rows(run)})
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{escape(_CSP)}">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            '<meta name="referrer" content="no-referrer">\n',
            f"<title>{escape(heading)}</title>\n<style>{STYLE}</style></head>\n<body>\n",
            f"<header><h1>{escape(heading)}</h1>",
            f"<p>{escape(clean(run.args or run.source, 4096))}</p></header>\n<main>\n",
            _summary(run),
            _charts(run),
            _TABLE,
            "\n</main>\n<footer>Made by hilos. Self-contained: no network access.</footer>\n",
            f'<script type="application/json" id="scan-data">{data}</script>\n',
            f"<script>{SCRIPT}</script>\n</body></html>\n",
        ]
    )
