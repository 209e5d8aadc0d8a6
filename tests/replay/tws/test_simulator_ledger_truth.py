"""Every order's ledger result equals the simulator's broker truth.

The reference strategy (unmodified client code: qualify, subscribe, a market order, a bracket run to its
take-profit, a partial close, modify and cancel of a resting order) runs under the real client with the
ledger's ``Recorder`` attached before ``connect``. Then the *ledger* — the session read back from the
SQLite store and folded — is compared with the simulator's broker: every order (status, filled quantity,
average price, commission), every execution, the positions (quantity, average cost) and the realized
P&L. Nothing is read from the client's own objects. Runs under ib_insync and (``tests/run``) ib_async.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from ledger import Recorder
from ledger.core.fold import fold
from ledger.core.pnl import contract_pnl
from ledger.ib.library import IB
from ledger.ib.library import ib as iblib
from ledger.store import open_store
from replay.tws.simulator import Simulator
from tests.support.simulator import advance_until_done, wait_until

pytestmark = pytest.mark.ibclient

ACCOUNT = "DU1234567"
CLIENT = 62
AAPL = 265598


def _strategy(ib, sim) -> None:
    [aapl] = ib.qualifyContracts(iblib.Stock("AAPL", "SMART", "USD"))
    ticker = ib.reqMktData(aapl)
    assert wait_until(ib, lambda: ticker.bid > 0 and ticker.ask > ticker.bid)
    # a market order at the touch
    mkt = ib.placeOrder(aapl, iblib.MarketOrder("BUY", 20))
    assert wait_until(ib, lambda: mkt.orderStatus.status == "Filled")
    # a bracket, run until one child fills and the other is cancelled
    ask, bid = ticker.ask, ticker.bid
    bracket = ib.bracketOrder("BUY", 10, round(ask + 0.05, 2), round(ask + 0.30, 2), round(bid - 0.30, 2))
    parent, tp, sl = (ib.placeOrder(aapl, o) for o in bracket)
    assert wait_until(ib, lambda: parent.orderStatus.status == "Filled" and len(sim.broker.all_orders()) == 4)
    assert advance_until_done(ib, sim, (tp, sl))
    # a partial close at a marketable limit: realizes P&L on 5 of the 20 still held
    close = ib.placeOrder(aapl, iblib.LimitOrder("SELL", 5, round(ticker.bid - 0.05, 2)))
    assert wait_until(ib, lambda: close.orderStatus.status == "Filled")
    # a resting order: modified, then cancelled
    rest = ib.placeOrder(aapl, iblib.LimitOrder("BUY", 5, round(ticker.bid - 20, 2)))
    assert wait_until(ib, lambda: rest.orderStatus.status == "Submitted")
    rest.order.lmtPrice = round(ticker.bid - 21, 2)
    ib.placeOrder(aapl, rest.order)
    assert wait_until(ib, lambda: sim.broker.find(CLIENT, rest.order.orderId).spec.lmtPrice == rest.order.lmtPrice)
    ib.cancelOrder(rest.order)
    assert wait_until(ib, lambda: rest.orderStatus.status == "Cancelled")
    ib.cancelMktData(aapl)
    # every commission report is in before the session ends
    assert wait_until(ib, lambda: len(ib.fills()) == len(sim.broker.executions()) and all(
        f.commissionReport.execId for f in ib.fills()))


def test_every_orders_ledger_result_equals_the_brokers_truth(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Simulator(seed=2025) as sim:
        ib = IB()
        rec = Recorder.attach(ib, url)
        try:
            ib.connect("127.0.0.1", sim.port, clientId=CLIENT, timeout=5)
            _strategy(ib, sim)
        finally:
            ib.disconnect()
            rec.close()
        broker_orders = sim.broker.all_orders()
        executions = sim.broker.executions()
        commissions = {c.exec_id: c for c in sim.broker.commissions()}
        truth_pos = sim.broker.position_of(ACCOUNT, AAPL)

    with open_store(url) as store:
        [info] = store.sessions()
        ledger = fold(store.read_session(info.session_id))
    assert ledger.anomalies == []

    # the same orders, one to one by permId
    views = {v.perm_id: v for v in ledger.orders.values()}
    assert set(views) == {o.perm_id for o in broker_orders} and len(broker_orders) == 6
    by_perm = defaultdict(list)
    for e in executions:
        by_perm[e.perm_id].append(e)
    for o in broker_orders:
        v = views[o.perm_id]
        assert (v.order_id, v.client_id, v.symbol, v.action, v.total_qty, v.order_type) == (
            o.order_id, o.client_id, o.contract.symbol, o.spec.action, o.spec.totalQuantity, o.spec.orderType)
        assert v.broker_status == o.status and v.is_done, (v.key, v.state, o.status)
        assert v.state == {"Filled": "Filled", "Cancelled": "Cancelled"}[o.status]
        assert v.filled == o.filled
        assert v.avg_fill_price == pytest.approx(o.avg_fill_price, abs=1e-9)
        # executions and commissions: each of the broker's, once, with its commission
        assert sorted((f.exec_id, f.shares, f.price) for f in v.fills) == sorted(
            (e.exec_id, e.shares, e.price) for e in by_perm[o.perm_id])
        assert v.commission == pytest.approx(sum(commissions[e.exec_id].commission for e in by_perm[o.perm_id]))
    states = sorted(v.state for v in views.values())
    # one bracket child and the resting order cancelled; the market order, the parent, the other child, the close
    assert states == ["Cancelled", "Cancelled", "Filled", "Filled", "Filled", "Filled"]

    # positions and P&L, as the ledger derives them from its executions, against the broker's book
    [pnl] = [c for c in contract_pnl(ledger.orders.values()) if c.con_id == AAPL]
    assert truth_pos is not None
    assert pnl.position == truth_pos.qty == 15  # 20 + 10 - 10 - 5
    assert pnl.avg_cost == pytest.approx(truth_pos.avg_cost)
    reported = [c.realized_pnl for c in commissions.values() if c.realized_pnl is not None]
    assert len(reported) == 2  # the take-profit and the partial close realize; openings leave it unset
    assert pnl.realized_pnl == pytest.approx(sum(reported))
    assert pnl.commission == pytest.approx(sum(c.commission for c in commissions.values()))
    [position] = [p for p in ledger.positions.values() if p.con_id == AAPL]
    assert position.position == truth_pos.qty
