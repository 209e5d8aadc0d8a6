"""Realistic IB order lifecycles and seeded event streams, with no test framework behind them.

Every template takes a *chooser* (:class:`RandomChooser` here, backed by a seeded ``random.Random``; the
Hypothesis strategies in :mod:`replay.strategies` pass one backed by ``draw``) and returns the payloads one
order produces, in the order a recorder would see them. Streams interleave several lifecycles, wrap them in
a recording session (start, connect, reconciliation, end) and number them into envelopes.

The quirks of real sessions are in the templates: execution before any status, status Filled before the last
execution, duplicate statuses, duplicate executions (reqExecutions re-delivery), commission before its
execution, duplicate commissions, ``.01`` -> ``.02`` corrections, 202 before Cancelled, 10148 after a refused
cancel, 201 + Inactive, Inactive with whyHeld going live, warnings 399/404/10349 followed by live statuses,
late fills after Cancelled, manual TWS orders (orderId 0, executions with orderId 2147483647), completed
orders with orderId 0, openOrder confirming a modify, governor BLOCK, orders that are never acknowledged,
stale statuses after Filled, orderIds reused across sessions, orders carried over a session boundary.

``generate_stream(seed, n_events)`` is the deterministic generator behind ``synthetic:`` sources and the
benchmarks; it needs no Hypothesis, so ``ibledger replay synthetic:...`` works on a plain install.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ledger.core import events as ev
from ledger.core.events import Envelope, Event

__all__ = [
    "CONTRACTS",
    "TEMPLATES",
    "Ids",
    "RandomChooser",
    "generate_stream",
    "to_envelopes",
]

T = TypeVar("T")

MANUAL_EXEC_ORDER_ID = ev.MANUAL_EXEC_ORDER_ID
T0_NS = 1_700_000_000_000_000_000

# (symbol, con_id, sec_type, reference price)
CONTRACTS: tuple[tuple[str, int, str, float], ...] = (
    ("AAPL", 265598, "STK", 190.0),
    ("MSFT", 272093, "STK", 410.0),
    ("SPY", 756733, "STK", 500.0),
    ("ES", 495512563, "FUT", 5000.0),
    ("EUR", 12087792, "CASH", 1.08),
)
QUANTITIES = (1, 5, 10, 25, 100, 200, 500)


# --- choosers ------------------------------------------------------------------------------------


class RandomChooser:
    """Choices from a seeded ``random.Random`` (deterministic for a seed)."""

    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        return self._r.randint(lo, hi)

    def chance(self, pct: int) -> bool:
        return self._r.random() * 100.0 < pct

    def pick(self, options: Sequence[T]) -> T:
        return options[self._r.randrange(len(options))]


# --- per-session id allocation -------------------------------------------------------------------


class Ids:
    """Order ids restart per session (as after a TWS login); permIds and execIds are globally unique."""

    def __init__(self, client_id: int = 1, account: str = "DU123456", first_order_id: int = 1) -> None:
        self.client_id = client_id
        self.account = account
        self.next_order_id = first_order_id
        self.perm = 1_000_000
        self.exec_n = 0

    def order_id(self) -> int:
        oid = self.next_order_id
        self.next_order_id += 1
        return oid

    def perm_id(self) -> int:
        self.perm += 1
        return self.perm

    def exec_id(self, perm: int) -> str:
        self.exec_n += 1
        return f"{perm:08x}.{self.exec_n:08x}.01.01"


class _O:
    """What the templates know about the order being generated."""

    __slots__ = (
        "oid",
        "perm",
        "client_id",
        "account",
        "symbol",
        "con_id",
        "sec_type",
        "price",
        "qty",
        "action",
    )

    def __init__(self, c: Any, ids: Ids, *, manual: bool = False) -> None:
        self.symbol, self.con_id, self.sec_type, self.price = c.pick(CONTRACTS)
        self.qty = float(c.pick(QUANTITIES))
        self.action = c.pick(("BUY", "SELL"))
        self.oid = 0 if manual else ids.order_id()
        self.client_id = 0 if manual else ids.client_id
        self.account = ids.account
        self.perm = ids.perm_id()


def _place(o: _O, ref: str, order_type: str = "LMT", tif: str = "DAY") -> ev.PlaceOrder:
    return ev.PlaceOrder(
        order_id=o.oid,
        client_id=o.client_id,
        account=o.account,
        symbol=o.symbol,
        sec_type=o.sec_type,
        con_id=o.con_id,
        action=o.action,
        total_qty=o.qty,
        order_type=order_type,
        lmt_price=o.price if order_type == "LMT" else None,
        tif=tif,
        order_ref=ref,
    )


def _status(o: _O, status: str, filled: float = 0.0, why_held: str = "", perm: bool = True) -> ev.OrderStatus:
    return ev.OrderStatus(
        order_id=o.oid,
        status=status,
        filled=filled,
        remaining=max(o.qty - filled, 0.0),
        avg_fill_price=o.price if filled else 0.0,
        perm_id=o.perm if perm else 0,
        client_id=o.client_id,
        why_held=why_held,
    )


def _open(o: _O, status: str, qty: float | None = None, completed: bool = False) -> ev.OpenOrder:
    cls = ev.CompletedOrder if completed else ev.OpenOrder
    return cls(
        order_id=0 if completed else o.oid,
        perm_id=o.perm,
        client_id=o.client_id,
        account=o.account,
        symbol=o.symbol,
        sec_type=o.sec_type,
        con_id=o.con_id,
        action=o.action,
        total_qty=o.qty if qty is None else qty,
        order_type="LMT",
        lmt_price=o.price,
        tif="DAY",
        status=status,
    )


def _exec(o: _O, exec_id: str, shares: float, price: float, req_id: int = -1) -> ev.ExecDetails:
    return ev.ExecDetails(
        exec_id=exec_id,
        req_id=req_id,
        order_id=MANUAL_EXEC_ORDER_ID if o.oid == 0 else o.oid,
        perm_id=o.perm,
        client_id=o.client_id,
        account=o.account,
        side="BOT" if o.action == "BUY" else "SLD",
        shares=shares,
        price=price,
        symbol=o.symbol,
        sec_type=o.sec_type,
        con_id=o.con_id,
        time="20240102 10:00:00",
    )


def _commission(exec_id: str, shares: float) -> ev.CommissionReport:
    return ev.CommissionReport(exec_id=exec_id, commission=round(max(1.0, 0.005 * shares), 4), currency="USD")


def _err(o: _O, code: int, message: str) -> ev.Error:
    return ev.Error(req_id=o.oid, code=code, message=message)


def _split(c: Any, qty: float, parts: int) -> list[float]:
    """Split an integral quantity into ``parts`` positive pieces (fewer if qty is small)."""
    parts = max(1, min(parts, int(qty)))
    cuts: list[float] = []
    left = qty
    for i in range(parts - 1):
        hi = int(left) - (parts - 1 - i)
        piece = float(c.integer(1, max(1, hi)))
        cuts.append(piece)
        left -= piece
    cuts.append(left)
    return cuts


def _fills(c: Any, ids: Ids, o: _O, qty: float, *, done_before: float = 0.0, final: bool = True) -> list[Event]:
    """Executions for ``qty`` shares with their commissions and progress statuses, quirks included."""
    out: list[Event] = []
    cum = done_before
    pieces = _split(c, qty, c.integer(1, 3))
    for n, shares in enumerate(pieces):
        last = n == len(pieces) - 1
        eid = ids.exec_id(o.perm)
        price = round(o.price * (1 + c.integer(-5, 5) / 10000), 4)
        cum += shares
        status = "Filled" if (last and final and cum >= o.qty) else "Submitted"
        st_msg = _status(o, status, cum)
        ex = _exec(o, eid, shares, price)
        com = _commission(eid, shares)
        status_first = c.chance(30)  # status before its execution: common
        if status_first:
            out.append(st_msg)
        if c.chance(10):  # commission report before its execution
            out += [com, ex]
        else:
            out += [ex, com]
        if c.chance(5):  # .02 correction of the same execution
            eid2 = eid[:-2] + "02"
            out += [_exec(o, eid2, shares, round(price + 0.01, 4)), _commission(eid2, shares)]
        if c.chance(5):  # duplicate commission report (both libraries emit it twice)
            out.append(com)
        if c.chance(5):  # duplicate execution (re-delivery)
            out.append(ex)
        if not status_first:
            out.append(st_msg)
        if c.chance(5):  # duplicate status
            out.append(st_msg)
    return out


# --- lifecycle templates ---------------------------------------------------------------------------


def lc_fill(c: Any, ids: Ids) -> list[Event]:
    """Place, acknowledge (PendingSubmit / PreSubmitted / Submitted), fill in parts."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "fill")]
    if c.chance(30):
        out.append(_status(o, "PendingSubmit", perm=c.chance(50)))
    out.append(_status(o, "PreSubmitted"))
    if c.chance(40):
        out.append(_open(o, "PreSubmitted"))
    out.append(_status(o, "Submitted"))
    if c.chance(10):
        out.append(_status(o, "Submitted"))  # dup
    out += _fills(c, ids, o, o.qty)
    if c.chance(10):
        out.append(_status(o, "Submitted", o.qty))  # stale status after Filled: ✗
    if c.chance(20):
        out.append(_open(o, "Filled"))
    return out


