"""``ibledger demo``: the README's main job, in process and as the command, re-runnable on one store.

The strategy steps are checked on the recorded ledger (the store's session folded again), against the
simulated market computed independently (``replay.tws.market`` with the demo's market seed), not on the
printed text; ``--seed`` makes two runs record the same session file, byte for byte.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ledger.cli.demo import DEMO_GOVERNOR, DEMO_MARKET_SEED, DEMO_QTY, FIXTURE_NAME, STOP_LOSS, TAKE_PROFIT, run_demo
from ledger.core import events as ev
from ledger.core.fold import fold
from ledger.store import open_store
from ledger.store.sessionfile import validate
from replay.tws.broker import SimClock
from replay.tws.catalogue import Catalogue
from replay.tws.market import Market
from tests.support.cli import run_cli

pytestmark = pytest.mark.ibclient

AAPL = 265598
VERDICTS = [
    "PRICES", "FILLED", "FILLED/FILLED/CANCELLED",
    "FILLED", "FILLED", "LIVE", "CANCELLED", "BLOCKED", "FILLED", "REJECTED", "BLOCKED",
]  # fmt: skip


def _quote_before(exec_time: str):
    """The simulated AAPL quote one second before an execution's time (the broker stamps an execution
    after moving its clock one second past the quote it filled against)."""
    inst = Catalogue().by_con_id(AAPL)
    market = Market(seed=DEMO_MARKET_SEED, anchor=SimClock().epoch())
    t = int(dt.datetime.fromisoformat(exec_time).timestamp()) - 1
    return market.quote(inst, t)


def test_demo_runs_a_strategy_against_the_market_and_the_quirks(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    with open_store(url) as st:
        report = run_demo(st, export_dir=tmp_path / "fixtures")
        envs = list(st.read_session(report.session_id))
    assert report.ok, [(s.n, s.title, s.verdict, s.detail) for s in report.steps if not s.ok]
    assert [s.verdict for s in report.steps] == VERDICTS
    assert report.duration_s < 15
    header = validate(tmp_path / "fixtures" / FIXTURE_NAME)
    assert header.session_id == report.session_id and header.events == report.events

    # --- the recorded ledger: the strategy's orders as the store holds them --------------------------
    ledger = fold(envs)
    aapl = [o for o in ledger.orders.values() if o.con_id == AAPL and not o.order_ref]
    mkt, parent, tp, sl = aapl[:4]
    observed = [e.payload for e in envs if isinstance(e.payload, ev.PriceObserved) and e.payload.con_id == AAPL]
    assert observed, "the quote's ticks were not recorded as price_observed"
    # the market order: filled at the touch, the ask of the simulated market at that second
    assert (mkt.order_type, mkt.action, mkt.state, mkt.filled) == ("MKT", "BUY", "Filled", DEMO_QTY)
    [fill] = mkt.fills
    assert fill.price == mkt.avg_fill_price == _quote_before(fill.time).ask
    # the bracket: the parent fills, the take-profit fills at or above its limit, the stop is cancelled
    assert (parent.order_type, parent.state, parent.filled) == ("LMT", "Filled", DEMO_QTY)
    assert (tp.order_type, tp.action, tp.state, tp.filled) == ("LMT", "SELL", "Filled", DEMO_QTY)
    assert (sl.order_type, sl.action, sl.state, sl.filled) == ("STP", "SELL", "Cancelled", 0.0)
    entry_ask = tp.lmt_price - TAKE_PROFIT
    assert sl.aux_price == pytest.approx(entry_ask - STOP_LOSS)
    [tp_fill] = tp.fills
    assert tp_fill.price >= tp.lmt_price and tp_fill.price == _quote_before(tp_fill.time).bid
    assert tp_fill.recv_ns > parent.fills[0].recv_ns  # the market ran (simulated seconds) in between
    # the stop was never triggered: the last price stayed above it until the take-profit filled
    assert all(not s.startswith("Filled") for _, s in sl.statuses)
    positions = {(p.con_id): p.position for p in ledger.positions.values()}
    assert positions[AAPL] == DEMO_QTY + 100  # the market order stays; the bracket went in and out; step 4's 100

    # the recording follows the engine's protocol: a replay re-makes every decision, nothing diverges
    from replay.replayer import Replayer

    replay = Replayer(DEMO_GOVERNOR, check=True).run(tmp_path / "fixtures" / FIXTURE_NAME)
    assert replay.ok, replay.report()
    assert replay.trading_state == "HALTED"

    # the command, on the same store: a second session, same outcome
    r = run_cli("demo", "--store", url)
    assert r.returncode == 0, r.stdout + r.stderr
    for needle in ("11/11 steps as expected", "one-minute bars", "Orders", "Governor decisions", "EMERGENCY_CANCEL",
                   "MAX_QTY", "LIVE", "take-profit"):
        assert needle in r.stdout
    with open_store(url) as st:
        sessions = st.sessions()
    assert len(sessions) == 2 and all(not s.crashed for s in sessions)


def test_two_demo_runs_with_one_seed_record_the_same_bytes(tmp_path):
    paths = []
    for run in ("a", "b"):
        with open_store(f"sqlite:///{tmp_path / run}.db") as st:
            report = run_demo(st, export_dir=tmp_path / run, seed=42)
        assert report.ok
        paths.append(tmp_path / run / FIXTURE_NAME)
    first, second = (p.read_bytes() for p in paths)
    assert first == second
    assert b'"recv_ns":1704205800000000000' in first  # stamped from the simulated clock, not the machine's

    # the same seed again into a store that holds its session: a clear refusal, nothing recorded
    url = f"sqlite:///{tmp_path / 'a'}.db"
    r = run_cli("demo", "--seed", "42", "--store", url)
    assert r.returncode == 2 and "already in" in r.stderr and "Traceback" not in r.stderr, r.stderr
    with open_store(url) as st:
        assert len(st.sessions()) == 1
