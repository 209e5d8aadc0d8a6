"""Rich tables and JSON rows for folded orders, anomalies and governor decisions.

One place renders these so ``orders``, ``replay`` and ``demo`` print the same columns. Governor decisions
have one table: a recorded session's decisions (``demo``) and a replay's decisions next to the recorded
ones (``replay``) are both :class:`DecisionLine` rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from rich.table import Table

from ledger.core.events import GovernorDecision
from ledger.core.fold import Anomaly, OrderView
from ledger.core.rows import order_row
from ledger.store.verify import VerifyReport
from replay.replayer import summary


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:g}"


def orders_table(orders: Iterable[OrderView], title: str = "Orders") -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("perm/id", "symbol", "side", "qty", "type", "broker status", "state", "live",
                "filled", "remaining", "avg px", "commission", "anomalies"):
        t.add_column(col, justify="right" if col in ("qty", "filled", "remaining", "avg px", "commission") else "left")
    for o in orders:
        ident = f"{o.perm_id or '-'}/{o.client_id}:{o.order_id}"
        state = o.state + (f" ({o.overlay})" if o.overlay else "")
        live = "[bold green]LIVE[/]" if o.is_live else ("done" if o.is_done else "-")
        t.add_row(
            ident, o.symbol, o.action, _num(o.total_qty), o.order_type, o.broker_status or "-", state, live,
            _num(o.filled), _num(o.remaining), _num(o.avg_fill_price), _num(o.commission),
            str(o.anomaly_count) if o.anomaly_count else "",
        )
    return t


def anomalies_table(anomalies: Iterable[Anomaly], title: str = "Anomalies") -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("seq", "order", "kind", "from", "to", "reason"):
        t.add_column(col)
    for a in anomalies:
        t.add_row(str(a.seq), a.key or "-", a.kind, a.from_status or "-", a.to_status or "-", a.reason)
    return t


# --- governor decisions --------------------------------------------------------------------------


class DecisionLine(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the decisions table: ``decision`` is what is shown (the replayed one in a replay);
    with ``compared``, ``recorded`` is what the recording holds (None: no recorded decision there)."""

    seq: int
    decision: GovernorDecision
    origin: str = "recorded"  # recorded | pre_check | reactive | input
    compared: bool = False
    recorded: GovernorDecision | None = None
    missing: bool = False  # a recorded decision the replay did not make (``decision`` is the recorded one)
    cause: str = ""  # the causing event (``#seq`` within the session)


_DECISION_STYLE = {"BLOCK": "red", "EMERGENCY_CANCEL": "bold red", "STATE_CHANGE": "yellow"}
_DETAIL_KEYS = ("limit", "value", "notional", "qty", "position", "to")


# ``ALLOW OK``, ``BLOCK MAX_QTY``, ``STATE_CHANGE BREAKER_REJECTIONS -> HALTED``, ``(none)``: the replay's own
# words for a decision, so a table and a replay divergence say the same thing
decision_summary = summary


def _same_decision(a: GovernorDecision | None, b: GovernorDecision | None) -> bool:
    return a is not None and b is not None and decision_summary(a) == decision_summary(b)


def decisions_table(lines: Iterable[DecisionLine], title: str = "Governor decisions") -> Table:
    """Decisions: seq, origin, order, symbol, decision, [recorded,] state, details, message, [caused by].

    The ``recorded`` column appears when any row was compared with a recording (replay), ``caused by``
    when any row names its cause (a recorded session)."""
    rows = list(lines)
    compared = any(r.compared for r in rows)
    causes = any(r.cause for r in rows)
    t = Table(title=title, title_justify="left")
    cols = ["seq", "origin", "order", "symbol", "decision", *(["recorded"] if compared else []), "state",
            "details", "message", *(["caused by"] if causes else [])]
    for col in cols:
        t.add_column(col)
    for r in rows:
        d = r.decision
        style = _DECISION_STYLE.get(d.decision, "")
        shown = "(none)" if r.missing else decision_summary(d)
        cells = [str(r.seq), r.origin, f"{d.client_id}:{d.order_id}" if d.order_id else "-", d.symbol or "-",
                 f"[{style}]{shown}[/]" if style else shown]
        if compared:
            if not r.compared:
                cells.append("-")
            elif not r.missing and _same_decision(d, r.recorded):
                cells.append("same")
            else:
                cells.append(f"[bold red]{decision_summary(r.recorded)}[/]" if r.recorded is not None else "(none)")
        det = {k: v for k, v in d.details.items() if k in _DETAIL_KEYS}
        cells += [d.trading_state, ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                             for k, v in det.items()), d.message]
        if causes:
            cells.append(r.cause or "-")
        t.add_row(*cells)
    return t


