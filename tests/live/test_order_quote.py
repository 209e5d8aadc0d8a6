"""``ibledger order`` takes one snapshot quote before a market order's pre-check.

A paper account usually has no live market-data subscription: TWS answers the snapshot with error 10089
and the quote is asked again as delayed data. The TWS side here is the project's simulator with a
market-data desk added the way TWS behaves (error 10089 for live data, delayed ticks after
``reqMarketDataType(3)``), over a real socket to the unmodified client; a simulator that does not answer
at all must end the quote cleanly at its timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ledger.ib.library import MarketOrder
from ledger.store import open_store
from replay.tws import protocol as P
from replay.tws.simulator import Simulator
from tests.live.test_placement import run_session
from tests.live.test_placement import stock as unqualified_stock

pytestmark = pytest.mark.ibclient

REQ_MKT_DATA, REQ_MARKET_DATA_TYPE = 1, 59
TICK_PRICE, TICK_SNAPSHOT_END = 1, 57


def stock():
    c = unqualified_stock()
    c.conId = 265598  # by hand until the simulator answers contract details (ib_async needs one)
    return c


class PaperDataSimulator(Simulator):
    """Answers market data like TWS for an account without a live subscription."""

    def __init__(self, *, delayed_price: float | None = 187.5, **kw) -> None:
        super().__init__(**kw)
        self.delayed_price = delayed_price
        self.data_type: dict[int, int] = {}
        self.snapshot_requests: list[tuple[int, int]] = []  # (reqId, market data type asked)

    def _dispatch(self, conn, req) -> None:
        # the raw fields of this request (logged just before dispatch), whatever the decoder makes of them
        _direction, _cid, fields = self.wire_log[-1]
        msg_id = int(fields[0])
        if msg_id == REQ_MARKET_DATA_TYPE:
            self.data_type[conn.client_id] = int(fields[2])
            return
        if msg_id == REQ_MKT_DATA:
            req_id = int(fields[2])
            mdt = self.data_type.get(conn.client_id, 1)
            self.snapshot_requests.append((req_id, mdt))
            if mdt == 1:
                text = "Requested market data is not subscribed. Delayed market data is available."
                conn.send(P.error(req_id, 10089, text, server_version=conn.server_version), self.wire_log)
                return
            if self.delayed_price is not None:
                conn.send([58, 1, req_id, mdt], self.wire_log)  # MARKET_DATA_TYPE
                conn.send([TICK_PRICE, 6, req_id, 68, self.delayed_price, 100, 0], self.wire_log)  # delayed last
            conn.send([TICK_SNAPSHOT_END, 1, req_id], self.wire_log)
            return
        super()._dispatch(conn, req)


def test_market_order_is_priced_from_a_delayed_snapshot_on_a_paper_account(sqlite_url):
    with PaperDataSimulator() as sim:

        async def body(sess):
            q = await sess.quote(stock())
            res = await sess.place(stock(), MarketOrder("BUY", 10), timeout=2)
            return q, res, sess.session_id

        q, res, sid = run_session(sim, sqlite_url, body)
    assert [mdt for _r, mdt in sim.snapshot_requests] == [1, 3]  # live refused, then delayed
    assert (q.price, q.market_data_type, q.errors) == (187.5, 3, [10089])
    with open_store(sqlite_url) as st:
        envs = list(st.read_session(sid))
    (obs,) = [e.payload for e in envs if e.kind == "price_observed"]
    assert (obs.symbol, obs.price, obs.tick, obs.market_data_type) == ("AAPL", 187.5, "last", 3)
    (d,) = [e.payload for e in envs if e.kind == "governor_decision" and e.payload.action == "place"]
    assert (d.decision, d.details["price_source"], d.details["price"]) == ("ALLOW", "market", 187.5)
    assert res.verdict != "BLOCKED"
    # the observation precedes the decision that used it
    seqs = {e.kind: e.seq for e in envs if e.kind in ("price_observed", "place_order")}
    assert seqs["price_observed"] < seqs["place_order"]


def test_no_answer_ends_the_quote_at_its_timeout_and_the_governor_says_how_to_fix_it(sqlite_url):
    with PaperDataSimulator(delayed_price=None) as sim:

        async def body(sess):
            q = await sess.quote(stock(), timeout=1.0)
            res = await sess.place(stock(), MarketOrder("BUY", 10), timeout=2)
            return q, res

        q, res = run_session(sim, sqlite_url, body)
    assert q.price is None and q.errors == [10089]
    assert res.verdict == "BLOCKED"
    assert "MARKET_ORDER_NO_PRICE" in res.message and "[prices].reference.AAPL" in res.message


def test_cli_market_order_against_the_builtin_simulator(tmp_path):
    """``ibledger order BUY AAPL 10 --simulate``: with market data from the simulator the order is priced
    from it; without any (no answer to the snapshot), it is blocked with the way out -- never mis-priced."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    r = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "order", "BUY", "AAPL", "10", "--simulate", "--json", "--store", url,
         "--timeout", "3"],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode in (0, 3), r.stderr
    out = json.loads(r.stdout)
    with open_store(url) as st:
        (sid,) = [s.session_id for s in st.sessions()]
        envs = list(st.read_session(sid))
    (d,) = [e.payload for e in envs if e.kind == "governor_decision" and e.payload.action == "place"]
    observed = [e.payload.price for e in envs if e.kind == "price_observed"]
    if observed:
        assert (d.decision, d.details["price_source"], d.details["price"]) == ("ALLOW", "market", observed[-1])
        assert out["verdict"] != "BLOCKED"
    else:
        assert (r.returncode, out["verdict"], d.reason) == (3, "BLOCKED", "MARKET_ORDER_NO_PRICE")
        assert "reqMktData" in out["message"]