def lc_exec_first(c: Any, ids: Ids) -> list[Event]:
    """Market order whose execution arrives before any status."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "exec-first", "MKT")]
    eid = ids.exec_id(o.perm)
    out += [_exec(o, eid, o.qty, o.price), _status(o, "Filled", o.qty), _commission(eid, o.qty)]
    return out


def lc_status_filled_first(c: Any, ids: Ids) -> list[Event]:
    """Status Filled arrives before the executions (AwaitingExecutions, then Filled)."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "filled-first"), _status(o, "Submitted"), _status(o, "Filled", o.qty)]
    for shares in _split(c, o.qty, c.integer(1, 2)):
        eid = ids.exec_id(o.perm)
        out += [_exec(o, eid, shares, o.price), _commission(eid, shares)]
    return out


def lc_cancel(c: Any, ids: Ids) -> list[Event]:
    """Work, maybe partly fill, cancel (maybe 202 before the Cancelled status)."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "cancel"), _status(o, "PreSubmitted"), _status(o, "Submitted")]
    done = 0.0
    if o.qty > 1 and c.chance(30):
        done = float(c.integer(1, int(o.qty) - 1))
        out += _fills(c, ids, o, done, final=False)
    out.append(ev.CancelOrder(order_id=o.oid, client_id=o.client_id))
    if c.chance(60):
        out.append(_status(o, "PendingCancel", done))
    if c.chance(30):
        out.append(_err(o, 202, "Order Canceled - reason:"))
    out.append(_status(o, "Cancelled", done))
    return out


def lc_cancel_refused(c: Any, ids: Ids) -> list[Event]:
    """Cancel requested, the order fills anyway: 10148, executions, Filled."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "cancel-refused"), _status(o, "Submitted")]
    out.append(ev.CancelOrder(order_id=o.oid, client_id=o.client_id))
    if c.chance(50):
        out.append(_status(o, "PendingCancel"))
    fills = _fills(c, ids, o, o.qty)
    if c.chance(50):
        out += fills + [_err(o, 10148, "OrderId that needs to be cancelled cannot be cancelled, state: Filled.")]
    else:
        out += [_err(o, 10148, "OrderId that needs to be cancelled cannot be cancelled, state: Submitted.")]
        out += fills
    return out


