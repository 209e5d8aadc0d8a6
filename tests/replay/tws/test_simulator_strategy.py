"""The reference strategy, unmodified client code, against the simulator as a paper broker.

qualify → subscribe → history → a bracket (parent fills, one child fills, OCA cancels the other) →
modify and cancel a resting order → account summary → P&L; every order's end state equals the
simulator broker's truth. Runs with ib_insync and (``tests/run``) ib_async; ``test_simulator_ibapi``
drives the same strategy with the official ibapi client.
"""

from __future__ import annotations

import math

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.simulator import Simulator
from tests.support.simulator import advance_until_done, connected, wait_until

pytestmark = pytest.mark.ibclient

ACCOUNT = "DU1234567"


def test_reference_strategy_runs_unmodified():
    with Simulator(seed=2024) as sim:
        with connected(sim.port, client_id=61) as ib:
            # qualify
            [aapl] = ib.qualifyContracts(iblib.Stock("AAPL", "SMART", "USD"))
            assert aapl.conId == 265598
            # subscribe
            ticker = ib.reqMktData(aapl)
            assert wait_until(ib, lambda: ticker.bid > 0 and ticker.ask > ticker.bid)
            # history: a 20-bar moving average
            bars = ib.reqHistoricalData(aapl, "", "1 D", "5 mins", "TRADES", True)
            sma = sum(b.close for b in bars[-20:]) / 20
            assert len(bars) == 78 and not math.isnan(sma)
            # bracket: a marketable parent, a take-profit and a stop around it
            ask, bid = ticker.ask, ticker.bid
            bracket = ib.bracketOrder("BUY", 10, round(ask + 0.05, 2), round(ask + 0.40, 2), round(bid - 0.40, 2))
            parent, tp, sl = (ib.placeOrder(aapl, o) for o in bracket)
            assert wait_until(ib, lambda: parent.orderStatus.status == "Filled")
            assert advance_until_done(ib, sim, (tp, sl))
            assert {tp.orderStatus.status, sl.orderStatus.status} == {"Filled", "Cancelled"}
            # modify and cancel a resting order
            rest = ib.placeOrder(aapl, iblib.LimitOrder("BUY", 5, round(ticker.bid - 20, 2)))
            assert wait_until(ib, lambda: rest.orderStatus.status == "Submitted")
            rest.order.lmtPrice = round(ticker.bid - 21, 2)
            ib.placeOrder(aapl, rest.order)
            assert wait_until(
                ib, lambda: sim.broker.find(61, rest.order.orderId).spec.lmtPrice == rest.order.lmtPrice
            )
            ib.cancelOrder(rest.order)
            assert wait_until(ib, lambda: rest.orderStatus.status == "Cancelled")
            # account summary and P&L
            summary = {v.tag: float(v.value) for v in ib.accountSummary(ACCOUNT) if v.tag == "NetLiquidation"}
            assert 990_000 < summary["NetLiquidation"] < 1_010_000
            pnl = ib.reqPnL(ACCOUNT)
            assert wait_until(ib, lambda: pnl.realizedPnL == pnl.realizedPnL)  # not NaN: an answer came
            # every order's end state is the broker's truth
            for trade in (parent, tp, sl, rest):
                truth = sim.broker.find(61, trade.order.orderId)
                assert (truth.status, truth.filled) == (trade.orderStatus.status, trade.orderStatus.filled)
                assert truth.avg_fill_price == pytest.approx(trade.orderStatus.avgFillPrice)
            truth_pos = sim.broker.position_of(ACCOUNT, 265598)
            assert truth_pos is not None and truth_pos.qty == 0  # in and out again
            assert not [p for p in ib.positions() if p.contract.conId == 265598 and p.position]
