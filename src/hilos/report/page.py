"""The report page's inline style and script: no library, no network, text put in with textContent.

The script reads the scan from `<script type="application/json" id="scan-data">` with
JSON.parse and never builds HTML from strings (no innerHTML): a hostile banner is text.
It sorts and filters client-side and shows a page of rows at a time, built in a
DocumentFragment, so 10,000 hosts stay usable. `location.hash` drives the filters, the sort and
the host shown on load (`#filter=ssh&state=open&port=22&service=ssh&size=all&sort=-port&host=
198.18.0.1`: a leading `-` sorts descending) so a headless browser can test them;
`data-render-ms` on <body> says how long the first rendering took.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
:root{--fg:#1d2330;--mute:#5b6475;--line:#d9dee7;--bg:#f6f7f9;--acc:#2f6fdf;--open:#1f8a4c;
--filt:#b7791f;--closed:#9aa3b2}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg)}
header{background:#1d2330;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px}
header p{margin:2px 0 0;color:#c8cfdb;font-size:13px;word-break:break-all}
main{padding:16px 24px;max-width:1400px;margin:auto}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:16px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px;
min-width:150px}
.card b{display:block;font-size:22px}
.card span{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.meta{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px;
margin-bottom:16px}
.meta dt{color:var(--mute);float:left;width:130px;clear:left}
.meta dd{margin:0 0 4px 140px;word-break:break-all;font-family:ui-monospace,monospace;
font-size:13px}
.warn{color:#9b2c2c;font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px;margin-bottom:16px}
figure{background:#fff;border:1px solid var(--line);border-radius:8px;margin:0;padding:10px 16px;
flex:1 1 420px}
figcaption{font-weight:600;margin-bottom:6px}
svg text{font:12px system-ui,sans-serif;fill:var(--fg)}
svg .bar{fill:var(--acc)}
.tools{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:8px 0}
.tools input,.tools select,.tools button{font:inherit;padding:4px 8px;border:1px solid var(--line);
border-radius:6px;background:#fff}
#count{color:var(--mute);margin-left:auto}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line)}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;
overflow-wrap:anywhere}
.tools select{max-width:16em}
#rows td:nth-child(2),#detail td:first-child{white-space:nowrap}
th{background:#eef1f5;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.banner{font-family:ui-monospace,monospace;font-size:12px;max-width:520px;word-break:break-all}
td.host button{all:unset;color:var(--acc);cursor:pointer;font-family:ui-monospace,monospace}
.s-open{color:var(--open);font-weight:600}.s-filtered{color:var(--filt)}
.s-closed{color:var(--closed)}
#detail{background:#fff;border:2px solid var(--acc);border-radius:8px;padding:10px 16px;
margin:12px 0}
#detail h2{margin:0 0 6px;font-size:17px}
footer{color:var(--mute);font-size:12px;padding:16px 24px}
"""