def lc_late_fill(c: Any, ids: Ids) -> list[Event]:
    """Cancelled, then an execution that happened before the cancel is reported (late fill)."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "late-fill"), _status(o, "Submitted")]
    out.append(ev.CancelOrder(order_id=o.oid, client_id=o.client_id))
    out.append(_status(o, "Cancelled"))
    eid = ids.exec_id(o.perm)
    shares = float(c.integer(1, int(o.qty)))
    out += [_exec(o, eid, shares, o.price), _commission(eid, shares)]
    if shares >= o.qty and c.chance(50):
        out.append(_status(o, "Filled", shares))  # ⚠ only with a fill
    return out


def lc_reject(c: Any, ids: Ids) -> list[Event]:
    """201 and Inactive, in either order: Rejected."""
    o = _O(c, ids)
    err = _err(o, 201, "Order rejected - reason: insufficient margin")
    inactive = _status(o, "Inactive")
    return [_place(o, "reject")] + ([err, inactive] if c.chance(70) else [inactive, err])


def lc_held(c: Any, ids: Ids) -> list[Event]:
    """Inactive with whyHeld (locate), then live and filled."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "held"), _status(o, "Inactive", why_held="locate")]
    out += [_status(o, "PreSubmitted", why_held="locate"), _status(o, "Submitted")]
    out += _fills(c, ids, o, o.qty)
    return out


