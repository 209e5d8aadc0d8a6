"""Inline SVG charts for the report, computed from the DuckDB read model (no charting library, no network).

Each function returns one ``<figure>`` with an ``id`` the browser test looks for; an empty data set gives
a figure that says so rather than a blank box. Deterministic: the same projection gives the same bytes.
"""

from __future__ import annotations

import html
import math
from typing import Any

W, H = 560, 220
L, R, T, B = 56, 14, 14, 34  # margins

STATE_FILL = {"ACTIVE": "#bbf7d0", "HALTED": "#fecaca", "REDUCING": "#fde68a"}
LATENCY_BINS_MS = (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 60000)


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _num(x: float) -> str:
    a = abs(x)
    if a >= 1e6:
        return f"{x / 1e6:.1f}M"
    if a >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.4g}"


def _figure(fid: str, title: str, body: str, note: str = "") -> str:
    return (f"<figure class='chart' id='{fid}'><figcaption>{_e(title)}</figcaption>"
            f"<svg viewBox='0 0 {W} {H}' xmlns='http://www.w3.org/2000/svg' role='img' aria-label='{_e(title)}'>"
            f"{body}</svg>{f'<p class=note>{_e(note)}</p>' if note else ''}</figure>")


def _empty(fid: str, title: str, why: str) -> str:
    return _figure(fid, title, f"<text class='empty' x='{W / 2}' y='{H / 2}' text-anchor='middle'>{_e(why)}</text>")


def _axes(y_max: float, y_label: str, x_labels: list[tuple[float, str]]) -> str:
    parts = [f"<line x1='{L}' y1='{H - B}' x2='{W - R}' y2='{H - B}' stroke='#9ca3af'/>",
             f"<line x1='{L}' y1='{T}' x2='{L}' y2='{H - B}' stroke='#9ca3af'/>"]
    for k in range(5):
        v = y_max * k / 4
        y = H - B - (H - T - B) * k / 4
        parts.append(f"<text x='{L - 4}' y='{y + 3:.1f}' text-anchor='end'>{_num(v)}</text>"
                     f"<line x1='{L}' y1='{y:.1f}' x2='{W - R}' y2='{y:.1f}' stroke='#f3f4f6'/>")
    parts.append(f"<text x='12' y='{T + (H - T - B) / 2}' transform='rotate(-90 12 {T + (H - T - B) / 2})' "
                 f"text-anchor='middle'>{_e(y_label)}</text>")
    for x, label in x_labels:
        parts.append(f"<text x='{x:.1f}' y='{H - B + 14}' text-anchor='middle'>{_e(label)}</text>")
    return "".join(parts)


def _time_labels(t0: int, t1: int, n: int = 5) -> list[tuple[float, str]]:
    import datetime as dt

    out = []
    for k in range(n):
        ns = t0 + (t1 - t0) * k // max(n - 1, 1)
        x = L + (W - L - R) * k / max(n - 1, 1)
        stamp = dt.datetime.fromtimestamp(ns / 1e9, tz=dt.UTC)
        out.append((x, stamp.strftime("%H:%M:%S.%f")[:-3] if t1 - t0 < 60e9 else stamp.strftime("%H:%M:%S")))
    return out


def fills_over_time(rows: list[tuple[int, float, float]], bins: int = 48) -> str:
    """rows: (recv_ns, shares, price) of counted executions. Bars: fills per bin; line: notional per bin."""
    fid, title = "chart-fills", "Fills and notional over time (UTC)"
    if not rows:
        return _empty(fid, title, "no executions recorded")
    t0, t1 = min(r[0] for r in rows), max(r[0] for r in rows)
    span = max(t1 - t0, 1)
    count = [0] * bins
    notional = [0.0] * bins
    for ns, shares, price in rows:
        i = min(int((ns - t0) * bins / span), bins - 1)
        count[i] += 1
        notional[i] += abs(shares * price)
    cmax, nmax = max(count), max(notional) or 1.0
    bw = (W - L - R) / bins
    parts = [_axes(cmax, "fills", _time_labels(t0, t1))]
    for i, c in enumerate(count):
        if c:
            h = (H - T - B) * c / cmax
            parts.append(f"<rect class='bar' x='{L + i * bw + 1:.1f}' y='{H - B - h:.1f}' width='{bw - 2:.1f}' "
                         f"height='{h:.1f}' fill='#60a5fa'><title>{c} fills, notional {notional[i]:,.0f}</title>"
                         "</rect>")
    pts = " ".join(f"{L + (i + 0.5) * bw:.1f},{H - B - (H - T - B) * v / nmax:.1f}" for i, v in enumerate(notional))
    parts.append(f"<polyline class='line' points='{pts}' fill='none' stroke='#f97316' stroke-width='2'/>")
    parts.append(f"<text x='{W - R}' y='{T + 8}' text-anchor='end' fill='#f97316'>notional (max {_num(nmax)})</text>")
    return _figure(fid, title, "".join(parts), f"{len(rows)} executions, {sum(notional):,.0f} notional")


