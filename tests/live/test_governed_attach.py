"""``Recorder.attach(ib, store, governor=...)``: an unmodified strategy's orders are checked before they leave.

Real parts only: the unmodified client (ib_insync, or ib_async with IBLEDGER_IB_LIB=ib_async) over a real
socket to the project's TWS simulator, a real SQLite store, the real CLI for ``verify`` / ``replay``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import ledger
from ledger.core import events as ev
from ledger.core.governor_config import parse_config
from ledger.ib.library import IB, LimitOrder, MarketOrder, Stock
from ledger.ib.library import ib as client_library
from ledger.live.recorder import Recorder
from ledger.store import open_store
from replay.tws.simulator import Simulator
from tests.support.recording import run_async, stored, until, wait_for

pytestmark = pytest.mark.ibclient

StopOrder = client_library.StopOrder
IBLEDGER = [sys.executable, "-m", "ledger.cli"]
AAPL_CON_ID = 265598
GOVERNOR = """
[limits]
max_qty = 1000.0
max_notional = 200000.0
max_orders_per_sec = 0
max_orders_per_min = 0
[prices]
reference = { AAPL = 150.0 }
"""


def aapl() -> Stock:
    c = Stock("AAPL", "SMART", "USD")
    c.conId = AAPL_CON_ID  # until the simulator answers contract details (qualifyContracts)
    return c


def placed_at_broker(sim: Simulator) -> set[int]:
    """Order ids of every PLACE_ORDER that reached the simulator."""
    return {int(f[1]) for d, _cid, f in sim.wire_log if d == "in" and f and f[0] == "3"}


def decisions(envs: list[ev.Envelope]) -> dict[int, list[ev.GovernorDecision]]:
    out: dict[int, list[ev.GovernorDecision]] = {}
    for e in envs:
        if e.kind == "governor_decision" and e.payload.action in ("place", "modify", "cancel"):
            out.setdefault(e.payload.order_id, []).append(e.payload)
    return out


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IBLEDGER, *args], capture_output=True, text=True, timeout=120)


def test_a_typical_strategy_under_the_governor(sim, sqlite_url, tmp_path):
    gov = tmp_path / "governor.toml"
    gov.write_text(GOVERNOR)
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, governor=str(gov), enforce=True)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=21, timeout=5)
        assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
        contract = aapl()
        ticker = ib.reqMktData(contract)  # answered once the simulator has market data
        ib.sleep(0.2)
        observed = [e.payload.price for e in stored_now(rec) if e.kind == "price_observed"]

        lmt = ib.placeOrder(contract, LimitOrder("BUY", 10, 100.0))
        mkt = ib.placeOrder(contract, MarketOrder("BUY", 10))
        stp = ib.placeOrder(contract, StopOrder("SELL", 10, 90.0))
        bracket = ib.bracketOrder("BUY", 5, 100.0, 110.0, 95.0)
        bracket_trades = [ib.placeOrder(contract, o) for o in bracket]

        big = LimitOrder("BUY", 5000, 100.0)
        with pytest.raises(ledger.OrderBlocked) as blocked:
            ib.placeOrder(contract, big)
        # accepted by the broker: working, held (bracket children) or, against the simulator's market, filled
        assert wait_for(ib, lambda: all(t.orderStatus.status in ("Submitted", "PreSubmitted", "Filled")
                                        for t in (lmt, mkt, stp, *bracket_trades)), 10)
        lmt.order.lmtPrice = 101.0
        ib.placeOrder(contract, lmt.order)  # a modify
        assert wait_for(ib, lambda: any(e.kind == "modify_order" for e in stored_now(rec)), 10)
        ib.cancelOrder(lmt.order)
        assert wait_for(ib, lambda: lmt.orderStatus.status == "Cancelled", 10)
        ib.cancelMktData(contract)
        del ticker
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()

    # the over-limit order: refused with the numbers, never sent, recorded
    d = blocked.value.decision
    assert (blocked.value.reason, blocked.value.limit, blocked.value.value) == ("MAX_QTY", 1000.0, 5000.0)
    assert d.decision == "BLOCK" and "nothing was sent" in str(blocked.value)
    sent = placed_at_broker(sim)
    assert big.orderId not in sent
    assert sim.broker.find(21, big.orderId) is None
    assert {lmt.order.orderId, mkt.order.orderId, stp.order.orderId} | {o.orderId for o in bracket} <= sent

    envs = stored(sqlite_url, rec.session_id)
    by_order = decisions(envs)
    assert [x.reason for x in by_order[big.orderId]] == ["MAX_QTY"]
    intent_kinds = [e.kind for e in envs if getattr(e.payload, "order_id", None) == big.orderId]
    assert intent_kinds == ["place_order", "governor_decision"]  # recorded, and nothing from the broker

    # MKT priced from the market if the simulator sent prices, else from the reference; STP at its stop
    (m,) = by_order[mkt.order.orderId]
    assert m.decision == "ALLOW"
    mkt_seq = next(e.seq for e in envs if e.kind == "place_order" and e.payload.order_id == mkt.order.orderId)
    before = [e.payload.price for e in envs if e.kind == "price_observed" and e.seq < mkt_seq]
    if observed or before:
        assert (m.details["price_source"], m.details["price"]) == ("market", before[-1])
    else:
        assert (m.details["price_source"], m.details["price"]) == ("reference", 150.0)
    (s,) = by_order[stp.order.orderId]
    assert (s.decision, s.details["price_source"], s.details["price"]) == ("ALLOW", "stop", 90.0)
    parent, take_profit, stop_loss = (by_order[o.orderId] for o in bracket)
    assert [x.details["price"] for x in (parent[0], take_profit[0], stop_loss[0])] == [100.0, 110.0, 95.0]
    assert all(x.decision == "ALLOW" for x in (*parent, *take_profit, *stop_loss))
    # the modify and the cancel were checked too
    assert [(x.action, x.decision) for x in by_order[lmt.order.orderId]] == [
        ("place", "ALLOW"), ("modify", "ALLOW"), ("cancel", "ALLOW")
    ]
    modify = next(e.payload for e in envs if e.kind == "modify_order")
    assert modify.lmt_price == 101.0

    r = cli("verify", "--json", "--store", sqlite_url)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"] == len(envs)
    # the replay re-decides every order the same way (recorded prices make it deterministic)
    r = cli("replay", rec.session_id, "--store", sqlite_url, "--check", "--json", "--no-progress")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


def stored_now(rec: Recorder) -> list[ev.Envelope]:
    rec.flush()
    return stored(rec.store.url, rec.session_id)


def test_observed_prices_price_market_orders_and_a_busy_feed_is_sampled(sim, sqlite_url):
    """The strategy's own ticks (wrapper.priceSizeTick, as the decoder calls it) become price_observed."""
    ib = IB()
    cfg = parse_config(GOVERNOR.replace("max_notional = 200000.0", "max_notional = 150000.0"))
    rec = Recorder.attach(ib, sqlite_url, governor=cfg, enforce=True)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=22, timeout=5)
        assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
        contract = aapl()
        ib.reqMktData(contract)
        req_id = next(r for r, t in ib.wrapper.reqId2Ticker.items() if t.contract is contract)
        ib.sleep(0.1)
        from_sim = [e for e in stored_now(rec) if e.kind == "price_observed"]  # if the simulator sends prices
        seen0 = rec.prices.seen
        # a burst of ticks as the decoder delivers them: 200 last prices within well under a second
        for i in range(200):
            ib.wrapper.priceSizeTick(req_id, 4, 180.0 + (i % 7) * 0.01, 100)
        ib.wrapper.priceSizeTick(req_id, 4, sys.float_info.max, 0)  # an unset price: no observation
        trade = ib.placeOrder(contract, MarketOrder("BUY", 10))
        big_blocked: ledger.OrderBlocked | None = None
        try:
            ib.placeOrder(contract, MarketOrder("BUY", 1000))  # 1000 x 180 > 150k
        except ledger.OrderBlocked as exc:
            big_blocked = exc
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    obs = [e for e in envs if e.kind == "price_observed"]
    burst = obs[len(from_sim):]
    assert rec.prices.seen - seen0 >= 201  # every tick seen ...
    if not from_sim:
        assert [(e.payload.price, e.payload.con_id) for e in burst] == [(180.0, AAPL_CON_ID)]  # ... one kept
    else:  # the simulator's own ticks came first: the burst adds at most one within the second
        assert len(burst) <= 1
    intent_seq = next(e.seq for e in envs if e.kind == "place_order" and e.payload.order_id == trade.order.orderId)
    latest = [e.payload.price for e in obs if e.seq < intent_seq][-1]
    by_order = decisions(envs)
    (m,) = by_order[trade.order.orderId]
    assert (m.decision, m.details["price_source"], m.details["price"]) == ("ALLOW", "market", latest)
    if latest * 1000 > 150_000:
        assert big_blocked is not None and big_blocked.reason == "MAX_NOTIONAL" and big_blocked.value == latest * 1000
    else:
        assert big_blocked is None


