"""Fills that follow the market (default scenario), driven with real client orders over the socket."""

from __future__ import annotations

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.simulator import Simulator
from tests.support.simulator import connected, wait_until

pytestmark = pytest.mark.ibclient

AAPL = iblib.Stock("AAPL", "SMART", "USD")


@pytest.fixture
def sim():
    with Simulator(seed=11) as s:
        yield s


@pytest.fixture
def ib(sim: Simulator):
    with connected(sim.port, client_id=41) as client:
        yield client


def _quote(sim: Simulator):
    inst = sim.catalogue.resolve(AAPL_SPEC)
    return sim.market.quote(inst, sim.broker.clock.epoch())


AAPL_SPEC = None


@pytest.fixture(autouse=True)
def _spec():
    global AAPL_SPEC
    from replay.tws.protocol import ContractSpec

    AAPL_SPEC = ContractSpec(symbol="AAPL", secType="STK", currency="USD")


def test_market_order_fills_at_the_touch(sim: Simulator, ib):
    q = _quote(sim)
    trade = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 100))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
    assert trade.orderStatus.avgFillPrice == q.ask
    assert sum(f.execution.shares for f in trade.fills) == 100
    assert all(f.commissionReport.commission == 1.0 for f in trade.fills)
    sell = ib.placeOrder(AAPL, iblib.MarketOrder("SELL", 100))
    assert wait_until(ib, lambda: sell.orderStatus.status == "Filled")
    assert sell.orderStatus.avgFillPrice < trade.orderStatus.avgFillPrice  # paid the spread


def test_large_market_order_fills_in_pieces_by_displayed_size(sim: Simulator, ib):
    trade = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 5000))
    assert wait_until(ib, lambda: len(trade.fills) >= 1)
    assert trade.orderStatus.status == "Submitted" and trade.orderStatus.filled < 5000
    for _ in range(100):
        if trade.orderStatus.status == "Filled":
            break
        sim.advance(1)
        ib.sleep(0.01)
    assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
    assert len(trade.fills) > 1 and sum(f.execution.shares for f in trade.fills) == 5000
    truth = sim.broker.position_of("DU1234567", 265598)
    assert truth is not None and truth.qty == 5000


def test_limit_rests_until_the_path_crosses_it(sim: Simulator, ib):
    q = _quote(sim)
    trade = ib.placeOrder(AAPL, iblib.LimitOrder("BUY", 10, round(q.bid - 0.30, 2)))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    lmt = trade.order.lmtPrice
    for _ in range(3000):
        sim.advance(60)
        ib.sleep(0)
        if trade.orderStatus.status == "Filled":
            break
    assert wait_until(ib, lambda: trade.orderStatus.status == "Filled", timeout=5)
    assert trade.orderStatus.avgFillPrice <= lmt
    marketable = ib.placeOrder(AAPL, iblib.LimitOrder("SELL", 10, 1.0))
    assert wait_until(ib, lambda: marketable.orderStatus.status == "Filled")
    assert marketable.orderStatus.avgFillPrice > 1.0  # filled at the bid, not at the limit


def test_stop_triggers_from_the_path(sim: Simulator, ib):
    q = _quote(sim)
    stop = ib.placeOrder(AAPL, iblib.StopOrder("SELL", 10, round(q.bid - 0.20, 2)))
    assert wait_until(ib, lambda: stop.orderStatus.status == "PreSubmitted")
    up = ib.placeOrder(AAPL, iblib.StopOrder("BUY", 10, round(q.ask + 0.20, 2)))
    for _ in range(3000):
        sim.advance(60)
        ib.sleep(0)
        if "Filled" in (stop.orderStatus.status, up.orderStatus.status):
            break
    assert wait_until(ib, lambda: "Filled" in (stop.orderStatus.status, up.orderStatus.status), timeout=5)
    if stop.orderStatus.status == "Filled":
        assert stop.orderStatus.avgFillPrice <= stop.order.auxPrice + 0.05
    else:
        assert up.orderStatus.avgFillPrice >= up.order.auxPrice - 0.05


def test_ioc_and_fok_without_the_tif_quirk_scenarios():
    # the built-in quirk scenarios claim every IOC / FOK order by tif; without them the market decides
    with Simulator(seed=11, scenarios_dir=[]) as s:
        with connected(s.port, client_id=42) as ib:
            q = _quote(s)
            ioc = ib.placeOrder(AAPL, iblib.LimitOrder("BUY", 10, round(q.bid - 1, 2), tif="IOC"))
            assert wait_until(ib, lambda: ioc.orderStatus.status == "Cancelled")
            assert ioc.orderStatus.filled == 0
            fill = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 10, tif="IOC"))
            assert wait_until(ib, lambda: fill.orderStatus.status == "Filled")
            fok = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 100_000, tif="FOK"))
            assert wait_until(ib, lambda: fok.orderStatus.status == "Cancelled")
            assert not fok.fills