def latency_histogram(ack_ms: list[float], fill_ms: list[float]) -> str:
    fid, title = "chart-latency", "Time to acknowledgement and to first fill (ms)"
    if not ack_ms and not fill_ms:
        return _empty(fid, title, "no order was placed and acknowledged")
    edges = LATENCY_BINS_MS
    nb = len(edges)

    def hist(values: list[float]) -> list[int]:
        out = [0] * nb
        for v in values:
            i = 0
            while i + 1 < nb and v >= edges[i + 1]:
                i += 1
            out[i] += 1
        return out

    ha, hf = hist(ack_ms), hist(fill_ms)
    ymax = max(ha + hf) or 1
    bw = (W - L - R) / nb
    labels = [(L + (i + 0.5) * bw, f"{e:g}") for i, e in enumerate(edges) if i % 2 == 0]
    parts = [_axes(ymax, "orders", labels)]
    for i in range(nb):
        for j, (hv, color, cls) in enumerate(((ha[i], "#3b82f6", "ack"), (hf[i], "#16a34a", "fill"))):
            if hv:
                h = (H - T - B) * hv / ymax
                parts.append(f"<rect class='bar {cls}' x='{L + i * bw + 1 + j * (bw - 2) / 2:.1f}' y='{H - B - h:.1f}'"
                             f" width='{(bw - 2) / 2:.1f}' height='{h:.1f}' fill='{color}'><title>{cls} "
                             f"&gt;= {edges[i]:g} ms: {hv}</title></rect>")
    parts.append(f"<text x='{W - R}' y='{T + 8}' text-anchor='end' fill='#3b82f6'>to ack</text>"
                 f"<text x='{W - R}' y='{T + 20}' text-anchor='end' fill='#16a34a'>to first fill</text>")

    def p(values: list[float], q: float) -> str:
        if not values:
            return "-"
        s = sorted(values)
        return f"{s[min(int(q * len(s)), len(s) - 1)]:.1f}"

    note = (f"ack p50 {p(ack_ms, .5)} / p99 {p(ack_ms, .99)} ms; "
            f"first fill p50 {p(fill_ms, .5)} / p99 {p(fill_ms, .99)} ms")
    return _figure(fid, title, "".join(parts), note)


def positions_chart(series: dict[str, list[tuple[int, float]]], realized: dict[str, float | None]) -> str:
    """Position over time per contract (step lines, top contracts), realized P&L per contract in the legend."""
    fid, title = "chart-positions", "Position per contract over time, realized P&L"
    if not series:
        return _empty(fid, title, "no executions recorded")
    colors = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04")
    t0 = min(p[0][0] for p in series.values())
    t1 = max(p[-1][0] for p in series.values())
    span = max(t1 - t0, 1)
    lo = min(0.0, *(v for pts in series.values() for _, v in pts))
    hi = max(0.0, *(v for pts in series.values() for _, v in pts))
    rng = (hi - lo) or 1.0

    def y(v: float) -> float:
        return H - B - (H - T - B) * (v - lo) / rng

    parts = [f"<line x1='{L}' y1='{T}' x2='{L}' y2='{H - B}' stroke='#9ca3af'/>",
             f"<line x1='{L}' y1='{y(0):.1f}' x2='{W - R}' y2='{y(0):.1f}' stroke='#9ca3af'/>",
             f"<text x='{L - 4}' y='{y(hi) + 3:.1f}' text-anchor='end'>{_num(hi)}</text>",
             f"<text x='{L - 4}' y='{y(lo) + 3:.1f}' text-anchor='end'>{_num(lo)}</text>"]
    for x, label in _time_labels(t0, t1):
        parts.append(f"<text x='{x:.1f}' y='{H - B + 14}' text-anchor='middle'>{_e(label)}</text>")
    for n, (name, pts) in enumerate(series.items()):
        color = colors[n % len(colors)]
        d = [f"M{L:.1f},{y(0):.1f}"]
        for ns, v in pts:
            d.append(f"H{L + (W - L - R) * (ns - t0) / span:.1f}V{y(v):.1f}")
        d.append(f"H{W - R:.1f}")
        r = realized.get(name)
        legend = f"{name} {pts[-1][1]:g}" + (f", realized {r:,.2f}" if r is not None else "")
        parts.append(f"<path class='position' d='{''.join(d)}' fill='none' stroke='{color}' stroke-width='1.8'>"
                     f"<title>{_e(legend)}</title></path>")
        parts.append(f"<text x='{W - R}' y='{T + 8 + 12 * n}' text-anchor='end' fill='{color}'>{_e(legend)}</text>")
    return _figure(fid, title, "".join(parts))


