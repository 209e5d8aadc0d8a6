"""Side N of the NautilusTrader anchor (``anchor.py``): NautilusTrader's own order objects over the stream.

    .venv-nautilus/bin/python tests/benchmarks/anchor_nautilus.py STREAM_FILE RUNS

Runs in ``.venv-nautilus`` (NautilusTrader 1.221.0; it imports nothing from ibledger). Each record
``[name, recv_ns, args]`` of the stream (the IB wrapper callbacks, see ``anchor.py``) becomes what
NautilusTrader's Interactive Brokers execution client (``adapters/interactive_brokers/execution.py``:
``_on_open_order``, ``_on_order_status``, ``_handle_order_event``, ``_on_exec_details``; order errors in
``client/error.py``) generates for it, built here from the record and applied with ``Order.apply``:

* ``placeOrder``: ``OrderFactory.limit`` / ``market``, then ``OrderSubmitted``; a modify: ``OrderPendingUpdate``;
* ``cancelOrder``: ``OrderPendingCancel``;
* ``orderStatus``: Submitted/PreSubmitted ``OrderAccepted`` once (the adapter takes acceptance from
  ``openOrder``, which this stream carries only for some orders: accepting on either is the more
  generous reading); PendingCancel ``OrderPendingCancel``; Cancelled ``OrderCanceled``; Filled keeps the
  average price for the fills' ``info``, as the adapter does;
* ``openOrder``: ``OrderUpdated`` when quantity or price is given (the adapter's test), then accepted; an
  order it never placed (a manual TWS order, a completed order) is created, as reconciliation would;
* ``execDetails`` is held until its ``commissionReport``, which makes the ``OrderFilled`` (with the
  commission as ``Money``), as NautilusTrader's client pairs them;
* ``error`` 201/203/321/10289/10293 ``OrderRejected``, 202 ``OrderCanceled``, 10148 ``OrderCancelRejected``.

A transition its state machine refuses (a duplicate, a late fill beyond the quantity) raises; it is
caught and counted. Event times are the records' receipt times (the adapter parses the execution's
time text with pandas, which would only slow this side). Timed: the whole pass from the decoded records,
fresh factory and orders each run. Prints one JSON line: callbacks/s (median), per-run seconds, counts.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from pathlib import Path

import msgspec
from nautilus_trader.common.component import TestClock
from nautilus_trader.common.factories import OrderFactory
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.model.enums import LiquiditySide, OrderSide, OrderStatus, TimeInForce
from nautilus_trader.model.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRejected,
    OrderFilled,
    OrderPendingCancel,
    OrderPendingUpdate,
    OrderRejected,
    OrderSubmitted,
    OrderUpdated,
)
from nautilus_trader.model.identifiers import (
    AccountId,
    InstrumentId,
    StrategyId,
    TradeId,
    TraderId,
    VenueOrderId,
)
from nautilus_trader.model.objects import Currency, Money, Price, Quantity

QTY_PREC = 2
PX_PREC = 5
EXCHANGE = {"STK": "SMART", "FUT": "CME", "CASH": "IDEALPRO"}
REJECTION_CODES = {201, 203, 321, 10289, 10293}
TIF = {"IOC": TimeInForce.IOC, "GTC": TimeInForce.GTC, "FOK": TimeInForce.FOK}
OPEN_FOR_CANCEL = {OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                   OrderStatus.PENDING_UPDATE, OrderStatus.TRIGGERED}
OPEN_FOR_UPDATE = {OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED,
                   OrderStatus.PENDING_UPDATE, OrderStatus.TRIGGERED}
CANCELLABLE = OPEN_FOR_CANCEL | {OrderStatus.PENDING_CANCEL}


class Side:
    """One pass: NautilusTrader's objects for every order of the stream."""

    def __init__(self) -> None:
        self.clock = TestClock()
        self.trader = TraderId("ANCHOR-001")
        self.strategy = StrategyId("S-001")
        self.account = AccountId("IB-DU123456")
        self.factory = OrderFactory(self.trader, self.strategy, self.clock)
        self.usd = Currency.from_str("USD")
        self.instruments: dict[str, InstrumentId] = {}
        self.by_id: dict[int, object] = {}
        self.by_perm: dict[int, object] = {}
        self.execs: dict[str, tuple] = {}
        self.avg_px: dict[object, Price] = {}
        self.events = 0
        self.refused = 0
        self.orders = 0

    def apply(self, order, event) -> None:
        try:
            order.apply(event)
            self.events += 1
        except Exception:  # noqa: BLE001 - its state machine refusing a transition is counted, not fatal
            self.refused += 1

    def instrument(self, c: dict) -> InstrumentId:
        sym = c.get("symbol", "")
        iid = self.instruments.get(sym)
        if iid is None:
            iid = self.instruments[sym] = InstrumentId.from_str(f"{sym}.{EXCHANGE.get(c.get('secType'), 'SMART')}")
        return iid

    def new_order(self, c: dict, o: dict):
        iid = self.instrument(c)
        side = OrderSide.BUY if o.get("action") == "BUY" else OrderSide.SELL
        qty = Quantity(o.get("totalQuantity", 0.0), QTY_PREC)
        tif = TIF.get(o.get("tif"), TimeInForce.DAY)
        lmt = o.get("lmtPrice")
        if o.get("orderType") == "MKT" or lmt is None:
            order = self.factory.market(iid, side, qty, tif)
        else:
            order = self.factory.limit(iid, side, qty, Price(lmt, PX_PREC), tif)
        self.orders += 1
        return order

    def find(self, order_id: int, perm_id: int):
        order = self.by_id.get(order_id) if order_id and order_id != 2147483647 else None
        if order is None and perm_id:
            order = self.by_perm.get(perm_id)
        return order

    def submitted(self, order, ns: int) -> None:
        self.apply(order, OrderSubmitted(self.trader, self.strategy, order.instrument_id, order.client_order_id,
                                         self.account, UUID4(), ns, ns))

    def accepted(self, order, order_id: int, ns: int) -> None:
        self.apply(order, OrderAccepted(self.trader, self.strategy, order.instrument_id, order.client_order_id,
                                        VenueOrderId(str(order_id)), self.account, UUID4(), ns, ns))

    def canceled(self, order, ns: int) -> None:
        self.apply(order, OrderCanceled(self.trader, self.strategy, order.instrument_id, order.client_order_id,
                                        order.venue_order_id, self.account, UUID4(), ns, ns))

    def pending_cancel(self, order, ns: int) -> None:
        self.apply(order, OrderPendingCancel(self.trader, self.strategy, order.instrument_id, order.client_order_id,
                                             order.venue_order_id, self.account, UUID4(), ns, ns))

    def external(self, c: dict, o: dict, order_id: int, perm_id: int, ns: int):
        """An order this side never placed (manual, completed, another client): create and accept it."""
        order = self.new_order(c, o)
        self.submitted(order, ns)
        self.accepted(order, order_id or perm_id, ns)
        if perm_id:
            self.by_perm[perm_id] = order
        return order

    def run(self, records: list) -> None:
        for name, ns, a in records:
            if name == "orderStatus":
                self.order_status(ns, a)
            elif name == "commissionReport":
                self.commission(ns, a[0])
            elif name == "execDetails":
                x = a[2]
                self.execs[x.get("execId", "")] = (x, a[1])
            elif name == "placeOrder":
                self.place(ns, a)
            elif name == "cancelOrder":
                o = a[0]
                order = self.find(o.get("orderId", 0), o.get("permId", 0))
                if order is not None and order.status in OPEN_FOR_CANCEL:
                    self.pending_cancel(order, ns)
            elif name == "openOrder":
                self.open_order(ns, a[0], a[1], a[2], a[3])
            elif name == "completedOrder":
                o = a[1]
                if self.find(o.get("orderId", 0), o.get("permId", 0)) is None:
                    self.external(a[0], o, o.get("orderId", 0), o.get("permId", 0), ns)
            elif name == "error":
                self.error(ns, a[0], a[1], a[2])

    def place(self, ns: int, a: list) -> None:
        c, o, order_id, _client_id, modify = a
        self.clock.set_time(ns)
        if not modify:
            order = self.new_order(c, o)
            self.by_id[order_id] = order
            self.submitted(order, ns)
            return
        order = self.by_id.get(order_id)
        if order is not None and order.status in OPEN_FOR_UPDATE:
            self.apply(order, OrderPendingUpdate(self.trader, self.strategy, order.instrument_id,
                                                 order.client_order_id, order.venue_order_id, self.account,
                                                 UUID4(), ns, ns))

    def order_status(self, ns: int, a: list) -> None:
        order_id, status, _filled, _remaining, avg, perm_id = a[0], a[1], a[2], a[3], a[4], a[5]
        order = self.find(order_id, perm_id)
        if order is None:
            return
        if perm_id and perm_id not in self.by_perm:
            self.by_perm[perm_id] = order
        st = order.status
        if status == "Submitted" or status == "PreSubmitted":
            if st == OrderStatus.SUBMITTED:
                self.accepted(order, order_id, ns)
        elif status == "Cancelled" or status == "ApiCancelled":
            if st in CANCELLABLE:
                self.canceled(order, ns)
        elif status == "PendingCancel":
            if st in OPEN_FOR_CANCEL:
                self.pending_cancel(order, ns)
        elif status == "Filled":
            if avg and avg > 0:
                self.avg_px[order.client_order_id] = Price(avg, PX_PREC)

    def open_order(self, ns: int, order_id: int, c: dict, o: dict, state: dict) -> None:
        perm_id = o.get("permId", 0)
        order = self.find(order_id, perm_id)
        if order is None:
            self.external(c, o, order_id, perm_id, ns)
            return
        if state.get("status") not in ("PreSubmitted", "Submitted"):
            return
        qty = Quantity(o.get("totalQuantity", 0.0), QTY_PREC)
        lmt = o.get("lmtPrice")
        price = Price(lmt, PX_PREC) if lmt is not None else None
        if (qty != order.quantity or price) and order.status in OPEN_FOR_UPDATE:
            self.apply(order, OrderUpdated(self.trader, self.strategy, order.instrument_id, order.client_order_id,
                                           VenueOrderId(str(order_id or perm_id)), self.account, qty, price, None,
                                           UUID4(), ns, ns))
        if order.status == OrderStatus.SUBMITTED:
            self.accepted(order, order_id or perm_id, ns)

    def commission(self, ns: int, r: dict) -> None:
        got = self.execs.pop(r.get("execId", ""), None)
        if got is None:
            return
        x, _contract = got
        order = self.find(x.get("orderId", 0), x.get("permId", 0))
        if order is None:
            return
        info = None
        avg = self.avg_px.get(order.client_order_id)
        if avg is not None:
            info = {"avg_px": avg}
        commission = r.get("commission") or 0.0
        self.apply(order, OrderFilled(
            self.trader, self.strategy, order.instrument_id, order.client_order_id,
            VenueOrderId(str(x.get("orderId", 0))), self.account, TradeId(x["execId"]), None,
            OrderSide.BUY if x.get("side") == "BOT" else OrderSide.SELL, order.order_type,
            Quantity(x.get("shares", 0.0), QTY_PREC), Price(x.get("price", 0.0), PX_PREC), self.usd,
            Money(commission, Currency.from_str(r.get("currency") or "USD")), LiquiditySide.NO_LIQUIDITY_SIDE,
            UUID4(), ns, ns, False, info,
        ))

    def error(self, ns: int, req_id: int, code: int, message: str) -> None:
        if code not in REJECTION_CODES and code != 202 and code != 10148:
            return
        order = self.by_id.get(req_id)
        if order is None:
            return
        st = order.status
        if code in REJECTION_CODES:
            if st != OrderStatus.REJECTED:
                self.apply(order, OrderRejected(self.trader, self.strategy, order.instrument_id,
                                                order.client_order_id, self.account, message, UUID4(), ns, ns))
        elif code == 202:
            if st in CANCELLABLE:
                self.canceled(order, ns)
        elif st == OrderStatus.PENDING_CANCEL:
            self.apply(order, OrderCancelRejected(self.trader, self.strategy, order.instrument_id,
                                                  order.client_order_id, order.venue_order_id, self.account,
                                                  message, UUID4(), ns, ns))


def main() -> None:
    path, runs = Path(sys.argv[1]), int(sys.argv[2])
    records = msgspec.msgpack.decode(path.read_bytes())
    gc.collect()
    gc.freeze()
    secs, side = [], None
    for _ in range(runs):
        side = None
        gc.collect()
        t = time.perf_counter()
        side = Side()
        side.run(records)
        secs.append(time.perf_counter() - t)
    n = len(records)
    print(json.dumps({"callbacks": n, "rate": n / statistics.median(secs), "runs_s": secs, "orders": side.orders,
                      "events": side.events, "refused": side.refused}))


if __name__ == "__main__":
    main()
