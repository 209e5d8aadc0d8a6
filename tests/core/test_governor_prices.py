"""How the governor prices orders without a limit price, and what it refuses to guess (multipliers)."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from ledger.core import events as ev
from tests.support.governor import Session

UNSET = sys.float_info.max  # what ib_insync / ib_async put in every unset price

CFG = """
[limits]
max_notional = 10000.0
[prices]
reference = { AAPL = 50.0 }
"""


def _fill(s: Session, oid: int, price: float, con_id: int = 265598) -> None:
    s.event(ev.ExecDetails(exec_id=f"e{oid}", order_id=oid, client_id=1, shares=1, price=price,
                           symbol="AAPL", con_id=con_id, side="BOT"))


def test_market_price_beats_last_fill_beats_reference():
    s = Session(CFG)
    d = s.place(1, qty=100, price=None)
    assert (d.decision, d.details["price_source"], d.details["price"]) == ("ALLOW", "reference", 50.0)
    _fill(s, 99, 80.0)
    d = s.place(2, qty=100, price=None)
    assert (d.details["price_source"], d.details["price"]) == ("last_fill", 80.0)
    s.event(ev.PriceObserved(con_id=265598, symbol="AAPL", price=120.0, tick="last"))
    d = s.place(3, qty=100, price=None, con_id=265598)
    assert (d.decision, d.reason, d.details["price_source"]) == ("BLOCK", "MAX_NOTIONAL", "market")
    assert d.details["value"] == 12000.0 and d.details["limit"] == 10000.0


def test_observation_for_another_contract_of_the_same_symbol_is_used_only_without_a_con_id():
    s = Session(CFG)
    s.event(ev.PriceObserved(con_id=111, symbol="AAPL", price=200.0))
    s.event(ev.PriceObserved(con_id=222, symbol="AAPL", price=20.0))
    assert s.place(1, qty=100, price=None, con_id=111).reason == "MAX_NOTIONAL"
    # without a con_id the latest observation for the symbol decides
    assert s.place(2, qty=100, price=None).details["price"] == 20.0


def test_an_option_is_never_priced_at_its_underlying():
    s = Session(CFG + "multipliers = { AAPL = 100 }\n")
    s.event(ev.PriceObserved(con_id=265598, symbol="AAPL", sec_type="STK", price=190.0))
    # an option on AAPL (its own con_id, no observation of its own): not 190 x 100, but the reference
    d = s.place(1, qty=1, price=None, sec_type="OPT", con_id=7001)
    assert (d.details["price_source"], d.details["price"]) == ("reference", 50.0)
    s.event(ev.PriceObserved(con_id=7001, symbol="AAPL", sec_type="OPT", price=2.5))
    d = s.place(2, qty=1, price=None, sec_type="OPT", con_id=7001)
    assert (d.decision, d.details["price"], d.details["notional"]) == ("ALLOW", 2.5, 250.0)
    # the stock still takes the stock's price
    assert s.place(3, qty=1, price=None, sec_type="STK", con_id=265598).details["price"] == 190.0


def test_unset_sentinels_are_no_price():
    s = Session(CFG)
    d = s.place(1, qty=10, price=UNSET, aux_price=UNSET, order_type="MKT")
    assert d.decision == "ALLOW" and d.details["price"] == 50.0 and d.details["price_source"] == "reference"
    s.event(ev.PriceObserved(symbol="AAPL", price=UNSET))  # an unset tick changes nothing
    assert s.place(2, qty=10, price=None).details["price_source"] == "reference"


def test_stop_is_priced_at_its_trigger_and_trail_amount_is_not_a_price():
    s = Session(CFG)
    d = s.place(1, qty=100, price=UNSET, aux_price=120.0, order_type="STP")
    assert (d.reason, d.details["price_source"], d.details["price"]) == ("MAX_NOTIONAL", "stop", 120.0)
    d = s.place(2, qty=100, price=UNSET, aux_price=2.0, order_type="TRAIL")
    assert (d.decision, d.details["price_source"], d.details["price"]) == ("ALLOW", "reference", 50.0)


def test_no_price_at_all_blocks_market_orders_with_a_way_out():
    s = Session()
    d = s.place(1, qty=10, price=None, symbol="MSFT")
    assert (d.decision, d.reason) == ("BLOCK", "MARKET_ORDER_NO_PRICE")
    assert "reqMktData" in d.message and "[prices].reference.MSFT" in d.message
    s.event(ev.PriceObserved(symbol="MSFT", price=300.0, origin="snapshot"))
    assert s.place(2, qty=10, price=None, symbol="MSFT").decision == "ALLOW"


def test_futures_need_a_known_multiplier():
    s = Session(CFG)
    d = s.place(1, qty=1, price=5000.0, symbol="ES", sec_type="FUT")
    assert (d.decision, d.reason) == ("BLOCK", "UNKNOWN_MULTIPLIER")
    assert "[prices].multipliers.ES" in d.message
    d = s.place(2, qty=1, price=5000.0, symbol="ES", sec_type="FUT", contract={"multiplier": "50"})
    assert (d.reason, d.details["notional"]) == ("MAX_NOTIONAL", 250000.0)
    # the multiplier the broker sent for the con_id is used when the order's contract lacks one
    s.event(ev.OpenOrder(order_id=77, client_id=2, symbol="MES", sec_type="FUT", con_id=9,
                         contract={"multiplier": "5"}))
    d = s.place(3, qty=1, price=500.0, symbol="MES", sec_type="FUT", con_id=9)
    assert (d.decision, d.details["multiplier"]) == ("ALLOW", 5.0)
    s2 = Session(CFG + "multipliers = { ES = 50 }\n")
    assert s2.place(1, qty=1, price=100.0, symbol="ES", sec_type="FUT").details["multiplier"] == 50.0
    # stocks without one stay x1
    assert s2.place(2, qty=1, price=100.0).details["multiplier"] == 1.0


def test_stale_from_disconnect_or_1100_until_the_reconciliation_after_it_ended():
    for cause in (ev.Disconnected(reason="peer reset"), ev.Error(req_id=-1, code=1100, message="lost")):
        s = Session(CFG)
        assert s.place(1).decision == "ALLOW"
        s.event(cause)
        assert s.place(2).reason == "LEDGER_STALE"
        s.event(ev.Connected(host="127.0.0.1", port=7497, client_id=1))
        assert s.place(3).reason == "LEDGER_STALE"  # reconnected, not reconciled: still stale
        s.event(ev.ReconcileStarted(reason="reconnect"))
        assert s.place(4).reason == "RECONCILING"
        s.event(ev.ReconcileEnded(ok=True))
        assert s.place(5).decision == "ALLOW"
        assert s.intent(ev.CancelOrder(order_id=5, client_id=1)).decision == "ALLOW"


@given(st.lists(st.tuples(st.sampled_from(["obs", "fill"]), st.floats(1, 1000)), max_size=12))
def test_price_source_is_the_highest_ranked_one_present(steps):
    s = Session(CFG)
    market = fill = None
    for i, (kind, price) in enumerate(steps):
        if kind == "obs":
            s.event(ev.PriceObserved(symbol="AAPL", price=price))
            market = price
        else:
            _fill(s, 1000 + i, price)
            fill = price
    d = s.place(1, qty=1, price=None)
    want = (50.0, "reference")
    if fill is not None:
        want = (fill, "last_fill")
    if market is not None:
        want = (market, "market")
    assert (d.details["price"], d.details["price_source"]) == want
