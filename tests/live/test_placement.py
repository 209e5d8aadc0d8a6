"""Safe placement end to end: the real client over a real socket to the simulator, a real recorder into a
real SQLite store, the real engine. Governor blocks (recorded, nothing sent), the engine's recording
protocol, emergency cancels with causation, cancel-all, a dropped connection, connection errors."""

from __future__ import annotations

import asyncio

import pytest

from ledger.core import events as ev
from ledger.core.engine import event_id
from ledger.core.governor_config import BreakerConfig, GovernorConfig
from ledger.ib.settings import ConnectError, SettingsError, resolve
from ledger.live.placement import open_session
from ledger.store import open_store
from replay.tws.simulator import Simulator
from tests.support.placement import ACCOUNT, limit, run_session, scenarios, stock

pytestmark = pytest.mark.ibclient

def events_of(store, session_id: str) -> list[ev.Envelope]:
    return list(store.read_session(session_id))


@pytest.fixture
def sqlite_store(sqlite_url):
    with open_store(sqlite_url) as st:
        yield st


@pytest.fixture
def sim():
    with Simulator(accounts=(ACCOUNT,)) as s:
        yield s


# --- tests ---------------------------------------------------------------------------------------


def test_block_is_recorded_and_nothing_is_sent(sim, sqlite_store):
    async def body(sess):
        return sess.session_id, await sess.place(stock(), limit("BUY", 5000), timeout=2)

    sid, r = run_session(sim, sqlite_store, body)
    assert r.verdict == "BLOCKED" and "MAX_QTY" in r.message and "Nothing was sent" in r.message
    assert r.decisions[0].decision == "BLOCK" and r.decisions[0].reason == "MAX_QTY"
    assert sim.broker.all_orders() == []  # never reached the broker
    envs = events_of(sqlite_store, sid)
    intents = [e for e in envs if isinstance(e.payload, ev.PlaceOrder)]
    decisions = [e for e in envs if isinstance(e.payload, ev.GovernorDecision)]
    assert len(intents) == 1 and len(decisions) == 1
    assert decisions[0].seq == intents[0].seq + 1 and decisions[0].causation_id == event_id(intents[0])
    assert envs[-1].payload.__class__ is ev.SessionEnded


def test_allow_follows_the_engine_protocol_and_records_the_intent_once(sim, sqlite_store):
    async def body(sess):
        return sess.session_id, await sess.place(stock(), limit("BUY", 100, ref="fill_simple"), timeout=5)

    sid, r = run_session(sim, sqlite_store, body)
    assert r.verdict == "FILLED" and r.filled == 100.0 and r.commission == 1.0
    envs = events_of(sqlite_store, sid)
    intents = [e for e in envs if isinstance(e.payload, ev.PlaceOrder)]
    assert len(intents) == 1 and type(intents[0].payload) is ev.PlaceOrder  # no second (modify) record
    (allow,) = [e for e in envs if isinstance(e.payload, ev.GovernorDecision)]
    assert allow.payload.decision == "ALLOW" and allow.causation_id == event_id(intents[0])
    first_broker = next(e for e in envs if isinstance(e.payload, ev.OpenOrder | ev.OrderStatus))
    assert intents[0].seq < allow.seq < first_broker.seq  # decided and recorded before it was sent
    assert sim.broker.all_orders()[0].filled == 100.0


def test_breaker_emergency_cancel_is_sent_with_its_cause(sim, sqlite_store):
    gov = GovernorConfig(breakers=BreakerConfig(max_rejections=1, emergency_cancel=True))

    async def body(sess):
        live = await sess.place(stock("IBM"), limit("BUY", 10, ref="stuck_presubmitted"), timeout=0.3)
        rejected = await sess.place(stock("GME"), limit("BUY", 10, ref="reject_201"), timeout=3)
        view = sess.fold.orders[live.order_key]
        await sess.until(lambda: view.is_done, 3)
        blocked = await sess.place(stock(), limit("BUY", 1, ref="fill_simple"), timeout=1)
        return sess.session_id, live, rejected, view.state, blocked, sess.engine.trading_state

    sid, live, rejected, state, blocked, trading = run_session(sim, sqlite_store, body, governor=gov)
    assert live.verdict == "LIVE" and rejected.verdict == "REJECTED"
    assert state == "Cancelled" and trading == "HALTED"
    assert blocked.verdict == "BLOCKED" and blocked.decisions[0].reason == "HALTED"
    assert sim.broker.by_perm_id(live.perm_id).status == "Cancelled"
    envs = events_of(sqlite_store, sid)
    decisions = [e for e in envs if isinstance(e.payload, ev.GovernorDecision)]
    (emerg,) = [e for e in decisions if e.payload.decision == "EMERGENCY_CANCEL"]
    assert emerg.payload.perm_id == live.perm_id and emerg.payload.reason == "BREAKER_REJECTIONS"
    (cancel,) = [e for e in envs if isinstance(e.payload, ev.CancelOrder)]
    assert cancel.causation_id == event_id(emerg) and cancel.payload.order_id == live.order_id
    allow = next(e for e in envs if e.seq == cancel.seq + 1)
    assert allow.payload.decision == "ALLOW" and allow.causation_id == event_id(cancel)


