"""The reference strategy written against the official ``ibapi`` client (EClient / EWrapper, unmodified).

Run in its own environment (``tests/run`` builds ``.venv-ibapi`` with ``ibapi-stable``):
``.venv-ibapi/bin/python tests/support/ibapi_reference.py PORT``. It qualifies AAPL, subscribes, loads history,
places a bracket and waits for one child to fill and the other to be cancelled, modifies and cancels a
resting order, reads the account summary and P&L, then prints one JSON line with what it saw (the
test compares it with the simulator broker's truth). Exit code 0 only when every step got its answer.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper

TIMEOUT = 20.0


class App(EWrapper, EClient):
    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.events: dict[str, threading.Event] = {}
        self.next_id = 0
        self.details: list = []
        self.bid = self.ask = 0.0
        self.bars: list = []
        self.orders: dict[int, dict] = {}
        self.summary: dict[str, str] = {}
        self.pnl_values: tuple | None = None
        self.errors: list[tuple[int, int, str]] = []

    def ev(self, name: str) -> threading.Event:
        return self.events.setdefault(name, threading.Event())

    def wait(self, name: str, what: str) -> None:
        if not self.ev(name).wait(TIMEOUT):
            raise SystemExit(f"timed out waiting for {what}; errors: {self.errors}")

    # ------------------------------------------------------------------ wrapper
    def nextValidId(self, orderId: int) -> None:
        self.next_id = orderId
        self.ev("ready").set()

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson="") -> None:  # noqa: N803
        self.errors.append((reqId, errorCode, errorString))

    def contractDetails(self, reqId, contractDetails) -> None:  # noqa: N803
        self.details.append(contractDetails)

    def contractDetailsEnd(self, reqId) -> None:  # noqa: N803
        self.ev("details").set()

    def tickPrice(self, reqId, tickType, price, attrib) -> None:  # noqa: N803
        if tickType == 1:
            self.bid = price
        elif tickType == 2:
            self.ask = price
        if self.bid and self.ask:
            self.ev("quote").set()

    def historicalData(self, reqId, bar) -> None:  # noqa: N803
        self.bars.append(bar)

    def historicalDataEnd(self, reqId, start, end) -> None:  # noqa: N803
        self.ev("history").set()

    def orderStatus(self, orderId, status, filled, remaining, avgFillPrice, *rest) -> None:  # noqa: N803
        self.orders[orderId] = {"status": status, "filled": float(filled), "avg": avgFillPrice}
        self.ev(f"status:{orderId}:{status}").set()

    def openOrder(self, orderId, contract, order, orderState) -> None:  # noqa: N803
        self.orders.setdefault(orderId, {})["lmt"] = order.lmtPrice
        self.ev(f"open:{orderId}:{order.lmtPrice}").set()

    def accountSummary(self, reqId, account, tag, value, currency) -> None:  # noqa: N803
        self.summary[tag] = value

    def accountSummaryEnd(self, reqId) -> None:  # noqa: N803
        self.ev("summary").set()

    def pnl(self, reqId, dailyPnL, unrealizedPnL, realizedPnL) -> None:  # noqa: N803
        self.pnl_values = (dailyPnL, unrealizedPnL, realizedPnL)
        self.ev("pnl").set()


def _order(action: str, qty: float, kind: str, price: float, **kw) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, qty, kind
    if kind == "LMT":
        o.lmtPrice = price
    else:
        o.auxPrice = price
    o.eTradeOnly = False
    o.firmQuoteOnly = False
    for k, v in kw.items():
        setattr(o, k, v)
    return o


def main(port: int) -> int:
    app = App()
    app.connect("127.0.0.1", port, clientId=71)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    app.wait("ready", "nextValidId")
    version = app.serverVersion()

    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "AAPL", "STK", "SMART", "USD"
    app.reqContractDetails(1, c)
    app.wait("details", "contract details")
    c = app.details[0].contract
    c.exchange = "SMART"

    app.reqMktData(2, c, "", False, False, [])
    app.wait("quote", "a quote")
    app.reqHistoricalData(3, c, "", "1 D", "5 mins", "TRADES", 1, 1, False, [])
    app.wait("history", "historical bars")

    oid = app.next_id
    parent = _order("BUY", 10, "LMT", round(app.ask + 0.05, 2), transmit=False)
    tp = _order("SELL", 10, "LMT", round(app.ask + 0.30, 2), parentId=oid, transmit=False)
    sl = _order("SELL", 10, "STP", round(app.bid - 0.30, 2), parentId=oid, transmit=True)
    for i, o in enumerate((parent, tp, sl)):
        app.placeOrder(oid + i, c, o)
    app.wait(f"status:{oid}:Filled", "the bracket's parent fill")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        states = {app.orders.get(oid + 1, {}).get("status"), app.orders.get(oid + 2, {}).get("status")}
        if states == {"Filled", "Cancelled"}:
            break
        time.sleep(0.02)
    else:
        raise SystemExit(f"bracket children never settled: {app.orders}")

    rest_id = oid + 3
    rest = _order("BUY", 5, "LMT", round(app.bid - 20, 2))
    app.placeOrder(rest_id, c, rest)
    app.wait(f"status:{rest_id}:Submitted", "the resting order")
    rest.lmtPrice = round(app.bid - 21, 2)
    app.placeOrder(rest_id, c, rest)
    app.wait(f"open:{rest_id}:{rest.lmtPrice}", "the modified order")
    app.cancelOrder(rest_id, OrderCancel())
    app.wait(f"status:{rest_id}:Cancelled", "the cancel")

    app.reqAccountSummary(9, "All", "NetLiquidation,TotalCashValue,BuyingPower")
    app.wait("summary", "the account summary")
    app.reqPnL(10, "DU1234567", "")
    app.wait("pnl", "P&L")
    app.disconnect()
    print(
        json.dumps(
            {
                "server_version": version,
                "con_id": c.conId,
                "bars": len(app.bars),
                "orders": {str(k): v for k, v in app.orders.items()},
                "first_order_id": oid,
                "summary": app.summary,
                "pnl": app.pnl_values,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