def verify_summary(report: VerifyReport) -> str:
    lines = [
        f"store {report.url}: {report.sessions_checked} sessions, {report.events} events, "
        f"max position {report.max_position}"
    ]
    for g in report.gaps:
        lines.append(f"[red]GAP[/] {msgspec.to_builtins(g)}")
    for u in report.undecodable:
        lines.append(f"[red]UNDECODABLE[/] {msgspec.to_builtins(u)}")
    for t in report.tampered:
        lines.append(f"[red]TAMPERED[/] {msgspec.to_builtins(t)}")
    for line in report.integrity:
        lines.append(f"[red]INTEGRITY[/] {line}")
    for u in report.unreadable:
        lines.append(
            f"[red]UNREADABLE[/] session {u.session_id}: {u.stored} rows stored, {u.readable} reachable by "
            f"session reads, head records {u.head} (a damaged index or rows changed behind the store)"
        )
    for hole in report.position_holes[:20]:
        tag = "[red]POSITION HOLE[/]" if report.position_holes_are_damage else "[yellow]position hole[/]"
        lines.append(f"{tag} positions {hole.after + 1}..{hole.next - 1} missing")
    for line in report.anchor_problems:
        lines.append(f"[red]ANCHOR[/] {line}")
    if report.anchor_file:
        lines.append(f"anchors: {report.anchored_sessions} sessions checked against {report.anchor_file}")
    if report.integrity_checked:
        lines.append(f"integrity: {report.integrity_checked}: {'ok' if not report.integrity else 'PROBLEMS'}")
    for sid in report.crashed:
        lines.append(f"[yellow]CRASHED[/] session {sid} has no end event (crashed, or still recording)")
    lines.append("[green]OK[/]" if report.ok else "[red]PROBLEMS FOUND[/]")
    return "\n".join(lines)


# --- P&L -----------------------------------------------------------------------------------------


def iso_utc(ns: int) -> str | None:
    """The JSON convention's time string: ISO-8601 UTC with microseconds, None for 0 (unknown)."""
    import datetime as _dt

    if not ns:
        return None
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def order_row_with_pnl(o: OrderView) -> dict[str, Any]:
    from ledger.core.pnl import order_pnl

    p = order_pnl(o)
    return order_row(o) | {"realized_pnl": p.realized_pnl, "bought": p.bought, "sold": p.sold}


def contracts_rows(orders: Iterable[OrderView]) -> list[dict[str, Any]]:
    from ledger.core.pnl import contract_pnl

    return [msgspec.to_builtins(c) | {"mark_at": iso_utc(c.mark_ns)} for c in contract_pnl(orders)]


def pnl_table(orders: Iterable[OrderView], title: str = "P&L per contract") -> Table:
    from ledger.core.pnl import contract_pnl

    t = Table(title=title, title_justify="left")
    for col in ("account", "symbol", "position", "avg cost", "bought", "sold", "commission", "realized", "mark",
                "unrealized"):
        t.add_column(col, justify="left" if col in ("account", "symbol") else "right")
    for c in contract_pnl(orders):
        t.add_row(c.account or "-", c.symbol, _num(c.position), _num(round(c.avg_cost, 6)), _num(c.bought),
                  _num(c.sold), _num(round(c.commission, 6)),
                  _num(None if c.realized_pnl is None else round(c.realized_pnl, 6)), _num(c.mark),
                  _num(None if c.unrealized_pnl is None else round(c.unrealized_pnl, 6)))
    return t


# --- sessions ------------------------------------------------------------------------------------


class SessionSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What ``ibledger sessions`` shows: the store's head row plus the session's start event and order count."""

    session_id: str
    events: int
    first_seq: int
    last_seq: int
    started_ns: int
    started_at: str | None
    last_ns: int
    last_at: str | None
    client_id: int | None
    account: str
    mode: str
    library: str
    orders: int
    state: str  # closed | crashed (no end event: crashed or still recording)
    end_reason: str
    crashed: bool


def session_summaries(store: Any) -> list[SessionSummary]:
    """One summary per session; reads each session once (the start event, the end event, the fold's orders)."""
    from ledger.core import events as ev
    from ledger.core.fold import LedgerFold

    out = []
    for info in store.sessions():
        start: Any = None
        end_reason = ""
        f = LedgerFold()
        for env in store.read_session(info.session_id):
            p = env.payload
            if start is None and isinstance(p, ev.SessionStarted):
                start = p
            elif isinstance(p, ev.SessionEnded):
                end_reason = p.reason
            f.apply(env)
        out.append(SessionSummary(
            session_id=info.session_id, events=info.events, first_seq=info.first_seq, last_seq=info.last_seq,
            started_ns=info.started_ns, started_at=iso_utc(info.started_ns), last_ns=info.last_ns,
            last_at=iso_utc(info.last_ns), client_id=start.client_id if start is not None else None,
            account=start.account if start is not None else "", mode=start.mode if start is not None else "",
            library=f"{start.library} {start.library_version}".strip() if start is not None else "",
            orders=len(f.orders), state="crashed" if info.crashed else "closed", end_reason=end_reason,
            crashed=info.crashed,
        ))
    return out


def sessions_table(rows: Iterable[SessionSummary], title: str = "Sessions") -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("session", "started (UTC)", "client", "account", "mode", "orders", "events", "state"):
        t.add_column(col, justify="right" if col in ("client", "orders", "events") else "left")
    for s in rows:
        state = "[red]crashed / still recording[/]" if s.crashed else f"closed ({s.end_reason or '-'})"
        started = (s.started_at or "-").replace("T", " ").removesuffix("Z")[:23]
        t.add_row(s.session_id, started, "-" if s.client_id is None else str(s.client_id), s.account or "-",
                  s.mode or "-", str(s.orders), str(s.events), state)
    return t
