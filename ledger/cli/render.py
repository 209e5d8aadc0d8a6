"""Rich tables and JSON rows for folded orders, anomalies and governor decisions.

One place renders these so ``orders``, ``replay`` and ``demo`` print the same columns.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from rich.table import Table

from ledger.core.fold import Anomaly, OrderView
from ledger.store.verify import VerifyReport


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
