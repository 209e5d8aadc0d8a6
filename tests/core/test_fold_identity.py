"""Orders from real strategies, fold side: identity across runs and accounts, held = live, bad numbers
flagged and not applied, what-if requests never orders. Property: the projector takes whatever the fold
takes (the same adversarial streams)."""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core import events as ev
from ledger.core.engine import Engine
from ledger.core.events import Envelope
from ledger.core.fold import fold
from ledger.ib import adapter
from ledger.ib.library import LimitOrder, Stock
from ledger.live.monitor import HELD, verdict_of
from ledger.store import open_store
from projections.projector import update
from replay.strategies import event_streams
from tests.core.test_fold import Feed, comm, execd, place, status

AAPL = Stock("AAPL", "SMART", "USD", conId=265598)


def one_run(session: str, perm_base: int, exec_prefix: str, n: int = 3) -> list[Envelope]:
    """A run of a fresh simulator: orderIds and permIds restart, every order fills."""
    f = Feed(session=session)
    for i in range(1, n + 1):
        perm = perm_base + i
        eid = f"{exec_prefix}.{i:04d}.01"
        f(place(i), status("Submitted", oid=i, perm=perm), execd(eid, 100, oid=i, perm=perm), comm(eid),
          status("Filled", oid=i, perm=perm, filled=100))
    f(ev.SessionEnded())
    return f.envs


def test_two_independent_runs_with_the_same_perm_ids_give_one_order_per_placed_order() -> None:
    envs = one_run("run-1", 1100000000, "0000a") + one_run("run-2", 1100000000, "0000b")
    f = fold(envs)
    assert len(f.orders) == 6 and f.anomalies == []
    assert all(o.state == "Filled" and o.filled == 100 and len(o.fills) == 1 for o in f.orders.values())
    assert {o.session_id for o in f.orders.values()} == {"run-1", "run-2"}


def test_colliding_exec_ids_are_flagged_never_dropped() -> None:
    envs = one_run("run-1", 1100000000, "0000a") + one_run("run-2", 1100000000, "0000a")
    f = fold(envs)
    assert len(f.orders) == 6
    assert all(o.filled == 100 and o.commission == 1.0 for o in f.orders.values())  # nothing dropped
    kinds = [a.kind for a in f.anomalies]
    assert kinds == ["exec_id_collision"] * 3


def test_perm_ids_are_scoped_by_account() -> None:
    """Manual TWS orders of two accounts with one permId: two orders, each with its own fill."""
    f = Feed()

    def manual(account: str, eid: str, qty: float) -> list[ev.Event]:
        return [
            ev.OpenOrder(order_id=0, perm_id=777, account=account, symbol="AAPL", con_id=265598, action="BUY",
                         total_qty=qty, order_type="LMT", lmt_price=10.0, status="Submitted"),
            ev.ExecDetails(exec_id=eid, order_id=2**31 - 1, perm_id=777, account=account, shares=qty, price=10.0,
                           side="BOT", symbol="AAPL", con_id=265598),
        ]

    f(*manual("DU1", "e1.01", 10), *manual("DU2", "e2.01", 20))
    orders = sorted(f.fold.orders.values(), key=lambda o: o.account)
    assert [(o.account, o.total_qty, o.filled) for o in orders] == [("DU1", 10, 10), ("DU2", 20, 20)]
    assert f.kinds() == []


def test_a_correction_never_attaches_to_another_orders_execution_family() -> None:
    f = Feed()
    f(place(1), status("Submitted", oid=1, perm=501), execd("fam.01", 40, oid=1, perm=501))
    f(place(2), status("Submitted", oid=2, perm=502), execd("fam.02", 30, oid=2, perm=502))
    a, b = f.fold.order_for(1, 1), f.fold.order_for(1, 2)
    assert a.filled == 40 and not a.fills[0].superseded  # the other order's fill untouched
    assert b.filled == 30
    assert f.kinds() == ["exec_id_collision"]


def test_held_is_live_for_fold_monitor_and_governor() -> None:
    engine = Engine()
    f = Feed()
    f(place(1), status("Inactive", oid=1, why_held="locate"))
    for env in f.envs:
        engine.step(env)
    o = f.fold.order_for(1, 1)
    assert o.is_live and not o.is_done and o.state == "Inactive"
    assert verdict_of(o) == HELD
    assert [v.key for v in engine.open_orders()] == [o.key]
    f(status("Inactive", oid=1))  # released from the hold without a reason: dormant, not live
    assert verdict_of(o) == HELD or not o.is_live