def test_shadow_mode_records_what_would_be_blocked_and_sends_everything(sim, sqlite_url):
    async def main() -> tuple[Recorder, int]:
        ib = IB()
        rec = Recorder.attach(ib, sqlite_url, governor=parse_config(GOVERNOR), enforce=False)
        try:
            await ib.connectAsync("127.0.0.1", sim.port, clientId=23, timeout=5)
            await until(lambda: not rec.reconciling and not rec.fold.reconciling, timeout=10.0)
            trade = ib.placeOrder(aapl(), LimitOrder("BUY", 5000, 100.0))  # over max_qty: sent anyway
            await until(lambda: trade.orderStatus.status == "Submitted", timeout=10.0)
            await rec.flush_async()
            return rec, trade.order.orderId
        finally:
            ib.disconnect()
            rec.close()

    rec, oid = run_async(main())
    assert oid in placed_at_broker(sim)
    envs = stored(sqlite_url, rec.session_id)
    (d,) = [e.payload for e in envs if e.kind == "governor_decision" and e.payload.order_id == oid]
    assert (d.decision, d.reason, d.action, d.details["shadow"]) == ("BLOCK", "MAX_QTY", "shadow_place", 1)
    view = rec.fold.order_for(23, oid)
    assert view is not None and view.state == "Working"  # the fold does not take a shadow BLOCK for blocked
    r = cli("replay", rec.session_id, "--store", sqlite_url, "--check", "--json", "--no-progress")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr


def test_kill_switch_cancels_ahead_of_the_throttle_and_drops_unsent_placements(sim, sqlite_url):
    """100 placements in one burst: the client sends 45 and queues the rest (its own throttle). A halt with
    cancel-all must not wait ~1 s behind them: queued placements are dropped, cancels go out at once."""
    cfg = parse_config("""
[limits]
max_open_orders = 0
max_orders_per_sec = 0
max_orders_per_min = 0
""")
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, governor=cfg)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=24, timeout=5)
        assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
        contract = aapl()
        trades = [ib.placeOrder(contract, LimitOrder("BUY", 1, 50.0 + i / 100)) for i in range(100)]
        queued_before = len(ib.client._msgQ)
        rec.engine.halt("kill switch test", cancel_all=True)  # recorded and carried out by the recorder
        queued_after = len(ib.client._msgQ)
        assert wait_for(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in trades
                                        if t.order.orderId in placed_at_broker(sim)), 15)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    sent = placed_at_broker(sim)
    ids = [t.order.orderId for t in trades]
    dropped = [oid for oid in ids if oid not in sent]
    assert queued_before > 0 and queued_after == 0 and len(dropped) == queued_before
    envs = stored(sqlite_url, rec.session_id)
    cancels = {e.payload.order_id: e.payload for e in envs if e.kind == "cancel_order"}
    assert set(cancels) == set(ids)  # every order: cancelled at the broker, or dropped before sending
    assert all(cancels[oid].reason.startswith("DROPPED_UNSENT") for oid in dropped)
    # the cancels left before the queued placements could have: none of the dropped ids reached the broker
    wire_in = [f for d, _c, f in sim.wire_log if d == "in" and f]
    first_cancel = next(i for i, f in enumerate(wire_in) if f[0] == "4")
    assert all(int(f[1]) in sent for f in wire_in[first_cancel:] if f[0] == "3")
    halted = [e.payload for e in envs if e.kind == "governor_decision" and e.payload.reason == "MANUAL_HALT"]
    assert halted[0].decision == "STATE_CHANGE" and len(halted) == 1 + len(ids)  # + one EMERGENCY_CANCEL each
    assert all(t.orderStatus.status == "Cancelled" for t in trades)  # the dropped ones too, for the strategy