def lc_warnings(c: Any, ids: Ids) -> list[Event]:
    """Warnings that are followed by live statuses and fills (never terminal)."""
    o = _O(c, ids)
    code = c.pick((399, 404, 10349, 110))
    out: list[Event] = [_place(o, "warnings"), _err(o, code, "warning"), _status(o, "Submitted")]
    out += _fills(c, ids, o, o.qty)
    return out


def lc_ioc(c: Any, ids: Ids) -> list[Event]:
    """IOC: partial execution (or none) then Cancelled as the first status."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "ioc", tif="IOC")]
    shares = float(c.integer(0, int(o.qty)))
    if shares:
        eid = ids.exec_id(o.perm)
        out += [_exec(o, eid, shares, o.price), _commission(eid, shares)]
    out.append(_status(o, "Filled" if shares >= o.qty else "Cancelled", shares))
    return out


def lc_modify(c: Any, ids: Ids) -> list[Event]:
    """Modify the quantity; openOrder confirms it; then fill."""
    o = _O(c, ids)
    out: list[Event] = [_place(o, "modify"), _status(o, "Submitted"), _open(o, "Submitted")]
    new_qty = o.qty + float(c.integer(1, 50))
    mod = _place(o, "modify")
    out.append(
        ev.ModifyOrder(**{k: getattr(mod, k) for k in mod.__struct_fields__ if k != "total_qty"}, total_qty=new_qty)
    )
    o.qty = new_qty
    out += [_open(o, "Submitted"), _status(o, "Submitted")]
    out += _fills(c, ids, o, o.qty)
    return out


def lc_blocked(c: Any, ids: Ids) -> list[Event]:
    """The governor blocks the place (decision before or after the intent)."""
    o = _O(c, ids)
    decision = ev.GovernorDecision(
        decision="BLOCK",
        reason="MAX_QTY",
        action="place",
        order_id=o.oid,
        client_id=o.client_id,
        symbol=o.symbol,
    )
    return [decision, _place(o, "blocked")] if c.chance(50) else [_place(o, "blocked"), decision]


def lc_unconfirmed(c: Any, ids: Ids) -> list[Event]:
    """Placed, never acknowledged (maybe a warning): unconfirmed, not failed."""
    o = _O(c, ids)
    out: list[Event] = [
        ev.GovernorDecision(decision="ALLOW", reason="OK", action="place", order_id=o.oid, client_id=o.client_id)
    ]
    out.append(_place(o, "unconfirmed"))
    if c.chance(30):
        out.append(_err(o, 399, "Order message: warning"))
    return out


def lc_manual(c: Any, ids: Ids) -> list[Event]:
    """A TWS (manual) order: orderId 0, executions with orderId 2147483647, keyed by permId."""
    o = _O(c, ids, manual=True)
    out: list[Event] = [_open(o, "Submitted"), _status(o, "Submitted")]
    eid = ids.exec_id(o.perm)
    out += [_exec(o, eid, o.qty, o.price), _commission(eid, o.qty), _status(o, "Filled", o.qty)]
    return out


def lc_completed_only(c: Any, ids: Ids) -> list[Event]:
    """Seen only through reconciliation: completedOrder (orderId 0) and reqExecutions.

    Its orderId belongs to an earlier TWS login, outside the range this session's orders use."""
    o = _O(c, ids)
    ids.next_order_id -= 1
    o.oid = 500_000 + o.perm % 500_000
    eid = ids.exec_id(o.perm)
    return [
        _exec(o, eid, o.qty, o.price, req_id=c.integer(1, 9)),
        _commission(eid, o.qty),
        _open(o, "Filled", completed=True),
    ]


