"""Governor rules with concrete events, decision fields, config validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.core.engine import Engine, event_id
from ledger.core.events import GovernorDecision
from ledger.core.governor_config import (
    GovernorConfig,
    GovernorConfigError,
    default_config,
    default_config_text,
    load_config,
    parse_config,
)
from tests.support.governor import MS, Session, blocked

# --- limits ------------------------------------------------------------------------------------------


def test_allow_carries_the_numbers_and_the_state() -> None:
    s = Session()
    d = s.place(1, qty=10, price=100.0)
    assert (d.decision, d.reason, d.action, d.order_id, d.client_id, d.symbol) == ("ALLOW", "OK", "place", 1, 1, "AAPL")
    assert d.trading_state == "ACTIVE"
    assert d.details["notional"] == 1000.0 and d.details["qty"] == 10 and d.details["price_source"] == "limit"
    assert d.details["at_ns"] == s.recorded[-2].recv_ns  # the time of the intent


def test_max_qty_global_and_per_symbol() -> None:
    s = Session("[limits]\nmax_qty = 100\nmax_notional = 0\n[symbol_limits.ES]\nmax_qty = 2\n")
    assert s.place(1, qty=100).decision == "ALLOW"
    d = s.place(2, qty=101)
    blocked(d, "MAX_QTY")
    assert d.details["limit"] == 100 and d.details["value"] == 101
    blocked(s.place(3, qty=3, symbol="ES", price=5000.0), "MAX_QTY")
    assert s.place(4, qty=2, symbol="es", price=5000.0).decision == "ALLOW"  # symbols are case-insensitive


def test_max_notional_limit_price_and_multiplier() -> None:
    s = Session("[limits]\nmax_notional = 10000\n[prices]\nmultipliers = { ES = 50 }\n")
    assert s.place(1, qty=100, price=100.0).decision == "ALLOW"
    d = s.place(2, qty=101, price=100.0)
    blocked(d, "MAX_NOTIONAL")
    assert d.details["limit"] == 10000 and d.details["value"] == pytest.approx(10100.0)
    d = s.place(3, qty=1, price=201.0, symbol="ES")  # 1 x 201 x 50 > 10000
    blocked(d, "MAX_NOTIONAL")
    assert d.details["multiplier"] == 50
    # the contract's own multiplier wins over the config
    d = s.place(4, qty=1, price=201.0, symbol="ES", contract={"multiplier": "2"})
    assert d.decision == "ALLOW" and d.details["notional"] == 402.0


def test_market_orders_need_a_reference_price() -> None:
    s = Session("[limits]\nmax_notional = 10000\n[prices]\nreference = { MSFT = 400.0 }\n")
    d = s.place(1, qty=10, price=None, symbol="AAPL")
    blocked(d, "MARKET_ORDER_NO_PRICE")
    d = s.place(2, qty=10, price=None, symbol="MSFT")  # reference price
    assert d.decision == "ALLOW" and d.details["price_source"] == "reference" and d.details["notional"] == 4000.0
    s.status(2, "Submitted")
    s.fill(2, 10, 1100.0, symbol="MSFT")  # the market moved: the last fill is higher, and it counts
    d = s.place(3, qty=10, price=None, symbol="MSFT")
    blocked(d, "MAX_NOTIONAL")
    assert d.details["price_source"] == "last_fill" and d.details["price"] == 1100.0
    s.fill(9, 1, 150.0, symbol="AAPL")  # a fill of AAPL gives AAPL a price
    assert s.place(4, qty=10, price=None, symbol="AAPL").details["price"] == 150.0
    # without a notional limit, no price is needed
    assert Session("[limits]\nmax_notional = 0\n").place(1, qty=10, price=None).decision == "ALLOW"


def test_stop_orders_use_the_stop_price() -> None:
    s = Session("[limits]\nmax_notional = 1000\n")
    d = s.place(1, qty=10, price=None, order_type="STP", aux_price=150.0)
    blocked(d, "MAX_NOTIONAL")
    assert d.details["price_source"] == "stop"


def test_max_open_orders_counts_orders_not_done() -> None:
    s = Session("[limits]\nmax_open_orders = 2\n")
    assert s.live(1).decision == "ALLOW"
    assert s.place(2).decision == "ALLOW"  # unconfirmed counts: it may be live
    d = s.place(3)
    blocked(d, "MAX_OPEN_ORDERS")
    assert d.details["limit"] == 2 and d.details["value"] == 3
    s.status(1, "Cancelled")
    assert s.place(4).decision == "ALLOW"
    # a modify of an open order is not a new order
    mod = s.engine.pre_check(ev.ModifyOrder(order_id=4, client_id=1, symbol="AAPL", action="BUY", total_qty=5), s.ns)
    assert mod.decision == "ALLOW" and mod.action == "modify"


def test_blocked_orders_do_not_count_as_open() -> None:
    s = Session("[limits]\nmax_open_orders = 1\nmax_qty = 10\n")
    blocked(s.place(1, qty=11), "MAX_QTY")
    assert s.place(2, qty=1).decision == "ALLOW"


def test_rate_limit_per_second_uses_event_time() -> None:
    s = Session("[limits]\nmax_orders_per_sec = 2\nmax_orders_per_min = 0\n")
    assert s.place(1, dt_ms=100).decision == "ALLOW"
    assert s.place(2, dt_ms=100).decision == "ALLOW"
    d = s.place(3, dt_ms=100)
    blocked(d, "RATE_LIMIT_SEC")
    assert d.details["limit"] == 2
    assert s.place(4, dt_ms=850).decision == "ALLOW"  # the first one left the window (1.05 s later)


def test_blocked_orders_do_not_fill_the_rate_window() -> None:
    s = Session("[limits]\nmax_orders_per_sec = 1\nmax_orders_per_min = 0\nmax_qty = 5\n")
    blocked(s.place(1, qty=6), "MAX_QTY")
    assert s.place(2, qty=1).decision == "ALLOW"
    blocked(s.place(3, qty=1), "RATE_LIMIT_SEC")


def test_rate_limit_per_minute_counts_modifies() -> None:
    s = Session("[limits]\nmax_orders_per_sec = 0\nmax_orders_per_min = 3\n")
    assert s.live(1).decision == "ALLOW"
    mod = ev.ModifyOrder(order_id=1, client_id=1, symbol="AAPL", action="BUY", total_qty=12, lmt_price=100.0)
    assert s.intent(mod, 5_000).decision == "ALLOW"
    assert s.place(2, dt_ms=5_000).decision == "ALLOW"
    blocked(s.place(3, dt_ms=5_000), "RATE_LIMIT_MIN")
    assert s.place(4, dt_ms=50_000).decision == "ALLOW"  # 65 s after the first


def test_symbol_allow_and_deny() -> None:
    s = Session('[symbols]\ndeny = ["gme"]\n')
    blocked(s.place(1, symbol="GME"), "SYMBOL_DENIED")
    assert s.place(2, symbol="AAPL").decision == "ALLOW"
    s = Session('[symbols]\nallow = ["AAPL", "MSFT"]\n')
    assert s.place(1, symbol="msft").decision == "ALLOW"
    blocked(s.place(2, symbol="TSLA"), "SYMBOL_NOT_ALLOWED")


def test_invalid_orders() -> None:
    s = Session()
    blocked(s.place(1, qty=0), "INVALID_ORDER")
    blocked(s.place(2, qty=float("nan")), "INVALID_ORDER")
    blocked(s.place(3, action="HOLD"), "INVALID_ORDER")


# --- trading state -----------------------------------------------------------------------------------


def test_halt_blocks_places_and_modifies_never_cancels() -> None:
    s = Session()
    s.live(1)
    for d in s.engine.halt("risk officer", s.ns):
        s.event(d)
    assert s.engine.trading_state == "HALTED"
    d = s.place(2)
    blocked(d, "HALTED")
    assert d.trading_state == "HALTED"
    mod = s.engine.pre_check(ev.ModifyOrder(order_id=1, client_id=1, total_qty=5), s.ns)
    blocked(mod, "HALTED")
    c = s.intent(ev.CancelOrder(order_id=1, client_id=1))
    assert (c.decision, c.action) == ("ALLOW", "cancel")
    for d in s.engine.resume("all clear", s.ns):
        s.event(d)
    assert s.place(3).decision == "ALLOW"


def test_kill_switch_cancels_every_order_that_may_be_live() -> None:
    s = Session()
    s.live(1)
    s.place(2)  # unconfirmed: may be live
    s.live(3)
    s.status(3, "Filled", 10)
    s.fill(3, 10, 100.0)
    out = s.engine.halt("kill switch", s.ns, cancel_all=True)
    assert [d.decision for d in out] == ["STATE_CHANGE", "EMERGENCY_CANCEL", "EMERGENCY_CANCEL"]
    assert [d.order_id for d in out[1:]] == [1, 2]
    assert all(d.reason == "MANUAL_HALT" and d.action == "cancel" for d in out[1:])


def test_reducing_only_allows_orders_that_reduce_a_position() -> None:
    s = Session('[state]\ninitial = "REDUCING"\n')
    s.event(ev.Position(account="DU1", symbol="AAPL", con_id=1, position=100.0))
    blocked(s.place(1, action="BUY", qty=10), "REDUCING_ONLY")
    assert s.live(2, action="SELL", qty=60).decision == "ALLOW"
    d = s.place(3, action="SELL", qty=50)  # 60 already working on the same side: 110 > 100
    blocked(d, "REDUCING_ONLY")
    assert d.details["position"] == 100 and d.details["value"] == 110
    assert s.place(4, action="SELL", qty=40).decision == "ALLOW"
    blocked(s.place(5, action="SELL", qty=1, symbol="MSFT"), "REDUCING_ONLY")  # no position at all


def test_reducing_state_from_operator_and_fills_update_the_position() -> None:
    s = Session()
    s.live(1, action="BUY", qty=30)
    s.fill(1, 30, 100.0)
    for d in s.engine.reduce("end of day", s.ns):
        s.event(d)
    assert s.engine.trading_state == "REDUCING"
    assert s.place(2, action="SELL", qty=30).decision == "ALLOW"
    blocked(s.place(3, action="BUY", qty=1), "REDUCING_ONLY")


def test_blocks_while_reconciling() -> None:
    s = Session()
    s.event(ev.ReconcileStarted(reason="reconnect"))
    blocked(s.place(1), "RECONCILING")
    assert s.intent(ev.CancelOrder(order_id=1, client_id=1)).decision == "ALLOW"
    s.event(ev.ReconcileEnded(ok=True))
    assert s.place(2).decision == "ALLOW"
    s = Session("[state]\nblock_while_reconciling = false\n")
    s.event(ev.ReconcileStarted())
    assert s.place(1).decision == "ALLOW"


def test_blocks_after_a_recorder_fault_until_reconciled_or_resumed() -> None:
    s = Session()
    s.event(ev.RecorderFault(message="store too slow", lost=3))
    blocked(s.place(1), "RECORDER_FAULT")
    s.event(ev.ReconcileStarted())
    s.event(ev.ReconcileEnded(ok=False, unknown=["executions"]))  # incomplete: still blocked
    blocked(s.place(2), "RECORDER_FAULT")
    s.event(ev.ReconcileStarted())
    s.event(ev.ReconcileEnded(ok=True))
    assert s.place(3).decision == "ALLOW"
    s.event(ev.RecorderFault(message="again"))
    for d in s.engine.resume("checked by hand", s.ns):
        s.event(d)
    assert s.place(4).decision == "ALLOW"


# --- circuit breakers -----------------------------------------------------------------------------------


def _reject(s: Session, oid: int, dt_ms: float = 10) -> list[GovernorDecision]:
    s.place(oid, dt_ms=dt_ms)
    s.event(ev.Error(req_id=oid, code=201, message="Order rejected"))
    return s.status(oid, "Inactive")


def test_rejection_breaker_halts_within_the_window_only() -> None:
    s = Session("[breakers]\nwindow_s = 10\nmax_rejections = 3\n")
    assert _reject(s, 1) == [] and _reject(s, 2, dt_ms=9_000) == []
    assert _reject(s, 3, dt_ms=5_000) == []  # the first one is 14 s old: two within 10 s
    out = _reject(s, 4, dt_ms=100)
    assert len(out) == 1
    d = out[0]
    assert (d.decision, d.reason, d.action, d.trading_state) == (
        "STATE_CHANGE",
        "BREAKER_REJECTIONS",
        "state",
        "HALTED",
    )
    assert d.details["limit"] == 3 and d.details["from"] == "ACTIVE" and d.details["to"] == "HALTED"
    blocked(s.place(9), "HALTED")
    # recorded with causation = the triggering event
    denv = s.recorded[-3]
    assert denv.payload == d and denv.causation_id == event_id(s.recorded[-4])


def test_error_breaker_ignores_warnings_and_notices() -> None:
    s = Session("[breakers]\nmax_errors = 2\n")
    for code in (2104, 2106, 1100, 1102, 399, 202, 10148):
        assert s.event(ev.Error(req_id=-1, code=code)) == []
    assert s.event(ev.Error(req_id=5, code=103, message="Duplicate order id")) == []
    out = s.event(ev.Error(req_id=6, code=110, message="price does not conform"))
    assert [(d.decision, d.reason) for d in out] == [("STATE_CHANGE", "BREAKER_ERRORS")]


def test_anomaly_breaker_with_emergency_cancel() -> None:
    s = Session("[breakers]\nmax_anomalies = 2\nemergency_cancel = true\n")
    s.live(1)
    s.live(2)
    s.live(3)
    s.status(3, "Filled", 10)
    s.fill(3, 10, 100.0)
    assert s.status(3, "Submitted") == []  # Filled -> Submitted: illegal, one anomaly
    out = s.status(3, "PreSubmitted")
    assert [d.decision for d in out] == ["STATE_CHANGE", "EMERGENCY_CANCEL", "EMERGENCY_CANCEL"]
    assert out[0].reason == "BREAKER_ANOMALIES"
    assert sorted(d.order_id for d in out[1:]) == [1, 2]
    assert s.engine.trading_state == "HALTED"


def test_breaker_does_not_trip_again_while_halted() -> None:
    s = Session("[breakers]\nmax_errors = 1\n")
    assert len(s.event(ev.Error(req_id=1, code=103))) == 1
    assert s.event(ev.Error(req_id=1, code=103)) == []


def test_breakers_off_with_zero() -> None:
    s = Session("[breakers]\nmax_errors = 0\nmax_rejections = 0\nmax_anomalies = 0\n")
    for i in range(30):
        assert s.event(ev.Error(req_id=i, code=103)) == []


# --- learning from recorded decisions (replay) ----------------------------------------------------------


def _replay(envs: list[ev.Envelope], config: GovernorConfig | None = None) -> tuple[Engine, list[GovernorDecision]]:
    e = Engine(config)
    out: list[GovernorDecision] = []
    for env in envs:
        out += e.process(env)
    return e, out


def test_recorded_operator_decisions_are_applied_derived_ones_are_not() -> None:
    s = Session("[breakers]\nmax_errors = 1\n")
    s.event(ev.Error(req_id=1, code=103))  # trips: HALTED (derived)
    for d in s.engine.resume("ok", s.ns):
        s.event(d)
    for d in s.engine.halt("manual", s.ns):
        s.event(d)
    # replay under a config whose breaker would not trip: the derived halt is not applied, the
    # operator's resume and halt are
    e, out = _replay(s.recorded, parse_config("[breakers]\nmax_errors = 0\n"))
    assert out == [] and e.trading_state == "HALTED"
    e, _ = _replay(s.recorded[:-1], parse_config("[breakers]\nmax_errors = 0\n"))
    assert e.trading_state == "ACTIVE"
    # under the same config the replay makes the same decisions and ends in the same state
    e, out = _replay(s.recorded, parse_config("[breakers]\nmax_errors = 1\n"))
    assert out == s.emitted and e.trading_state == "HALTED"


def test_rate_windows_are_rebuilt_from_recorded_allows() -> None:
    cfg = "[limits]\nmax_orders_per_sec = 2\nmax_orders_per_min = 0\n"
    s = Session(cfg)
    s.place(1)
    s.place(2)
    e, _ = _replay(s.recorded, parse_config(cfg))
    nxt = ev.PlaceOrder(order_id=3, client_id=1, symbol="AAPL", action="BUY", total_qty=1, lmt_price=1.0)
    assert e.pre_check(nxt, s.ns + MS) == s.engine.pre_check(nxt, s.ns + MS)
    blocked(e.pre_check(nxt, s.ns + MS), "RATE_LIMIT_SEC")


def test_state_is_carried_into_the_next_session() -> None:
    s = Session()
    for d in s.engine.halt("overnight", s.ns):
        s.event(d)
    s.event(ev.SessionEnded())
    s.sid, s.seq = "s2", 0
    out = s.event(ev.SessionStarted(library="test", library_version="0", client_id=1))
    assert [(d.decision, d.reason, d.trading_state) for d in out] == [("STATE_CHANGE", "CARRIED_OVER", "HALTED")]
    # replaying only the second session honours the recorded carried-over state
    e, out2 = _replay([env for env in s.recorded if env.session_id == "s2"])
    assert e.trading_state == "HALTED" and out2 == []


def test_pre_check_is_pure() -> None:
    s = Session("[limits]\nmax_orders_per_sec = 1\n")
    p = ev.PlaceOrder(order_id=1, client_id=1, symbol="AAPL", action="BUY", total_qty=1, lmt_price=1.0)
    first = [s.engine.pre_check(p, s.ns) for _ in range(5)]
    assert all(d == first[0] and d.decision == "ALLOW" for d in first)
    assert s.engine.fold.snapshot() == Session("[limits]\nmax_orders_per_sec = 1\n").engine.fold.snapshot()


# --- configuration -------------------------------------------------------------------------------------


def test_shipped_default_file_is_the_builtin_default() -> None:
    assert parse_config(default_config_text()) == default_config() == GovernorConfig()
    assert Engine().config == GovernorConfig()


def test_load_config_file(tmp_path: Path) -> None:
    p = tmp_path / "g.toml"
    p.write_text(
        "[limits]\nmax_qty = 5\nmax_open_orders = 3\n[symbols]\ndeny = ['gme']\n"
        "[prices]\nreference = { es = 5000 }\n[state]\ninitial = 'reducing'\n"
        "[breakers]\nignore_error_codes = [1, 2]\n[symbol_limits.spy]\nmax_notional = 10.5\n"
    )
    c = load_config(p)
    assert c.limits.max_qty == 5.0 and c.limits.max_open_orders == 3 and c.limits.max_notional == 100_000.0
    assert c.deny_symbols == ("GME",) and c.reference_prices == {"ES": 5000.0}
    assert c.state.initial == "REDUCING" and c.breakers.ignore_error_codes == (1, 2)
    assert c.symbol_limits["SPY"].max_notional == 10.5 and c.symbol_limits["SPY"].max_qty is None
    assert c.digest() != GovernorConfig().digest()


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[limits]\nmax_qtty = 5\n", "limits.max_qtty", "unknown key"),
        ("[limit]\nmax_qty = 5\n", "limit", "unknown key"),
        ("max_qty = 5\n", "max_qty", "unknown key"),
        ("[limits]\nmax_qty = -1\n", "limits.max_qty", "must not be negative"),
        ("[limits]\nmax_open_orders = -3\n", "limits.max_open_orders", "must not be negative"),
        ("[limits]\nmax_qty = '100'\n", "limits.max_qty", "expected a number, got string"),
        ("[limits]\nmax_open_orders = 2.5\n", "limits.max_open_orders", "expected an integer"),
        ("[limits]\nmax_qty = true\n", "limits.max_qty", "expected a number, got boolean"),
        ("[limits]\nmax_qty = nan\n", "limits.max_qty", "finite"),
        ("[state]\ninitial = 'PAUSED'\n", "state.initial", "expected one of ACTIVE, HALTED, REDUCING"),
        ("[state]\nblock_while_reconciling = 1\n", "state.block_while_reconciling", "expected true or false"),
        ("[breakers]\nwindow_s = 0\n", "breakers.window_s", "greater than 0"),
        ("[breakers]\nignore_error_codes = [1, 'x']\n", "breakers.ignore_error_codes[1]", "expected an integer"),
        ("[symbols]\nallow = 'AAPL'\n", "symbols.allow", "expected an array"),
        ("[symbols]\nallow = ['AAPL']\ndeny = ['aapl']\n", "symbols.deny", "both allowed and denied"),
        ("[prices]\nreference = { ES = 0 }\n", "prices.reference.ES", "greater than 0"),
        ("[symbol_limits.ES]\nmax_lots = 1\n", "symbol_limits.ES.max_lots", "unknown key"),
        ("limits = 3\n", "limits", "expected a table"),
    ],
)
def test_bad_config_is_refused_with_key_and_reason(text: str, key: str, reason: str) -> None:
    with pytest.raises(GovernorConfigError) as info:
        parse_config(text, "g.toml")
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value).startswith(f"g.toml: {key}: ")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(GovernorConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits\nmax_qty = 1\n")
    with pytest.raises(GovernorConfigError, match="not valid TOML"):
        load_config(bad)
