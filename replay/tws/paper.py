"""Paper trading for the default scenario: orders work against the market instead of sitting still.

An order that no quirk scenario claims (its ``orderRef`` / symbol match none) and whose contract is in
the catalogue is worked here. Every second of the simulated clock each working order is offered the
current quote (``replay.tws.matching.fill``); fills go out through the simulator's own scenario steps
(execution, commission, status), so they look exactly like a scripted fill on the wire.

Order groups behave as in TWS: ``transmit=False`` holds an order until a transmitting member of its
group (same parent) arrives; a bracket's children are PreSubmitted until the parent fills; children of
one parent and orders sharing an ``ocaGroup`` cancel each other on a fill; cancelling a parent cancels
its children; IOC / FOK / DAY and ``outsideRth`` are honoured. whatIf orders are answered with margin
and commission estimates and never become orders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from replay.tws import matching as X
from replay.tws import protocol as P
from replay.tws.broker import normalize_contract
from replay.tws.catalogue import Instrument
from replay.tws.scenarios import Step

log = logging.getLogger("replay.tws.simulator")

STOP_TYPES = frozenset({"STP", "STP LMT", "TRAIL", "TRAIL LIMIT"})
ACCOUNT_EQUITY = 1_000_000.0


@dataclass(eq=False)
class _Entry:
    run: Any  # the simulator's _Run
    inst: Instrument
    work: X.Working
    children: list[int] = field(default_factory=list)  # permIds


class Paper:
    def __init__(self, sim: Any, slippage_ticks: int = 0) -> None:
        self.sim = sim
        self.slippage_ticks = slippage_ticks
        self.zone = ZoneInfo(sim.broker.clock.tz_name)
        self._entries: dict[int, _Entry] = {}  # permId -> entry (held, waiting or working)
        self._working: list[int] = []  # permIds being matched, in activation order
        self._held: dict[tuple[int, int], list[int]] = {}  # (clientId, group orderId) -> permIds
        self._waiting: dict[int, list[int]] = {}  # parent permId -> child permIds not yet active

    # ------------------------------------------------------------------ admission

    def instrument_for(self, order: Any, scenario: Any) -> Instrument | None:
        """The instrument when this order is paper-traded (default scenario, known contract, matched type)."""
        if scenario.name != "default" or order.manual:
            return None
        if order.spec.orderType.upper() not in X.MATCHED_TYPES:
            return None
        return self.sim.catalogue.resolve(
            P.ContractSpec(
                conId=order.contract.conId if order.contract.secType not in ("", "STK") else 0,
                symbol=order.contract.symbol,
                secType=order.contract.secType,
                currency=order.contract.currency,
                lastTradeDateOrContractMonth=order.contract.lastTradeDateOrContractMonth,
                strike=order.contract.strike,
                right=order.contract.right,
            )
        )

    def what_if(self, conn: Any, req: P.PlaceOrder) -> None:
        """Answer a whatIf order with an order state (margins, commission); nothing is placed."""
        inst = self.sim.catalogue.resolve(req.contract)
        contract = normalize_contract(req.contract)
        if inst is None:
            text = f"No security definition has been found for the request: {req.contract.symbol}"
            conn.send(P.error(req.order_id, 200, text, server_version=conn.server_version), self.sim.wire_log)
            return
        q = self.sim.market.quote(inst, self.sim.broker.clock.epoch())
        price = q.ask if req.order.action.upper() == "BUY" else q.bid
        if req.order.lmtPrice is not None and req.order.orderType.upper() in ("LMT", "STP LMT"):
            price = req.order.lmtPrice
        qty = req.order.totalQuantity
        margin = X.initial_margin(inst, qty, price)
        fee = X.commission(inst, qty, price)
        equity = ACCOUNT_EQUITY
        state = (
            "0.0", "0.0", f"{equity:.2f}",  # before
            f"{margin:.2f}", f"{margin * 0.8:.2f}", "0.0",  # change
            f"{margin:.2f}", f"{margin * 0.8:.2f}", f"{equity:.2f}",  # after
            fee, fee, fee, inst.currency,
        )  # fmt: skip
        view = P.OpenOrderView(
            order_id=req.order_id,
            client_id=conn.client_id or 0,
            perm_id=0,
            contract=contract,
            order=req.order,
            status="PreSubmitted",
            what_if=state,
        )
        log.info(
            "whatIf order %s/%s answered (margin %.2f, commission %.2f)", conn.client_id, req.order_id, margin, fee
        )
        conn.send(P.open_order(view, server_version=conn.server_version), self.sim.wire_log)

    def place(self, run: Any, inst: Instrument, extras: X.Extras) -> None:
        o = run.order
        entry = _Entry(run, inst, X.Working(extras))
        self._entries[o.perm_id] = entry
        group = (o.client_id, o.spec.parentId or o.order_id)
        if not o.spec.transmit:
            self._held.setdefault(group, []).append(o.perm_id)
            log.info("order %s/%s held until its group is transmitted", o.client_id, o.order_id)
            return
        for perm in [*self._held.pop(group, []), o.perm_id]:
            self._activate(perm)

    # ------------------------------------------------------------------ lifecycle

    def _parent_of(self, order: Any) -> Any:
        if not order.spec.parentId:
            return None
        return self.sim.broker.find(order.client_id, order.spec.parentId)

    def _activate(self, perm: int) -> None:
        entry = self._entries.get(perm)
        if entry is None:
            return
        o = entry.run.order
        if o.is_done:
            return
        parent = self._parent_of(o)
        if parent is not None:
            parent_entry = self._entries.get(parent.perm_id)
            if parent_entry is not None and perm not in parent_entry.children:
                parent_entry.children.append(perm)
            if parent.status != "Filled":
                self._apply(entry, Step("open_order", status="PreSubmitted"))
                self._apply(entry, Step("status", status="PreSubmitted"))
                self._waiting.setdefault(parent.perm_id, []).append(perm)
                return
        status = "PreSubmitted" if o.spec.orderType.upper() in STOP_TYPES else "Submitted"
        self._apply(entry, Step("open_order", status=status))
        self._apply(entry, Step("status", status=status))
        self._working.append(perm)
        self._try(perm, first=True)

    def _apply(self, entry: _Entry, step: Step) -> None:
        self.sim._apply(entry.run, step)

    def _in_session(self, entry: _Entry, now: int) -> tuple[bool, bool]:
        """(may trade now, the order's DAY has ended)."""
        local = datetime.fromtimestamp(now, self.zone)
        t = local.time()
        if entry.inst.sec_type in ("STK", "OPT"):
            rth = local.weekday() < 5 and time(9, 30) <= t < time(16, 0)
            ext = local.weekday() < 5 and time(4, 0) <= t < time(20, 0)
            allowed = ext if entry.run.order.spec.outsideRth else rth
            day_end = t >= (time(20, 0) if entry.run.order.spec.outsideRth else time(16, 0))
        else:
            allowed = local.weekday() < 5
            day_end = t >= time(17, 0) and t < time(17, 1)
        return allowed, day_end

    def _try(self, perm: int, first: bool = False) -> None:
        entry = self._entries.get(perm)
        if entry is None or perm not in self._working:
            return
        o = entry.run.order
        if o.is_done:
            self._retire(perm)
            return
        now = self.sim.broker.clock.epoch()
        allowed, day_end = self._in_session(entry, now)
        tif = o.spec.tif.upper()
        if day_end and tif == "DAY" and not first:
            self._cancel(perm, "DAY order expired at the session's end")
            return
        if not allowed:
            if tif in ("IOC", "FOK"):
                self._cancel(perm, "the market is closed")
            return
        q = self.sim.market.quote(entry.inst, now)
        result = X.fill(o.spec, o.remaining, entry.work, q, entry.inst, self.slippage_ticks)
        if tif == "FOK":
            touch_size = q.ask_size if o.spec.action.upper() == "BUY" else q.bid_size
            if result is None or touch_size < o.remaining:
                self._cancel(perm, "fill or kill: not fillable at once")
                return
            result = (o.remaining, result[1])
        if result is not None:
            self._execute(perm, *result)
        if tif == "IOC" and not o.is_done:
            self._cancel(perm, "immediate or cancel: the rest is cancelled")

    def _execute(self, perm: int, qty: float, price: float) -> None:
        entry = self._entries[perm]
        o = entry.run.order
        fee = X.commission(entry.inst, qty, price)
        realized = self._realized(entry, qty, price, fee)
        self._apply(entry, Step("exec", qty=qty, price=price))
        self._apply(entry, Step("commission", commission=fee, realized_pnl=realized))
        done = o.remaining <= 1e-9
        self._apply(entry, Step("status", status="Filled" if done else "Submitted"))
        self._oca(perm)
        if done:
            self._retire(perm)
            for child in self._waiting.pop(o.perm_id, []):
                c = self._entries.get(child)
                if c is None or c.run.order.is_done:
                    continue
                status = "PreSubmitted" if c.run.order.spec.orderType.upper() in STOP_TYPES else "Submitted"
                self._apply(c, Step("open_order", status=status))
                self._apply(c, Step("status", status=status))
                self._working.append(child)
                self._try(child, first=True)

    def _realized(self, entry: _Entry, qty: float, price: float, fee: float) -> float | None:
        """The commission report's realized P&L, as TWS gives it: on the closing part of an execution,
        (price - average cost) x closed x multiplier, net of this execution's commission; an opening
        execution realizes nothing and leaves it unset (None)."""
        o = entry.run.order
        pos = self.sim.broker.position_of(o.spec.account, o.contract.conId)
        if pos is None or abs(pos.qty) < 1e-9:
            return None
        buy = o.spec.action.upper() == "BUY"
        if (pos.qty > 0) == buy:
            return None
        closed = min(qty, abs(pos.qty))
        direction = 1.0 if pos.qty > 0 else -1.0
        gross = (price - pos.avg_cost) * closed * direction * entry.inst.point_value
        return round(gross - fee, 6)

    def _siblings(self, perm: int) -> list[int]:
        o = self._entries[perm].run.order
        out = []
        for other_perm, e in self._entries.items():
            other = e.run.order
            if other_perm == perm or other.is_done or other.client_id != o.client_id:
                continue
            same_oca = bool(o.spec.ocaGroup) and other.spec.ocaGroup == o.spec.ocaGroup
            same_parent = bool(o.spec.parentId) and other.spec.parentId == o.spec.parentId
            if same_oca or same_parent:
                out.append(other_perm)
        return out

    def _oca(self, perm: int) -> None:
        for other in self._siblings(perm):
            self._cancel(other, "OCA group: a sibling filled")

    def _cancel(self, perm: int, why: str) -> None:
        entry = self._entries.get(perm)
        if entry is None or entry.run.order.is_done:
            return
        log.info("order permId %s cancelled: %s", perm, why)
        self._retire(perm)
        self._apply(entry, Step("status", status="Cancelled"))

    def _retire(self, perm: int) -> None:
        if perm in self._working:
            self._working.remove(perm)

    # ------------------------------------------------------------------ hooks

    def owns(self, order: Any) -> bool:
        return order.perm_id in self._entries

    def cancelling(self, order: Any) -> list[Any]:
        """A client cancels ``order``: it stops matching; returns its children (cancelled with it)."""
        self._retire(order.perm_id)
        for members in self._held.values():
            if order.perm_id in members:
                members.remove(order.perm_id)
        entry = self._entries.get(order.perm_id)
        if entry is None:
            return []
        kids = [*entry.children, *self._waiting.pop(order.perm_id, [])]
        for perm, e in self._entries.items():
            if e.run.order.spec.parentId == order.order_id and e.run.order.client_id == order.client_id:
                kids.append(perm)
        out, seen = [], set()
        for perm in kids:
            if perm in seen:
                continue
            seen.add(perm)
            self._retire(perm)
            child = self._entries.get(perm)
            if child is not None and not child.run.order.is_done:
                out.append(child.run.order)
        return out

    def modified(self, order: Any, extras: X.Extras) -> None:
        entry = self._entries.get(order.perm_id)
        if entry is not None:
            entry.work = X.Working(extras, triggered=entry.work.triggered, extreme=entry.work.extreme)

    def after_modify(self, order: Any) -> None:
        """A modified working order may have become marketable."""
        if order.perm_id in self._working:
            self._try(order.perm_id)

    def step(self) -> None:
        """One simulated second: every working order meets the new quote."""
        for perm in list(self._working):
            self._try(perm)

    def working(self) -> list[int]:
        return list(self._working)
