"""The DuckDB audit read model: table definitions, and where the DuckDB file lives.

Every table is derived from the event store and can be dropped and rebuilt at any time
(DESIGN.md principle 7). The ``audit_tracking`` row (last store position applied) and the
``audit_fold`` checkpoint are written in the same DuckDB transaction as the rows they describe, so a
crash at any point leaves either the whole batch or none of it.

Times are kept twice: the envelope's integer nanoseconds (``*_ns``, exact, what the fold uses) and a
``TIMESTAMP`` (UTC, microseconds) for humans and date arithmetic.
"""

from __future__ import annotations

import re
from pathlib import Path

from ledger.store import parse_url

# Bump when a table's shape or meaning changes: an older file is rebuilt automatically.
SCHEMA_VERSION = 1

TABLES: dict[str, str] = {
    "audit_meta": """
        key VARCHAR NOT NULL,
        value VARCHAR NOT NULL
    """,
    # One row: where the projection stands in the store.
    "audit_tracking": """
        projection VARCHAR NOT NULL,
        position BIGINT NOT NULL,          -- last store position whose effects are in every table
        events BIGINT NOT NULL,            -- events applied (= rows in ``events``)
        fingerprint VARCHAR NOT NULL       -- identity of the event at ``position`` (detects a replaced store)
    """,
    # The fold's state at ``position`` (a checkpoint; the tail after it is re-folded from the store).
    "audit_fold": """
        position BIGINT NOT NULL,
        fold_version VARCHAR NOT NULL,
        state BLOB NOT NULL
    """,
    "events": """
        position BIGINT NOT NULL,          -- global store position
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        mono_ns BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        v INTEGER NOT NULL,
        correlation_id VARCHAR,
        causation_id VARCHAR,
        payload JSON NOT NULL              -- the whole payload, e.g. payload->>'$.status'
    """,
    "orders": """
        key VARCHAR NOT NULL,
        perm_id BIGINT NOT NULL,
        order_id BIGINT NOT NULL,
        client_id BIGINT NOT NULL,
        account VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        sec_type VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        total_qty DOUBLE NOT NULL,
        order_type VARCHAR NOT NULL,
        lmt_price DOUBLE,
        order_ref VARCHAR NOT NULL,
        broker_status VARCHAR NOT NULL,
        state VARCHAR NOT NULL,
        overlay VARCHAR NOT NULL,
        filled DOUBLE NOT NULL,            -- from executions (fills are facts)
        remaining DOUBLE NOT NULL,
        avg_fill_price DOUBLE NOT NULL,
        commission DOUBLE NOT NULL,
        status_filled DOUBLE,              -- what the last applied orderStatus said
        status_remaining DOUBLE,
        is_live BOOLEAN NOT NULL,
        is_done BOOLEAN NOT NULL,
        manual BOOLEAN NOT NULL,
        unconfirmed BOOLEAN NOT NULL,
        anomaly_count INTEGER NOT NULL,
        fill_count INTEGER NOT NULL,
        late_fill_count INTEGER NOT NULL,
        first_seen TIMESTAMP,
        last_update TIMESTAMP,
        first_seen_ns BIGINT,
        last_update_ns BIGINT,
        acked_ns BIGINT,
        first_fill_ns BIGINT
    """,
    "transitions": """
        position BIGINT NOT NULL,          -- the event that caused it
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        ord INTEGER NOT NULL,              -- order of transitions within one event
        order_key VARCHAR NOT NULL,
        from_state VARCHAR NOT NULL,
        to_state VARCHAR NOT NULL,
        broker_status VARCHAR NOT NULL,
        critical VARCHAR NOT NULL,
        live_after BOOLEAN NOT NULL,       -- the order is live once this event is applied
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL
    """,
    "fills": """
        order_key VARCHAR NOT NULL,
        exec_id VARCHAR NOT NULL,
        exec_prefix VARCHAR NOT NULL,      -- corrections share it (execId up to the last '.')
        revision VARCHAR NOT NULL,         -- the suffix after the last '.', e.g. 01, 02
        is_correction BOOLEAN NOT NULL,    -- replaced an earlier revision of the same prefix
        superseded BOOLEAN NOT NULL,       -- replaced by a later revision (not counted)
        late BOOLEAN NOT NULL,             -- arrived after the order was terminal
        shares DOUBLE NOT NULL,
        price DOUBLE NOT NULL,
        side VARCHAR NOT NULL,
        exchange VARCHAR NOT NULL,
        exec_time VARCHAR NOT NULL,        -- the broker's own time string
        commission DOUBLE,                 -- NULL until the commission report arrived
        currency VARCHAR,
        realized_pnl DOUBLE,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL
    """,
    "anomalies": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        ord INTEGER NOT NULL,
        order_key VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        from_status VARCHAR NOT NULL,
        to_status VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL
    """,
    "governor_decisions": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMP NOT NULL,
        decision VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        message VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        order_id BIGINT NOT NULL,
        client_id BIGINT NOT NULL,
        perm_id BIGINT NOT NULL,
        symbol VARCHAR NOT NULL,
        trading_state VARCHAR NOT NULL,
        details JSON NOT NULL,
        correlation_id VARCHAR,
        causation_id VARCHAR
    """,
    "sessions": """
        session_id VARCHAR NOT NULL,
        events BIGINT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        missing BIGINT NOT NULL,           -- seqs absent between first and last (a gap; the store refuses them)
        first_ns BIGINT NOT NULL,
        last_ns BIGINT NOT NULL,
        started TIMESTAMP NOT NULL,
        last_event TIMESTAMP NOT NULL,
        has_start BOOLEAN NOT NULL,
        has_end BOOLEAN NOT NULL,
        crashed BOOLEAN NOT NULL,          -- no session_ended: the recorder died (or is still recording)
        end_reason VARCHAR,
        library VARCHAR,
        library_version VARCHAR,
        client_id BIGINT,
        account VARCHAR,
        mode VARCHAR,
        disconnects BIGINT NOT NULL,
        reconciles_unknown BIGINT NOT NULL  -- reconciliations that ended with unknown queries
    """,
}

