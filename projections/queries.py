"""Named audit queries: the questions a risk officer asks, as SQL over the audit read model.

Each query is plain DuckDB SQL over the tables in :mod:`projections.schema`, returns a stable row
order, and is safe to run on a read-only connection. ``run_sql`` runs any SQL (named or ad hoc) on a
read-only connection with external access (files, network, extensions, ATTACH) disabled, so an ad-hoc
query can neither change the projection nor read or write anything else; ``export`` writes one result
to a Parquet / CSV / JSON file through DuckDB's own ``COPY`` with access granted to that one path only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from projections import schema
from projections.columns import first


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str


FAILURE_CODES = schema.FAILURE_CODES
FAILURE_STATUSES = schema.FAILURE_STATUSES

_ORDER_ID_COLS = "o.key, o.perm_id, o.client_id, o.order_id, o.symbol, o.action, o.total_qty"

QUERIES: tuple[NamedQuery, ...] = (
    NamedQuery(
        "live",
        "Orders live right now (Working / PartiallyFilled): they can execute at any moment.",
        f"""
        SELECT {_ORDER_ID_COLS}, o.order_type, o.lmt_price, o.broker_status, o.state, o.overlay,
               o.filled, o.remaining, o.avg_fill_price, o.first_seen, o.last_update, o.session_id
        FROM orders o
        WHERE o.is_live
        ORDER BY o.first_seen_ns, o.key
        """,
    ),
    NamedQuery(
        "unconfirmed",
        "Orders placed but never acknowledged by the broker: unknown, NOT failed (they may be live).",
        f"""
        SELECT {_ORDER_ID_COLS}, o.state, o.error_count, o.first_seen, o.session_id
        FROM orders o
        WHERE o.unconfirmed
        ORDER BY o.first_seen_ns, o.key
        """,
    ),
    NamedQuery(
        "failed-while-live",
        "Orders reported failed/cancelled (error code or status) that were live or filled after all: "
        "executions or a live status after the report, or an error while live that did not end the order.",
        f"""
        WITH suspects AS (  -- orders with a failure report that was later contradicted (cheap int tests)
            SELECT * FROM orders
            WHERE first_failure_position > 0
              AND (last_exec_position > first_failure_position OR last_live_position > first_failure_position
                   OR (live_error_position > 0 AND state NOT IN ('Cancelled', 'Rejected', 'Inactive')))
        )
        SELECT r.ts AS reported_at, r.report, {_ORDER_ID_COLS}, r.live_before AS live_when_reported,
               r.state_before AS state_when_reported,
               o.last_exec_position > r.position AS filled_after,
               o.last_live_position > r.position AS live_again_after,
               o.state AS state_now, o.is_live AS live_now, o.filled, r.session_id, r.seq, r.position
        FROM failure_reports r
        JOIN suspects o ON o.key = r.order_key
        WHERE o.last_exec_position > r.position
           OR o.last_live_position > r.position
           OR (r.is_error AND r.live_before AND o.state NOT IN ('Cancelled', 'Rejected', 'Inactive'))
        ORDER BY r.position
        """,
    ),
    NamedQuery(
        "status-fill-disagreements",
        "Orders whose broker status disagrees with their executions (reported filled vs executed shares, "
        "Filled without executions, fills on a cancelled order).",
        f"""
        WITH flagged AS (
            SELECT order_key, string_agg(DISTINCT kind, ', ' ORDER BY kind) AS anomaly_kinds
            FROM anomalies
            WHERE kind IN ('fill_status_mismatch', 'status_contradicts_fills', 'overfill')
            GROUP BY order_key
        ),
        candidates AS (
            SELECT key FROM orders WHERE abs(status_filled - filled) > 1e-9 OR fill_pending
            UNION
            SELECT order_key FROM flagged
        )
        SELECT {_ORDER_ID_COLS}, o.broker_status, o.state, o.status_filled, o.filled,
               o.filled - o.status_filled AS difference, o.fill_pending, f.anomaly_kinds, o.last_update
        FROM candidates c
        JOIN orders o ON o.key = c.key
        LEFT JOIN flagged f ON f.order_key = o.key
        ORDER BY o.key
        """,
    ),
    NamedQuery(
        "latency",
        "Time from placeOrder to the broker's acknowledgement and to the first fill, p50/p99 per symbol (ms).",
        """
        WITH lat AS (
            SELECT symbol,
                   CASE WHEN acked_ns >= placed_ns THEN (acked_ns - placed_ns) / 1e6 END AS ack_ms,
                   CASE WHEN first_fill_ns >= placed_ns THEN (first_fill_ns - placed_ns) / 1e6 END AS fill_ms
            FROM orders
            WHERE placed_ns > 0 AND NOT manual
        ),
        q AS (  -- one sort per measure for both quantiles
            SELECT symbol, count(*) AS orders, count(ack_ms) AS acked, count(fill_ms) AS filled,
                   quantile_cont(ack_ms, [0.5, 0.99]) AS ack_q, quantile_cont(fill_ms, [0.5, 0.99]) AS fill_q
            FROM lat
            GROUP BY symbol
        )
        SELECT symbol, orders, acked, ack_q[1] AS ack_p50_ms, ack_q[2] AS ack_p99_ms,
               filled, fill_q[1] AS first_fill_p50_ms, fill_q[2] AS first_fill_p99_ms
        FROM q
        ORDER BY symbol
        """,
    ),
    NamedQuery(
        "late-fills",
        "Late fills (executions after the order was terminal) and execution corrections (.02 replacing .01).",
        """
        WITH hits AS (
            SELECT order_key, exec_id, late, is_correction, shares, price, recv_ns, ts, replaces_exec_id,
                   replaced_shares, replaced_price
            FROM fills WHERE late OR is_correction
        )
        SELECT CASE WHEN f.late AND f.is_correction THEN 'late correction'
                    WHEN f.late THEN 'late fill' ELSE 'correction' END AS what,
               f.ts AS received, f.order_key, o.perm_id, o.symbol, f.exec_id, f.shares, f.price,
               f.replaces_exec_id, f.replaced_shares, f.replaced_price, o.state AS order_state
        FROM hits f
        JOIN orders o ON o.key = f.order_key
        ORDER BY f.recv_ns, f.exec_id
        """,
    ),
    NamedQuery(
        "governor-blocks",
        "What the governor blocked or emergency-cancelled, and why (reason, message, limits).",
        """
        SELECT g.ts, g.decision, g.reason, count(*) OVER (PARTITION BY g.decision, g.reason) AS same_reason,
               g.message, g.action, g.symbol, g.client_id, g.order_id, g.perm_id, g.trading_state,
               g.details, g.order_key, g.session_id, g.position
        FROM governor_decisions g
        WHERE g.decision IN ('BLOCK', 'EMERGENCY_CANCEL')
        ORDER BY g.position
        """,
    ),
    NamedQuery(
        "crashed-sessions",
        "Recording sessions with no end event (crashed, or still recording) or with missing seqs.",
        """
        SELECT session_id, started, last_event, events, first_seq, last_seq, missing, has_start, has_end,
               crashed, library, client_id, account, disconnects, reconciles_unknown
        FROM sessions
        WHERE crashed OR missing > 0 OR first_seq <> 1 OR NOT has_start
        ORDER BY first_ns, session_id
        """,
    ),
    NamedQuery(
        "gaps",
        "Connection gaps: disconnects and losses of TWS's link to IB (1100), how long, and the reconciliation "
        "that followed (unknown = not reconciled). A session's own clean close is not a gap.",
        """
        WITH marks AS (SELECT * FROM connection_events),
        lost AS (
            SELECT * FROM marks WHERE kind = 'disconnected' OR code = 1100
        )
        SELECT l.session_id,
               CASE WHEN l.kind = 'disconnected' THEN 'disconnected' ELSE 'IB link lost (1100)' END AS gap,
               l.ts AS lost_at,
               back.ts AS restored_at,
               CASE WHEN back.kind IS NULL THEN 'never' WHEN back.kind = 'error' THEN 'error ' || back.code
                    ELSE back.kind END AS restored_by,
               (back.recv_ns - l.recv_ns) / 1e6 AS gap_ms,
               CASE WHEN rec.recv_ns IS NULL THEN 'none'
                    WHEN rec.ok AND coalesce(json_array_length(rec.unknown), 0) = 0 THEN 'ok'
                    WHEN coalesce(json_array_length(rec.unknown), 0) > 0 THEN 'unknown: ' || rec.unknown
                    ELSE 'failed' END AS reconciliation,
               l.position
        FROM lost l
        LEFT JOIN LATERAL (
            SELECT m.* FROM marks m
            WHERE m.session_id = l.session_id AND m.seq > l.seq
              AND ((l.kind = 'disconnected' AND m.kind = 'connected')
                   OR (l.kind = 'error' AND m.code IN (1101, 1102))
                   OR m.kind = 'session_ended')
            ORDER BY m.seq LIMIT 1
        ) back ON true
        LEFT JOIN LATERAL (
            SELECT m.* FROM marks m
            WHERE m.session_id = l.session_id AND m.seq > l.seq AND m.kind = 'reconcile_ended'
              AND NOT EXISTS (SELECT 1 FROM marks n WHERE n.session_id = l.session_id AND n.seq > l.seq
                              AND n.seq < m.seq AND (n.kind = 'disconnected' OR n.code = 1100))
            ORDER BY m.seq LIMIT 1
        ) rec ON true
        -- our own disconnect right before the session's end is how a recording closes, not a gap
        WHERE NOT (l.kind = 'disconnected' AND back.kind = 'session_ended'
                   AND (SELECT e.payload->>'$.reason' FROM events e WHERE e.position = l.position)
                       = 'client disconnect')
        ORDER BY l.position
        """,
    ),
    NamedQuery(
        "anomalies",
        "Every anomaly the fold flagged (illegal transitions, late fills, mismatches...), with its order.",
        """
        SELECT a.ts, a.kind, a.order_key, o.perm_id, o.symbol, a.from_status, a.to_status, a.reason,
               a.session_id, a.seq
        FROM anomalies a LEFT JOIN orders o ON o.key = a.order_key
        ORDER BY a.position, a.ord
        """,
    ),
)

BY_NAME: dict[str, NamedQuery] = {q.name: q for q in QUERIES}


class QueryError(Exception):
    """A query DuckDB refused; the message is DuckDB's own."""


