"""The recorder: every raw callback and local intent is stored, before the library sees it.

Real parts only: the unmodified IB client (ib_insync, or ib_async with IBLEDGER_IB_LIB=ib_async) over a
real socket to the project's TWS simulator, real SQLite / PostgreSQL stores.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid

import pytest

from ledger.core import events as ev
from ledger.ib.library import IB, LIBRARY_NAME, LimitOrder, Stock
from ledger.live.recorder import Recorder, RecorderError
from ledger.store import open_store
from replay.tws import protocol as P
from tests.support.recording import AAPL, buy_filled, run_async, stored, until, wait_for

pytestmark = pytest.mark.ibclient


def kinds(envs, *only: str) -> list[str]:
    return [e.kind for e in envs if not only or e.kind in only]


# --- recording what the wire carried ----------------------------------------------------------


def test_every_callback_recorded_in_order_before_the_library_sees_it(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, mode="simulation", config_hash="abc")
    seen_before_library: list[tuple[str, str]] = []
    trade_box: list = []

    def spy(env, transitions, decisions):
        # called after fold+governor, before the library's own handler: the library's trade still shows
        # the previous status when the wire's orderStatus is delivered to us
        if env.kind == "order_status" and trade_box:
            seen_before_library.append((env.payload.status, trade_box[0].orderStatus.status))

    rec.subscribe(spy)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=3, timeout=3)
        trade = ib.placeOrder(AAPL, LimitOrder("BUY", 100, 100.0, orderRef="fill_simple"))
        trade_box.append(trade)
        assert wait_for(ib, lambda: trade.orderStatus.status == "Filled")
        ib.sleep(0.05)
        rec.flush()
        order = rec.fold.order_for(3, trade.order.orderId)
        assert order is not None and order.filled == 100 and order.state == "Filled"
        assert rec.committed_seq == rec.last_seq
    finally:
        ib.disconnect()
        rec.close()

    envs = stored(sqlite_url, rec.session_id)
    assert [e.seq for e in envs] == list(range(1, len(envs) + 1))
    first = envs[0].payload
    assert isinstance(first, ev.SessionStarted)
    assert (first.library, first.client_id, first.port, first.server_version, first.account) == (
        LIBRARY_NAME, 3, sim.port, 176, "DU1234567")
    assert (first.mode, first.config_hash) == ("simulation", "abc")
    assert envs[-1].kind == "session_ended"
    assert kinds(envs)[1:3] == ["connected", "reconcile_started"]
    order_kinds = kinds(envs, "place_order", "open_order", "order_status", "exec_details", "commission_report")
    assert order_kinds == ["place_order", "open_order", "order_status", "exec_details", "commission_report",
                           "order_status"]
    # the intent is recorded before the request is sent, with the id the library then used
    place = next(e.payload for e in envs if e.kind == "place_order")
    assert (place.order_id, place.client_id, place.symbol, place.total_qty, place.order_ref) == (
        trade.order.orderId, 3, "AAPL", 100.0, "fill_simple")
    assert place.order["orderRef"] == "fill_simple" and place.contract["symbol"] == "AAPL"
    # lossless raw fields: every Order attribute, unset doubles as the wire had them
    oo = next(e.payload for e in envs if e.kind == "open_order")
    assert oo.perm_id > 0 and oo.order["permId"] == oo.perm_id and len(oo.order) >= 100
    assert oo.order["auxPrice"] is None and oo.order_state["status"] == "Submitted"  # unset is None
    ex = next(e.payload for e in envs if e.kind == "exec_details")
    assert ex.req_id == -1 and ex.shares == 100 and ex.execution["execId"] == ex.exec_id
    # receipt stamps: wall clock and monotonic, non-decreasing in seq order for callbacks
    mono = [e.mono_ns for e in envs]
    assert all(m > 0 for m in mono) and mono == sorted(mono)
    assert seen_before_library == [("Submitted", "PendingSubmit"), ("Filled", "Submitted")]


def test_duplicates_and_dropped_commissions_are_still_recorded(sim, sqlite_url):
    """The libraries swallow a repeated status and drop an early commission report; the ledger does not."""
    ib = IB()
    ib.connect("127.0.0.1", sim.port, clientId=4, timeout=3)
    rec = Recorder.attach(ib, sqlite_url)  # after connect
    try:
        t1 = ib.placeOrder(AAPL, LimitOrder("BUY", 10, 101.0, orderRef="duplicate_status"))
        t2 = ib.placeOrder(AAPL, LimitOrder("BUY", 10, 100.0, orderRef="commission_before_exec"))
        assert wait_for(ib, lambda: t1.orderStatus.status == "Filled" and t2.orderStatus.status == "Filled")
        ib.sleep(0.1)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    statuses = [e.payload.status for e in envs if e.kind == "order_status" and e.payload.order_id == t1.order.orderId]
    assert statuses == ["Submitted", "Submitted", "Filled", "Filled"]
    # commission before its execution: dropped by the library, kept here and joined by the fold
    comm_execs = [e.payload.exec_id for e in envs if e.kind == "commission_report"]
    exec_ids = {e.payload.exec_id for e in envs if e.kind == "exec_details"}
    assert len(comm_execs) == 2 and set(comm_execs) == exec_ids
    with open_store(sqlite_url) as s:
        from ledger.core.fold import fold

        f = fold(s.read_session(rec.session_id))
    o2 = f.order_for(4, t2.order.orderId)
    assert o2 is not None and o2.commission == pytest.approx(sum(
        e.payload.commission for e in envs if e.kind == "commission_report"
        and e.payload.exec_id in {x.exec_id for x in o2.fills}))
    assert o2.commission > 0


def test_attach_after_connect_reconciles_and_names_the_session(sim, sqlite_url):
    ib = IB()
    ib.connect("127.0.0.1", sim.port, clientId=5, timeout=3)
    try:
        trade = buy_filled(ib, 5)
        rec = Recorder.attach(ib, sqlite_url)  # the fill happened before we were recording
        assert not rec.reconciling
        ib.reqCurrentTime()
        rec.flush()
        order = rec.fold.order_by_perm(trade.order.permId)
        assert order is not None and order.filled == 5
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    start = envs[0].payload
    assert (start.client_id, start.port, start.account, start.server_version) == (5, sim.port, "DU1234567", 176)
    ks = kinds(envs)
    assert ks[:3] == ["session_started", "connected", "reconcile_started"]
    assert envs[2].payload.reason == "attach" and envs[2].source == "reconcile"
    ended = next(e for e in envs if e.kind == "reconcile_ended")
    assert ended.payload.ok and ended.payload.unknown == [] and ended.payload.executions == 1
    assert all(e.source == "reconcile" for e in envs[2: ks.index("reconcile_ended") + 1])
    (now,) = [e.payload for e in envs if e.kind == "current_time"]
    assert now.time == sim.broker.clock.epoch()


def test_asyncio_client_with_modify_cancel_and_global_cancel(sim, sqlite_url):
    async def main() -> tuple[Recorder, int]:
        ib = IB()
        rec = Recorder.attach(ib, sqlite_url)
        got: asyncio.Queue = asyncio.Queue()
        rec.subscribe(lambda env, t, d: got.put_nowait(env))
        try:
            await ib.connectAsync("127.0.0.1", sim.port, clientId=6, timeout=3)
            order = LimitOrder("BUY", 10, 99.0, orderRef="modify_ack")
            with rec.intent_context(correlation_id="strategy-7", causation_id="cause-1"):
                trade = ib.placeOrder(AAPL, order)
            assert rec.last_intent is not None and rec.last_intent.kind == "place_order"
            await until(lambda: trade.orderStatus.status in ("Submitted", "PreSubmitted"), timeout=3.0)
            order.totalQuantity = 20
            ib.placeOrder(AAPL, order)  # same orderId again: a modify
            await asyncio.sleep(0.1)
            ib.cancelOrder(order)
            ib.reqGlobalCancel()
            await until(lambda: trade.orderStatus.status == "Cancelled", timeout=3.0)
            await rec.flush_async()
            assert not got.empty()
            return rec, order.orderId
        finally:
            ib.disconnect()
            rec.close()

    rec, oid = run_async(main())
    envs = stored(sqlite_url, rec.session_id)
    intents = [(e.kind, getattr(e.payload, "order_id", None)) for e in envs
               if e.kind in ("place_order", "modify_order", "cancel_order", "global_cancel")]
    assert intents == [("place_order", oid), ("modify_order", oid), ("cancel_order", oid), ("global_cancel", None)]
    modify = next(e.payload for e in envs if e.kind == "modify_order")
    assert modify.total_qty == 20
    place = next(e for e in envs if e.kind == "place_order")
    assert (place.correlation_id, place.causation_id) == ("strategy-7", "cause-1")
    assert next(e for e in envs if e.kind == "modify_order").correlation_id is None
    # the cancel intent precedes the broker's Cancelled
    ks = kinds(envs)
    cancelled = next(i for i, e in enumerate(envs) if e.kind == "order_status" and e.payload.status == "Cancelled")
    assert ks.index("cancel_order") < cancelled
    view = rec.fold.order_for(6, oid)
    assert view is not None and view.state == "Cancelled"


def test_an_intent_recorded_before_sending_is_not_recorded_twice(sim, sqlite_url):
    """A placement layer may record the intent itself (to run the governor on it) and then send it."""
    from ledger.ib import adapter

    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=12, timeout=3)
        order = LimitOrder("BUY", 3, 100.0, orderRef="fill_simple")
        order.orderId = ib.client.getReqId()
        intent = rec.record(adapter.place_order(AAPL, order, order.orderId, 0, modify=False))
        trade = ib.placeOrder(AAPL, order)
        assert rec.last_intent is intent
        assert wait_for(ib, lambda: trade.orderStatus.status == "Filled")
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    assert [e.seq for e in envs if e.kind == "place_order"] == [intent.seq]


# --- never block, never drop silently ------------------------------------------------------------


def test_store_failure_and_full_queue_fail_loudly_and_count_lost_events(tmp_path, caplog):
    url = f"sqlite:///{tmp_path / 'locked.db'}?lock_timeout=0.05"
    with open_store(url):
        pass  # create the tables
    ib = IB()  # never connected: callbacks are driven through the real wrapper methods
    rec = Recorder.attach(ib, url, queue_size=20, full_block_s=0.01)
    blocker = sqlite3.connect(str(tmp_path / "locked.db"), isolation_level=None)
    try:
        rec.flush()
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock: appends fail
        caplog.set_level(logging.WARNING, logger="ledger")
        for i in range(60):
            ib.wrapper.orderStatus(1, "Submitted", float(i), 100.0 - i, 0.0, 77, 0, 0.0, 1, "", 0.0)
        t0 = time.monotonic()
        while rec.healthy and time.monotonic() - t0 < 2:
            time.sleep(0.01)
        assert not rec.healthy
        assert rec.lost > 0
        assert any("RECORDER FAULT" in r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
        assert any("queue FULL" in r.getMessage() for r in caplog.records)
        # the engine saw the fault (the governor stops new orders from it)
        assert any(a.kind == "recorder_fault" for a in rec.fold.anomalies)
        with pytest.raises(Exception):  # noqa: B017 - the writer's error, whatever the driver says
            rec.flush(timeout=0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(Exception):  # noqa: B017 - close re-raises the fault after committing everything
        rec.close()
    envs = stored(url, rec.session_id)
    assert [e.seq for e in envs] == list(range(1, len(envs) + 1))  # gapless: lost events took no seq
    statuses = [e for e in envs if e.kind == "order_status"]
    faults = [e.payload for e in envs if e.kind == "recorder_fault"]
    assert faults and sum(f.lost for f in faults) == rec.lost
    # every callback is either stored or counted as lost, by kind
    assert len(statuses) + rec.lost_by_kind.get("order_status", 0) == 60
    assert len(faults) <= 3  # lost events are reported in aggregate, not one fault event each
    assert envs[-1].kind == "session_ended"


def test_close_gives_up_on_a_dead_store_loudly_and_the_session_shows_crashed(tmp_path):
    url = f"sqlite:///{tmp_path / 'dead.db'}?lock_timeout=0.05"
    ib = IB()
    rec = Recorder.attach(ib, url)
    ib.wrapper.positionEnd()
    rec.flush()  # session_started + position_end committed
    blocker = sqlite3.connect(str(tmp_path / "dead.db"), isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(5):
            ib.wrapper.position("DU1234567", Stock("AAPL", "SMART", "USD", conId=265598), float(i), 100.0)
        with pytest.raises(Exception, match="locked"):  # the store's error, re-raised after giving up
            rec.close(timeout=0.3)
        # 5 positions + session_ended (+ the RecorderFault if the failure came first): none committed
        assert rec.lost == rec.last_seq - rec.committed_seq >= 6
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with open_store(url) as s:
        (info,) = s.sessions()
        assert info.crashed and info.last_seq == 2 == rec.committed_seq


def test_recording_errors_never_stop_the_library(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)

    def broken(env, transitions, decisions):
        raise RuntimeError("subscriber bug")

    rec.subscribe(broken)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=9, timeout=3)
        trade = buy_filled(ib, 1)
        # a local event that cannot be stored is refused to its caller, taking no seq
        before = rec.last_seq
        with pytest.raises(RecorderError, match="not encodable"):
            rec.record(ev.Error(req_id=-1, code=1, message=object()))  # type: ignore[arg-type]
        assert rec.last_seq == before
        rec.flush()
        assert rec.healthy
    finally:
        ib.disconnect()
        rec.close()
    assert trade.orderStatus.status == "Filled" and trade.filled() == 1
    view = rec.fold.order_for(9, trade.order.orderId)
    assert view is not None and view.filled == 1


def test_writer_stores_an_unencodable_event_as_a_fault_under_its_seq(sqlite_url):
    """Last line of defence: the stream stays gapless and the fact readable; the writer says so."""
    from ledger.store.writer import Writer

    with open_store(sqlite_url) as store:
        errors: list[BaseException] = []
        w = Writer(store, capacity=10, on_error=errors.append).start()
        sid = "unencodable"
        w.put(ev.envelope(sid, 1, ev.SessionStarted(library="x", library_version="1"), recv_ns=1))
        w.put(ev.envelope(sid, 2, ev.Error(req_id=1, code=2, message=object()), recv_ns=2))  # type: ignore[arg-type]
        w.put(ev.envelope(sid, 3, ev.PositionEnd(), recv_ns=3))
        assert w.close(5.0)
        envs = list(store.read_session(sid))
    assert [e.kind for e in envs] == ["session_started", "recorder_fault", "position_end"]
    assert "could not be encoded" in envs[1].payload.message and "Error" in envs[1].payload.message
    assert errors and w.error is errors[0] and w.lost == 0


def test_postgresql_store_in_a_fresh_database(sim):
    psycopg = pytest.importorskip("psycopg")
    server = "postgresql://postgres@127.0.0.1:5432"
    dbname = f"ibledger_rec_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(f"{server}/postgres", autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    url = f"{server}/{dbname}"
    try:
        ib = IB()
        rec = Recorder.attach(ib, url)
        try:
            ib.connect("127.0.0.1", sim.port, clientId=11, timeout=3)
            trade = buy_filled(ib, 100, ref="partial_fills")
            ib.sleep(0.05)
            rec.flush()
        finally:
            ib.disconnect()
            rec.close()
        with open_store(url) as s:
            envs = list(s.read_session(rec.session_id))
            (info,) = s.sessions()
        assert info.has_start and info.has_end and not info.crashed and info.last_seq == len(envs)
        truth = sim.broker.find(11, trade.order.orderId)
        from ledger.core.fold import fold

        view = fold(envs).order_for(11, trade.order.orderId)
        assert view is not None and view.filled == truth.filled == 100
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def test_session_id_is_used_once(sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url, session_id="fixed-session")
    rec.close()
    with pytest.raises(RecorderError, match="already has events"):
        Recorder.attach(IB(), sqlite_url, session_id="fixed-session")
    envs = stored(sqlite_url, "fixed-session")
    assert kinds(envs) == ["session_started", "session_ended"]
    assert envs[0].payload.client_id == 0 and envs[0].payload.port == 0  # attached, never connected


def test_adapter_keeps_nested_library_objects_losslessly_and_detached():
    """Raw mappings are deep plain-data copies: nested dataclasses, NamedTuples and lists survive the
    store's codec, and later mutation of the library object does not change the recorded fact."""
    from ledger.core import codec
    from ledger.ib import adapter
    from ledger.ib.library import ib as lib

    order = LimitOrder("BUY", 10, 99.5, orderRef="r", algoStrategy="Adaptive",
                       algoParams=[lib.TagValue("adaptivePriority", "Normal")])
    order.softDollarTier = lib.SoftDollarTier("n", "v", "d")
    order.conditions = [lib.PriceCondition(conId=265598, exch="SMART", price=100.0)]
    payload = adapter.open_order(5, AAPL, order, lib.OrderState(status="Submitted", commission=P.UNSET_DOUBLE))
    order.totalQuantity = 999  # the library mutates its objects later: the fact must not move
    order.algoParams[0] = lib.TagValue("x", "y")
    env = codec.from_msgpack(codec.to_msgpack(ev.envelope("s", 1, payload, recv_ns=1)))
    raw = env.payload.order
    assert env.payload.total_qty == 10 and raw["totalQuantity"] == 10
    assert raw["algoParams"] == [{"tag": "adaptivePriority", "value": "Normal"}]
    assert raw["softDollarTier"] == {"name": "n", "val": "v", "displayName": "d"}
    assert raw["conditions"][0]["price"] == 100.0 and raw["conditions"][0]["conId"] == 265598
    assert env.payload.order_state["commission"] is None  # IB's unset sentinel is no value
    # commissionReport: recorded before the library rewrites an unset realizedPNL / yield to 0
    report = lib.CommissionReport(execId="e.01", commission=1.0, currency="USD", realizedPNL=P.UNSET_DOUBLE,
                                  yield_=P.UNSET_DOUBLE)
    cr = adapter.commission_report(report)
    assert cr.realized_pnl is None and cr.yield_ is None