TEMPLATES: dict[str, Callable[[Any, Ids], list[Event]]] = {
    "fill": lc_fill,
    "cancel": lc_cancel,
    "exec_first": lc_exec_first,
    "status_filled_first": lc_status_filled_first,
    "cancel_refused": lc_cancel_refused,
    "late_fill": lc_late_fill,
    "reject": lc_reject,
    "held": lc_held,
    "warnings": lc_warnings,
    "ioc": lc_ioc,
    "modify": lc_modify,
    "blocked": lc_blocked,
    "unconfirmed": lc_unconfirmed,
    "manual": lc_manual,
    "completed_only": lc_completed_only,
}
# Benchmark mix: mostly the common lifecycles.
_WEIGHTED: tuple[str, ...] = (
    ("fill",) * 10
    + ("cancel",) * 6
    + ("exec_first", "status_filled_first", "cancel_refused", "late_fill", "reject", "held", "warnings")
    + ("ioc", "modify", "blocked", "unconfirmed", "manual", "completed_only")
)


# --- sessions and streams --------------------------------------------------------------------------


def _interleave(c: Any, lanes: list[list[Event]], max_open: int) -> list[Event]:
    """Merge lifecycles: at most ``max_open`` in flight, each keeping its own order."""
    out: list[Event] = []
    waiting = list(reversed(lanes))
    active: list[list[Any]] = []  # [events, position]
    while waiting or active:
        while waiting and len(active) < max_open:
            active.append([waiting.pop(), 0])
        i = c.integer(0, len(active) - 1)
        lane = active[i]
        events, pos = lane
        out.append(events[pos])
        pos += 1
        if pos >= len(events):
            active[i] = active[-1]
            active.pop()
        else:
            lane[1] = pos
    return out


def _session(
    c: Any,
    ids: Ids,
    body: list[Event],
    *,
    carried: list[Event] | None = None,
    positions: bool = True,
) -> list[Event]:
    out: list[Event] = [
        ev.SessionStarted(library="synthetic", library_version="0", client_id=ids.client_id, account=ids.account),
        ev.Connected(host="127.0.0.1", port=7497, client_id=ids.client_id, server_version=176),
        ev.ManagedAccounts(accounts=ids.account),
        ev.NextValidId(order_id=ids.next_order_id),
        ev.ReconcileStarted(reason="connect"),
    ]
    if carried:
        out += carried
    if positions:
        sym, con, sec, _ = c.pick(CONTRACTS)
        out += [
            ev.Position(account=ids.account, con_id=con, symbol=sym, sec_type=sec, position=0.0),
            ev.PositionEnd(),
        ]
    out += [
        ev.OpenOrderEnd(),
        ev.CompletedOrdersEnd(),
        ev.ExecDetailsEnd(req_id=1),
        ev.ReconcileEnded(ok=True),
    ]
    out += body
    if c.chance(10):  # connectivity blip
        out += [
            ev.Error(req_id=-1, code=1100, message="lost"),
            ev.Error(req_id=-1, code=1102, message="restored"),
        ]
    out.append(ev.SessionEnded(reason="normal"))
    return out


def to_envelopes(
    sessions: Sequence[tuple[str, Sequence[Event]]], c: Any | None = None, t0: int = T0_NS
) -> list[Envelope]:
    """Number payloads into envelopes: gapless seq per session, increasing recv_ns across the stream."""
    out: list[Envelope] = []
    ns = t0
    for sid, payloads in sessions:
        for seq, p in enumerate(payloads, 1):
            ns += (c.integer(1, 5) if c is not None else 1) * 1_000_000
            out.append(
                Envelope(
                    session_id=sid,
                    seq=seq,
                    recv_ns=ns,
                    mono_ns=ns - t0,
                    source="synthetic",
                    payload=p,  # type: ignore[arg-type]
                )
            )
    return out