def connect_read_only(path: str | Path, allowed_paths: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection that cannot reach files, the network or extensions (except ``allowed_paths``).

    The settings are locked, so the SQL it runs cannot turn them back on.
    """
    con = duckdb.connect(str(path), read_only=True,
                         config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        if allowed_paths:
            con.execute("SET allowed_paths = $1", [allowed_paths])
        con.execute("SET TimeZone = 'UTC'")  # times print as UTC whatever the machine's zone
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def run_sql(path: str | Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one query (named or ad hoc) read-only; return (column names, rows)."""
    try:
        con = connect_read_only(path)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    try:
        rel = con.execute(sql)
        if rel.description is None:
            return [], []
        cols = [d[0] for d in rel.description]
        return cols, rel.fetchall()
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    finally:
        con.close()


_FORMATS = {".parquet": "(FORMAT parquet)", ".csv": "(FORMAT csv, HEADER true)", ".json": "(FORMAT json, ARRAY true)",
            ".jsonl": "(FORMAT json)", ".ndjson": "(FORMAT json)"}


def export(path: str | Path, sql: str, out: str | Path) -> int:
    """Write the result of ``sql`` to ``out`` (format from its suffix); return the number of rows."""
    out = Path(out).resolve()
    fmt = _FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise QueryError(f"cannot export to {out.name}: use a .parquet, .csv, .json or .jsonl file")
    if not out.parent.exists():
        raise QueryError(f"cannot export to {out}: directory {out.parent} does not exist")
    body = sql.strip().rstrip(";").strip()
    try:
        con = connect_read_only(path, allowed_paths=[str(out)])
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    try:
        target = str(out).replace("'", "''")
        row = first(con.execute(f"COPY ({body}) TO '{target}' {fmt}"))
        return int(row[0]) if row else 0
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    finally:
        con.close()


def is_lock_conflict(exc: BaseException) -> bool:
    """Another process holds the DuckDB file (an analyst's open connection, a second ``ibledger audit``)."""
    text = str(exc)
    return "Could not set lock" in text or "Conflicting lock" in text


def readable_snapshot(path: str | Path, workdir: str | Path) -> tuple[Path, int]:
    """A DuckDB file to read while another process holds ``path``: the file itself when a shared
    (read-only) open works, else a copy of it and its WAL in ``workdir``. Returns (file, tracked position)."""
    import shutil

    path = Path(path)
    try:
        con = duckdb.connect(str(path), read_only=True)
        target = path
    except duckdb.Error as exc:
        if not is_lock_conflict(exc):
            raise QueryError(str(exc)) from None
        target = Path(workdir) / path.name
        shutil.copyfile(path, target)
        wal = path.with_name(path.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, target.with_name(target.name + ".wal"))
        try:
            con = duckdb.connect(str(target), read_only=True)
        except duckdb.Error as exc2:
            raise QueryError(f"{path} is locked by another process and a copy could not be read: {exc2}") from None
    try:
        row = con.execute("SELECT position FROM ibledger_internal.audit_tracking").fetchone()
    except duckdb.Error:
        row = None
    finally:
        con.close()
    return target, int(row[0]) if row else 0