SCRIPT = r"""
"use strict";
(function () {
  var t0 = performance.now();
  var data = JSON.parse(document.getElementById("scan-data").textContent);
  var hosts = data.hosts, rows = [], services = {};
  var $ = function (id) { return document.getElementById(id); };
  function ipKey(a) {
    if (a.indexOf(":") >= 0) { return 5e9; }
    var p = a.split(".");
    return ((+p[0] * 256 + +p[1]) * 256 + +p[2]) * 256 + +p[3];
  }
  hosts.forEach(function (h, i) {
    var k = ipKey(h[0]), ports = h[4];
    var who = h[0] + " " + (h[1] || "");
    if (!ports.length) { rows.push({h: i, p: null, k: k, t: who.toLowerCase()}); }
    ports.forEach(function (p) {
      if (p[4]) { services[p[4]] = 1; }
      rows.push({h: i, p: p, k: k, t: (who + " " + p.join(" ")).toLowerCase()});
    });
  });
  var svc = $("f-service");
  Object.keys(services).sort().forEach(function (s) {
    var o = document.createElement("option"); o.value = s; o.textContent = s; svc.appendChild(o);
  });
  var sortKey = "host", sortDir = 1, page = 0, view = rows;
  var cols = {host: null, port: 0, state: 2, service: 4, product: 5, banner: 7};
  function cell(r, c) {
    if (c === "host") { return r.k; }
    if (!r.p) { return c === "port" ? -1 : ""; }
    if (c === "product") { return ((r.p[5] || "") + " " + (r.p[6] || "")).toLowerCase(); }
    var v = r.p[cols[c]];
    return c === "port" ? v : (v || "").toLowerCase();
  }
  function compare(a, b) {
    var x = cell(a, sortKey), y = cell(b, sortKey);
    if (x < y) { return -sortDir; }
    if (x > y) { return sortDir; }
    if (sortKey === "host" && a.h !== b.h) {
      var u = hosts[a.h][0], w = hosts[b.h][0];
      return (u < w ? -1 : u > w ? 1 : 0) * sortDir;
    }
    return (a.p ? a.p[0] : -1) - (b.p ? b.p[0] : -1);
  }
  function wanted() {
    var text = $("f-text").value.trim().toLowerCase(), service = svc.value;
    var state = $("f-state").value;
    var portText = $("f-port").value.trim(), ports = null;
    if (portText) {
      ports = {};
      portText.split(/[\s,]+/).forEach(function (x) { if (x) { ports[+x] = 1; } });
    }
    return function (r) {
      if (text && r.t.indexOf(text) < 0) { return false; }
      if (!r.p) { return !service && !state && !ports; }
      if (service && r.p[4] !== service) { return false; }
      if (state && r.p[2] !== state) { return false; }
      return !ports || ports[r.p[0]] === 1;
    };
  }
  function text(tag, value, cls) {
    var e = document.createElement(tag);
    if (value !== null && value !== undefined) { e.textContent = String(value); }
    if (cls) { e.className = cls; }
    return e;
  }
  function row(r) {
    var tr = document.createElement("tr"), h = hosts[r.h], p = r.p || [];
    var td = text("td", null, "host"), b = text("button", h[0]);
    b.dataset.host = String(r.h); td.appendChild(b);
    if (h[1]) { td.appendChild(text("div", h[1])); }
    tr.appendChild(td);
    tr.appendChild(text("td", r.p ? p[0] + "/" + p[1] : "\u2014"));
    tr.appendChild(text("td", p[2] || "", "s-" + String(p[2] || "").split("|")[0]));
    tr.appendChild(text("td", (p[4] || "") + (p[8] ? " (tls)" : "")));
    tr.appendChild(text("td", [p[5], p[6]].filter(Boolean).join(" ")));
    tr.appendChild(text("td", p[7] || "", "banner"));
    return tr;
  }
  function draw() {
    var size = $("f-size").value === "all" ? view.length || 1 : +$("f-size").value;
    var pages = Math.max(1, Math.ceil(view.length / size));
    page = Math.min(Math.max(page, 0), pages - 1);
    var frag = document.createDocumentFragment(), start = page * size;
    var end = Math.min(view.length, start + size);
    for (var i = start; i < end; i++) { frag.appendChild(row(view[i])); }
    $("rows").replaceChildren(frag);
    $("count").textContent = view.length ? "rows " + (start + 1) + "\u2013" + end + " of " +
      view.length + " (" + rows.length + " in all)" : "no row matches (" + rows.length + " in all)";
    $("prev").disabled = page === 0; $("next").disabled = page >= pages - 1;
    document.querySelectorAll("th[data-col]").forEach(function (th) {
      var dir = sortDir > 0 ? "ascending" : "descending";
      th.setAttribute("aria-sort", th.dataset.col === sortKey ? dir : "none");
    });
  }
  function apply() {
    view = rows.filter(wanted());
    view.sort(compare);
    page = 0;
    draw();
  }
  function fromHash() {
    var q = new URLSearchParams(location.hash.slice(1));
    var set = function (id, key) { if (q.has(key)) { $(id).value = q.get(key); } };
    set("f-text", "filter"); set("f-port", "port"); set("f-state", "state"); set("f-size", "size");
    if (q.has("service")) {
      var name = q.get("service");
      if (!services[name]) { var o = text("option", name); o.value = name; svc.appendChild(o); }
      svc.value = name;
    }
    var key = (q.get("sort") || "").replace(/^-/, "");
    if (key && cols.hasOwnProperty(key)) {
      sortKey = key;
      sortDir = q.get("sort")[0] === "-" ? -1 : 1;
    }
    return q.get("host");
  }
  function showHost(address) {
    for (var i = 0; address && i < hosts.length; i++) {
      if (hosts[i][0] === address) { detail(i); return; }
    }
  }
  function detail(i) {
    var h = hosts[i], box = $("detail");
    box.replaceChildren();
    box.appendChild(text("h2", h[0] + (h[1] ? " (" + h[1] + ")" : "")));
    box.appendChild(text("p", "status " + h[2] + (h[3] !== null ? ", rtt " + h[3] + " ms" : "") +
      ", " + h[4].length + " ports listed"));
    var t = document.createElement("table"), head = document.createElement("tr");
    var names = ["port", "state", "reason", "service", "product", "version", "tls", "banner"];
    names.forEach(function (c) { head.appendChild(text("th", c)); });
    t.appendChild(head);
    h[4].forEach(function (p) {
      var tr = document.createElement("tr");
      var values = [p[0] + "/" + p[1], p[2], p[3], p[4], p[5], p[6], p[8] ? "yes" : "", p[7]];
      values.forEach(function (v, n) {
        var cls = n === 7 ? "banner" : (n === 1 ? "s-" + String(v).split("|")[0] : "");
        tr.appendChild(text("td", v || "", cls));
      });
      t.appendChild(tr);
    });
    box.appendChild(t);
    box.hidden = false;
    box.scrollIntoView({block: "nearest"});
  }
  ["f-text", "f-port"].forEach(function (id) { $(id).addEventListener("input", apply); });
  ["f-service", "f-state", "f-size"].forEach(function (id) {
    $(id).addEventListener("change", apply);
  });
  $("prev").addEventListener("click", function () { page--; draw(); });
  $("next").addEventListener("click", function () { page++; draw(); });
  $("rows").addEventListener("click", function (e) {
    var b = e.target.closest ? e.target.closest("button[data-host]") : null;
    if (b) { detail(+b.dataset.host); }
  });
  document.querySelectorAll("th[data-col]").forEach(function (th) {
    th.addEventListener("click", function () {
      sortDir = sortKey === th.dataset.col ? -sortDir : 1; sortKey = th.dataset.col; apply();
    });
  });
  window.addEventListener("hashchange", function () { var h = fromHash(); apply(); showHost(h); });
  var first = fromHash();
  apply();
  showHost(first);
  document.body.setAttribute("data-render-ms", (performance.now() - t0).toFixed(1));
  document.body.setAttribute("data-ready-ms", performance.now().toFixed(1));
})();
"""