# Deterministic row order for comparisons and exports (DuckDB tables have none of their own).
ORDER_BY: dict[str, str] = {
    "events": "position",
    "orders": "key",
    "transitions": "position, ord",
    "fills": "order_key, exec_id",
    "anomalies": "position, ord",
    "governor_decisions": "position",
    "sessions": "session_id",
}
AUDIT_TABLES: tuple[str, ...] = tuple(ORDER_BY)


def create_sql() -> list[str]:
    return [f"CREATE TABLE IF NOT EXISTS {name} ({cols})" for name, cols in TABLES.items()]


def default_duckdb_path(store_url: str, cwd: Path | None = None) -> Path:
    """Where the projection of ``store_url`` lives unless ``--duckdb`` says otherwise.

    SQLite: beside the store file, same stem (``ibledger.db`` -> ``ibledger.duckdb``).
    PostgreSQL: a file in the current directory named after host, port, database and schema (never the
    user or password), e.g. ``ibledger-pg-127.0.0.1-5432-ledger.duckdb``.
    """
    parsed = parse_url(store_url)
    if parsed.scheme == "sqlite":
        p = Path(parsed.path)
        if p.suffix.lower() in (".db", ".sqlite", ".sqlite3"):
            return p.with_suffix(".duckdb")
        return p.with_name(p.name + ".duckdb")
    parts = ["ibledger-pg", parsed.host, str(parsed.port), parsed.dbname]
    schema = parsed.params.get("schema")
    if schema:
        parts.append(schema)
    name = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", p) for p in parts) + ".duckdb"
    return (cwd or Path.cwd()) / name
