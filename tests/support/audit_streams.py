"""Realistic, deterministic event streams for the audit tests and benchmarks, with their ground truth.

Each order follows one *scenario* (a real-world sequence of callbacks: a clean fill, a cancel followed
by a late execution, an execution correction, a commission report before its execution, a governor
block, a placeOrder never acknowledged, a stale status after Filled, a manual TWS order...). The
generator records, per order, what a risk officer should find (``OrderTruth``), computed from the
scenario itself and never from the fold, so the audit queries can be checked independently.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from ledger.core import events as ev
from ledger.core.events import Envelope, envelope

T0 = 1_764_072_000_000_000_000  # 2025-11-25 12:00:00 UTC in ns
MS = 1_000_000
SYMBOLS = ("AAPL", "MSFT", "SPY", "ES", "TSLA")
PRICES = {"AAPL": 187.5, "MSFT": 410.0, "SPY": 590.0, "ES": 6000.0, "TSLA": 250.0}
ACCOUNT = "DU1234567"
MANUAL_EXEC_ORDER_ID = 2147483647

SCENARIOS = (
    "filled",            # PreSubmitted, Submitted, two executions, Filled
    "working",           # acknowledged and still working: live
    "partial_live",      # one partial execution, still working: live
    "cancelled",         # cancel intent, PendingCancel, Cancelled
    "cancel_then_fill",  # Cancelled, then a late execution: reported cancelled, later filled
    "error_while_live",  # error 202 reported while the order is live, then it fills anyway
    "corrected",         # execution .01 then its correction .02 (different price), Filled
    "commission_first",  # commission report arrives before its execution
    "blocked",           # governor BLOCK: never sent
    "unconfirmed",       # placeOrder recorded, the broker never answered
    "rejected",          # error 201 + Inactive
    "status_no_exec",    # broker says Filled, executions never came: a status/fill disagreement
    "stale_status",      # Filled, then a stale Submitted: an illegal transition (anomaly)
    "manual",            # a TWS order (orderId 0, executions with orderId 2147483647), filled
)
BLOCK_REASONS = ("MAX_QTY", "MAX_NOTIONAL", "HALTED", "RATE_LIMIT")
LIVE_SCENARIOS = frozenset({"working", "partial_live"})
# A plausible day: most orders fill or are cancelled; the quirks are rare but present.
REALISTIC: dict[str, float] = {
    "filled": 55, "cancelled": 25, "working": 2, "partial_live": 1, "blocked": 3, "rejected": 2,
    "unconfirmed": 0.5, "cancel_then_fill": 0.5, "error_while_live": 1, "corrected": 2, "commission_first": 5,
    "status_no_exec": 0.5, "stale_status": 1, "manual": 1.5,
}


@dataclass
class OrderTruth:
    session_id: str
    client_id: int
    order_id: int  # 0 for manual orders
    perm_id: int  # 0 when the broker never assigned one
    symbol: str
    scenario: str
    qty: float
    placed_ns: int = 0
    ack_ns: int | None = None  # first broker message about the order
    first_fill_ns: int | None = None
    filled: float = 0.0  # executions (after corrections)
    commission: float = 0.0
    avg_price: float = 0.0
    late_fills: int = 0
    corrections: int = 0
    block_reason: str = ""
    failure_reported_while_live: bool = False  # a failure error / Cancelled while live, or filled later
    live: bool = False
    anomalies: int = 0
    fill_prices: list[tuple[float, float]] = field(default_factory=list)


@dataclass
class SessionTruth:
    session_id: str
    client_id: int
    crashed: bool
    disconnects: int
    unknown_reconciles: int
    events: int = 0


@dataclass
class Stream:
    envelopes: list[Envelope]
    orders: list[OrderTruth]
    sessions: list[SessionTruth]


class _Session:
    def __init__(self, sid: str, client_id: int, t0: int) -> None:
        self.sid = sid
        self.client_id = client_id
        self.seq = 0
        self.t = t0
        self.out: list[Envelope] = []

    def emit(self, payload: ev.Event, dt_ms: float = 1.0, at: int | None = None, **kw) -> int:
        self.t = at if at is not None else self.t + int(dt_ms * MS)
        self.seq += 1
        self.out.append(envelope(self.sid, self.seq, payload, recv_ns=self.t, mono_ns=self.t - T0 + 1, **kw))
        return self.t


def _contract(symbol: str) -> dict:
    return {"secType": "FUT" if symbol == "ES" else "STK", "symbol": symbol, "exchange": "SMART", "currency": "USD"}


def generate(n_sessions: int = 4, orders_per_session: int = 28, seed: int = 7, *,
             crashed_last: bool = True, t0: int = T0, interleave: int = 3,
             session_prefix: str = "sess", weights: dict[str, float] | None = None) -> Stream:
    """Sessions of orders cycling through every scenario (so each appears ``orders/len(SCENARIOS)`` times).

    ``interleave`` orders are in flight at once within a session (their callbacks alternate), as in a
    real session. The last session has no ``session_ended`` (a crash) when ``crashed_last``.
    ``weights`` (scenario -> weight) draws scenarios at random (seeded) instead, e.g. REALISTIC.
    """
    rng = random.Random(seed)
    envs: list[Envelope] = []
    orders: list[OrderTruth] = []
    sessions: list[SessionTruth] = []
    perm = 9_000_000 + seed * 100_000
    if weights:
        _names = [n for n in SCENARIOS if weights.get(n)]
        _weights = [weights[n] for n in _names]
    for s in range(n_sessions):
        sid = f"{session_prefix}-{seed}-{s:04d}"
        client_id = 7
        ss = _Session(sid, client_id, t0 + s * 3_600_000 * MS)
        crashed = crashed_last and s == n_sessions - 1
        ss.emit(ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=client_id,
                                  host="127.0.0.1", port=7497, account=ACCOUNT, server_version=176,
                                  mode="paper"))
        ss.emit(ev.Connected(host="127.0.0.1", port=7497, client_id=client_id, server_version=176))
        ss.emit(ev.ManagedAccounts(accounts=ACCOUNT))
        base_oid = 1000 * (s + 1)
        ss.emit(ev.NextValidId(order_id=base_oid))
        disconnects = 0
        unknown_rec = 0
        # Build each order's callbacks as a list of (payload, kwargs), then interleave them.
        scripts: list[list[tuple[ev.Event, float, dict]]] = []
        for i in range(orders_per_session):
            if weights:
                scenario = rng.choices(_names, _weights)[0]
            else:
                scenario = SCENARIOS[(i + s) % len(SCENARIOS)]
            symbol = SYMBOLS[rng.randrange(len(SYMBOLS))]
            qty = float(rng.choice((1, 2, 5, 10, 100)))
            manual = scenario == "manual"
            oid = 0 if manual else base_oid + i
            perm += 1
            truth = OrderTruth(sid, client_id, oid, perm, symbol, scenario, qty)
            orders.append(truth)
            scripts.append(_script(truth, rng, perm, f"{seed:04x}{s:04x}.{i:08x}"))
        # interleave: round-robin over `interleave` active scripts
        active: list[tuple[int, list]] = []
        pending = list(enumerate(scripts))
        truths = orders[len(orders) - orders_per_session:]
        disconnect_at = orders_per_session // 2
        started = 0
        while pending or active:
            while pending and len(active) < interleave:
                idx, sc = pending.pop(0)
                active.append((idx, list(sc)))
                started += 1
                if started == disconnect_at and n_sessions > 1:
                    # Lost the connection; fills may have happened meanwhile: reconnect and reconcile.
                    ss.emit(ev.Disconnected(reason="server closed the connection"), dt_ms=2)
                    ss.emit(ev.Connected(host="127.0.0.1", port=7497, client_id=client_id,
                                         server_version=176), dt_ms=1500)
                    ss.emit(ev.ReconcileStarted(reason="reconnect"))
                    ok = s % 2 == 0
                    ss.emit(ev.ReconcileEnded(ok=ok, unknown=[] if ok else ["executions"]), dt_ms=40)
                    disconnects += 1
                    unknown_rec += 0 if ok else 1
            nxt: list[tuple[int, list]] = []
            for idx, sc in active:
                payload, dt, kw = sc.pop(0)
                t = ss.emit(payload, dt_ms=dt, **kw)
                _note_time(truths[idx], payload, t)
                if sc:
                    nxt.append((idx, sc))
            active = nxt
        if not crashed:
            ss.emit(ev.SessionEnded(reason="normal", events=ss.seq + 1))
        sessions.append(SessionTruth(sid, client_id, crashed, disconnects, unknown_rec, ss.seq))
        envs.extend(ss.out)
    return Stream(envs, orders, sessions)


def _note_time(o: OrderTruth, payload: ev.Event, t: int) -> None:
    if isinstance(payload, ev.PlaceOrder) and not o.placed_ns:
        o.placed_ns = t
    elif isinstance(payload, (ev.OrderStatus, ev.OpenOrder)) and o.ack_ns is None and o.scenario != "manual":
        o.ack_ns = t
    elif isinstance(payload, ev.ExecDetails) and o.first_fill_ns is None:
        o.first_fill_ns = t


def _script(o: OrderTruth, rng: random.Random, perm: int, exec_base: str) -> list[tuple[ev.Event, float, dict]]:
    px = PRICES[o.symbol]
    lmt = round(px * (1 + rng.uniform(-0.01, 0.01)), 2)
    out: list[tuple[ev.Event, float, dict]] = []
    oid, cid, sym, qty = o.order_id, o.client_id, o.symbol, o.qty
    ack_ms = float(rng.randint(5, 400))
    fill_ms = float(rng.randint(1, 2000))
    contract = _contract(sym)
    corr = f"order-{o.session_id}-{oid}-{perm}"

    def gov(decision: str, reason: str, **details) -> None:
        out.append((ev.GovernorDecision(decision=decision, reason=reason, action="place", order_id=oid,  # type: ignore[arg-type]
                                        client_id=cid, symbol=sym, details=details or {"qty": qty}),
                     rng.uniform(1, 30), {"correlation_id": corr}))

    def place() -> None:
        out.append((ev.PlaceOrder(order_id=oid, client_id=cid, account=ACCOUNT, symbol=sym,
                                  sec_type=contract["secType"], action="BUY", total_qty=qty, order_type="LMT",
                                  lmt_price=lmt, tif="DAY", order_ref=o.scenario, contract=contract),
                     0.0, {"correlation_id": corr}))

    def status(st: str, filled: float = 0.0, avg: float = 0.0, dt: float = 1.0, why: str = "",
               order_id: int | None = None) -> None:
        out.append((ev.OrderStatus(order_id=oid if order_id is None else order_id, status=st, filled=filled,
                                   remaining=max(qty - filled, 0.0), avg_fill_price=avg, perm_id=perm,
                                   client_id=cid, why_held=why), dt, {}))

    def open_order(st: str, order_id: int | None = None) -> None:
        out.append((ev.OpenOrder(order_id=oid if order_id is None else order_id, perm_id=perm, client_id=cid,
                                 account=ACCOUNT, symbol=sym, sec_type=contract["secType"], action="BUY",
                                 total_qty=qty, order_type="LMT", lmt_price=lmt, tif="DAY",
                                 order_ref=o.scenario, status=st, contract=contract), 0.5, {}))

    def execution(suffix: str, shares: float, price: float, dt: float, cum: float,
                  order_id: int | None = None, n: int = 1) -> str:
        exec_id = f"{exec_base}.{n:02d}.{suffix}"
        out.append((ev.ExecDetails(exec_id=exec_id, order_id=oid if order_id is None else order_id,
                                   perm_id=perm, client_id=cid, account=ACCOUNT, exchange="ISLAND", side="BOT",
                                   shares=shares, price=price, cum_qty=cum, avg_price=price, symbol=sym,
                                   sec_type=contract["secType"], time="20251125 12:00:01 UTC",
                                   contract=contract), dt, {}))
        return exec_id

    def commission(exec_id: str, amount: float = 1.0, dt: float = 2.0) -> None:
        out.append((ev.CommissionReport(exec_id=exec_id, commission=amount, currency="USD"), dt, {}))

    def ack(first: str = "PreSubmitted") -> None:
        status(first, dt=ack_ms)
        open_order(first)
        if first != "Submitted":
            status("Submitted", dt=rng.uniform(1, 50))

    def fill_all(n_parts: int = 2, dt: float | None = None) -> None:
        done = 0.0
        parts = [qty] if qty < 2 or n_parts == 1 else [qty // 2, qty - qty // 2]
        for k, part in enumerate(parts, start=1):
            price = round(lmt - 0.01 * k, 2)
            done += part
            x = execution("01", part, price, fill_ms if k == 1 and dt is None else (dt or 3.0), done, n=k)
            commission(x, 0.5 * part / qty + 0.5)
            o.fill_prices.append((part, price))
            o.commission += 0.5 * part / qty + 0.5
            status("Filled" if done >= qty else "Submitted", done, price, dt=1)
        o.filled = qty

    sc = o.scenario
    if sc == "blocked":
        o.block_reason = BLOCK_REASONS[perm % len(BLOCK_REASONS)]
        gov("BLOCK", o.block_reason, qty=qty, limit=qty - 1)
        o.perm_id = 0
        return out
    if sc != "manual":
        gov("ALLOW", "OK")
        place()
    if sc == "filled":
        ack()
        fill_all()
    elif sc == "working":
        ack()
        o.live = True
    elif sc == "partial_live":
        ack()
        part = qty // 2 if qty >= 2 else 0.0
        if part:
            x = execution("01", part, lmt, fill_ms, part)
            commission(x, 1.0)
            status("Submitted", part, lmt)
            o.filled = part
            o.commission = 1.0
            o.fill_prices.append((part, lmt))
        o.live = True
    elif sc == "cancelled":
        ack("Submitted")
        out.append((ev.CancelOrder(order_id=oid, client_id=cid, perm_id=perm, reason="user"), 50.0, {}))
        status("PendingCancel", dt=5)
        status("Cancelled", dt=30)
    elif sc == "cancel_then_fill":
        ack("Submitted")
        status("Cancelled", dt=100)
        x = execution("01", qty, lmt, 20.0, qty)
        commission(x, 1.0)
        o.filled, o.commission, o.late_fills = qty, 1.0, 1
        o.fill_prices.append((qty, lmt))
        o.failure_reported_while_live = True  # Cancelled while live, filled afterwards
    elif sc == "error_while_live":
        ack()
        out.append((ev.Error(req_id=oid, code=202, message="Order Canceled - reason: simulated"), 10.0, {}))
        status("Submitted", dt=5)
        fill_all(1)
        o.failure_reported_while_live = True
    elif sc == "corrected":
        ack("Submitted")
        price = lmt
        x1 = execution("01", qty, price, fill_ms, qty)
        commission(x1, 1.0)
        corrected_price = round(price + 0.05, 2)
        x2 = execution("02", qty, corrected_price, 200.0, qty)
        commission(x2, 1.25)
        status("Filled", qty, corrected_price)
        o.filled, o.commission, o.corrections = qty, 1.25, 1
        o.fill_prices.append((qty, corrected_price))
    elif sc == "commission_first":
        ack("Submitted")
        exec_id = f"{exec_base}.01.01"
        commission(exec_id, 1.5, dt=fill_ms)
        execution("01", qty, lmt, 3.0, qty)
        status("Filled", qty, lmt)
        o.filled, o.commission = qty, 1.5
        o.fill_prices.append((qty, lmt))
    elif sc == "unconfirmed":
        o.perm_id = 0
    elif sc == "rejected":
        out.append((ev.Error(req_id=oid, code=201, message="Order rejected - reason: margin"), ack_ms, {}))
        status("Inactive", dt=2)
    elif sc == "status_no_exec":
        ack("Submitted")
        status("Filled", qty, lmt, dt=fill_ms)
    elif sc == "stale_status":
        ack()
        fill_all(1)
        status("Submitted", qty, lmt, dt=50)  # stale: the order is Filled
        o.anomalies = 1
    elif sc == "manual":
        open_order("Submitted", order_id=0)
        status("Submitted", order_id=0, dt=1)
        x = execution("01", qty, lmt, fill_ms, qty, order_id=MANUAL_EXEC_ORDER_ID)
        commission(x, 1.0)
        status("Filled", qty, lmt, order_id=0)
        o.filled, o.commission = qty, 1.0
        o.fill_prices.append((qty, lmt))
    if o.fill_prices:
        tot = sum(q for q, _ in o.fill_prices)
        o.avg_price = sum(q * p for q, p in o.fill_prices) / tot
    return out


def iter_batches(envs: list[Envelope], size: int) -> Iterator[list[Envelope]]:
    for i in range(0, len(envs), size):
        yield envs[i : i + size]
