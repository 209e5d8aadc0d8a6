"""Batches built as columns insert exactly what the same rows built as tuples insert."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from projections.columns import Batch, constant_or_array

SPEC = [("position", "i"), ("session_id", "s"), ("recv_ns", "i"), ("ts", "t:recv_ns"), ("price", "F"),
        ("live", "b"), ("note", "s")]
ROWS = [(1, "s1", 1_764_072_000_000_000_000, None, True, None),
        (2, "s1", 0, 1.5, False, "x"),
        (3, "s2", 1_764_072_000_001_000_000, float("nan"), True, "")]


def _inserted(batch: Batch) -> list[tuple]:
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE t (position BIGINT, session_id VARCHAR, recv_ns BIGINT, ts TIMESTAMPTZ, "
                    "price DOUBLE, live BOOLEAN, note VARCHAR)")
        assert batch.flush(con) == len(ROWS)
        return con.execute("SELECT position, session_id, recv_ns, ts::VARCHAR, coalesce(price::VARCHAR, 'null'), "
                           "live, note FROM t ORDER BY position").fetchall()
    finally:
        con.close()


def test_columns_and_rows_insert_the_same() -> None:
    by_rows = Batch("t", SPEC)
    by_rows.rows = list(ROWS)
    by_cols = Batch("t", SPEC)
    cols = [list(c) for c in zip(*ROWS, strict=True)]
    cols[0] = pa.array(cols[0], type=pa.int64())  # a ready Arrow column is taken as it is
    by_cols.cols = cols
    assert len(by_cols) == len(by_rows) == 3
    got = _inserted(by_cols)
    assert got == _inserted(by_rows)
    assert got[1][3] is None and got[0][3].startswith("2025-11-25 12:00:00")  # ts: 0 ns is NULL
    assert len(by_cols) == 0  # flushed


def test_constant_or_array() -> None:
    typ = pa.string()
    assert constant_or_array(["a", "a", "a"], typ).to_pylist() == ["a", "a", "a"]
    assert constant_or_array(["a", "b", "a"], typ).to_pylist() == ["a", "b", "a"]
    assert constant_or_array([None, None], typ).to_pylist() == [None, None]
    assert constant_or_array(["a", None], typ).to_pylist() == ["a", None]
    assert constant_or_array([], typ).to_pylist() == []
    assert constant_or_array([7, 7], pa.int64()).to_pylist() == [7, 7]
    # only str / int / None are repeated (True == 1 and 1.0 == 1 compare equal): others convert value by value
    assert constant_or_array([True, True], pa.bool_()).to_pylist() == [True, True]
    assert constant_or_array([1.5, 1.5], pa.float64()).to_pylist() == [1.5, 1.5]
