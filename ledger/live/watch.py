"""``ibledger watch``: a live view of a ledger, read from the store's public tail.

Why the store and not the recorder: the view must work from another process or another host, beside a
recorder it knows nothing about. So it polls ``store.read_all(after=position)`` and folds what arrives
with the same fold the recorder uses; governor decisions and trading state are the recorded ones (never
re-derived here). Wall-clock time is used only for display (order age, how long ago the last event came).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec
from rich.console import Group, RenderableType
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold import Anomaly, LedgerFold, OrderView

KEEP = 12  # rows kept per list (latest first)


class FillRow(msgspec.Struct, frozen=True):
    recv_ns: int
    exec_id: str
    symbol: str
    side: str
    shares: float
    price: float
    redelivered: bool  # the same execId was already recorded (a reconciliation re-delivery, not a new fill)


class DecisionRow(msgspec.Struct, frozen=True):
    recv_ns: int
    decision: str
    reason: str
    action: str
    symbol: str
    message: str


class WatchModel:
    """Everything the view shows, kept up to date one envelope at a time (no wall clock inside)."""

    def __init__(self) -> None:
        self.fold = LedgerFold()
        self.position = 0
        self.events = 0
        self.session_id = ""
        self.session_open = False
        self.connection = "no session yet"
        self.reconciliation = "-"
        self.trading_state = "ACTIVE"
        self.last_recv_ns = 0
        self.recorder_faults = 0
        self.decisions: deque[DecisionRow] = deque(maxlen=KEEP)
        self.fills: deque[FillRow] = deque(maxlen=KEEP)
        self._exec_ids: set[str] = set()
        self._seen_anomalies = 0
        self.anomalies: deque[Anomaly] = deque(maxlen=KEEP)

    def apply(self, position: int, env: Envelope) -> None:
        self.fold.apply(env)
        self.position = position
        self.events += 1
        self.last_recv_ns = max(self.last_recv_ns, env.recv_ns)
        p = env.payload
        if isinstance(p, ev.SessionStarted):
            self.session_id, self.session_open = env.session_id, True
            self.connection = f"session {env.session_id[:8]} started (client {p.client_id}, {p.account or '-'})"
        elif isinstance(p, ev.SessionEnded):
            if env.session_id == self.session_id:
                self.session_open = False
            self.connection = f"session {env.session_id[:8]} ended ({p.reason})"
        elif isinstance(p, ev.Connected):
            self.connection = f"CONNECTED {p.host}:{p.port} client {p.client_id} (server {p.server_version})"
        elif isinstance(p, ev.Disconnected):
            self.connection = f"DISCONNECTED ({p.reason or 'no reason given'})"
        elif isinstance(p, ev.Error) and p.code in (sm.ERR_CONNECTIVITY_LOST, sm.ERR_CONNECTIVITY_RESTORED_LOST,
                                                    sm.ERR_CONNECTIVITY_RESTORED):
            self.connection = f"TWS link: error {p.code} {p.message[:60]}"
        elif isinstance(p, ev.ReconcileStarted):
            self.reconciliation = f"RUNNING ({p.reason})"
        elif isinstance(p, ev.ReconcileEnded):
            self.reconciliation = ("ok" if p.ok and not p.unknown else
                                   f"INCOMPLETE, unknown: {', '.join(p.unknown) or '-'}")
        elif isinstance(p, ev.GovernorDecision):
            self.trading_state = p.trading_state or self.trading_state
            self.decisions.appendleft(DecisionRow(env.recv_ns, p.decision, p.reason, p.action, p.symbol, p.message))
        elif isinstance(p, ev.ExecDetails):
            again = p.exec_id in self._exec_ids
            self._exec_ids.add(p.exec_id)
            self.fills.appendleft(FillRow(env.recv_ns, p.exec_id, p.symbol, p.side, p.shares, p.price, again))
        elif isinstance(p, ev.RecorderFault):
            self.recorder_faults += 1
        new = self.fold.anomalies[self._seen_anomalies:]
        self._seen_anomalies = len(self.fold.anomalies)
        for a in new:
            self.anomalies.appendleft(a)

    def open_orders(self) -> list[OrderView]:
        return sorted(self.fold.open_orders(), key=lambda o: o.first_seen_ns)


def catch_up(store: Any, model: WatchModel, limit: int | None = None) -> int:
    """Apply what the store committed after the model's position; returns the number of events read."""
    n = 0
    for position, env in store.read_all(after=model.position, limit=limit):
        model.apply(position, env)
        n += 1
    return n


def _state_label(o: OrderView) -> Text:
    if o.state == sm.INACTIVE_STATE and o.why_held:
        return Text(f"HELD ({o.why_held})", style="bold magenta")
    if o.unconfirmed or o.state == sm.UNCONFIRMED:
        return Text("UNCONFIRMED", style="bold yellow")
    if o.is_live:
        return Text(f"LIVE {o.state}" + (f" ({o.overlay})" if o.overlay else ""), style="bold green")
    return Text(o.state + (f" ({o.overlay})" if o.overlay else ""))