def test_operator_kill_switch_cancels_every_live_order(sim, sqlite_store):
    async def body(sess):
        a = await sess.place(stock("IBM"), limit("BUY", 10, ref="stuck_presubmitted"), timeout=0.3)
        b = await sess.place(stock("MSFT"), limit("SELL", 100, ref="partial_then_cancel"), timeout=0.3)
        for d in sess.engine.halt("test kill switch", cancel_all=True):
            sess.recorder.record(d)
        va, vb = sess.fold.orders[a.order_key], sess.fold.orders[b.order_key]
        ok = await sess.until(lambda: va.is_done and vb.is_done, 3)
        return ok, va.state, vb.state, vb.filled, len(sess.emergency_cancels)

    ok, sa, sb, filled_b, n = run_session(sim, sqlite_store, body)
    assert ok and (sa, sb) == ("Cancelled", "Cancelled") and filled_b == 40.0 and n == 2


def test_cancel_all_reports_cancelled_filled_and_unknown(sqlite_store):
    extra = scenarios(
        """
        [[scenario]]
        name = "deaf_to_cancel"
        [[scenario.steps]]
        type = "status"
        status = "Submitted"
        [[scenario.on_cancel]]
        type = "wait"
        """
    )
    with Simulator(accounts=(ACCOUNT,), scenarios=extra) as sim:

        async def body(sess):
            for sym, ref in (("IBM", "stuck_presubmitted"), ("AMD", "cancel_races_fill"), ("XOM", "deaf_to_cancel")):
                await sess.place(stock(sym), limit("BUY", 10, ref=ref), timeout=0.2)
            return await sess.cancel_all(timeout=1.0)

        report = run_session(sim, sqlite_store, body)
    verdicts = {o.symbol: o.verdict for o in report.orders}
    assert verdicts == {"IBM": "CANCELLED", "AMD": "FILLED", "XOM": "UNKNOWN"}
    assert not report.confirmed and report.unknown == 1 and "NOT confirmed" in report.message


def test_dropped_connection_mid_fill_is_reconciled(sim, sqlite_store):
    async def body(sess):
        r = await sess.place(stock("NVDA"), limit("BUY", 100, 90.0, ref="drop_mid_fill"), timeout=8)
        return r, sess.recorder.connects, sess.session_id

    r, connects, sid = run_session(sim, sqlite_store, body, reconnect_delay=0.05)
    truth = sim.broker.by_perm_id(r.perm_id)
    assert r.verdict == "FILLED" and r.settled and connects == 2
    assert r.filled == truth.filled == 100.0 and r.commission == 2.0 and len(r.fills) == 2
    kinds = [e.kind for e in events_of(sqlite_store, sid)]
    assert "disconnected" in kinds and kinds.count("reconcile_ended") >= 2


def test_account_mismatch_disconnects_and_ends_the_session(sim, sqlite_store):
    async def body(sess):  # pragma: no cover - never reached
        raise AssertionError("connected despite the mismatch")

    with pytest.raises(SettingsError, match="account mismatch") as e:
        run_session(sim, sqlite_store, body, account="DU9999999")
    assert ACCOUNT in str(e.value)
    (info,) = sqlite_store.sessions()
    last = list(sqlite_store.read_session(info.session_id))[-1].payload
    assert isinstance(last, ev.SessionEnded) and last.reason == "account mismatch"
    assert sim.connected_clients() == []


def test_connect_errors_say_why(sqlite_store):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = resolve(host="127.0.0.1", port=port, client_id=1, account=ACCOUNT, env={})

    async def nothing(sess):  # pragma: no cover - never reached
        return None

    async def go(settings, timeout):
        async with open_session(settings, sqlite_store, connect_timeout=timeout) as sess:
            return await nothing(sess)

    with pytest.raises(ConnectError, match="nothing listens"):
        asyncio.run(go(refused, 2))
    with Simulator(trusted_ips=("127.0.0.2",)) as untrusted:
        s = resolve(host="127.0.0.1", port=untrusted.port, client_id=1, account=ACCOUNT, env={})
        with pytest.raises(ConnectError, match="Trusted IPs"):
            asyncio.run(go(s, 0.5))