def test_a_breaker_with_emergency_cancel_cancels_through_the_attached_ib(sim, sqlite_url):
    cfg = parse_config("""
[breakers]
max_rejections = 2
emergency_cancel = true
""")
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, governor=cfg)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=25, timeout=5)
        assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
        working = ib.placeOrder(aapl(), LimitOrder("BUY", 10, 100.0))  # the default scenario: stays working
        assert wait_for(ib, lambda: working.orderStatus.status == "Submitted", 10)
        rejected = [ib.placeOrder(aapl(), LimitOrder("BUY", 1, 100.0, orderRef="reject_201")) for _ in range(2)]
        assert wait_for(ib, lambda: working.orderStatus.status == "Cancelled", 10)  # nobody called cancelOrder
        with pytest.raises(ledger.OrderBlocked) as after:
            ib.placeOrder(aapl(), LimitOrder("BUY", 1, 100.0))
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    assert after.value.reason == "HALTED"
    envs = stored(sqlite_url, rec.session_id)
    emergency = next(e for e in envs if e.kind == "governor_decision" and e.payload.decision == "EMERGENCY_CANCEL")
    assert emergency.payload.order_id == working.order.orderId and emergency.payload.reason == "BREAKER_REJECTIONS"
    cancel = next(e for e in envs if e.kind == "cancel_order")
    assert cancel.payload.order_id == working.order.orderId
    assert cancel.causation_id == f"{emergency.session_id}#{emergency.seq}"
    assert all(t.orderStatus.status in ("Cancelled", "Inactive") for t in rejected)


def test_after_a_server_side_drop_new_orders_wait_for_the_reconciliation(sim, sqlite_url):
    """The ledger is stale from the drop until the reconciliation after the reconnect has ended."""
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, governor=parse_config(GOVERNOR))
    try:
        ib.connect("127.0.0.1", sim.port, clientId=26, timeout=5)
        assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
        refused: list[BaseException] = []
        tried: list[str] = []

        def eager_strategy(env, transitions, decisions) -> None:
            # a strategy that trades as soon as the reconnected client hands it an order id
            if env.kind == "next_valid_id" and rec.connects == 2 and not tried:
                tried.append(env.kind)
                try:
                    ib.placeOrder(aapl(), LimitOrder("BUY", 1, 100.0))
                except ledger.OrderBlocked as exc:
                    refused.append(exc)

        sim.drop_connections()
        assert wait_for(ib, lambda: not ib.isConnected(), 10)
        assert rec.engine.governor.stale
        rec.subscribe(eager_strategy)
        ib.connect("127.0.0.1", sim.port, clientId=26, timeout=5)
        assert tried and [e.reason for e in refused] in (["LEDGER_STALE"], ["RECONCILING"])
        assert wait_for(ib, lambda: not rec.reconciling and not rec.engine.governor.stale, 10)
        trade = ib.placeOrder(aapl(), LimitOrder("BUY", 1, 100.0))
        assert wait_for(ib, lambda: trade.orderStatus.status == "Submitted", 10)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    kinds = [e.kind for e in envs]
    assert kinds.index("disconnected") < kinds.index("reconcile_ended", kinds.index("disconnected"))


