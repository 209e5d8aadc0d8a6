"""P&L and positions: the arithmetic, the DuckDB views against the Python reading, and the CLI end to end
(real ib_insync / ib_async client against the simulator, real SQLite, real DuckDB)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pytest

from ledger.core import events as ev
from ledger.core.fold import LedgerFold
from ledger.core.pnl import contract_pnl, order_pnl, position_history
from ledger.store import open_store
from projections.projector import update
from replay.tws.simulator import Simulator
from tests.cli.test_cli_live import run_cli
from tests.support.audit_streams import generate

UNSET_DOUBLE = 1.7976931348623157e308
T0 = 1_764_072_000_000_000_000


def _session(trades: list[tuple[str, float, float, float | None]]) -> list[ev.Envelope]:
    """One order per trade (side, shares, price, realized P&L as the commission report carries it)."""
    payloads: list[ev.Event] = [ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=3,
                                                  account="DU1234567")]
    for i, (side, shares, price, realized) in enumerate(trades, start=1):
        action = "BUY" if side == "BOT" else "SELL"
        payloads += [
            ev.OpenOrder(order_id=i, perm_id=5000 + i, client_id=3, account="DU1234567", symbol="AAPL",
                         sec_type="STK", con_id=265598, action=action, total_qty=shares, order_type="MKT",
                         status="Submitted"),
            ev.ExecDetails(exec_id=f"e{i}.01", order_id=i, perm_id=5000 + i, client_id=3, account="DU1234567",
                           side=side, shares=shares, price=price, cum_qty=shares, avg_price=price, symbol="AAPL",
                           sec_type="STK", con_id=265598),
            ev.CommissionReport(exec_id=f"e{i}.01", commission=1.0, currency="USD", realized_pnl=realized),
            ev.OrderStatus(order_id=i, status="Filled", filled=shares, remaining=0.0, perm_id=5000 + i,
                           client_id=3, avg_fill_price=price),
        ]
    return [ev.Envelope(session_id="pnl", seq=n, recv_ns=T0 + n * 1_000_000, mono_ns=n, source="live", payload=p)
            for n, p in enumerate(payloads, start=1)]


def _fold(envs):
    f = LedgerFold()
    for e in envs:
        f.apply(e)
    return list(f.orders.values())


def test_average_cost_through_zero_and_unset_realized_values():
    # buy 100 @ 10, buy 100 @ 12 -> 200 @ 11; sell 150 @ 13 -> 50 @ 11 (broker says +300);
    # sell 100 @ 9 -> closes 50 (broker says -100) and opens -50 @ 9
    orders = _fold(_session([("BOT", 100, 10.0, UNSET_DOUBLE), ("BOT", 100, 12.0, None),
                             ("SLD", 150, 13.0, 300.0), ("SLD", 100, 9.0, -100.0)]))
    points = position_history(orders)
    assert [(p.position, p.avg_cost) for p in points] == [(100, 10.0), (200, 11.0), (50, 11.0), (-50, 9.0)]
    assert [p.realized_pnl for p in points] == [None, None, 300.0, 200.0]  # unset sentinel ignored, not summed
    (c,) = contract_pnl(orders)
    assert (c.position, c.bought, c.sold, c.fills, c.commission, c.realized_pnl) == (-50, 200, 250, 4, 4.0, 200.0)
    assert c.mark == 9.0 and c.unrealized_pnl == 0.0
    (c2,) = contract_pnl(orders, marks={"AAPL": 8.0})
    assert c2.unrealized_pnl == pytest.approx(50.0)  # short 50 from 9, marked at 8
    first = order_pnl(orders[0])
    assert first.realized_pnl is None and first.bought == 100 and first.commission == 1.0


def test_duckdb_views_equal_the_python_reading(tmp_path: Path):
    stream = generate(n_sessions=2, orders_per_session=40, seed=11)
    envs = stream.envelopes
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with open_store(url) as st:
        st.append(envs)
        update(st, tmp_path / "l.duckdb")
    orders = _fold(envs)
    con = duckdb.connect(str(tmp_path / "l.duckdb"), read_only=True)
    try:
        db = {r[0]: r[1:] for r in con.execute(
            "SELECT order_key, bought, sold, commission, realized_pnl FROM pnl").fetchall()}
        pot = con.execute("SELECT exec_id, position FROM positions_over_time ORDER BY recv_ns, session_id, seq, "
                          "exec_id").fetchall()
    finally:
        con.close()
    with_fills = [o for o in orders if any(not f.superseded for f in o.fills)]
    assert with_fills and set(db) == {o.key for o in with_fills}
    for o in with_fills:
        p = order_pnl(o)
        bought, sold, commission, realized = db[o.key]
        assert (bought, sold) == (p.bought, p.sold)
        assert math.isclose(commission, p.commission, abs_tol=1e-9)
        assert (realized is None) == (p.realized_pnl is None)
    assert [(p.exec_id, p.position) for p in position_history(orders)] == [(e, pytest.approx(q)) for e, q in pot]


@pytest.mark.ibclient
def test_orders_json_shows_pnl_of_orders_sent_through_the_client(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    with Simulator(accounts=("DU1234567",)) as sim:  # one broker: permIds stay unique
        for side, qty in (("BUY", "10"), ("SELL", "4")):
            r = run_cli("order", side, "AAPL", qty, "--limit", "100", "--order-ref", "fill_simple", "--json",
                        "--store", url, "--host", "127.0.0.1", "--port", str(sim.port), "--client-id", "3",
                        "--account", "DU1234567")
            assert r.returncode == 0, r.stderr
    r = run_cli("orders", "--json", "--store", url)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (aapl,) = [c for c in doc["contracts"] if c["symbol"] == "AAPL"]
    assert (aapl["position"], aapl["bought"], aapl["sold"], aapl["fills"] >= 2) == (6, 10, 4, True)
    assert aapl["commission"] == pytest.approx(sum(o["commission"] for o in doc["orders"]))
    assert all(o["realized_pnl"] is None or math.isfinite(o["realized_pnl"]) for o in doc["orders"])