def test_ioc_still_selects_its_quirk_scenario(ib):
    ioc = ib.placeOrder(AAPL, iblib.LimitOrder("BUY", 100, 12.5, tif="IOC"))
    assert wait_until(ib, lambda: ioc.orderStatus.status == "Cancelled")
    assert ioc.orderStatus.filled == 30  # ioc_partial_cancel, unchanged


def test_bracket_children_wait_for_the_parent_then_oca(sim: Simulator, ib):
    q = _quote(sim)
    bracket = ib.bracketOrder("BUY", 10, round(q.bid - 0.50, 2), round(q.ask + 0.05, 2), round(q.bid - 3.0, 2))
    trades = [ib.placeOrder(AAPL, o) for o in bracket]
    parent, tp, sl = trades
    assert wait_until(ib, lambda: parent.orderStatus.status == "Submitted" and tp.orderStatus.status == "PreSubmitted")
    assert sl.orderStatus.status == "PreSubmitted" and not tp.fills
    # bring the parent into the market: modify it to a marketable limit
    parent.order.lmtPrice = round(q.ask + 1.0, 2)
    ib.placeOrder(AAPL, parent.order)
    assert wait_until(ib, lambda: parent.orderStatus.status == "Filled")
    assert wait_until(ib, lambda: tp.orderStatus.status in ("Submitted", "Filled"))
    for _ in range(3000):
        if tp.orderStatus.status == "Filled" or sl.orderStatus.status == "Filled":
            break
        sim.advance(30)
        ib.sleep(0)
    assert wait_until(ib, lambda: "Cancelled" in (tp.orderStatus.status, sl.orderStatus.status), timeout=5)
    assert {tp.orderStatus.status, sl.orderStatus.status} == {"Filled", "Cancelled"}
    truth = {o.order_id: o.status for o in sim.broker.all_orders()}
    assert truth[tp.order.orderId] == tp.orderStatus.status and truth[sl.order.orderId] == sl.orderStatus.status


def test_transmit_false_is_held_and_parent_cancel_cancels_children(sim: Simulator, ib):
    q = _quote(sim)
    parent, tp, sl = ib.bracketOrder("BUY", 10, round(q.bid - 2, 2), round(q.ask + 2, 2), round(q.bid - 4, 2))
    t_parent = ib.placeOrder(AAPL, parent)
    ib.sleep(0.1)
    assert sim.wire_log and not [f for d, _c, f in sim.wire_log if d == "out" and f[0] in ("3", "5")]
    t_tp = ib.placeOrder(AAPL, tp)
    t_sl = ib.placeOrder(AAPL, sl)
    assert wait_until(ib, lambda: t_parent.orderStatus.status == "Submitted" and t_sl.orderStatus.status)
    ib.cancelOrder(parent)
    assert wait_until(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in (t_parent, t_tp, t_sl)))
    assert all(o.status == "Cancelled" for o in sim.broker.all_orders())


def test_what_if_answers_margin_and_never_places(sim: Simulator, ib):
    state = ib.whatIfOrder(AAPL, iblib.MarketOrder("BUY", 100))
    assert float(state.initMarginChange) > 0 and state.commission == 1.0 and state.commissionCurrency == "USD"
    assert sim.broker.all_orders() == []
    assert ib.openTrades() == []


def test_modify_sends_the_current_status_never_an_empty_one(sim: Simulator, ib):
    q = _quote(sim)
    trade = ib.placeOrder(AAPL, iblib.LimitOrder("BUY", 10, round(q.bid - 5, 2)))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    trade.order.lmtPrice = round(q.bid - 6, 2)
    ib.placeOrder(AAPL, trade.order)
    ib.sleep(0.2)
    statuses = [f[2] for d, _c, f in sim.wire_log if d == "out" and f[0] == "3"]
    assert statuses and "" not in statuses


def test_quirk_scenarios_stay_selectable_by_order_ref(sim: Simulator, ib):
    trade = ib.placeOrder(AAPL, iblib.LimitOrder("BUY", 100, 100.0, orderRef="fill_simple"))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
    assert trade.orderStatus.avgFillPrice == 100.0  # the scenario's price, not the market's


def test_slippage_ticks_move_the_fill_price_away_from_the_touch():
    with Simulator(seed=11, slippage_ticks=3) as s:
        with connected(s.port, client_id=43) as ib:
            q = _quote(s)
            trade = ib.placeOrder(AAPL, iblib.MarketOrder("BUY", 10))
            assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
            assert trade.orderStatus.avgFillPrice == pytest.approx(q.ask + 0.03)