def test_a_halt_and_the_breaker_windows_carry_over_into_the_next_session_of_the_account(sim, sqlite_url):
    cfg = parse_config("""
[breakers]
max_rejections = 3
window_s = 600.0
""")

    def session(body) -> Recorder:
        ib = IB()
        rec = Recorder.attach(ib, sqlite_url, governor=cfg)
        try:
            ib.connect("127.0.0.1", sim.port, clientId=27, timeout=5)
            assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
            body(ib, rec)
            rec.flush()
        finally:
            ib.disconnect()
            rec.close()
        return rec

    def rejections(n: int):
        def body(ib, rec):
            trades = [ib.placeOrder(aapl(), LimitOrder("BUY", 1, 100.0, orderRef="reject_201")) for _ in range(n)]
            assert wait_for(ib, lambda: all(t.orderStatus.status in ("Cancelled", "Inactive") for t in trades), 10)
            assert wait_for(ib, lambda: all(
                (v := rec.fold.order_for(27, t.order.orderId, rec.session_id)) is not None and v.state == "Rejected"
                for t in trades), 10)
        return body

    first = session(rejections(2))
    assert first.engine.trading_state == "ACTIVE"
    second = session(rejections(1))  # 2 + 1 within the window: the breaker trips in the second session
    assert second.carried_from == first.session_id
    assert second.engine.trading_state == "HALTED"
    envs = stored(sqlite_url, second.session_id)
    trip = [e.payload for e in envs if e.kind == "governor_decision" and e.payload.reason == "BREAKER_REJECTIONS"]
    assert len(trip) == 1 and trip[0].decision == "STATE_CHANGE"

    def refused(ib, rec):
        with pytest.raises(ledger.OrderBlocked) as exc:
            ib.placeOrder(aapl(), LimitOrder("BUY", 1, 100.0))
        assert exc.value.reason == "HALTED"

    third = session(refused)  # the halt carries over: still no new orders
    carried = [e.payload for e in stored(sqlite_url, third.session_id)
               if e.kind == "governor_decision" and e.payload.reason == "CARRIED_OVER"]
    assert carried and carried[0].trading_state == "HALTED"


def test_a_global_cancel_also_drops_what_is_still_queued_and_goes_first(sim, sqlite_url):
    cfg = parse_config("[limits]\nmax_open_orders = 0\nmax_orders_per_sec = 0\nmax_orders_per_min = 0\n")
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, governor=cfg)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=28, timeout=5)
        assert wait_for(ib, lambda: not rec.reconciling and not rec.fold.reconciling, 10)
        trades = [ib.placeOrder(aapl(), LimitOrder("BUY", 1, 50.0 + i / 100)) for i in range(80)]
        queued = len(ib.client._msgQ)
        ib.reqGlobalCancel()
        assert len(ib.client._msgQ) == 0
        assert wait_for(ib, lambda: all(t.orderStatus.status == "Cancelled" for t in trades), 15)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    at_broker = placed_at_broker(sim)
    dropped = [t.order.orderId for t in trades if t.order.orderId not in at_broker]
    assert queued > 0 and len(dropped) == queued
    wire_in = [f for d, _c, f in sim.wire_log if d == "in" and f]
    global_at = next(i for i, f in enumerate(wire_in) if f[0] == "58")  # REQ_GLOBAL_CANCEL
    assert not any(f[0] == "3" for f in wire_in[global_at:])  # no placement after the global cancel
    envs = stored(sqlite_url, rec.session_id)
    reasons = {e.payload.order_id: e.payload.reason for e in envs if e.kind == "cancel_order"}
    assert sorted(reasons) == sorted(dropped) and all(r.startswith("DROPPED_UNSENT") for r in reasons.values())


def test_a_governor_that_cannot_be_used_is_refused_at_attach(sqlite_url, tmp_path):
    from ledger.core.engine import Engine
    from ledger.core.governor_config import GovernorConfigError

    bad = tmp_path / "risk.toml"
    bad.write_text("[limits]\nmax_qtty = 5\n")
    with pytest.raises(GovernorConfigError, match=r"risk\.toml: limits\.max_qtty: unknown key"):
        Recorder.attach(IB(), sqlite_url, governor=str(bad))
    with pytest.raises(GovernorConfigError, match="cannot read"):
        Recorder.attach(IB(), sqlite_url, governor=str(tmp_path / "missing.toml"))
    with pytest.raises(ValueError, match="either governor= .* or engine="):
        Recorder.attach(IB(), sqlite_url, governor="default", engine=Engine())
    with pytest.raises(TypeError, match="governor must be"):
        Recorder.attach(IB(), sqlite_url, governor=42)
    with open_store(sqlite_url) as st:
        assert st.sessions() == []  # nothing was recorded by the refused attaches
