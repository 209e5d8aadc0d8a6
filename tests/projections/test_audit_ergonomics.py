"""Audit ergonomics: instants as TIMESTAMPTZ, execution times parsed, every table and column commented,
bookkeeping in its own schema, a read-only fallback when another process holds the DuckDB file, output
that fits the terminal, and ``gaps`` without a session's clean close."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from ledger.core import events as ev
from ledger.store import open_store
from projections import schema
from projections.projector import update
from tests.cli.test_cli_live import run_cli
from tests.support.audit_streams import generate

T0 = 1_764_072_000_123_456_789


@pytest.fixture
def built(tmp_path: Path) -> tuple[str, Path]:
    url = f"sqlite:///{tmp_path / 'l.db'}"
    envs = generate(n_sessions=2, orders_per_session=20, seed=3).envelopes
    extra = [ev.Envelope(session_id="ibfmt", seq=n, recv_ns=T0 + n, mono_ns=n, source="live", payload=p)
             for n, p in enumerate([
                 ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=4),
                 ev.OpenOrder(order_id=1, perm_id=777, client_id=4, symbol="AAPL", action="BUY", total_qty=1,
                              order_type="MKT", status="Submitted"),
                 ev.ExecDetails(exec_id="x1.01", order_id=1, perm_id=777, client_id=4, side="BOT", shares=1,
                                price=10, symbol="AAPL", time="20261125  12:00:01 US/Eastern"),
                 ev.ExecDetails(exec_id="x2.01", order_id=1, perm_id=777, client_id=4, side="BOT", shares=1,
                                price=10, symbol="AAPL", time="20261125 12:00:01"),
             ], start=1)]
    with open_store(url) as st:
        st.append(envs)
        st.append(extra)
        update(st, tmp_path / "l.duckdb")
    return url, tmp_path / "l.duckdb"


def test_times_are_utc_instants_and_execution_times_are_parsed(built):
    _, path = built
    con = duckdb.connect(str(path), read_only=True)
    try:
        types = {r[0] for r in con.execute("SELECT data_type FROM duckdb_columns() WHERE data_type LIKE 'TIMESTAMP%'")
                 .fetchall()}
        assert types == {"TIMESTAMP WITH TIME ZONE"}
        bad = con.execute("SELECT count(*) FROM events WHERE epoch_us(ts) != recv_ns // 1000").fetchone()[0]
        assert bad == 0
        got = dict(con.execute("SELECT exec_id, exec_ts FROM executions WHERE exec_id LIKE 'x%'").fetchall())
    finally:
        con.close()
    assert got["x1.01"] == dt.datetime(2026, 11, 25, 17, 0, 1, tzinfo=dt.UTC)  # 12:00:01 New York, winter
    assert got["x2.01"] is None  # no zone: TWS local time, unknown here


def test_every_table_view_and_column_is_commented_and_internals_live_apart(built):
    _, path = built
    con = duckdb.connect(str(path), read_only=True)
    try:
        main_tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name='main'")
                       .fetchall()}
        internal = {r[0] for r in con.execute(
            f"SELECT table_name FROM duckdb_tables() WHERE schema_name='{schema.INTERNAL_SCHEMA}'").fetchall()}
        uncommented_tables = con.execute("SELECT table_name FROM duckdb_tables() WHERE coalesce(comment, '') = ''"
                                         ).fetchall()
        uncommented_cols = con.execute("SELECT table_name, column_name FROM duckdb_columns() c JOIN duckdb_tables() "
                                       "t USING (database_name, schema_name, table_name) "
                                       "WHERE coalesce(c.comment, '') = ''").fetchall()
        views = dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    finally:
        con.close()
    assert internal == set(schema.INTERNAL_TABLES) and not main_tables & internal
    assert main_tables == set(schema.TABLES) - internal
    assert uncommented_tables == [] and uncommented_cols == []
    assert set(views) == set(schema.VIEWS) and all(views.values())


def test_a_held_duckdb_file_is_queried_read_only_with_a_warning(built, tmp_path):
    url, path = built
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); sys.stdin.read()", str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with open_store(url) as st:  # the store moves on; the held projection cannot follow
            st.append([ev.Envelope(session_id="later", seq=1, recv_ns=T0 + 99, mono_ns=1, source="live",
                                   payload=ev.SessionStarted(library="ib_insync", library_version="0.9.86"))])
        r = run_cli("audit", "--sql", "select count(*) AS n from sessions", "--format", "json", "--store", url,
                    "--duckdb", str(path))
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert r.returncode == 0, r.stderr
    assert "held by another process" in r.stderr and "1 event(s) behind" in r.stderr and "Traceback" not in r.stderr
    assert json.loads(r.stdout) == [{"n": 3}]  # what the file holds: the later session is not in it yet
    r = run_cli("audit", "--sql", "select count(*) AS n from sessions", "--format", "json", "--store", url,
                "--duckdb", str(path))
    assert r.returncode == 0 and json.loads(r.stdout) == [{"n": 4}] and "behind" not in r.stderr


def test_wide_results_fit_the_terminal(built):
    url, path = built
    args = ("audit", "--sql", "select * from orders order by key limit 2", "--store", url, "--duckdb", str(path))
    r = run_cli(*args, env={"COLUMNS": "100"})
    assert r.returncode == 0 and "-[ row 1 ]" in r.stdout and "-[ row 2 ]" in r.stdout
    assert all(len(line) <= 100 for line in r.stdout.splitlines() if not line.startswith(("key ", "session_id")))
    r = run_cli(*args, "--columns", "symbol,state", env={"COLUMNS": "100"})
    assert r.returncode == 0 and "-[ row" not in r.stdout and "symbol" in r.stdout and "perm_id" not in r.stdout
    r = run_cli(*args, "--columns", "symbol,nope")
    assert r.returncode == 2 and "nope" in r.stderr and "perm_id" in r.stderr


@pytest.mark.ibclient
def test_gaps_lists_the_dropped_connection_not_the_clean_close(tmp_path):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    assert run_cli("demo", "--store", url, timeout=120).returncode == 0
    r = run_cli("audit", "gaps", "--format", "json", "--store", url)
    assert r.returncode == 0, r.stderr
    gaps = json.loads(r.stdout)
    with open_store(url) as st:
        (sid,) = [s.session_id for s in st.sessions()]
        disconnects = [e for e in st.read_session(sid) if isinstance(e.payload, ev.Disconnected)]
    real = [e for e in disconnects if e.payload.reason != "client disconnect"]
    assert len(disconnects) == len(real) + 1 and real  # the demo drops once, then closes cleanly
    assert [g["restored_by"] for g in gaps] == ["connected"] * len(real)
