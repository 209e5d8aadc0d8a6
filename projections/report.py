"""A self-contained HTML audit report: one timeline per order, and the anomaly list.

Everything is inline (CSS, SVG, a few lines of JS for filtering): the page works offline and can be
mailed or archived. It is rendered from the DuckDB read model only, and is deterministic: the same
projection gives the same bytes (no wall-clock time in the page).
"""

from __future__ import annotations

import html
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from projections.columns import first
from projections.queries import connect_read_only

DEFAULT_LIMIT = 500

STATUS_COLORS = {
    "PendingSubmit": "#9aa5b1", "PreSubmitted": "#3b82f6", "Submitted": "#2563eb", "PendingCancel": "#f59e0b",
    "ApiCancelled": "#b45309", "Cancelled": "#b45309", "Filled": "#15803d", "Inactive": "#6b7280",
}
STATE_COLORS = {
    "Created": "#e5e7eb", "Blocked": "#fecaca", "Unconfirmed": "#fde68a", "Unknown": "#e5e7eb",
    "PendingSubmit": "#dbeafe", "Working": "#bfdbfe", "PartiallyFilled": "#a7f3d0",
    "AwaitingExecutions": "#fde68a", "Filled": "#86efac", "Cancelled": "#fed7aa", "Rejected": "#fca5a5",
    "Inactive": "#d1d5db",
}
KIND_LABEL = {
    "order_status": "status", "open_order": "openOrder", "completed_order": "completedOrder",
    "exec_details": "fill", "commission_report": "commission", "error": "error", "place_order": "place",
    "modify_order": "modify", "cancel_order": "cancel", "governor_decision": "governor",
}
LANES = (("governor", "governor"), ("intent", "intents"), ("status", "statuses"), ("fill", "fills"),
         ("error", "errors"))

CSS = """
*{box-sizing:border-box}body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
color:#111827;background:#f9fafb}header{background:#111827;color:#f9fafb;padding:16px 24px}
header h1{margin:0 0 4px;font-size:20px}header .meta{color:#9ca3af;font-size:12px}
main{padding:16px 24px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card.warn b{color:#b91c1c}
h2{font-size:16px;margin:24px 0 8px}table{border-collapse:collapse;width:100%;background:#fff;font-size:12px}
th,td{border:1px solid #e5e7eb;padding:4px 6px;text-align:left;vertical-align:top}th{background:#f3f4f6}
.order{background:#fff;border:1px solid #e5e7eb;border-radius:8px;margin:10px 0;padding:10px 12px}
.order.anom{border-left:4px solid #dc2626}.order.live{border-left:4px solid #2563eb}
.order h3{margin:0 0 6px;font-size:14px}.order h3 small{color:#6b7280;font-weight:normal}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:11px;margin-left:6px;color:#111827}
svg.timeline{width:100%;height:auto;display:block}svg text{font:10px system-ui,sans-serif;fill:#374151}
details summary{cursor:pointer;color:#2563eb;font-size:12px}.legend span{margin-right:12px;font-size:12px}
  .scroll{max-height:260px;overflow:auto;border:1px solid #e5e7eb}
#filter{padding:6px 8px;width:320px;border:1px solid #d1d5db;border-radius:6px}.note{color:#6b7280}
"""