def test_bad_numbers_are_flagged_and_not_applied() -> None:
    f = Feed()
    f(place(1), status("Submitted"))
    o = f.fold.order_for(1, 1)
    for bad in (math.nan, math.inf, -math.inf, -5.0):
        f(execd(f"x{bad}.01", bad), execd(f"p{bad}.01", 10, price=bad))
        f(status("Submitted", filled=bad), comm("whatever.01", bad))
    f(ev.Position(account="DU1", con_id=265598, position=math.nan))
    assert o.filled == 0 and o.fills == [] and o.broker_filled == 0 and o.state == "Working"
    assert set(f.kinds()) == {"bad_number"} and len(f.kinds()) == 4 * 4 - 1 + 1  # -5 commission is a rebate
    f(execd("good.01", 10), ev.CommissionReport(exec_id="good.01", commission=None))
    assert o.filled == 10 and o.fills[0].commission is None and f.kinds()[-1] == "bad_number"
    # what `ibledger orders --json` prints: strict JSON
    json.loads(msgspec.json.encode(f.fold.snapshot_struct()))


def test_what_if_orders_are_never_orders() -> None:
    """A what-if built by the client library: recorded, but never counted, open or live."""
    order = LimitOrder("BUY", 100, 10.0)
    order.whatIf = True
    intent = adapter.place_order(AAPL, order, 9, 1, modify=False)
    answer = adapter.open_order(9, AAPL, order, None)
    assert intent.order["whatIf"] is True
    f = Feed()
    f(ev.GovernorDecision(decision="ALLOW", reason="OK", action="place", order_id=9, client_id=1))
    f(intent, answer)
    assert f.fold.orders == {} and f.fold.open_orders() == [] and f.fold.what_ifs == [("S1", 1, 9)]
    f(place(10))  # a real order beside it still counts
    assert [o.order_id for o in f.fold.open_orders()] == [10]


# --- property: the projector takes every stream the fold takes ------------------------------------

_BAD = st.sampled_from([math.nan, math.inf, -math.inf, sys.float_info.max, -1.0, 0.0, None])


@st.composite
def adversarial_streams(draw) -> list[Envelope]:
    base = draw(event_streams(max_sessions=2, max_orders=3))
    out = []
    for env in base:
        p = env.payload
        if isinstance(p, ev.ExecDetails | ev.OrderStatus | ev.CommissionReport | ev.OpenOrder | ev.PlaceOrder):
            if draw(st.integers(0, 3)) == 0:
                names = [n for n in ("shares", "price", "filled", "remaining", "avg_fill_price", "commission",
                                     "realized_pnl", "lmt_price", "aux_price", "total_qty") if hasattr(p, n)]
                name = draw(st.sampled_from(names))
                v = draw(_BAD)
                optional = name in ("commission", "realized_pnl", "lmt_price", "aux_price")
                p = msgspec.structs.replace(p, **{name: v if v is not None or optional else math.nan})
        out.append(msgspec.structs.replace(env, payload=p))
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(adversarial_streams())
def test_projector_never_fails_on_what_the_fold_accepts(envs: list[Envelope]) -> None:
    assert not [a for a in fold(envs).anomalies if a.kind == "internal_error"]  # never raises, no bug
    with tempfile.TemporaryDirectory() as d:
        with open_store(f"sqlite:///{d}/ledger.db") as store:
            store.append(envs)
            update(store, Path(d) / "audit.duckdb")
            # what the projector folds: the stored events as read back (v1 sentinels upcast to None)
            f = fold(env for _, env in store.read_all())
        json.loads(msgspec.json.encode(f.snapshot_struct()))
        import duckdb

        con = duckdb.connect(str(Path(d) / "audit.duckdb"), read_only=True)
        try:
            assert con.execute("SELECT count(*) FROM orders").fetchone()[0] == len(f.orders)
            got = sorted(con.execute("SELECT session_id, seq, kind FROM anomalies").fetchall())
            assert got == sorted((a.session_id, a.seq, a.kind) for a in f.anomalies)
        finally:
            con.close()


def test_orders_json_is_strict_json_with_bad_numbers_and_old_sentinels(tmp_path: Path) -> None:
    """`ibledger orders --json` over a store holding NaN / inf facts and v1 sentinels: strict JSON."""
    import subprocess

    f = Feed(session="json-sess")
    f(place(1), status("Submitted"), execd("e.01", math.nan), execd("e2.01", 10, price=math.inf))
    f(ev.CommissionReport(exec_id="e2.01", commission=math.nan))
    f(ev.PlaceOrder(order_id=2, order_type="MKT", total_qty=5, lmt_price=sys.float_info.max,
                    aux_price=sys.float_info.max))
    url = f"sqlite:///{tmp_path}/ledger.db"
    with open_store(url) as store:
        store.append(f.envs)
    r = subprocess.run([sys.executable, "-m", "ledger.cli", "orders", "--json", "--store", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr

    def refuse(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    doc = json.loads(r.stdout, parse_constant=refuse)
    by_id = {o["order_id"]: o for o in doc["orders"]}
    assert by_id[1]["filled"] == 0 and by_id[2]["lmt_price"] is None and "e+308" not in r.stdout
    assert [a["kind"] for a in doc["anomalies"]] == ["bad_number"] * 3
