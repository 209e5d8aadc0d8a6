"""Columnar batch inserts into DuckDB.

Rows are collected per column in plain Python lists, turned into typed NumPy arrays and inserted with
one ``INSERT ... SELECT`` over the registered arrays. Measured here, this is ~8x faster than DuckDB's
``executemany`` and ~5x faster than ``UNNEST`` of list parameters (100k rows: 0.12 s vs 3.4 s / 0.67 s).

Column kinds: ``i`` BIGINT, ``f`` DOUBLE, ``F`` nullable DOUBLE (None allowed), ``b`` BOOLEAN,
``s`` VARCHAR (None allowed), ``t`` a TIMESTAMP computed from an ns column (``t:recv_ns``; 0 = NULL).
"""

from __future__ import annotations

import itertools
from typing import Any

import duckdb
import numpy as np

_counter = itertools.count()


class Batch:
    """Rows of one table for one transaction, collected as tuples (one per row, in spec order without
    the computed ``t:`` columns) and transposed into columns at flush time."""

    __slots__ = ("table", "spec", "rows")

    def __init__(self, table: str, spec: list[tuple[str, str]]) -> None:
        self.table = table
        self.spec = spec
        self.rows: list[tuple[Any, ...]] = []

    def flush(self, con: duckdb.DuckDBPyConnection) -> int:
        """Insert the collected rows (inside the caller's transaction) and clear the batch."""
        prepared = self.register(con)
        if prepared is None:
            return 0
        view, sql = prepared
        try:
            con.execute(sql)
        finally:
            con.unregister(view)
        n = len(self.rows)
        self.rows = []
        return n

    def register(self, con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
        """Register the rows as a view; return (view name, the INSERT statement), or None if empty.

        The caller runs the statement (possibly together with others in one ``execute``) and then
        unregisters the view.
        """
        n = len(self.rows)
        if not n:
            return None
        columns = iter(list(zip(*self.rows, strict=True)))
        arrays: dict[str, np.ndarray] = {}
        exprs: list[str] = []
        for name, kind in self.spec:
            if kind.startswith("t:"):
                src = kind[2:]
                exprs.append(f"CASE WHEN {src} > 0 THEN make_timestamp({src} // 1000) END")
                continue
            values = next(columns)
            if kind == "i":
                arrays[name] = np.array(values, dtype=np.int64)
                exprs.append(name)
            elif kind == "f":
                arr = arrays[name] = np.array(values, dtype=np.float64)
                exprs.append(_keep_nan(arrays, name, arr, name))
            elif kind == "F":
                mask = np.array([v is None for v in values], dtype=bool)
                arr = arrays[name] = np.array([0.0 if v is None else v for v in values], dtype=np.float64)
                arrays[f"{name}__null"] = mask
                exprs.append(f"CASE WHEN {name}__null THEN NULL ELSE {_keep_nan(arrays, name, arr, name)} END")
            elif kind == "b":
                arrays[name] = np.array(values, dtype=bool)
                exprs.append(name)
            elif kind == "s":
                arrays[name] = np.array(values, dtype=object)
                exprs.append(f"CAST({name} AS VARCHAR)")
            else:  # pragma: no cover - a programming error in a spec
                raise ValueError(f"unknown column kind {kind!r} for {self.table}.{name}")
        view = f"_ibl_batch_{next(_counter)}"
        con.register(view, arrays)
        names = ", ".join(name for name, _ in self.spec)
        return view, f"INSERT INTO {self.table} ({names}) SELECT {', '.join(exprs)} FROM {view}"


def _keep_nan(arrays: dict[str, np.ndarray], name: str, arr: np.ndarray, expr: str) -> str:
    """DuckDB reads a registered NaN as NULL, which a NOT NULL column refuses: keep it a NaN.

    (The fold records a NaN it was sent as a fact, flagged; the read model must take it too.)
    """
    nan = np.isnan(arr)
    if not nan.any():
        return expr
    arrays[f"{name}__nan"] = nan
    return f"CASE WHEN {name}__nan THEN 'NaN'::DOUBLE ELSE {expr} END"


def register_keys(con: duckdb.DuckDBPyConnection, keys: list[str]) -> str:
    """Register a one-column (``k``) view of keys; return its name (the caller unregisters it)."""
    view = f"_ibl_keys_{next(_counter)}"
    con.register(view, {"k": np.array(keys, dtype=object)})
    return view


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def first(rel: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of a result, fetching it completely (DuckDB 2 refuses further work on a connection
    while a result is left half-read)."""
    rows = rel.fetchall()
    return rows[0] if rows else None