def _carry_over(c: Any, prev_lanes: list[list[Event]]) -> tuple[list[Event], int]:
    """Reconciliation replies about the previous session's orders: re-delivered executions and commissions
    (reqExecutions), openOrder for the open ones (same ids), completedOrder (orderId 0) for the done ones.
    Also returns the highest orderId still open, so the new session's ids start above it (as TWS does)."""
    out: list[Event] = []
    open_max = 0
    for events in prev_lanes:
        for p in events:
            if isinstance(p, ev.ExecDetails) and c.chance(50):
                fields = {k: getattr(p, k) for k in p.__struct_fields__ if k != "req_id"}
                out.append(ev.ExecDetails(**fields, req_id=1))
            elif isinstance(p, ev.CommissionReport) and c.chance(50):
                out.append(p)
        last = next((p for p in reversed(events) if isinstance(p, ev.OrderStatus)), None)
        if last is not None and last.perm_id and c.chance(50):
            done = last.status in ("Filled", "Cancelled", "ApiCancelled", "Inactive")
            if done:
                out.append(
                    ev.CompletedOrder(order_id=0, perm_id=last.perm_id, client_id=last.client_id, status=last.status)
                )
            else:
                out.append(
                    ev.OpenOrder(
                        order_id=last.order_id, perm_id=last.perm_id, client_id=last.client_id, status=last.status
                    )
                )
                open_max = max(open_max, last.order_id)
    return out, open_max


_INTENTS = (ev.PlaceOrder, ev.CancelOrder, ev.GovernorDecision, ev.GlobalCancel)


def _cut_lanes(c: Any, lanes: list[list[Event]]) -> tuple[list[list[Event]], list[list[Event]], int]:
    """Cut some lifecycles at a session boundary (the recorder restarted while they were in flight):
    the broker's side of the rest arrives in the next session. Returns (this session's lanes, the rests,
    the highest orderId among the rests)."""
    kept: list[list[Event]] = []
    rests: list[list[Event]] = []
    oid_max = 0
    for lane in lanes:
        if len(lane) > 2 and c.chance(15):
            k = c.integer(1, len(lane) - 1)
            rest = lane[k:]
            if not any(isinstance(p, _INTENTS) for p in rest):
                kept.append(lane[:k])
                rests.append(rest)
                oid_max = max([oid_max] + [getattr(p, "order_id", 0) for p in lane if isinstance(p, ev.PlaceOrder)])
                continue
        kept.append(lane)
    return kept, rests, oid_max


def _build_stream(c: Any, n_sessions: int, orders_per_session: int, max_open: int, weighted: bool) -> list[Envelope]:
    names = _WEIGHTED if weighted else tuple(TEMPLATES)
    perm = 1_000_000
    exec_n = 0
    sessions: list[tuple[str, list[Event]]] = []
    prev: list[list[Event]] = []
    rests: list[list[Event]] = []
    first_id = 1
    for s in range(n_sessions):
        carried, open_max = _carry_over(c, prev) if prev else ([], 0)
        # orderIds restart (a new TWS login) unless orders that are still open hold them
        ids = Ids(client_id=1, first_order_id=max(first_id, open_max + 1))
        ids.perm, ids.exec_n = perm, exec_n
        lanes = [TEMPLATES[c.pick(names)](c, ids) for _ in range(orders_per_session)]
        perm, exec_n = ids.perm, ids.exec_n
        first_id = 1
        if s < n_sessions - 1:
            lanes, new_rests, oid_max = _cut_lanes(c, lanes)
            if new_rests:
                first_id = oid_max + 1
        else:
            new_rests = []
        body = _interleave(c, rests + lanes, max_open)
        sessions.append((f"sess-{s:04d}", _session(c, ids, body, carried=carried)))
        prev = lanes
        rests = new_rests
    return to_envelopes(sessions, c)


# --- seeded generator (benchmarks, demos) ----------------------------------------------------------


def generate_stream(seed: int = 1, n_events: int = 1_000_000, orders_per_session: int = 2_000) -> list[Envelope]:
    """About ``n_events`` envelopes (whole sessions, so a little more), deterministic for a seed."""
    c = RandomChooser(seed)
    out: list[Envelope] = []
    s = 0
    perm, exec_n = 1_000_000, 0
    t0 = T0_NS
    while len(out) < n_events:
        ids = Ids(client_id=1, first_order_id=1)
        ids.perm, ids.exec_n = perm, exec_n
        lanes = [TEMPLATES[c.pick(_WEIGHTED)](c, ids) for _ in range(orders_per_session)]
        perm, exec_n = ids.perm, ids.exec_n
        body = _interleave(c, lanes, 50)
        envs = to_envelopes([(f"bench-{seed}-{s:05d}", _session(c, ids, body))], c, t0)
        t0 = envs[-1].recv_ns
        out += envs
        s += 1
    return out