def trading_state_timeline(states: list[tuple[int, str]], marks: list[tuple[int, str, str]], t0: int,
                           t1: int) -> str:
    """states: (ns, trading state entered); marks: (ns, kind, text) with kind in breaker | halt | resume |
    reducing | emergency_cancel | disconnect | reconnect | link_lost | link_restored | session_start |
    session_end."""
    fid, title = "chart-trading-state", "Trading state, breakers, HALT/RESUME, emergency cancels, connection"
    if t1 <= t0 and not states and not marks:
        return _empty(fid, title, "no events")
    span = max(t1 - t0, 1)

    def x(ns: int) -> float:
        return L + (W - L - R) * (ns - t0) / span

    parts = [f"<text x='4' y='{T + 22}'>state</text>"]
    segs = [(t0, "ACTIVE")] + [(ns, s) for ns, s in states if s]
    for i, (ns, s) in enumerate(segs):
        end = segs[i + 1][0] if i + 1 < len(segs) else t1
        x0, x1 = x(ns), max(x(end), x(ns) + 2)
        parts.append(f"<rect class='state state-{_e(s)}' x='{x0:.1f}' y='{T + 10}' width='{x1 - x0:.1f}' "
                     f"height='20' fill='{STATE_FILL.get(s, '#e5e7eb')}'><title>{_e(s)}</title></rect>")
        if x1 - x0 > 50:
            parts.append(f"<text x='{x0 + 3:.1f}' y='{T + 24}'>{_e(s)}</text>")
    lanes = {"breaker": 70, "halt": 70, "resume": 70, "reducing": 70, "emergency_cancel": 100,
             "disconnect": 130, "reconnect": 130, "link_lost": 130, "link_restored": 130,
             "session_start": 160, "session_end": 160}
    for label, ly in (("governor", 70), ("cancels", 100), ("connection", 130), ("sessions", 160)):
        parts.append(f"<text x='4' y='{ly + 4}'>{label}</text>"
                     f"<line x1='{L}' y1='{ly}' x2='{W - R}' y2='{ly}' stroke='#e5e7eb'/>")
    glyph = {
        "breaker": ("#dc2626", "M{x},{y} l6,10 h-12 z"), "halt": ("#991b1b", "M{x},{y} m-5,-5 h10 v10 h-10 z"),
        "resume": ("#15803d", "M{x},{y} m-5,-5 l10,5 l-10,5 z"),
        "reducing": ("#ca8a04", "M{x},{y} m-5,-5 h10 v10 h-10 z"),
        "emergency_cancel": ("#dc2626", "M{x},{y} m-5,-5 l10,10 m0,-10 l-10,10"),
        "disconnect": ("#dc2626", "M{x},{y} m0,-9 v18"), "reconnect": ("#16a34a", "M{x},{y} m0,-9 v18"),
        "link_lost": ("#f97316", "M{x},{y} m0,-9 v18"), "link_restored": ("#16a34a", "M{x},{y} m0,-9 v18"),
        "session_start": ("#2563eb", "M{x},{y} m-4,-6 l8,6 l-8,6 z"),
        "session_end": ("#6b7280", "M{x},{y} m-4,-6 h8 v12 h-8 z"),
    }
    for ns, kind, text in marks:
        color, d = glyph.get(kind, ("#111827", "M{x},{y} m-3,0 h6"))
        path = d.format(x=f"{x(ns):.1f}", y=lanes.get(kind, 70) - (5 if kind == "breaker" else 0))
        stroke = f"stroke='{color}' stroke-width='2.5' fill='{color}'"
        parts.append(f"<path class='mark mark-{kind}' d='{path}' {stroke}><title>{_e(text)}</title></path>")
    for xx, label in _time_labels(t0, t1):
        parts.append(f"<text x='{xx:.1f}' y='{H - 8}' text-anchor='middle'>{_e(label)}</text>")
    counts: dict[str, int] = {}
    for _, kind, _ in marks:
        counts[kind] = counts.get(kind, 0) + 1
    note = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items())) or "no state changes"
    return _figure(fid, title, "".join(parts), note)


def decisions_by_reason(rows: list[tuple[str, str, int]]) -> str:
    fid, title = "chart-decisions", "Governor decisions by reason"
    if not rows:
        return _empty(fid, title, "no governor decision recorded")
    rows = sorted(rows, key=lambda r: (-r[2], r[0], r[1]))[:12]
    vmax = max(r[2] for r in rows)
    bh = (H - T - 10) / len(rows)
    left = 240
    parts = []
    color = {"ALLOW": "#22c55e", "BLOCK": "#ef4444", "EMERGENCY_CANCEL": "#b91c1c", "STATE_CHANGE": "#f59e0b"}
    for i, (decision, reason, n) in enumerate(rows):
        y = T + i * bh
        w = (W - left - 50) * (math.log1p(n) / math.log1p(vmax))
        parts.append(f"<text x='{left - 6}' y='{y + bh * 0.65:.1f}' text-anchor='end'>{_e(decision)} "
                     f"{_e(reason)}</text>"
                     f"<rect class='bar' x='{left}' y='{y + 2:.1f}' width='{max(w, 1):.1f}' height='{bh - 4:.1f}' "
                     f"fill='{color.get(decision, '#6b7280')}'><title>{n}</title></rect>"
                     f"<text x='{left + w + 4:.1f}' y='{y + bh * 0.65:.1f}'>{n}</text>")
    return _figure(fid, title, "".join(parts), "bar length on a log scale")
