"""The event-driven monitor against the simulator: what "settled" means (executions cover the broker's
filled quantity, every execution has its commission, a linger for late corrections), and timeouts that
report LIVE / UNCONFIRMED — never failed, never cancelled."""

from __future__ import annotations

import json
import time

import msgspec
import pytest

from ledger.core import events as ev
from ledger.live.monitor import MonitorResult
from replay.tws.simulator import Simulator
from tests.live import test_placement as tp
from tests.support.placement import ACCOUNT, limit, run_session, scenarios, stock

sqlite_store = tp.sqlite_store  # the fixture (a real SQLite store in tmp_path)

pytestmark = pytest.mark.ibclient

NUMBERS = ("filled", "remaining", "avg_fill_price", "commission", "total_qty", "broker_filled")


@pytest.fixture
def sim():
    extra = scenarios(
        """
        [[scenario]]
        name = "filled_before_execs"
        description = "the Filled status comes first; the execution and its commission much later"
        price = 10.0
        [[scenario.steps]]
        type = "status"
        status = "Submitted"
        [[scenario.steps]]
        type = "status"
        status = "Filled"
        filled = 100
        remaining = 0
        avg_fill_price = 10.0
        [[scenario.steps]]
        type = "exec"
        after_ms = 150
        exec = "a"
        qty = 100
        [[scenario.steps]]
        type = "commission"
        after_ms = 150
        exec = "a"
        commission = 1.5
        """
    )
    with Simulator(accounts=(ACCOUNT,), scenarios=extra) as s:
        yield s


def place(sim, store, ref: str, *, timeout: float = 5.0, qty: float = 100, linger: float = 0.1,
          after: float = 0.0):
    """Place one order; optionally keep the session open ``after`` seconds and return the ledger view then."""

    async def body(sess):
        r = await sess.place(stock(), limit("BUY", qty, ref=ref), timeout=timeout, linger=linger)
        later = None
        if after:
            view = sess.fold.orders.get(r.order_key)
            await sess.until(lambda: False, after)  # keep recording (event-driven wait, no polling)
            later = msgspec.structs.replace(view) if view is not None else None
        return r, later, sess.session_id

    return run_session(sim, store, body)


def test_fill_result_has_numbers_timestamps_and_critical_transitions(sim, sqlite_store):
    r, _, _ = place(sim, sqlite_store, "fill_simple")
    data = json.loads(msgspec.json.encode(r))
    assert all(isinstance(data[k], float) for k in NUMBERS)  # numbers, never null
    assert r.verdict == "FILLED" and r.is_filled and r.settled and not r.timed_out and not r.is_live
    assert (r.filled, r.remaining, r.avg_fill_price, r.commission) == (100.0, 0.0, 100.0, 1.0)
    assert r.perm_id > 0 and r.order_id > 0 and r.broker_status == "Filled" and r.state == "Filled"
    assert [s.status for s in r.statuses][-1] == "Filled"
    assert all(a.recv_ns <= b.recv_ns for a, b in zip(r.statuses, r.statuses[1:], strict=False))
    assert [t.critical for t in r.transitions] == ["ORDER_LIVE", "FILLED"]
    assert [d.decision for d in r.decisions] == ["ALLOW"]
    assert r.fills[0].commission == 1.0


def test_a_terminal_status_is_not_the_end(sim, sqlite_store):
    t0 = time.monotonic()
    r, _, _ = place(sim, sqlite_store, "filled_before_execs", linger=0.05)
    # the Filled status arrived at once; the monitor waited for the execution *and* its commission
    assert time.monotonic() - t0 >= 0.3
    assert r.verdict == "FILLED" and r.settled and r.filled == 100.0 and r.commission == 1.5
    assert [t.critical for t in r.transitions] == ["ORDER_LIVE", "BROKER_FILLED", "FILLED"]


def test_the_linger_catches_a_late_correction(sim, sqlite_store):
    r, _, _ = place(sim, sqlite_store, "exec_correction", linger=0.3)
    assert r.verdict == "FILLED" and len(r.fills) == 2
    assert [f.superseded for f in r.fills] == [True, False] and r.fills[1].correction
    assert r.filled == 100.0 and r.avg_fill_price == pytest.approx(100.05)


def test_a_correction_after_the_monitor_returned_still_reaches_the_ledger(sim, sqlite_store):
    r, later, sid = place(sim, sqlite_store, "exec_correction", linger=0.0, after=0.3)
    assert r.verdict == "FILLED"
    assert later.avg_fill_price == pytest.approx(100.05) and later.filled == 100.0 and len(later.fills) == 2
    kinds = [e.payload.exec_id for e in sqlite_store.read_session(sid) if isinstance(e.payload, ev.ExecDetails)]
    assert [k.rsplit(".", 1)[1] for k in kinds] == ["01", "02"]


def test_presubmitted_timeout_is_live_not_failed_and_not_cancelled(sim, sqlite_store):
    r, later, sid = place(sim, sqlite_store, "stuck_presubmitted", timeout=0.3, after=0.1)
    assert r.verdict == "LIVE" and r.is_live and r.timed_out and not r.settled
    assert r.broker_status == "PreSubmitted" and "Not failed" in r.message and "fail" not in r.verdict.lower()
    assert later.is_live
    assert not any(isinstance(e.payload, ev.CancelOrder | ev.GlobalCancel) for e in sqlite_store.read_session(sid))
    assert sim.broker.by_perm_id(r.perm_id).status == "PreSubmitted"


def test_unacknowledged_timeout_is_unconfirmed_and_the_ack_still_lands(sim, sqlite_store):
    r, later, _ = place(sim, sqlite_store, "long_silence", timeout=0.3, after=1.6)
    assert r.verdict == "UNCONFIRMED" and r.unconfirmed and r.timed_out and r.broker_status == ""
    assert "may be live" in r.message
    assert later.state == "Working" and later.broker_status == "Submitted" and not later.unconfirmed


def test_partial_fill_timeout_is_partially_filled_and_live(sim, sqlite_store):
    r, _, _ = place(sim, sqlite_store, "partial_then_cancel", timeout=0.3)
    assert r.verdict == "PARTIALLY_FILLED" and r.is_live and r.filled == 40.0 and r.remaining == 60.0
    assert "PARTIALLY_FILLED" in [t.critical for t in r.transitions]


def test_rejection(sim, sqlite_store):
    r, _, _ = place(sim, sqlite_store, "reject_201", timeout=3)
    assert r.verdict == "REJECTED" and r.is_done and "margin" not in r.verdict
    assert "YOUR ORDER IS NOT ACCEPTED" in r.message
    assert isinstance(r, MonitorResult) and r.filled == 0.0