JS = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase(), shown = 0;
  document.querySelectorAll('.order').forEach(function (el) {
    var hit = !q || el.getAttribute('data-search').indexOf(q) >= 0;
    el.style.display = hit ? '' : 'none'; if (hit) shown++;
  });
  document.getElementById('shown').textContent = shown;
});
"""


@dataclass
class ReportStats:
    orders: int
    shown: int
    anomalies: int


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _fmt_ms(ns: int) -> str:
    ms = ns / 1e6
    if abs(ms) >= 60_000:
        return f"{ms / 60_000:.1f} min"
    if abs(ms) >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms"


def _rows(con: Any, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    rel = con.execute(sql, params or [])
    cols = [d[0] for d in rel.description]
    return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]


def render(duckdb_path: str | Path, *, title: str = "ibledger audit report", limit: int = DEFAULT_LIMIT,
           session: str | None = None) -> tuple[str, ReportStats]:
    """The report as one HTML string. Orders with anomalies come first, then live ones, then the rest."""
    con = connect_read_only(duckdb_path)
    try:
        where = "WHERE o.session_id = ?" if session else ""
        params = [session] if session else []
        total = con.execute(f"SELECT count(*) FROM orders o {where}", params).fetchall()[0][0]
        orders = _rows(con, f"""
            SELECT o.* FROM orders o {where}
            ORDER BY (o.anomaly_count > 0) DESC, o.is_live DESC, o.first_seen_ns, o.key
            LIMIT {int(limit)}""", params)
        keys = [o["key"] for o in orders]
        events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        transitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        if keys:
            con.execute("CREATE TEMP TABLE _sel(k VARCHAR)")
            con.executemany("INSERT INTO _sel VALUES (?)", [[k] for k in keys])
            for r in _rows(con, "SELECT * FROM order_events WHERE order_key IN (SELECT k FROM _sel) "
                                "ORDER BY position"):
                events[r["order_key"]].append(r)
            for r in _rows(con, "SELECT * FROM transitions WHERE order_key IN (SELECT k FROM _sel) "
                                "ORDER BY position, ord"):
                transitions[r["order_key"]].append(r)
        anomalies = _rows(con, """
            SELECT a.*, o.symbol FROM anomalies a LEFT JOIN orders o ON o.key = a.order_key
            ORDER BY a.position, a.ord""")
        tracking = con.execute("SELECT position, events FROM audit_tracking").fetchall()
        tracking = tracking[0] if tracking else (0, 0)
        meta = dict(con.execute("SELECT key, value FROM audit_meta").fetchall())
        counts = first(con.execute("""
            SELECT count(*) FILTER (WHERE is_live), count(*) FILTER (WHERE unconfirmed),
                   (SELECT count(*) FROM governor_decisions WHERE decision = 'BLOCK'),
                   (SELECT count(*) FROM sessions WHERE crashed), (SELECT count(*) FROM sessions)
            FROM orders"""))
    finally:
        con.close()

    out: list[str] = []
    w = out.append
    w("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    w("<meta name='viewport' content='width=device-width, initial-scale=1'>")
    w(f"<title>{_e(title)}</title><style>{CSS}</style></head><body>")
    w(f"<header><h1>{_e(title)}</h1><div class='meta'>store {_e(meta.get('store_url', '?'))} · "
      f"{tracking[1]} events up to position {tracking[0]}</div></header><main>")
    live, unconfirmed, blocked, crashed, sessions = counts
    w("<div class='cards'>")
    for label, value, warn in (("orders", total, False), ("live now", live, False),
                               ("unconfirmed", unconfirmed, unconfirmed > 0), ("anomalies", len(anomalies),
                                                                               len(anomalies) > 0),
                               ("governor blocks", blocked, False), ("sessions", sessions, False),
                               ("crashed sessions", crashed, crashed > 0)):
        w(f"<div class='card{' warn' if warn else ''}' id='card-{label.replace(' ', '-')}'><b>{value}</b>"
          f"{_e(label)}</div>")
    w("</div>")

    w(f"<h2 id='anomalies'>Anomalies ({len(anomalies)})</h2>")
    if anomalies:
        w("<div class='scroll'><table id='anomaly-list'><tr><th>time</th><th>kind</th><th>order</th>"
          "<th>symbol</th><th>from</th><th>to</th><th>reason</th><th>session#seq</th></tr>")
        for a in anomalies:
            w(f"<tr class='anomaly'><td>{_e(a['ts'])}</td><td>{_e(a['kind'])}</td><td>{_e(a['order_key'])}</td>"
              f"<td>{_e(a['symbol'])}</td><td>{_e(a['from_status'])}</td><td>{_e(a['to_status'])}</td>"
              f"<td>{_e(a['reason'])}</td><td>{_e(a['session_id'])}#{a['seq']}</td></tr>")
        w("</table></div>")
    else:
        w("<p class='note' id='anomaly-list'>No anomalies.</p>")

    w(f"<h2 id='orders'>Orders (<span id='shown'>{len(orders)}</span> shown of {total})</h2>")
    if len(orders) < total:
        w(f"<p class='note'>Showing the first {len(orders)} orders (anomalies first, then live ones); "
          f"use --limit to show more.</p>")
    w("<p><input id='filter' placeholder='filter: symbol, state, key, perm id...' aria-label='filter'></p>")
    w("<div class='legend'>")
    for st, color in STATUS_COLORS.items():
        w(f"<span><svg width='10' height='10'><circle cx='5' cy='5' r='5' fill='{color}'/></svg> {_e(st)}</span>")
    w("<span>▲ fill</span><span>◆ governor</span><span>■ intent</span><span>✕ error</span></div>")
    for i, o in enumerate(orders):
        w(_order_section(i, o, events.get(o["key"], []), transitions.get(o["key"], [])))
    w(f"</main><script>{JS}</script></body></html>")
    return "".join(out), ReportStats(orders=total, shown=len(orders), anomalies=len(anomalies))


def _lane(kind: str) -> str:
    if kind == "governor_decision":
        return "governor"
    if kind in ("place_order", "modify_order", "cancel_order"):
        return "intent"
    if kind in ("order_status", "open_order", "completed_order"):
        return "status"
    if kind in ("exec_details", "commission_report"):
        return "fill"
    return "error"


def _describe(e: dict[str, Any]) -> str:
    k = e["kind"]
    if k in ("order_status", "open_order", "completed_order"):
        s = f"{KIND_LABEL[k]} {e['status'] or '-'}"
        if k == "order_status":
            s += f" filled {e['shares']:g}"
        return s
    if k == "exec_details":
        return f"fill {e['exec_id']} {e['shares']:g} @ {e['price']:g}"
    if k == "commission_report":
        return f"commission {e['exec_id']} {e['price']:g}"
    if k == "error":
        return f"error {e['code']}: {e['text'] or ''}"
    if k == "governor_decision":
        return f"governor {e['decision']} {e['reason'] or ''} {e['text'] or ''}".strip()
    if k in ("place_order", "modify_order"):
        return f"{KIND_LABEL[k]} {e['shares']:g} @ {e['price']:g}"
    return f"{KIND_LABEL.get(k, k)} {e['reason'] or ''}".strip()


def _order_section(i: int, o: dict[str, Any], evs: list[dict[str, Any]], trs: list[dict[str, Any]]) -> str:
    key = o["key"]
    cls = "order" + (" anom" if o["anomaly_count"] else "") + (" live" if o["is_live"] else "")
    search = " ".join(str(x) for x in (key, o["symbol"], o["state"], o["broker_status"], o["perm_id"],
                                       o["order_id"], o["action"])).lower()
    state_color = STATE_COLORS.get(o["state"], "#e5e7eb")
    head = (f"<h3>{_e(o['symbol'] or '?')} {_e(o['action'])} {o['total_qty']:g} {_e(o['order_type'])}"
            f"{' @ ' + format(o['lmt_price'], 'g') if o['lmt_price'] is not None else ''}"
            f"<span class='pill' style='background:{state_color}'>{_e(o['state'])}"
            f"{' / ' + _e(o['overlay']) if o['overlay'] else ''}</span>"
            f"{'<span class=pill style=background:#bfdbfe>LIVE</span>' if o['is_live'] else ''}"
            f"{'<span class=pill style=background:#fde68a>HELD: ' + _e(o['why_held']) + '</span>' if o['state'] == 'Inactive' and o['why_held'] else ''}"  # noqa: E501
            f"{'<span class=pill style=background:#fecaca>' + str(o['anomaly_count']) + ' anomalies</span>' if o['anomaly_count'] else ''}"  # noqa: E501
            f" <small>{_e(key)} · perm {o['perm_id'] or '-'} · client {o['client_id']} order {o['order_id']}"
            f" · filled {o['filled']:g}/{o['total_qty']:g}"
            f"{' @ ' + format(o['avg_fill_price'], '.4g') if o['filled'] else ''}"
            f" · broker {_e(o['broker_status'] or '-')}</small></h3>")
    svg = _timeline_svg(i, evs, trs)
    rows = "".join(
        f"<tr><td>+{_e(_fmt_ms(e['recv_ns'] - evs[0]['recv_ns']))}</td><td>{_e(e['ts'])}</td>"
        f"<td>{_e(_describe(e))}</td><td>{_e(e['state_before'] or '(new)')} → {_e(e['state_after'])}</td>"
        f"<td>{_e(e['session_id'])}#{e['seq']}</td></tr>" for e in evs)
    table = (f"<details><summary>{len(evs)} events</summary><table><tr><th>t</th><th>time</th><th>event</th>"
             f"<th>ledger state</th><th>session#seq</th></tr>{rows}</table></details>")
    return (f"<section class='{cls}' id='order-{i}' data-key='{_e(key)}' data-search='{_e(search)}'>"
            f"{head}{svg}{table}</section>")


def _timeline_svg(i: int, evs: list[dict[str, Any]], trs: list[dict[str, Any]]) -> str:
    width, left, right = 1100, 70, 20
    lane_h, top = 18, 22
    height = top + lane_h * (len(LANES) + 1) + 18
    inner = width - left - right
    times = [e["recv_ns"] for e in evs] + [t["recv_ns"] for t in trs]
    t0 = min(times) if times else 0
    t1 = max(times) if times else 0
    span = max(t1 - t0, 1)

    def x(ns: int) -> float:
        if t1 == t0:
            return left + inner / 2
        return left + inner * (ns - t0) / span

    parts = [f"<svg class='timeline' id='timeline-{i}' viewBox='0 0 {width} {height}' "
             f"xmlns='http://www.w3.org/2000/svg' role='img' aria-label='order timeline'>"]
    # ledger-state band, from the transitions
    band_y = top - 14
    parts.append(f"<text x='4' y='{band_y + 9}'>state</text>")
    segs = [(t["recv_ns"], t["to_state"]) for t in trs if t["to_state"] != "Merged"]
    for j, (ns, state) in enumerate(segs):
        end = segs[j + 1][0] if j + 1 < len(segs) else t1
        x0, x1 = x(ns), max(x(end), x(ns) + 3)
        parts.append(f"<rect x='{x0:.1f}' y='{band_y}' width='{x1 - x0:.1f}' height='11' "
                     f"fill='{STATE_COLORS.get(state, '#e5e7eb')}'><title>{_e(state)}</title></rect>")
        if x1 - x0 > 60:
            parts.append(f"<text x='{x0 + 3:.1f}' y='{band_y + 9}'>{_e(state)}</text>")
    lane_y = {name: top + lane_h * (n + 1) for n, (name, _) in enumerate(LANES)}
    for name, label in LANES:
        y = lane_y[name]
        parts.append(f"<text x='4' y='{y + 3}'>{label}</text>"
                     f"<line x1='{left}' y1='{y}' x2='{width - right}' y2='{y}' stroke='#e5e7eb'/>")
    for e in evs:
        lane = _lane(e["kind"])
        cx, cy = x(e["recv_ns"]), lane_y[lane]
        tip = f"<title>+{_e(_fmt_ms(e['recv_ns'] - t0))} {_e(_describe(e))}</title>"
        k = e["kind"]
        if lane == "status":
            color = STATUS_COLORS.get(e["status"] or "", "#9ca3af")
            parts.append(f"<circle class='ev ev-status' cx='{cx:.1f}' cy='{cy}' r='5' fill='{color}'>{tip}</circle>")
        elif k == "exec_details":
            parts.append(f"<path class='ev ev-fill' d='M{cx:.1f},{cy - 6} l6,11 h-12 z' fill='#15803d'>{tip}</path>")
        elif k == "commission_report":
            parts.append(f"<circle class='ev ev-commission' cx='{cx:.1f}' cy='{cy}' r='3' fill='#86efac' "
                         f"stroke='#15803d'>{tip}</circle>")
        elif lane == "governor":
            color = "#dc2626" if e["decision"] in ("BLOCK", "EMERGENCY_CANCEL") else "#7c3aed"
            parts.append(f"<path class='ev ev-governor' d='M{cx:.1f},{cy - 6} l6,6 l-6,6 l-6,-6 z' "
                         f"fill='{color}'>{tip}</path>")
        elif lane == "intent":
            parts.append(f"<rect class='ev ev-intent' x='{cx - 5:.1f}' y='{cy - 5}' width='10' height='10' "
                         f"fill='#0ea5e9'>{tip}</rect>")
        else:
            parts.append(f"<path class='ev ev-error' d='M{cx - 5:.1f},{cy - 5} l10,10 m0,-10 l-10,10' "
                         f"stroke='#dc2626' stroke-width='2.5'>{tip}</path>")
    axis_y = height - 6
    parts.append(f"<text x='{left}' y='{axis_y}'>{_e(evs[0]['ts'] if evs else '')}</text>")
    parts.append(f"<text x='{width - right}' y='{axis_y}' text-anchor='end'>+{_e(_fmt_ms(t1 - t0))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def write_report(duckdb_path: str | Path, out: str | Path, **kw: Any) -> ReportStats:
    page, stats = render(duckdb_path, **kw)
    Path(out).write_text(page, encoding="utf-8")
    return stats
