"""Reconciliation after connect / reconnect / 1101 / 1102, and reconnecting with backoff.

The simulator keeps the broker's truth across disconnects; after a reconnect and reconciliation the
ledger's filled quantity must equal the broker's.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time

import pytest

from ledger.core import events as ev
from ledger.ib.library import IB, LimitOrder
from ledger.ib.reconcile import QUERIES, keep_connected
from ledger.live.recorder import Recorder
from replay.tws import protocol as P
from replay.tws.simulator import Simulator
from tests.support.recording import AAPL, buy_filled, run_async, stored, until, wait_for

pytestmark = pytest.mark.ibclient


def brackets(envs: list[ev.Envelope]) -> list[tuple[str, ev.ReconcileEnded | None]]:
    """(reason, ended) per bracket, in order; every started bracket is ended exactly once."""
    out: list[tuple[str, ev.ReconcileEnded | None]] = []
    open_reason = None
    for e in envs:
        if e.kind == "reconcile_started":
            assert open_reason is None, "nested brackets"
            open_reason = e.payload.reason
        elif e.kind == "reconcile_ended":
            assert open_reason is not None, "reconcile_ended without a start"
            out.append((open_reason, e.payload))
            open_reason = None
    assert open_reason is None, "a bracket was never closed"
    return out


def test_drop_mid_fill_then_keep_connected_reconciles_to_the_broker_truth(sim, sqlite_url):
    """asyncio client, keep_connected: half the order fills, the server drops us, the rest fills while we
    are away; after reconnect + reconciliation the ledger has the broker's filled quantity."""
    states: list[str] = []

    async def main() -> tuple[Recorder, int]:
        ib = IB()
        rec = Recorder.attach(ib, sqlite_url)
        reconciling_seen: list[bool] = []
        rec.subscribe(lambda env, t, d: reconciling_seen.append(rec.fold.reconciling)
                      if env.kind == "reconcile_started" else None)
        stop = asyncio.Event()
        keeper = asyncio.ensure_future(
            # The reconnect waits 0.5 s: far longer than the scenario's 50 ms to the second fill, so that fill
            # happens while we are away even on a loaded machine.
            keep_connected(ib, "127.0.0.1", sim.port, 21, timeout=3, initial_delay=0.5, max_delay=0.5,
                           rng=random.Random(7), stop=stop, on_state=lambda s, d: states.append(s))
        )
        try:
            await until(ib.isConnected)
            await until(lambda: not rec.reconciling)
            trade = ib.placeOrder(AAPL, LimitOrder("BUY", 100, 90.0, orderRef="drop_mid_fill"))
            oid = trade.order.orderId
            await until(lambda: "disconnected" in states)
            await until(lambda: states.count("connected") >= 2)
            await until(lambda: rec.reconciler.runs >= 2 and not rec.reconciling)
            assert sim.wait_idle(2.0)
            await rec.flush_async()
            assert reconciling_seen and all(reconciling_seen)
            return rec, oid
        finally:
            stop.set()
            await keeper
            ib.disconnect()
            rec.close()

    rec, oid = run_async(main())
    truth = sim.broker.find(21, oid)
    assert truth is not None and truth.status == "Filled" and truth.filled == 100
    view = rec.fold.order_for(21, oid) or rec.fold.order_by_perm(truth.perm_id)
    assert view is not None and view.filled == truth.filled and view.state == "Filled"
    assert states[:2] == ["connecting", "connected"] and "disconnected" in states

    envs = stored(sqlite_url, rec.session_id)
    bs = brackets(envs)
    assert [r for r, _ in bs] == ["connect", "reconnect"]
    reconnect = bs[1][1]
    assert reconnect.ok and reconnect.unknown == [] and reconnect.executions == 2
    # the fill that happened while away arrived only through reqExecutions, recorded as reconcile
    away = [e for e in envs if e.kind == "exec_details" and e.source == "reconcile" and e.payload.price == 90.5]
    assert len(away) == 1 and away[0].payload.req_id >= 0
    kinds = [e.kind for e in envs]
    assert kinds.count("connected") == 2 and kinds.count("disconnected") == 2  # server drop + our disconnect
    # the fold is the same when replayed from the store
    from ledger.core.fold import fold

    assert fold(envs).order_by_perm(truth.perm_id).filled == 100


@pytest.mark.parametrize("code", [1101, 1102])
def test_connectivity_restored_triggers_a_query_bracket(sim, sqlite_url, code):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=22, timeout=3)
        buy_filled(ib, 10)
        runs = rec.reconciler.runs
        sim.inject_message(P.error(-1, code, "Connectivity between IB and TWS has been restored",
                                   server_version=176))
        assert wait_for(ib, lambda: rec.reconciler.runs > runs and not rec.reconciling)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    bs = brackets(envs)
    assert [r for r, _ in bs] == ["connect", f"error {code}"]
    ended = bs[1][1]
    assert ended.ok and ended.unknown == []
    assert (ended.executions, ended.completed_orders, ended.positions) == (1, 1, 1)
    i = next(i for i, e in enumerate(envs) if e.kind == "reconcile_started" and e.payload.reason == f"error {code}")
    j = next(j for j, e in enumerate(envs) if j > i and e.kind == "reconcile_ended")
    inside = envs[i: j + 1]
    assert all(e.source == "reconcile" for e in inside)
    assert {e.kind for e in inside} >= {"open_order_end", "completed_order", "exec_details", "position_end"}


