"""Columnar batch inserts into DuckDB through Arrow.

Rows are collected as tuples while the fold runs, turned into one Arrow table per batch (one typed
Arrow array per column) and inserted with one ``INSERT ... SELECT`` over the registered table. Arrow
arrays are handed to DuckDB without a copy or a per-value cast, and nullable columns carry their own
validity bitmap: measured here, Arrow record batches ingest ~5x faster than NumPy arrays + ``register``
(object arrays cast to VARCHAR, null masks as extra columns) and DuckDB's ``executemany`` is hopeless.

Column kinds: ``i`` BIGINT, ``f`` DOUBLE, ``F`` nullable DOUBLE (None allowed), ``b`` BOOLEAN,
``s`` VARCHAR (None allowed), ``t`` a TIMESTAMP computed from an ns column (``t:recv_ns``; 0 = NULL).
"""

from __future__ import annotations

import itertools
from typing import Any

import duckdb
import pyarrow as pa

_counter = itertools.count()

_ARROW_TYPES = {"i": pa.int64(), "f": pa.float64(), "F": pa.float64(), "b": pa.bool_(), "s": pa.string()}


class Batch:
    """Rows of one table for one transaction, collected as tuples (one per row, in spec order without
    the computed ``t:`` columns) and transposed into Arrow columns at flush time."""

    __slots__ = ("table", "spec", "rows", "_stored", "_sql_select")

    def __init__(self, table: str, spec: list[tuple[str, str]]) -> None:
        self.table = table
        self.spec = spec
        self.rows: list[tuple[Any, ...]] = []
        self._stored = [(name, _ARROW_TYPES[kind]) for name, kind in spec if not kind.startswith("t:")]
        for name, kind in spec:
            if not kind.startswith("t:") and kind not in _ARROW_TYPES:  # pragma: no cover - a spec error
                raise ValueError(f"unknown column kind {kind!r} for {table}.{name}")
        exprs = []
        for name, kind in spec:
            if kind.startswith("t:"):
                src = kind[2:]
                exprs.append(f"CASE WHEN {src} > 0 THEN make_timestamp({src} // 1000) END")
            else:
                exprs.append(name)
        names = ", ".join(name for name, _ in spec)
        self._sql_select = f"INSERT INTO {table} ({names}) SELECT {', '.join(exprs)} FROM "

    def arrow(self) -> pa.Table:
        """The collected rows as one Arrow table (stored columns only, in spec order)."""
        columns = list(zip(*self.rows, strict=True)) if self.rows else [()] * len(self._stored)
        arrays = [pa.array(values, type=typ) for values, (_, typ) in zip(columns, self._stored, strict=True)]
        return pa.Table.from_arrays(arrays, names=[name for name, _ in self._stored])

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
        if not self.rows:
            return None
        view = f"_ibl_batch_{next(_counter)}"
        con.register(view, self.arrow())
        return view, self._sql_select + view


def register_keys(con: duckdb.DuckDBPyConnection, keys: list[str]) -> str:
    """Register a one-column (``k``) view of keys; return its name (the caller unregisters it)."""
    view = f"_ibl_keys_{next(_counter)}"
    con.register(view, pa.table({"k": pa.array(keys, type=pa.string())}))
    return view


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def first(rel: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of a result, fetching it completely (DuckDB 2 refuses further work on a connection
    while a result is left half-read)."""
    rows = rel.fetchall()
    return rows[0] if rows else None
