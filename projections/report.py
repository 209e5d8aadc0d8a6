"""The HTML audit report for risk officers, at any size: charts, an index of every order, detail on demand.

Layout: ``report.html`` holds the charts (inline SVG), the anomaly list and a compact index of every
order (searchable by order id, permId, symbol, state and time range); ``report_files/detail-NNNNN.js``
holds each order's events and state transitions, in chunks the page loads only when an order is opened
(a ``<script>`` tag, so it works from ``file://`` without a server or network). So a 100k-order day opens
as fast as its index parses, and one order is one click (or ``report.html#order=KEY``) away.

Everything comes from the DuckDB read model; nothing is fetched at view time. Deterministic: the same
projection gives the same bytes (no wall-clock time in the output).
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from projections import charts
from projections.queries import connect_read_only

DEFAULT_LIMIT = 0  # 0 = every order
CHUNK = 500  # orders per detail file

INDEX_COLS = ("key", "perm_id", "client_id", "order_id", "symbol", "action", "total_qty", "order_type",
              "lmt_price", "state", "overlay", "broker_status", "filled", "avg_fill_price", "commission",
              "is_live", "unconfirmed", "anomaly_count", "first_seen_ns", "session_id", "why_held")

STATUS_COLORS = {
    "PendingSubmit": "#9aa5b1", "PreSubmitted": "#3b82f6", "Submitted": "#2563eb", "PendingCancel": "#f59e0b",
    "ApiCancelled": "#b45309", "Cancelled": "#b45309", "Filled": "#15803d", "Inactive": "#6b7280",
}
STATE_COLORS = {
    "Created": "#e5e7eb", "Blocked": "#f87171", "Unconfirmed": "#fde68a", "Unknown": "#e5e7eb",
    "PendingSubmit": "#dbeafe", "Working": "#bfdbfe", "PartiallyFilled": "#a7f3d0",
    "AwaitingExecutions": "#fde68a", "Filled": "#86efac", "Cancelled": "#fed7aa", "Rejected": "#fca5a5",
    "Inactive": "#d1d5db",
}

CSS = """
*{box-sizing:border-box}body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;
color:#111827;background:#f9fafb}header{background:#111827;color:#f9fafb;padding:16px 24px}
header h1{margin:0 0 4px;font-size:20px}header .meta{color:#9ca3af;font-size:12px}
main{padding:16px 24px}.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:120px}
.card b{display:block;font-size:22px}.card.warn b{color:#b91c1c}
h2{font-size:16px;margin:24px 0 8px}table{border-collapse:collapse;width:100%;background:#fff;font-size:12px}
th,td{border:1px solid #e5e7eb;padding:3px 6px;text-align:left;vertical-align:top}th{background:#f3f4f6}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:12px}
figure.chart{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:8px}
figure.chart figcaption{font-weight:600;font-size:13px;margin-bottom:4px}
svg{width:100%;height:auto;display:block}svg text{font:10px system-ui,sans-serif;fill:#374151}
.note{color:#6b7280;font-size:12px;margin:4px 0}.scroll{max-height:260px;overflow:auto;border:1px solid #e5e7eb}
.search{display:flex;gap:8px;flex-wrap:wrap;align-items:center;margin:8px 0}
.search input,.search select{padding:5px 8px;border:1px solid #d1d5db;border-radius:6px}
#q{width:320px}tr.o{cursor:pointer}tr.o:hover{background:#eff6ff}tr.o.sel{background:#dbeafe}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:11px}
.pill.blocked{background:repeating-linear-gradient(45deg,#fecaca,#fecaca 4px,#f87171 4px,#f87171 8px);font-weight:600}
.pill.live{background:#bfdbfe;font-weight:600}.pill.unconf{background:#fde68a;font-weight:600}
#detail{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px;margin:10px 0}
#detail:empty{display:none}.redelivered{color:#b45309;font-weight:600}
"""

# The page's script (search over the index, detail loaded on demand), shipped beside this module.
JS = (Path(__file__).with_name("report.js")).read_text(encoding="utf-8")


@dataclass
class ReportStats:
    orders: int  # orders in the projection (within --session)
    shown: int  # orders in the index
    anomalies: int
    detail_files: int = 0


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _json_script(id_: str, value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    return f"<script type='application/json' id='{id_}'>{text}</script>"


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


def _describe(kind: str, status: Any, code: Any, exec_id: Any, shares: float, price: float, decision: Any,
              reason: Any, text: Any) -> str:
    if kind in ("order_status", "open_order", "completed_order"):
        return f"{kind} {status or '-'}" + (f" filled {shares:g}" if kind == "order_status" else "")
    if kind == "exec_details":
        return f"fill {exec_id} {shares:g} @ {price:g}"
    if kind == "commission_report":
        return f"commission {exec_id} {price:g}"
    if kind == "error":
        return f"error {code}: {text or ''}"
    if kind == "governor_decision":
        return f"governor {decision} {reason or ''} {text or ''}".strip()
    if kind in ("place_order", "modify_order"):
        return f"{kind} {shares:g} @ {price:g}"
    return f"{kind} {reason or ''}".strip()


def _charts(con: Any, where_fills: str, where_orders: str, params: list[Any]) -> str:
    fills = con.execute(f"""SELECT f.recv_ns, f.shares, f.price FROM fills f JOIN orders o ON o.key = f.order_key
                            WHERE NOT f.superseded {where_fills} ORDER BY f.recv_ns""", params).fetchall()
    lat = con.execute(f"""SELECT (acked_ns - placed_ns) / 1e6, CASE WHEN first_fill_ns > 0
                                 THEN (first_fill_ns - placed_ns) / 1e6 END
                          FROM orders o WHERE placed_ns > 0 AND acked_ns >= placed_ns {where_orders}""",
                      params).fetchall()
    ack = [r[0] for r in lat]
    first_fill = [r[1] for r in lat if r[1] is not None and r[1] >= 0]
    top = [r[0] for r in con.execute(f"""SELECT p.symbol FROM positions_over_time p JOIN orders o ON o.key = p.order_key
                                        WHERE true {where_orders} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 8""",
                                     params).fetchall()]
    series: dict[str, list[tuple[int, float]]] = {}
    realized: dict[str, float | None] = {}
    if top:
        marks = ",".join("?" * len(top))
        for sym, ns, pos in con.execute(
                f"""SELECT p.symbol, p.recv_ns, sum(p.delta) OVER (PARTITION BY p.symbol ORDER BY p.recv_ns,
                           p.session_id, p.seq, p.exec_id ROWS UNBOUNDED PRECEDING)
                    FROM positions_over_time p JOIN orders o ON o.key = p.order_key
                    WHERE p.symbol IN ({marks}) {where_orders} ORDER BY 1, 2""", [*top, *params]).fetchall():
            series.setdefault(sym, []).append((ns, pos))
        realized = dict(con.execute(
            f"""SELECT p.symbol, sum(p.realized_pnl) FROM pnl p JOIN orders o ON o.key = p.order_key
                WHERE p.symbol IN ({marks}) {where_orders} GROUP BY 1""", [*top, *params]).fetchall())
    t0, t1 = con.execute("SELECT coalesce(min(recv_ns), 0), coalesce(max(recv_ns), 0) FROM events").fetchone()
    states: list[tuple[int, str]] = []
    marks_: list[tuple[int, str, str]] = []
    for ns, decision, reason, trading_state, message in con.execute(
            "SELECT recv_ns, decision, reason, trading_state, message FROM governor_decisions "
            "WHERE decision IN ('STATE_CHANGE', 'EMERGENCY_CANCEL') ORDER BY position").fetchall():
        if decision == "EMERGENCY_CANCEL":
            marks_.append((ns, "emergency_cancel", f"{reason}: {message}"))
            continue
        states.append((ns, trading_state))
        kind = ("breaker" if reason.startswith("BREAKER") else "halt" if reason == "MANUAL_HALT" else
                "resume" if reason == "MANUAL_RESUME" else "reducing" if reason == "MANUAL_REDUCING" else "state")
        marks_.append((ns, kind, f"{reason} -> {trading_state}: {message}"))
    for ns, kind, code, sid in con.execute(
            "SELECT recv_ns, kind, code, session_id FROM connection_events "
            "WHERE kind IN ('session_started', 'session_ended', 'connected', 'disconnected') "
            "OR code IN (1100, 1101, 1102) "
            "ORDER BY position").fetchall():
        m = {"session_started": "session_start", "session_ended": "session_end", "connected": "reconnect",
             "disconnected": "disconnect"}.get(kind) or ("link_lost" if code == 1100 else "link_restored")
        marks_.append((ns, m, f"{kind}{' ' + str(code) if code else ''} ({sid[:8]})"))
    decisions = con.execute("SELECT decision, reason, count(*) FROM governor_decisions GROUP BY 1, 2").fetchall()
    return ("<div class='charts'>" + charts.fills_over_time(fills) + charts.latency_histogram(ack, first_fill)
            + charts.positions_chart(series, realized) + charts.trading_state_timeline(states, marks_, t0, t1)
            + charts.decisions_by_reason(decisions) + "</div>")


def _details(con: Any, keys: list[str], files: Path) -> int:
    """Write detail-NNNNN.js: per order, [events, transitions]; returns the number of files."""
    con.execute("CREATE OR REPLACE TEMP TABLE _sel AS SELECT unnest($1) AS k, unnest($2) AS i",
                [keys, list(range(len(keys)))])
    evs: list[list[Any]] = [[] for _ in keys]
    trs: list[list[Any]] = [[] for _ in keys]
    seen: list[set[str] | None] = [None] * len(keys)
    rel = con.execute("""SELECT s.i, e.recv_ns, e.kind, e.status, e.code, e.exec_id, e.shares, e.price, e.decision,
                                e.reason, e.text, strftime(e.ts, '%Y-%m-%d %H:%M:%S.%f'), e.state_after
                         FROM order_events e JOIN _sel s ON s.k = e.order_key ORDER BY s.i, e.position""")
    while batch := rel.fetchmany(50_000):
        for i, ns, kind, status, code, exec_id, shares, price, decision, reason, text, ts, after in batch:
            again = False
            if kind == "exec_details":
                s = seen[i]
                if s is None:
                    s = seen[i] = set()
                again = exec_id in s
                s.add(exec_id)
            evs[i].append([ns, _lane(kind), status or "", _describe(kind, status, code, exec_id, shares, price,
                                                                      decision, reason, text), ts, after,
                           1 if again else 0])
    rel = con.execute("""SELECT s.i, t.recv_ns, t.to_state FROM transitions t JOIN _sel s ON s.k = t.order_key
                         WHERE t.to_state != 'Merged' ORDER BY s.i, t.position, t.ord""")
    while batch := rel.fetchmany(50_000):
        for i, ns, state in batch:
            trs[i].append([ns, state])
    n = 0
    for start in range(0, len(keys), CHUNK):
        part = [[evs[i], trs[i]] for i in range(start, min(start + CHUNK, len(keys)))]
        text = json.dumps(part, separators=(",", ":"), ensure_ascii=False)
        (files / f"detail-{start // CHUNK:05d}.js").write_text(f"ibledgerDetail({start // CHUNK},{text});\n",
                                                               encoding="utf-8")
        n += 1
    return n


def write_report(duckdb_path: str | Path, out: str | Path, *, title: str = "ibledger audit report",
                 limit: int = DEFAULT_LIMIT, session: str | None = None) -> ReportStats:
    """Write ``out`` and its ``<stem>_files/`` directory. ``limit``: orders in the index (0 = all)."""
    out = Path(out)
    files = out.with_name(out.stem + "_files")
    if files.exists():
        shutil.rmtree(files)
    files.mkdir()
    con = connect_read_only(duckdb_path)
    try:
        where_o = " AND o.session_id = ?" if session else ""
        params = [session] if session else []
        total = con.execute(f"SELECT count(*) FROM orders o WHERE true {where_o}", params).fetchone()[0]
        lim = f"LIMIT {int(limit)}" if limit and limit > 0 else ""
        index = [list(r) for r in con.execute(
            f"SELECT {', '.join('o.' + c for c in INDEX_COLS)} FROM orders o WHERE true {where_o} "
            f"ORDER BY o.first_seen_ns, o.key {lim}", params).fetchall()]
        detail_files = _details(con, [r[0] for r in index], files)
        chart_html = _charts(con, where_o, where_o, params)
        anomalies = con.execute(f"""
            SELECT strftime(a.ts, '%Y-%m-%d %H:%M:%S.%f'), a.kind, a.order_key, o.symbol, a.from_status, a.to_status,
                   a.reason, a.session_id, a.seq
            FROM anomalies a LEFT JOIN orders o ON o.key = a.order_key
            WHERE true {where_o.replace('o.session_id', 'a.session_id')} ORDER BY a.position, a.ord""",
                                params).fetchall()
        tracking = con.execute("SELECT position, events FROM ibledger_internal.audit_tracking").fetchone() or (0, 0)
        meta = dict(con.execute("SELECT key, value FROM ibledger_internal.audit_meta").fetchall())
        live, unconfirmed, blocked_orders = con.execute(
            f"SELECT count(*) FILTER (WHERE is_live), count(*) FILTER (WHERE unconfirmed), "
            f"count(*) FILTER (WHERE state = 'Blocked') FROM orders o WHERE true {where_o}", params).fetchone()
        blocks, crashed, sessions = con.execute(
            "SELECT (SELECT count(*) FROM governor_decisions WHERE decision = 'BLOCK'), "
            "(SELECT count(*) FROM sessions WHERE crashed), (SELECT count(*) FROM sessions)").fetchone()
        states = [r[0] for r in con.execute(f"SELECT DISTINCT state FROM orders o WHERE true {where_o} ORDER BY 1",
                                            params).fetchall()]
    finally:
        con.close()

    w: list[str] = []
    a = w.append
    a("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>")
    a("<meta name='viewport' content='width=device-width, initial-scale=1'>")
    a(f"<title>{_e(title)}</title><style>{CSS}</style></head>")
    a(f"<body data-files='{_e(files.name)}' data-chunk='{CHUNK}'>")
    a(f"<header><h1>{_e(title)}</h1><div class='meta'>store {_e(meta.get('store_url', '?'))} · "
      f"{tracking[1]} events up to position {tracking[0]}</div></header><main>")
    a("<div class='cards'>")
    for label, value, warn in (("orders", total, False), ("live now", live, False),
                               ("unconfirmed", unconfirmed, unconfirmed > 0), ("blocked", blocked_orders, False),
                               ("anomalies", len(anomalies), len(anomalies) > 0), ("governor blocks", blocks, False),
                               ("sessions", sessions, False), ("crashed sessions", crashed, crashed > 0)):
        a(f"<div class='card{' warn' if warn else ''}' id='card-{label.replace(' ', '-')}'><b>{value}</b>"
          f"{_e(label)}</div>")
    a("</div>")
    a(f"<h2 id='charts'>Charts</h2>{chart_html}")
    a(f"<h2 id='anomalies'>Anomalies ({len(anomalies)})</h2>")
    if anomalies:
        a("<div class='scroll'><table id='anomaly-list'><tr><th>time (UTC)</th><th>kind</th><th>order</th>"
          "<th>symbol</th><th>from</th><th>to</th><th>reason</th><th>session#seq</th></tr>")
        for r in anomalies[:5000]:
            a("<tr class='anomaly'>" + "".join(f"<td>{_e(v)}</td>" for v in r[:7]) + f"<td>{_e(r[7])}#{r[8]}</td></tr>")
        a("</table></div>")
        if len(anomalies) > 5000:
            a(f"<p class='note'>first 5000 of {len(anomalies)}: ibledger audit anomalies lists them all</p>")
    else:
        a("<p class='note' id='anomaly-list'>No anomalies.</p>")
    a(f"<h2 id='orders'>Orders (<span id='hits'>{len(index)}</span> matching of {len(index)}"
      f"{'' if len(index) == total else f'; index limited to {len(index)} of {total} by --limit'})</h2>")
    a("<div class='search'><input id='q' placeholder='order id, client:order, permId, symbol, state, key' "
      "aria-label='search'><select id='state' aria-label='state'><option value=''>any state</option>"
      + "".join(f"<option>{_e(s)}</option>" for s in states) + "</select>"
      "<label>from <input id='from' type='datetime-local' step='1' aria-label='from (UTC)'></label>"
      "<label>to <input id='to' type='datetime-local' step='1' aria-label='to (UTC)'></label>"
      "<span class='note'>times in UTC; click an order for its timeline</span></div>")
    a("<div id='detail'></div>")
    a("<table id='order-list'><thead><tr><th>first seen (UTC)</th><th>symbol</th><th>order</th><th>state</th>"
      "<th>broker</th><th>filled</th><th>permId</th><th>client:order</th><th>anomalies</th></tr></thead>"
      "<tbody id='order-rows'></tbody></table><p><button id='more'>show more</button></p>")
    a(_json_script("index-cols", list(INDEX_COLS)) + _json_script("index-data", index)
      + _json_script("state-colors", STATE_COLORS) + _json_script("status-colors", STATUS_COLORS))
    a(f"</main><script>{JS}</script></body></html>")
    out.write_text("".join(w), encoding="utf-8")
    return ReportStats(orders=total, shown=len(index), anomalies=len(anomalies), detail_files=detail_files)


def render(duckdb_path: str | Path, **kw: Any) -> tuple[str, ReportStats]:
    """The report page as a string (its detail files in a temporary directory): for tests and callers that
    only want the page."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ibledger-report-") as d:
        stats = write_report(duckdb_path, Path(d) / "report.html", **kw)
        return (Path(d) / "report.html").read_text(encoding="utf-8"), stats
