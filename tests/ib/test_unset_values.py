"""IB's unset sentinels never become numbers: orders built by the real client library, placed over a
real socket against the simulator, recorded through the recorder into a real store, then folded and
projected into DuckDB. Runs under ib_insync and ib_async (marker ``ibclient``)."""

from __future__ import annotations

import json
import math
import sys

import duckdb
import msgspec
import pytest

from ledger.core import codec
from ledger.core import events as ev
from ledger.core.fold import fold
from ledger.ib import adapter
from ledger.ib.library import IB, MarketOrder, Order, Stock, ib
from ledger.live.recorder import Recorder
from ledger.store import open_store
from projections.projector import rebuild
from replay.tws.simulator import Simulator
from tests.support.recording import stored, wait_for

pytestmark = pytest.mark.ibclient

UNSET_DOUBLE = sys.float_info.max
UNSET_INTEGER = 2**31 - 1
AAPL = Stock("AAPL", "SMART", "USD", conId=265598)


def bad_values(obj, path: str = "") -> list[str]:
    """Every sentinel / non-finite number anywhere inside a plain-data value, with where it sits."""
    out: list[str] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not (k == "orderId" and v == UNSET_INTEGER):  # the manual-order marker, an id
                out += bad_values(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += bad_values(v, f"{path}[{i}]")
    elif isinstance(obj, float) and (not math.isfinite(obj) or abs(obj) >= 1e300):
        out.append(f"{path}={obj!r}")
    elif isinstance(obj, str) and obj in ("1.7976931348623157e+308", "1.7976931348623157E308"):
        out.append(f"{path}={obj!r}")
    elif isinstance(obj, int) and not isinstance(obj, bool) and obj == UNSET_INTEGER and not path.endswith("_id"):
        out.append(f"{path}={obj!r}")
    return out


def strategy_orders(ib_: IB) -> list:
    """The orders a typical strategy places, each built by the client library's own constructors."""
    stop_limit = ib.StopLimitOrder("SELL", 5, 94.0, 95.0)
    trail = Order(action="SELL", totalQuantity=5, orderType="TRAIL", auxPrice=1.5)  # no TrailOrder class
    bracket = ib_.bracketOrder("BUY", 10, 99.0, 110.0, 90.0)
    return [MarketOrder("BUY", 10), ib.StopOrder("SELL", 10, 95.0), stop_limit, trail, *bracket]


def test_library_orders_over_the_wire_carry_no_sentinel(sqlite_url, tmp_path):
    with Simulator() as sim:
        ib_ = IB()
        rec = Recorder.attach(ib_, sqlite_url, mode="simulation")
        try:
            ib_.connect("127.0.0.1", sim.port, clientId=7, timeout=5)
            orders = strategy_orders(ib_)
            # the library's own objects do carry the sentinels: the point of the test
            assert orders[0].lmtPrice == UNSET_DOUBLE and orders[1].lmtPrice == UNSET_DOUBLE
            trades = [ib_.placeOrder(AAPL, o) for o in orders]
            assert wait_for(
                ib_, lambda: all(t.orderStatus.status not in ("", "PendingSubmit") for t in trades), 10.0
            ), [t.orderStatus.status for t in trades]
            ib_.sleep(0.1)
        finally:
            ib_.disconnect()
            rec.close()

    envs = stored(sqlite_url, rec.session_id)
    kinds = {e.kind for e in envs}
    assert {"place_order", "open_order", "order_status"} <= kinds
    for e in envs:
        assert e.v == type(e.payload).SCHEMA_VERSION
        assert not bad_values(msgspec.to_builtins(e.payload), e.kind), e
    places = {e.payload.order_id: e.payload for e in envs if e.kind == "place_order"}
    mkt = places[trades[0].order.orderId]
    assert mkt.order_type == "MKT" and mkt.lmt_price is None and mkt.aux_price is None
    assert mkt.order["lmtPrice"] is None and mkt.order["totalQuantity"] == 10
    stp = places[trades[1].order.orderId]
    assert stp.lmt_price is None and stp.aux_price == 95.0
    trail = places[trades[3].order.orderId]
    assert trail.order_type == "TRAIL" and trail.aux_price == 1.5 and trail.order["trailStopPrice"] is None

    f = fold(envs)
    views = [f.order_for(7, t.order.orderId) for t in trades]
    assert all(v is not None for v in views) and len(f.orders) == len(trades)
    for v in views:
        assert not bad_values(msgspec.to_builtins(v), v.key)
    assert views[0].lmt_price is None and views[1].lmt_price is None and views[1].aux_price == 95.0
    # orders --json material: strict JSON (no NaN / Infinity) and no sentinel
    doc = json.loads(msgspec.json.encode(f.snapshot_struct()))
    assert not bad_values(doc)

    with open_store(sqlite_url) as st:
        rebuild(st, tmp_path / "audit.duckdb")
    con = duckdb.connect(str(tmp_path / "audit.duckdb"), read_only=True)
    try:
        for table in ("orders", "fills", "events"):
            cols = con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
            assert cols and (table == "fills" or con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0)
            for col, typ in cols:
                if typ in ("DOUBLE", "FLOAT", "REAL"):
                    sql = f'SELECT count(*) FROM {table} WHERE abs("{col}") >= 1e300 OR isinf("{col}")'
                    n = con.execute(sql).fetchone()
                    assert n == (0,), (table, col)
                elif typ in ("VARCHAR", "JSON"):
                    n = con.execute(f"SELECT count(*) FROM {table} WHERE CAST(\"{col}\" AS VARCHAR) LIKE '%e+308%'"
                                    f" OR CAST(\"{col}\" AS VARCHAR) LIKE '%E308%'").fetchone()
                    assert n == (0,), (table, col)
    finally:
        con.close()


def test_old_sessions_holding_sentinels_are_upcast_on_read(tmp_path):
    """A session recorded before v2 (sentinels stored as numbers, v=1) reads back with None."""
    v1 = [
        ev.Envelope(session_id="old", seq=1, recv_ns=1, mono_ns=0, source="live", v=1,
                    payload=ev.PlaceOrder(order_id=1, order_type="MKT", total_qty=10, lmt_price=UNSET_DOUBLE,
                                          aux_price=UNSET_DOUBLE,
                                          order={"lmtPrice": UNSET_DOUBLE, "minQty": UNSET_INTEGER})),
        ev.Envelope(session_id="old", seq=2, recv_ns=2, mono_ns=0, source="live", v=1,
                    payload=ev.OrderStatus(order_id=1, status="Submitted", perm_id=9, mkt_cap_price=UNSET_DOUBLE)),
        ev.Envelope(session_id="old", seq=3, recv_ns=3, mono_ns=0, source="live", v=1,
                    payload=ev.CommissionReport(exec_id="e.01", commission=1.0, realized_pnl=UNSET_DOUBLE,
                                                yield_=UNSET_DOUBLE)),
        ev.Envelope(session_id="old", seq=4, recv_ns=4, mono_ns=0, source="live", v=1,
                    payload=ev.OpenOrder(order_id=1, perm_id=9, lmt_price=UNSET_DOUBLE, order_type="MKT",
                                         order_state={"initMarginChange": "1.7976931348623157E308"})),
    ]
    for env in v1:
        for back in (codec.from_json(codec.to_json(env)), codec.from_msgpack(codec.to_msgpack(env))):
            assert back.v == 2 and not bad_values(msgspec.to_builtins(back.payload)), back
    place = codec.from_json(codec.to_json(v1[0])).payload
    assert place.lmt_price is None and place.order == {"lmtPrice": None, "minQty": None}
    assert codec.from_json(codec.to_json(v1[1])).payload.mkt_cap_price is None


def test_adapter_maps_every_sentinel_kind():
    """UNSET_DOUBLE, UNSET_INTEGER, UNSET_LONG, UNSET_DECIMAL and the text form all become None."""
    import decimal

    o = Order(action="BUY", totalQuantity=decimal.Decimal(2**127 - 1), orderType="MKT")
    o.minQty = 2**63 - 1
    p = adapter.place_order(AAPL, o, 3, 1, modify=False)
    assert p.total_qty == 0.0 and p.lmt_price is None and p.order["totalQuantity"] is None
    assert p.order["minQty"] is None and p.order["orderId"] == 0
    st = adapter.order_status(3, "Submitted", 0, 10, 0, 5, 0, UNSET_DOUBLE, 1, "", UNSET_DOUBLE)
    assert st.mkt_cap_price is None and st.last_fill_price == 0.0
    x = adapter.exec_details(-1, AAPL, ib.Execution(execId="e.01", orderId=UNSET_INTEGER, permId=5, shares=1, price=2))
    assert x.order_id == UNSET_INTEGER  # the manual-order marker is an id, kept
    cr = adapter.commission_report(ib.CommissionReport(execId="e.01", commission=UNSET_DOUBLE))
    assert cr.commission is None
