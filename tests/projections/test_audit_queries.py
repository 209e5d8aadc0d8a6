"""Every named audit query, checked against the ground truth of the generated stream (not the fold).

The stream (tests/support/audit_streams.py) knows, per order, its scenario and what a risk officer should see;
the expected answers below are computed from that, independently of the fold and of the SQL.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.store import open_store
from projections.projector import update
from projections.queries import BY_NAME, QUERIES, QueryError, export, run_sql
from tests.support.audit_streams import LIVE_SCENARIOS, SCENARIOS, Stream, generate


@pytest.fixture(scope="module")
def stream() -> Stream:
    return generate(n_sessions=4, orders_per_session=3 * len(SCENARIOS), seed=21)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def projection(request, stream: Stream, tmp_path_factory) -> Iterator[Path]:
    """One projection per backend for the whole module (the queries only read it)."""
    d = tmp_path_factory.mktemp("audit")
    schema = ""
    if request.param == "sqlite":
        url = f"sqlite:///{d / 'ledger.db'}"
    else:
        base = request.getfixturevalue("pg_database_url")
        schema = f"audit_{uuid.uuid4().hex[:12]}"
        url = f"{base}?schema={schema}"
    path = d / "audit.duckdb"
    try:
        with open_store(url) as store:
            store.append(stream.envelopes)
            update(store, path, payloads=True)
        yield path
    finally:
        if schema:
            import psycopg

            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def q(path: Path, name: str) -> list[dict]:
    cols, rows = run_sql(path, BY_NAME[name].sql)
    return [dict(zip(cols, r, strict=True)) for r in rows]


def ident(o) -> tuple:
    return (o.client_id, o.order_id, o.perm_id) if o.scenario != "manual" else (o.client_id, 0, o.perm_id)


def row_ident(r: dict) -> tuple:
    return (r["client_id"], r["order_id"], r["perm_id"])


def quantile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (what quantile_cont computes), written out."""
    xs = sorted(values)
    pos = (len(xs) - 1) * p
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def test_every_scenario_is_present(stream: Stream) -> None:
    assert {o.scenario for o in stream.orders} == set(SCENARIOS)


def test_live(projection: Path, stream: Stream) -> None:
    got = {row_ident(r) for r in q(projection, "live")}
    assert got == {ident(o) for o in stream.orders if o.scenario in LIVE_SCENARIOS}
    assert all(r["state"] in ("Working", "PartiallyFilled") for r in q(projection, "live"))


def test_unconfirmed(projection: Path, stream: Stream) -> None:
    got = {(r["client_id"], r["order_id"]) for r in q(projection, "unconfirmed")}
    assert got == {(o.client_id, o.order_id) for o in stream.orders if o.scenario == "unconfirmed"}


def test_failed_while_live(projection: Path, stream: Stream) -> None:
    rows = q(projection, "failed-while-live")
    assert {row_ident(r) for r in rows} == {ident(o) for o in stream.orders if o.failure_reported_while_live}
    by_scenario = {ident(o): o.scenario for o in stream.orders}
    for r in rows:
        sc = by_scenario[row_ident(r)]
        if sc == "cancel_then_fill":
            assert r["report"] == "status Cancelled" and r["filled_after"]
        else:
            assert sc == "error_while_live"
            assert r["report"] == "error 202" and r["live_when_reported"] and r["filled_after"]
        assert r["live_when_reported"]  # both were live when the failure was reported


def test_status_fill_disagreements(projection: Path, stream: Stream) -> None:
    rows = q(projection, "status-fill-disagreements")
    # the broker said Filled but no execution came; or it said Cancelled (0 filled) and then it filled
    want = {ident(o): o for o in stream.orders if o.scenario in ("status_no_exec", "cancel_then_fill")}
    assert {row_ident(r) for r in rows} == set(want)
    for r in rows:
        o = want[row_ident(r)]
        if o.scenario == "status_no_exec":
            assert (r["status_filled"], r["filled"]) == (o.qty, 0.0)
        else:
            assert (r["status_filled"], r["filled"]) == (0.0, o.qty)


