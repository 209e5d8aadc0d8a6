"""Every shipped scenario, end to end: the unmodified client on a real socket receives exactly the
scripted wrapper-level callback sequence.

Expectations are written from each scenario's meaning (quantities, prices, statuses), not read back
from the simulator. ``S(status, filled, remaining, avgFillPrice, lastFillPrice, whyHeld)``,
``O(status)`` an openOrder, ``X(exec, shares, price, cumQty, avgPrice)``, ``C(exec, commission)``,
``E(code)``; execs are named by prefix order (``A.01``; ``A.02`` corrects it; ``B.01`` is the next).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ledger.ib.library import LimitOrder, Stock
from replay.tws.protocol import MANUAL_EXEC_ORDER_ID
from replay.tws.scenarios import BUILTIN_DIR, load_dir
from replay.tws.simulator import Simulator
from tests.support.simulator import Recorder, connected, wait_events


def S(status: str, filled: float, remaining: float, avg: float = 0.0, last: float = 0.0, why: str = ""):
    return ("status", status, float(filled), float(remaining), float(avg), float(last), why)


def O(status: str) -> tuple:  # noqa: E743 - reads like the message name
    return ("open", status)


def X(exec_: str, shares: float, price: float, cum: float, avg: float) -> tuple:
    return ("exec", exec_, float(shares), float(price), float(cum), float(avg))


def C(exec_: str, commission: float) -> tuple:
    return ("comm", exec_, float(commission))


def E(code: int) -> tuple:
    return ("error", code)


@dataclass
class Case:
    before: list[tuple]
    action: str = ""  # "", "cancel" or "modify"
    after: list[tuple] = field(default_factory=list)
    qty: float = 100
    lmt: float = 100.0
    tif: str = ""
    order_ref: str | None = None  # None: the scenario's name
    symbol: str = "AAPL"
    client_id: int = 1
    quiet_before: float = 0.0  # seconds during which nothing may arrive


FILL_100 = [X("A.01", 100, 100.0, 100, 100.0), C("A.01", 1.0), S("Filled", 100, 0, 100.0, 100.0)]


def _fill(price: float, commission: float = 1.0) -> list[tuple]:
    return [X("A.01", 100, price, 100, price), C("A.01", commission), S("Filled", 100, 0, price, price)]


LIVE = [O("Submitted"), S("Submitted", 0, 100)]

CASES: dict[str, Case] = {
    "default": Case(
        before=LIVE,
        action="cancel",
        after=[S("PendingCancel", 0, 100), S("Cancelled", 0, 100), E(202)],
        order_ref="",
        symbol="IBM",
    ),
    "fill_simple": Case(before=LIVE + FILL_100),
    "duplicate_status": Case(
        before=[O("Submitted"), S("Submitted", 0, 100), S("Submitted", 0, 100)]
        + _fill(101.0)
        + [S("Filled", 100, 0, 101.0, 101.0)]
    ),
    "presubmitted_fill": Case(before=[O("PreSubmitted"), S("PreSubmitted", 0, 100)] + _fill(50.25, 0.35)),
    "partial_fills": Case(
        before=LIVE
        + [
            X("A.01", 30, 100.0, 30, 100.0),
            C("A.01", 0.3),
            S("Submitted", 30, 70, 100.0, 100.0),
            X("B.01", 70, 100.5, 100, 100.35),
            C("B.01", 0.7),
            S("Filled", 100, 0, 100.35, 100.5),
        ]
    ),
    "partial_presubmitted": Case(
        before=[
            O("PreSubmitted"),
            S("PreSubmitted", 0, 100),
            X("A.01", 40, 20.0, 40, 20.0),
            C("A.01", 1.0),
            S("PreSubmitted", 40, 60, 20.0, 20.0),
            X("B.01", 60, 20.1, 100, 20.06),
            C("B.01", 1.0),
            S("Filled", 100, 0, 20.06, 20.1),
        ]
    ),
    "exec_before_status": Case(
        before=[X("A.01", 100, 10.0, 100, 10.0), C("A.01", 1.0), O("Filled"), S("Filled", 100, 0, 10.0, 10.0)]
    ),
    "commission_before_exec": Case(
        before=LIVE + [C("A.01", 1.25), X("A.01", 100, 30.0, 100, 30.0), S("Filled", 100, 0, 30.0, 30.0)]
    ),
    "commission_duplicated": Case(
        before=LIVE + [X("A.01", 100, 31.0, 100, 31.0), C("A.01", 1.0), C("A.01", 1.0), S("Filled", 100, 0, 31.0, 31.0)]
    ),
    "commission_unknown_exec": Case(
        before=LIVE
        + [X("A.01", 100, 32.0, 100, 32.0), C("B.01", 9.99), C("A.01", 1.0), S("Filled", 100, 0, 32.0, 32.0)]
    ),
    "exec_correction": Case(before=LIVE + FILL_100 + [X("A.02", 100, 100.05, 100, 100.05), C("A.02", 1.0)]),
    "cancel_202_before_cancelled": Case(before=LIVE, action="cancel", after=[E(202), S("Cancelled", 0, 100)]),
    "cancel_202_after_cancelled": Case(
        before=LIVE, action="cancel", after=[S("PendingCancel", 0, 100), S("Cancelled", 0, 100), E(202)]
    ),
    "partial_then_cancel": Case(
        before=LIVE + [X("A.01", 40, 75.0, 40, 75.0), C("A.01", 1.0), S("Submitted", 40, 60, 75.0, 75.0)],
        action="cancel",
        after=[S("PendingCancel", 40, 60, 75.0, 75.0), S("Cancelled", 40, 60, 75.0, 75.0), E(202)],
    ),
    "cancel_races_fill": Case(
        before=LIVE,
        action="cancel",
        after=[S("PendingCancel", 0, 100)] + _fill(60.0) + [E(10148)],
    ),
    "cancel_refused": Case(
        before=LIVE,
        action="cancel",
        after=[S("PendingCancel", 0, 100), S("Submitted", 0, 100)] + _fill(61.0),
    ),
    "unsolicited_cancel": Case(before=LIVE + [S("Cancelled", 0, 100), E(202)]),
    "fok_immediate_cancel": Case(before=[O("PreSubmitted"), S("Cancelled", 0, 100)], tif="FOK", order_ref=""),
    "ioc_partial_cancel": Case(
        before=[O("Submitted"), X("A.01", 30, 12.5, 30, 12.5), C("A.01", 1.0)] + [S("Cancelled", 30, 70, 12.5, 12.5)],
        tif="IOC",
        order_ref="",
    ),
    "reject_201": Case(before=[E(201), S("Inactive", 0, 100)]),
    "info_10349_then_fill": Case(
        before=[E(10349), O("PreSubmitted"), S("PreSubmitted", 0, 100), S("Submitted", 0, 100)] + _fill(44.0)
    ),
    "warning_399_then_fill": Case(
        before=[E(399), O("PreSubmitted"), S("PreSubmitted", 0, 100), S("Submitted", 0, 100)] + _fill(45.0)
    ),
    "held_404_then_fill": Case(
        before=[E(404), O("PreSubmitted"), S("PreSubmitted", 0, 100, why="locate"), S("Submitted", 0, 100)]
        + _fill(46.0)
    ),
    "error_110_then_live": Case(before=[E(110)] + LIVE + _fill(47.0)),
    "inactive_whyheld_then_live": Case(
        before=[
            O("Inactive"),
            S("Inactive", 0, 100, why="locate"),
            S("PreSubmitted", 0, 100),
            S("Submitted", 0, 100),
        ]
        + _fill(48.0)
    ),
    "stuck_presubmitted": Case(before=[O("PreSubmitted"), S("PreSubmitted", 0, 100)]),
    "long_silence": Case(before=LIVE, quiet_before=1.2),
    "modify_ack": Case(before=LIVE, action="modify", after=[O("Submitted"), S("Submitted", 0, 200)]),
    "manual_tws_order": Case(
        before=LIVE
        + [
            O("Submitted"),
            S("Submitted", 0, 10),
            X("A.01", 10, 400.0, 10, 400.0),
            C("A.01", 1.05),
            O("Filled"),
            S("Filled", 10, 0, 400.0, 400.0),
        ],
        client_id=0,
    ),
    "drop_mid_fill": Case(
        before=LIVE + [X("A.01", 50, 90.0, 50, 90.0), C("A.01", 1.0), S("Submitted", 50, 50, 90.0, 90.0)]
    ),
}


def test_every_shipped_scenario_has_an_end_to_end_case():
    shipped = {s.name for s in load_dir(BUILTIN_DIR)}
    assert len(shipped) >= 20
    assert shipped <= set(CASES), f"scenarios without a test: {sorted(shipped - set(CASES))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_scenario_callback_sequence(sim: Simulator, name: str):
    case = CASES[name]
    with connected(sim.port, client_id=case.client_id) as ib:
        rec = Recorder(ib)
        order_ref = name if case.order_ref is None else case.order_ref
        order = LimitOrder("BUY", case.qty, case.lmt, orderRef=order_ref)
        if case.tif:
            order.tif = case.tif
        trade = ib.placeOrder(Stock(case.symbol, "SMART", "USD"), order)
        if case.quiet_before:
            ib.sleep(case.quiet_before)
            assert rec.of() == [], "messages arrived during the scripted silence"
        got = wait_events(ib, rec, len(case.before))
        assert got == case.before
        if case.action == "cancel":
            ib.cancelOrder(trade.order)
        elif case.action == "modify":
            trade.order.totalQuantity = 200
            trade.order.lmtPrice = 99.5
            ib.placeOrder(trade.contract, trade.order)
        if case.action:
            got = wait_events(ib, rec, len(case.before) + len(case.after))
            assert got == case.before + case.after

        # ids: every message about our order carries our orderId and the broker's permId
        ours = sim.broker.find(case.client_id, trade.order.orderId)
        assert ours is not None and ours.perm_id > 0
        assert ours.spec.orderRef == order_ref
        for args in rec.raw_of("status"):
            if args[5] == ours.perm_id:
                assert args[0] == trade.order.orderId and args[8] == case.client_id
        for _req, _c, ex in rec.raw_of("exec"):
            assert _req == -1  # live executions
            if ex.permId == ours.perm_id:
                assert ex.orderId == trade.order.orderId and ex.clientId == case.client_id
        for req_id, code, *_ in rec.raw_of("error"):
            assert req_id == trade.order.orderId, (code, req_id)
        if case.action == "modify":
            assert ours.spec.totalQuantity == 200 and ours.spec.lmtPrice == 99.5
            _oid, _contract, o, _state = rec.raw_of("open")[-1]
            assert (o.totalQuantity, o.lmtPrice, o.permId) == (200, 99.5, ours.perm_id)
        if name == "manual_tws_order":
            manual = [o for o in sim.broker.all_orders() if o.manual]
            assert len(manual) == 1 and manual[0].perm_id != ours.perm_id
            m_status = [a for a in rec.raw_of("status") if a[5] == manual[0].perm_id]
            assert m_status and all(a[0] == 0 for a in m_status)
            (m_exec,) = [ex for _r, _c, ex in rec.raw_of("exec") if ex.permId == manual[0].perm_id]
            assert m_exec.orderId in (MANUAL_EXEC_ORDER_ID, 0)  # ib_insync/ib_async map 2147483647 to 0
            assert m_exec.side == "SLD"