def test_a_1101_during_a_reconciliation_runs_another_one_after_it(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)

    def inject_1101(env, transitions, decisions):
        if env.kind == "reconcile_started" and env.payload.reason == "manual":
            sim.inject_message(P.error(-1, 1101, "Connectivity restored - data lost", server_version=176))

    rec.subscribe(inject_1101)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=27, timeout=3)
        ended = rec.reconcile("manual")
        assert ended.ok
        assert wait_for(ib, lambda: rec.reconciler.runs >= 3 and not rec.reconciling)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    assert [r for r, _ in brackets(stored(sqlite_url, rec.session_id))] == ["connect", "manual", "error 1101"]


def test_a_query_cut_by_a_disconnect_is_unknown_not_empty(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    dropped: list[int] = []

    def drop_after_open_orders(env, transitions, decisions):
        # the broker goes away while the reconciliation is half done
        if env.kind == "open_order_end" and env.source == "reconcile" and rec.reconciler.runs == 2 and not dropped:
            dropped.append(sim.drop_connections())

    rec.subscribe(drop_after_open_orders)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=23, timeout=3)
        task_result = rec.reconcile("manual check")  # blocking API: runs the loop until done
        assert isinstance(task_result, ev.ReconcileEnded)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    assert dropped == [1]
    assert not task_result.ok
    assert task_result.unknown == ["completed_orders", "executions", "positions"]
    envs = stored(sqlite_url, rec.session_id)
    bs = brackets(envs)
    assert [r for r, _ in bs] == ["connect", "manual check"]
    assert bs[1][1] == task_result
    # and the fold knows what it does not know
    assert rec.fold.reconcile_unknown == ["completed_orders", "executions", "positions"]


def test_readonly_connect_leaves_orders_unknown_then_follows_up(sim, sqlite_url):
    """``readonly=True`` skips the order queries during connect: those are unknown, and one follow-up
    query bracket fetches them."""
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=24, timeout=3, readonly=True)
        assert wait_for(ib, lambda: rec.reconciler.runs >= 2 and not rec.reconciling)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    bs = brackets(stored(sqlite_url, rec.session_id))
    assert [r for r, _ in bs] == ["connect", "retry after connect: open_orders,completed_orders"]
    assert bs[0][1].unknown == ["open_orders", "completed_orders"] and not bs[0][1].ok
    assert bs[1][1].ok and bs[1][1].unknown == []


def test_governor_blocks_new_orders_while_reconciling(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    decisions: list[str] = []

    def probe(env, transitions, ds):
        if env.kind == "reconcile_started":
            intent = ev.PlaceOrder(order_id=999, client_id=25, symbol="AAPL", action="BUY", total_qty=1,
                                   order_type="LMT", lmt_price=1.0)
            decisions.append(rec.engine.pre_check(intent, env.recv_ns).decision)

    rec.subscribe(probe)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=25, timeout=3)
        assert not rec.reconciling
        intent = ev.PlaceOrder(order_id=999, client_id=25, symbol="AAPL", action="BUY", total_qty=1,
                               order_type="LMT", lmt_price=1.0)
        after = rec.engine.pre_check(intent, time.time_ns()).decision
    finally:
        ib.disconnect()
        rec.close()
    assert decisions == ["BLOCK"] and after == "ALLOW"


def test_keep_connected_backs_off_with_jitter_until_the_server_appears(sqlite_url):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    attempts: list[float] = []
    states: list[str] = []

    async def main() -> None:
        ib = IB()
        rec = Recorder.attach(ib, sqlite_url)
        stop = asyncio.Event()

        def on_state(state: str, detail: str) -> None:
            states.append(state)
            if state == "connecting":
                attempts.append(time.monotonic())

        keeper = asyncio.ensure_future(
            keep_connected(ib, "127.0.0.1", port, 26, timeout=1, initial_delay=0.05, max_delay=0.4, jitter=0.2,
                           rng=random.Random(1), stop=stop, on_state=on_state)
        )
        sim = None
        try:
            await until(lambda: states.count("failed") >= 4, timeout=5)
            sim = Simulator(port=port).start()
            await until(ib.isConnected, timeout=5)
            await until(lambda: not rec.reconciling)
        finally:
            stop.set()
            await keeper
            ib.disconnect()
            rec.close()
            if sim is not None:
                sim.stop()

    run_async(main())
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)][:4]
    # 0.05, 0.1, 0.2, 0.4 (capped) each ±20 %; a refused connect itself takes ~no time
    for gap, base in zip(gaps, [0.05, 0.1, 0.2, 0.4], strict=False):
        assert base * 0.8 - 0.01 <= gap <= base * 1.2 + 0.15, (gaps, base)
    assert states[-1] == "connected" or "connected" in states


def test_all_queries_named():
    assert QUERIES == ("open_orders", "completed_orders", "executions", "positions")


def test_closing_inside_a_reconciliation_ends_its_bracket_before_the_session(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=12, timeout=3)
        assert wait_for(ib, lambda: not rec.reconciling)
        ended = rec.reconcile("outside a loop")  # no running loop: runs until done, returns the payload
        assert isinstance(ended, ev.ReconcileEnded) and ended.ok
        with rec.lock:
            rec.reconciler._open("held open", "query")  # a bracket whose queries never run
        assert rec.reconciling
        rec.close()  # still connected: the session ends inside the bracket
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    assert [e.kind for e in envs][-2:] == ["reconcile_ended", "session_ended"]
    assert envs[-2].payload.ok is False and envs[-2].payload.unknown == list(QUERIES)
    assert [reason for reason, _ in brackets(envs)][-2:] == ["outside a loop", "held open"]