def test_latency(projection: Path, stream: Stream) -> None:
    rows = {r["symbol"]: r for r in q(projection, "latency")}
    ack: dict[str, list[float]] = defaultdict(list)
    fill: dict[str, list[float]] = defaultdict(list)
    placed: dict[str, int] = defaultdict(int)
    for o in stream.orders:
        if not o.placed_ns:
            continue
        placed[o.symbol] += 1
        if o.ack_ns is not None:
            ack[o.symbol].append((o.ack_ns - o.placed_ns) / 1e6)
        if o.first_fill_ns is not None:
            fill[o.symbol].append((o.first_fill_ns - o.placed_ns) / 1e6)
    assert set(rows) == set(placed)
    for sym, r in rows.items():
        assert r["orders"] == placed[sym]
        assert r["acked"] == len(ack[sym]) and r["filled"] == len(fill[sym])
        assert r["ack_p50_ms"] == pytest.approx(quantile(ack[sym], 0.5), abs=1e-6)
        assert r["ack_p99_ms"] == pytest.approx(quantile(ack[sym], 0.99), abs=1e-6)
        assert r["first_fill_p50_ms"] == pytest.approx(quantile(fill[sym], 0.5), abs=1e-6)
        assert r["first_fill_p99_ms"] == pytest.approx(quantile(fill[sym], 0.99), abs=1e-6)


def test_late_fills_and_corrections(projection: Path, stream: Stream) -> None:
    rows = q(projection, "late-fills")
    by = {ident(o): o for o in stream.orders}
    want = {ident(o) for o in stream.orders if o.late_fills or o.corrections}
    assert {(r["perm_id"]) for r in rows} == {i[2] for i in want}
    for r in rows:
        o = next(x for i, x in by.items() if i[2] == r["perm_id"])
        if o.scenario == "cancel_then_fill":
            assert r["what"] == "late fill" and r["replaces_exec_id"] is None and r["shares"] == o.qty
        else:
            assert o.scenario == "corrected"
            # a correction replaces a fill, it is not a new one: not late even though .01 had filled the order
            assert r["what"] == "correction"
            assert r["exec_id"].endswith(".02") and r["replaces_exec_id"] == r["exec_id"][:-2] + "01"
            assert r["price"] == pytest.approx(r["replaced_price"] + 0.05)
            assert r["price"] == o.fill_prices[-1][1]


def test_governor_blocks(projection: Path, stream: Stream) -> None:
    rows = q(projection, "governor-blocks")
    want = {(o.client_id, o.order_id): o.block_reason for o in stream.orders if o.scenario == "blocked"}
    assert {(r["client_id"], r["order_id"]): r["reason"] for r in rows} == want
    counts = defaultdict(int)
    for reason in want.values():
        counts[reason] += 1
    assert all(r["decision"] == "BLOCK" and r["same_reason"] == counts[r["reason"]] for r in rows)
    assert all(json.loads(r["details"])["limit"] < json.loads(r["details"])["qty"] for r in rows)


def test_crashed_sessions(projection: Path, stream: Stream) -> None:
    rows = q(projection, "crashed-sessions")
    assert {r["session_id"] for r in rows} == {s.session_id for s in stream.sessions if s.crashed}
    s = next(s for s in stream.sessions if s.crashed)
    assert rows[0]["events"] == s.events and rows[0]["missing"] == 0 and not rows[0]["has_end"]


def test_gaps(projection: Path, stream: Stream) -> None:
    rows = q(projection, "gaps")
    assert [r["session_id"] for r in rows] == [s.session_id for s in stream.sessions for _ in range(s.disconnects)]
    for r, s in zip(rows, [s for s in stream.sessions if s.disconnects], strict=True):
        assert r["gap"] == "disconnected" and r["restored_by"] == "connected"
        assert r["gap_ms"] == pytest.approx(1500.0)
        assert (r["reconciliation"] == "ok") == (s.unknown_reconciles == 0)


