"""Wire replay: play a recorded session's broker-side messages back to a connecting client.

A recorded session (``ledger.store.sessionfile``) holds the local intents (place / modify / cancel) and the
raw callbacks TWS sent. Each recorded order becomes a scenario whose steps are exactly what the broker
said about it, with the recorded spacing: openOrder, orderStatus (every field as recorded),
executions (recorded execIds, shares and prices), commission reports and errors. Messages recorded
after the session's cancel request for that order become the scenario's ``on_cancel`` reaction, so
they are played when (and only when) the new client cancels too.

When the new client places its n-th order, it gets the n-th recorded order's script (an unused
recorded order with the same non-empty orderRef wins): the recorded orderId is mapped to the new
client's orderId and the broker assigns a fresh permId. Only ``live`` callbacks count; answers to
startup reconciliation requests are left out (the simulator's broker answers those from its truth).

Not replayed: manual TWS orders (orderId 0), system messages with reqId -1 (e.g. 1100/1102/2104), and
answers to requests made during the session (reqOpenOrders' openOrder / orderStatus run up to its
OpenOrderEnd, reqExecutions' executions and their commission reports).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ledger.core import events as ev
from ledger.store.sessionfile import iter_session
from replay.tws.scenarios import Scenario, Step

#: callbacks that TWS sent about orders
_BROKER_KINDS = (ev.OpenOrder, ev.OrderStatus, ev.ExecDetails, ev.CommissionReport, ev.Error)


@dataclass
class RecordedOrder:
    order_id: int
    order_ref: str
    symbol: str
    action: str
    total_qty: float
    placed_ns: int
    perm_id: int = 0
    cancel_ns: int | None = None
    messages: list[tuple[int, ev.Event]] = field(default_factory=list)  # (recv_ns, payload)

    def to_scenario(self, session_id: str) -> Scenario:
        before: list[Step] = []
        after: list[Step] = []
        exec_bases: dict[str, str] = {}
        last = self.placed_ns
        for recv_ns, payload in sorted(self.messages, key=lambda m: m[0]):
            in_cancel = self.cancel_ns is not None and recv_ns >= self.cancel_ns
            if in_cancel and not after:
                last = max(last, self.cancel_ns or last)
            delay_ms = max(0, (recv_ns - last) // 1_000_000)
            last = recv_ns
            step = _step(payload, int(delay_ms), exec_bases)
            if step is not None:
                (after if in_cancel else before).append(step)
        return Scenario(
            name=f"replay:{session_id}:{self.order_id}",
            description=f"recorded order {self.order_id} ({self.action} {self.total_qty:g} {self.symbol})",
            steps=tuple(before),
            on_cancel=tuple(after) if self.cancel_ns is not None else None,
            exec_bases=dict(exec_bases),
            source=f"session {session_id}",
        )


def _step(payload: ev.Event, after_ms: int, exec_bases: dict[str, str]) -> Step | None:
    if isinstance(payload, ev.OrderStatus):
        return Step(
            "status",
            after_ms=after_ms,
            status=payload.status,
            filled=payload.filled,
            remaining=payload.remaining,
            avg_fill_price=payload.avg_fill_price,
            last_fill_price=payload.last_fill_price,
            why_held=payload.why_held,
            mkt_cap_price=payload.mkt_cap_price or 0.0,
        )
    if isinstance(payload, ev.OpenOrder):  # CompletedOrder is a subclass but never live
        return Step("open_order", after_ms=after_ms, status=payload.status)
    if isinstance(payload, ev.ExecDetails):
        base, _, suffix = payload.exec_id.rpartition(".")
        exec_bases.setdefault(base, base)
        return Step("exec", after_ms=after_ms, exec=base, suffix=suffix, qty=payload.shares, price=payload.price)
    if isinstance(payload, ev.CommissionReport):
        base, _, suffix = payload.exec_id.rpartition(".")
        exec_bases.setdefault(base, base)
        return Step(
            "commission",
            after_ms=after_ms,
            exec=base,
            suffix=suffix,
            commission=payload.commission or 0.0,
            currency=payload.currency or "USD",
            realized_pnl=payload.realized_pnl,
        )
    if isinstance(payload, ev.Error):
        return Step(
            "error",
            after_ms=after_ms,
            code=payload.code,
            msg=payload.message,
            advanced=payload.advanced_order_reject_json,
        )
    return None


class Playback:
    """The recorded orders of one session, handed out to new orders in placement order."""

    def __init__(self, session_id: str, orders: Iterable[RecordedOrder]) -> None:
        self.session_id = session_id
        self.orders: list[RecordedOrder] = list(orders)
        self.scenarios: list[Scenario] = [o.to_scenario(session_id) for o in self.orders]
        self._used: set[int] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.orders)

    def fresh(self) -> Playback:
        """An unused copy: every client that connects gets the whole recording."""
        return Playback(self.session_id, self.orders)

    def remaining(self) -> int:
        with self._lock:
            return len(self.orders) - len(self._used)

    def next_scenario(self, order_ref: str = "") -> Scenario | None:
        """The script for the next new order, or None when every recorded order has been used."""
        with self._lock:
            pick = None
            if order_ref:
                pick = next(
                    (i for i, o in enumerate(self.orders) if i not in self._used and o.order_ref == order_ref),
                    None,
                )
            if pick is None:
                pick = next((i for i in range(len(self.orders)) if i not in self._used), None)
            if pick is None:
                return None
            self._used.add(pick)
            return self.scenarios[pick]


def playback_from_envelopes(envelopes: Iterable[ev.Envelope]) -> Playback:
    session_id = ""
    client_id: int | None = None
    orders: dict[int, RecordedOrder] = {}
    by_perm: dict[int, RecordedOrder] = {}
    pending: list[tuple[int, ev.Event]] = []  # broker messages seen before their order's place intent
    # answers to requests made during the session are not unsolicited messages about an order:
    # the openOrder / orderStatus run an OpenOrderEnd closes answers reqOpenOrders, and commission
    # reports of executions that only ever arrived as reqExecutions answers belong to those answers
    run_start: int | None = None  # where the current run of live openOrder / orderStatus began in pending
    answered_execs: set[str] = set()
    live_execs: set[str] = set()
    for env in envelopes:
        session_id = session_id or env.session_id
        p = env.payload
        if isinstance(p, ev.OpenOrderEnd):
            if run_start is not None:
                del pending[_answer_start(pending, run_start) :]
            run_start = None
            continue
        if env.source == "live" and isinstance(p, ev.OpenOrder | ev.OrderStatus) and not isinstance(
            p, ev.CompletedOrder
        ):
            if run_start is None:
                run_start = len(pending)
        else:
            run_start = None
        if isinstance(p, ev.SessionStarted):
            client_id = p.client_id
            continue
        if isinstance(p, ev.PlaceOrder) and not isinstance(p, ev.ModifyOrder):
            if client_id is not None and p.client_id and p.client_id != client_id:
                continue
            if p.order_id not in orders:
                orders[p.order_id] = RecordedOrder(
                    order_id=p.order_id,
                    order_ref=p.order_ref,
                    symbol=p.symbol,
                    action=p.action,
                    total_qty=p.total_qty,
                    placed_ns=env.recv_ns,
                )
            continue
        if isinstance(p, ev.CancelOrder):
            rec = orders.get(p.order_id) or by_perm.get(p.perm_id)
            if rec is not None and rec.cancel_ns is None:
                rec.cancel_ns = env.recv_ns
            continue
        if isinstance(p, ev.GlobalCancel):
            for rec in orders.values():
                if rec.cancel_ns is None:
                    rec.cancel_ns = env.recv_ns
            continue
        if env.source != "live" or not isinstance(p, _BROKER_KINDS) or isinstance(p, ev.CompletedOrder):
            continue
        if isinstance(p, ev.ExecDetails) and p.req_id != -1:
            answered_execs.add(p.exec_id)
            continue  # an answer to reqExecutions, not a live fill
        if isinstance(p, ev.ExecDetails):
            live_execs.add(p.exec_id)
        if isinstance(p, ev.CommissionReport) and p.exec_id in answered_execs and p.exec_id not in live_execs:
            continue  # the commission report that came with a reqExecutions answer
        pending.append((env.recv_ns, p))
    exec_owner: dict[str, RecordedOrder] = {}
    # executions first, so a commission report recorded before its execution still finds its order
    for recv_ns, p in sorted(pending, key=lambda m: isinstance(m[1], ev.CommissionReport)):
        rec = _owner(p, orders, by_perm, exec_owner)
        if rec is not None:
            rec.messages.append((recv_ns, p))
    return Playback(session_id, sorted(orders.values(), key=lambda o: o.placed_ns))


def _answer_start(pending: list[tuple[int, ev.Event]], run_start: int) -> int:
    """Where a reqOpenOrders answer begins: walking back from its end, one openOrder and one
    orderStatus per order; a second message of one kind for one order belongs to the live flow before."""
    seen: set[tuple[str, int]] = set()
    i = len(pending)
    while i > run_start:
        p = pending[i - 1][1]
        key = (type(p).__name__, getattr(p, "order_id", 0) or getattr(p, "perm_id", 0))
        if key in seen:
            break
        seen.add(key)
        i -= 1
    return i


def _owner(
    p: ev.Event,
    orders: dict[int, RecordedOrder],
    by_perm: dict[int, RecordedOrder],
    exec_owner: dict[str, RecordedOrder],
) -> RecordedOrder | None:
    if isinstance(p, ev.CommissionReport):
        return exec_owner.get(p.exec_id.rpartition(".")[0])
    if isinstance(p, ev.Error):
        return orders.get(p.req_id) if p.req_id > 0 else None
    order_id = getattr(p, "order_id", 0)
    perm_id = getattr(p, "perm_id", 0)
    rec = orders.get(order_id) if order_id > 0 else None
    if rec is None and perm_id:
        rec = by_perm.get(perm_id)
    if rec is None:
        return None
    if perm_id and not rec.perm_id:
        rec.perm_id = perm_id
        by_perm[perm_id] = rec
    if isinstance(p, ev.ExecDetails):
        exec_owner[p.exec_id.rpartition(".")[0]] = rec
    return rec


def load_playback(path: str | Path) -> Playback:
    """Read a session file (validated by ``ledger.store.sessionfile``) into a playback."""
    return playback_from_envelopes(iter_session(path))