def _ago(now_ns: int, ns: int) -> str:
    if not ns:
        return "-"
    s = max(0.0, (now_ns - ns) / 1e9)
    return f"{s:.1f}s" if s < 120 else f"{s / 60:.1f}m"


def render(model: WatchModel, now_ns: int, store_label: str = "") -> RenderableType:
    """One frame. ``now_ns`` (wall clock) only for ages."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    state_style = {"ACTIVE": "green", "HALTED": "bold red", "REDUCING": "yellow"}.get(model.trading_state, "")
    head.add_row("store", esc(store_label) + f"  position {model.position}, {model.events} events read")
    head.add_row("connection", esc(model.connection))
    head.add_row("reconciliation", esc(model.reconciliation))
    head.add_row("trading state", Text(model.trading_state, style=state_style)
                 + (Text(f"  {model.recorder_faults} recorder fault(s)", style="bold red")
                    if model.recorder_faults else Text("")))
    lag = _ago(now_ns, model.last_recv_ns)
    head.add_row("recorder lag", f"last committed event received {lag} ago"
                 + ("" if model.session_open else " (no session recording)"))

    orders = Table(title=f"Open orders ({len(model.open_orders())})", title_justify="left")
    for col in ("order", "symbol", "side", "qty", "type", "limit", "state", "broker", "filled", "age"):
        orders.add_column(col, justify="right" if col in ("qty", "limit", "filled", "age") else "left")
    for o in model.open_orders()[:KEEP * 2]:
        orders.add_row(f"{o.perm_id or '-'}/{o.client_id}:{o.order_id}", o.symbol, o.action, f"{o.total_qty:g}",
                       o.order_type, "-" if o.lmt_price is None else f"{o.lmt_price:g}", _state_label(o),
                       o.broker_status or "-", f"{o.filled:g}", _ago(now_ns, o.first_seen_ns))

    fills = Table(title="Latest fills", title_justify="left")
    for col in ("age", "execId", "symbol", "side", "shares", "price", "note"):
        fills.add_column(col, justify="right" if col in ("shares", "price", "age") else "left")
    for f in model.fills:
        fills.add_row(_ago(now_ns, f.recv_ns), f.exec_id, f.symbol, f.side, f"{f.shares:g}", f"{f.price:g}",
                      Text("re-delivered", style="yellow") if f.redelivered else "")

    decisions = Table(title="Governor decisions", title_justify="left")
    for col in ("age", "decision", "reason", "action", "symbol", "message"):
        decisions.add_column(col)
    for d in model.decisions:
        style = "red" if d.decision in ("BLOCK", "EMERGENCY_CANCEL") else ("yellow" if d.decision == "STATE_CHANGE"
                                                                            else "")
        decisions.add_row(_ago(now_ns, d.recv_ns), Text(d.decision, style=style), d.reason, d.action,
                          d.symbol or "-", esc(d.message[:80]))

    anomalies = Table(title="Anomalies", title_justify="left")
    for col in ("age", "kind", "order", "reason"):
        anomalies.add_column(col)
    for a in model.anomalies:
        anomalies.add_row(_ago(now_ns, a.recv_ns), Text(a.kind, style="yellow"), a.key or "-", esc(a.reason[:90]))
    return Group(head, orders, fills, decisions, anomalies)


def run_watch(store: Any, *, interval: float = 0.5, once: bool = False, store_label: str = "",
              console: Any = None, stop: Callable[[], bool] | None = None) -> WatchModel:
    """Poll the store and redraw until Ctrl-C (or ``stop()``); ``once`` prints one frame of the current state."""
    from rich.console import Console
    from rich.live import Live

    console = console or Console()
    model = WatchModel()
    catch_up(store, model)
    if once:
        console.print(render(model, time.time_ns(), store_label))
        return model
    with Live(render(model, time.time_ns(), store_label), console=console, screen=False, auto_refresh=False,
              transient=False) as live:
        try:
            while not (stop and stop()):
                catch_up(store, model, limit=50_000)
                live.update(render(model, time.time_ns(), store_label), refresh=True)
                time.sleep(interval)
        except KeyboardInterrupt:
            pass
    return model


def record_status(rec: Any, link: str) -> str:
    """The one-line status ``ibledger record`` keeps on a terminal (read from the recorder in this process)."""
    try:
        open_orders = len(rec.fold.open_orders())
    except RuntimeError:  # the IB loop thread changed the fold mid-read: show it next time
        open_orders = -1
    return (f"{rec.last_seq} events, {rec.committed_seq} committed, "
            f"{'?' if open_orders < 0 else open_orders} open orders, {rec.engine.trading_state}, {link}"
            + (f", FAULT {rec.fault}" if rec.fault else ""))
