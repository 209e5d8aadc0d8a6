"""Audit commands: ``audit`` (named queries, ad-hoc SQL, exports) and ``report`` (HTML timelines)."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import console, err_console, fail, opened_store
from ledger.cli.options import StoreOpt

DuckOpt = Annotated[
    Path | None,
    typer.Option("--duckdb", help="DuckDB projection file. Default: beside a SQLite store (ibledger.db -> "
                 "ibledger.duckdb); for PostgreSQL a name derived from host/port/database in the current dir"),
]


def register(app: typer.Typer) -> None:
    app.command("audit")(audit_cmd)
    app.command("report")(report_cmd)


def _refresh(store: str | None, duckdb_path: Path | None, rebuild: bool, payloads: bool | None = None) -> Path:
    """Bring the projection up to date (or rebuild it) and return its path."""
    from ledger.store import StoreError
    from projections.projector import ProjectionError, update
    from projections.projector import rebuild as do_rebuild
    from projections.queries import is_lock_conflict
    from projections.schema import default_duckdb_path

    with opened_store(store) as st:
        path = duckdb_path or default_duckdb_path(st.url)
        try:
            if rebuild:
                n = do_rebuild(st, path, payloads=bool(payloads))
                err_console.print(f"rebuilt {path} from {st.url}: {n} events", highlight=False)
            else:
                pending = _pending(st, path)
                if pending > 50_000:
                    err_console.print(f"updating {path}: {pending} new events...", highlight=False)
                _n, notes = update(st, path, payloads=payloads)
                for note in notes:
                    err_console.print(note, highlight=False)
        except (ProjectionError, StoreError) as exc:
            if not (isinstance(exc, ProjectionError) and is_lock_conflict(exc)) or rebuild:
                fail(str(exc))
            return _locked_fallback(st, path, exc)
        except Exception as exc:  # duckdb.Error and friends: a clear message, no traceback
            fail(f"cannot update the projection {path}: {type(exc).__name__}: {exc}")
    return path


def _locked_fallback(st: Any, path: Path, exc: Exception) -> Path:
    """Another process holds the projection: query what it holds, and say it may be behind the store."""
    import atexit
    import shutil
    import tempfile

    from projections.queries import QueryError, readable_snapshot

    workdir = tempfile.mkdtemp(prefix="ibledger-audit-")
    atexit.register(shutil.rmtree, workdir, True)
    try:
        target, position = readable_snapshot(path, workdir)
    except QueryError as err:
        fail(f"cannot read the projection {path}: {err}")
    behind = max(st.max_position() - position, 0)
    err_console.print(
        f"warning: {path} is held by another process, so it was not brought up to date; querying what it holds "
        f"(store position {position}, {behind} event(s) behind the store). Close the other connection (or open "
        "it read-only) for current results.", highlight=False)
    return target


def _pending(st: Any, path: Path) -> int:
    import duckdb

    from projections.columns import first

    if not path.exists():
        return st.max_position()
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return 0
    try:
        row = first(con.execute("SELECT position FROM ibledger_internal.audit_tracking"))
    except duckdb.Error:
        return 0
    finally:
        con.close()
    return max(st.max_position() - (row[0] if row else 0), 0)


def audit_cmd(
    name: Annotated[str | None, typer.Argument(help="Named query to run (omit to list them)")] = None,
    sql: Annotated[str | None, typer.Option("--sql", help="Ad-hoc SQL, run on a read-only connection")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table | json | csv")] = "table",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the result to a .parquet, .csv, .json "
                                             "or .jsonl file instead of printing it")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Recreate the projection from the store")] = False,
    payloads: Annotated[bool | None, typer.Option("--payloads/--no-payloads", help="Keep every event's payload "
                                                  "as JSON in events.payload (off by default; changing it "
                                                  "rebuilds)")] = None,
    columns: Annotated[str | None, typer.Option("--columns", "-c", help="Only these columns, comma-separated "
                                                "(in this order)")] = None,
    vertical: Annotated[bool | None, typer.Option("--vertical/--horizontal", help="One 'column: value' block "
                                                  "per row (default: when the table is wider than the "
                                                  "terminal)")] = None,
    store: StoreOpt = None,
    duckdb_path: DuckOpt = None,
) -> None:
    """Audit the ledger with DuckDB: named risk queries, ad-hoc SQL, Parquet export.

    The projection is brought up to date from the store first (incrementally, exactly once).
    Without NAME or --sql, lists the named queries.
    """
    from projections.queries import BY_NAME, QUERIES, QueryError, export, run_sql

    if fmt not in ("table", "json", "csv"):
        fail(f"unknown --format {fmt!r}: use table, json or csv")
    if name and sql:
        fail("give either a query NAME or --sql, not both")
    if name and name not in BY_NAME:
        fail(f"unknown audit query {name!r}; named queries: {', '.join(q.name for q in QUERIES)}")
    if not name and not sql:
        if rebuild:
            _refresh(store, duckdb_path, True, payloads)
        _list_queries(fmt)
        return
    query = BY_NAME[name].sql if name else sql
    assert query is not None
    path = _refresh(store, duckdb_path, rebuild, payloads)
    try:
        if out is not None:
            n = export(path, query, out)
            err_console.print(f"wrote {n} rows to {out}", highlight=False)
            return
        cols, rows = run_sql(path, query)
    except QueryError as exc:
        fail(f"query failed: {exc}", code=1)
    if columns:
        cols, rows = _select(cols, rows, [c.strip() for c in columns.split(",") if c.strip()])
    _print(cols, rows, fmt, title=name or "query", vertical=vertical)


def _select(cols: list[str], rows: list[tuple[Any, ...]], wanted: list[str]) -> tuple[list[str], list[tuple]]:
    unknown = [c for c in wanted if c not in cols]
    if unknown:
        fail(f"--columns: no column {', '.join(map(repr, unknown))} in the result; it has: {', '.join(cols)}")
    idx = [cols.index(c) for c in wanted]
    return wanted, [tuple(r[i] for i in idx) for r in rows]


def _fits(cols: list[str], rows: list[tuple[Any, ...]], width: int) -> bool:
    """Would a table show every column at a readable width (values up to 24 characters unwrapped)?"""
    need = 0
    for i, c in enumerate(cols):
        longest = max((len(str(r[i])) for r in rows[:200] if r[i] is not None), default=0)
        need += max(len(c), min(longest, 24)) + 3
    return need + 1 <= width


def _list_queries(fmt: str) -> None:
    from rich.table import Table

    from projections.queries import QUERIES

    if fmt == "json":
        print(json.dumps([{"name": q.name, "description": q.description} for q in QUERIES], indent=2))
        return
    if fmt == "csv":
        _print(["name", "description"], [(q.name, q.description) for q in QUERIES], "csv", "queries")
        return
    t = Table(title="Named audit queries (ibledger audit NAME)", title_justify="left")
    t.add_column("name", style="bold", no_wrap=True)
    t.add_column("what it answers")
    for q in QUERIES:
        t.add_row(q.name, q.description)
    console.print(t)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)


def _print(cols: list[str], rows: list[tuple[Any, ...]], fmt: str, title: str, vertical: bool | None = False) -> None:
    if fmt == "json":
        print(json.dumps([{c: _jsonable(v) for c, v in zip(cols, r, strict=True)} for r in rows], indent=2))
        return
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow(["" if v is None else _jsonable(v) for v in r])
        sys.stdout.write(buf.getvalue())
        return
    from rich.table import Table

    if vertical or (vertical is None and not _fits(cols, rows, console.width)):
        _print_vertical(cols, rows, title)
        return
    t = Table(title=f"{title} ({len(rows)} rows)", title_justify="left")
    for c in cols:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    console.print(t)


def _print_vertical(cols: list[str], rows: list[tuple[Any, ...]], title: str) -> None:
    """psql's expanded display: one block per row, one 'column | value' line per column."""
    from rich.markup import escape

    console.print(f"[bold]{escape(title)}[/] ({len(rows)} rows)", highlight=False)
    pad = max((len(c) for c in cols), default=0)
    for n, r in enumerate(rows, start=1):
        console.print(f"[dim]-[ row {n} ]{'-' * max(pad - 6, 4)}[/]", highlight=False)
        for c, v in zip(cols, r, strict=True):
            console.print(f"{escape(c.ljust(pad))} | {escape('' if v is None else str(v))}", highlight=False,
                          soft_wrap=True)


def report_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path("report.html"),
    store: StoreOpt = None,
    duckdb_path: DuckOpt = None,
    session: Annotated[str | None, typer.Option("--session", help="Only orders first seen in this session")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many orders in the index (0 = all)")] = 0,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Recreate the projection from the store first")] = False,
) -> None:
    """Write an HTML report for risk officers: charts (fills, latency, positions, trading state, governor
    decisions), anomalies, and a searchable index of every order whose timelines load on demand from the
    OUT_files/ directory written beside it (both work offline, from file://)."""
    from projections.report import write_report

    if limit < 0:
        fail(f"--limit must be 0 (all orders) or positive, got {limit}")

    path = _refresh(store, duckdb_path, rebuild)
    if not out.parent.exists():
        fail(f"cannot write {out}: directory {out.parent} does not exist")
    try:
        stats = write_report(path, out, limit=limit, session=session)
    except Exception as exc:  # a clear message, never a traceback
        fail(f"cannot write the report: {type(exc).__name__}: {exc}", code=1)
    console.print(f"wrote {out} (+ {out.stem}_files/, {stats.detail_files} detail file(s)): {stats.shown} of "
                  f"{stats.orders} orders, {stats.anomalies} anomalies", highlight=False)
