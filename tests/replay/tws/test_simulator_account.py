"""The account seen through the real client: values, summary, portfolio, positions, P&L from broker truth."""

from __future__ import annotations

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.protocol import ContractSpec
from replay.tws.simulator import Simulator
from tests.support.simulator import connected, wait_until

pytestmark = pytest.mark.ibclient

ACCOUNT = "DU1234567"
AAPL = iblib.Stock("AAPL", "SMART", "USD")


def _values(ib) -> dict[str, float]:
    return {v.tag: float(v.value) for v in ib.accountValues() if v.currency == "USD" and v.tag != "Currency"}


def test_a_fresh_account_has_its_cash_and_nothing_else():
    with Simulator(seed=5) as sim:
        with connected(sim.port, client_id=51) as ib:
            values = _values(ib)
            assert values["NetLiquidation"] == 1_000_000.0 and values["TotalCashValue"] == 1_000_000.0
            summary = {v.tag: v.value for v in ib.accountSummary()}
            assert summary["NetLiquidation"] == "1000000.00" and summary["AccountType"] == "INDIVIDUAL"
            assert ib.portfolio() == []
            times = [f[2] for d, _c, f in sim.wire_log if d == "out" and f[0] == "8"]
            assert times == ["09:30"]  # the simulated clock's local time (2024-01-02 09:30 US/Eastern)


def test_a_fill_moves_cash_portfolio_and_pnl():
    with Simulator(seed=5) as sim:
        with connected(sim.port, client_id=52) as ib:
            trade = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 100))
            assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
            price = trade.orderStatus.avgFillPrice
            assert wait_until(ib, lambda: len(ib.portfolio()) == 1)
            sim.advance(120)
            inst = sim.catalogue.resolve(ContractSpec(symbol="AAPL", secType="STK", currency="USD"))
            mid = sim.market.quote(inst, sim.broker.clock.epoch()).mid
            pnl = ib.reqPnL(ACCOUNT)
            single = ib.reqPnLSingle(ACCOUNT, "", 265598)
            assert wait_until(ib, lambda: pnl.unrealizedPnL == pnl.unrealizedPnL and single.position == 100)
            # the next fill pushes fresh account values
            more = ib.placeOrder(AAPL, iblib.MarketOrder("SELL", 40))
            assert wait_until(ib, lambda: more.orderStatus.status == "Filled")
            sell_price = more.orderStatus.avgFillPrice
            assert wait_until(ib, lambda: ib.portfolio() and ib.portfolio()[0].position == 60)
            item = ib.portfolio()[0]
            assert item.averageCost == pytest.approx(price)
            assert item.realizedPNL == pytest.approx((sell_price - price) * 40, abs=0.01)
            values = _values(ib)
            cash = 1_000_000.0 - 100 * price + 40 * sell_price - 2.0  # two $1 commissions
            assert values["TotalCashValue"] == pytest.approx(cash, abs=0.01)
            assert values["NetLiquidation"] == pytest.approx(cash + 60 * item.marketPrice, abs=0.01)
            assert wait_until(ib, lambda: single.position == 60)
            assert pnl.realizedPnL == pytest.approx((sell_price - price) * 40 - 2.0, abs=0.01)
            assert abs(mid - price) < 5


def test_positions_multi_and_account_updates_multi():
    with Simulator(seed=5) as sim:
        with connected(sim.port, client_id=53) as ib:
            trade = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 10))
            assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
            rows: list[tuple] = []
            original = ib.wrapper.positionMulti

            def position_multi(*a):
                rows.append(a)
                return original(*a)

            ib.wrapper.positionMulti = position_multi
            ib.client.reqPositionsMulti(777, ACCOUNT, "")
            assert wait_until(ib, lambda: len(rows) == 1)
            _req, account, _model, contract, qty, _avg = rows[0]
            assert (account, contract.conId, qty) == (ACCOUNT, 265598, 10)
            ib.reqAccountUpdatesMulti(ACCOUNT)
            multi = [f for d, _c, f in sim.wire_log if d == "out" and f[0] == "73" and f[5] == "NetLiquidation"]
            assert multi and float(multi[-1][6]) == pytest.approx(_values(ib)["NetLiquidation"], abs=1.0)