def test_anomalies(projection: Path, stream: Stream) -> None:
    rows = q(projection, "anomalies")
    kinds = defaultdict(set)
    for r in rows:
        kinds[r["kind"]].add(r["perm_id"])
    stale = {o.perm_id for o in stream.orders if o.scenario == "stale_status"}
    late = {o.perm_id for o in stream.orders if o.late_fills}
    assert stale <= kinds["illegal_transition"]
    assert late == kinds["late_fill"]


def test_every_named_query_runs_and_has_a_description(projection: Path) -> None:
    for nq in QUERIES:
        assert nq.description and "\n" not in nq.description
        run_sql(projection, nq.sql)


def test_ad_hoc_sql_is_read_only_and_sandboxed(projection: Path, tmp_path: Path) -> None:
    cols, rows = run_sql(projection, "SELECT count(*) AS n FROM events WHERE payload->>'$.status' = 'Filled'")
    assert cols == ["n"] and rows[0][0] > 0
    for bad, msg in (("DELETE FROM orders", "read-only"), ("CREATE TABLE x (a INT)", "read-only"),
                     ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
                     (f"COPY orders TO '{tmp_path / 'x.csv'}'", "disabled"),
                     ("SET enable_external_access = true", "locked"),
                     ("SELEC nonsense", "syntax error")):
        with pytest.raises(QueryError, match=msg):
            run_sql(projection, bad)


def test_export_parquet(projection: Path, tmp_path: Path) -> None:
    out = tmp_path / "live.parquet"
    n = export(projection, BY_NAME["live"].sql, out)
    con = duckdb.connect()
    assert con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0] == n > 0
    with pytest.raises(QueryError, match="parquet"):
        export(projection, "SELECT 1", tmp_path / "x.xlsx")


# --- the CLI ------------------------------------------------------------------------------------


def test_cli(sqlite_url: str, stream: Stream, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with open_store(sqlite_url) as store:
        store.append(stream.envelopes)
    runner = CliRunner()
    res = runner.invoke(app, ["audit", "--store", sqlite_url])
    assert res.exit_code == 0, res.output
    assert all(nq.name in res.output for nq in QUERIES)
    res = runner.invoke(app, ["audit", "live", "--store", sqlite_url, "--format", "json"])
    assert res.exit_code == 0, res.output
    live = json.loads(res.stdout)
    assert len(live) == sum(1 for o in stream.orders if o.scenario in LIVE_SCENARIOS)
    assert (tmp_path / "ledger.duckdb").exists()  # beside the store
    res = runner.invoke(app, ["audit", "governor-blocks", "--store", sqlite_url, "--format", "csv"])
    assert res.exit_code == 0 and res.stdout.splitlines()[0].startswith("ts,decision,reason")
    res = runner.invoke(app, ["audit", "--sql", "SELECT kind, count(*) n FROM events GROUP BY 1 ORDER BY 1",
                              "--store", sqlite_url, "--out", str(tmp_path / "kinds.parquet")])
    assert res.exit_code == 0 and (tmp_path / "kinds.parquet").exists()
    res = runner.invoke(app, ["audit", "--sql", "SELECT nope FROM orders", "--store", sqlite_url])
    assert res.exit_code != 0 and "Binder Error" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["audit", "no-such-query", "--store", sqlite_url])
    assert res.exit_code != 0 and "unknown audit query" in res.output
    res = runner.invoke(app, ["audit", "live", "--rebuild", "--store", sqlite_url, "--duckdb",
                              str(tmp_path / "other.duckdb"), "--format", "json"])
    assert res.exit_code == 0 and json.loads(res.stdout) == live
