"""The DuckDB audit read model: table definitions, and where the DuckDB file lives.

Every table is derived from the event store and can be dropped and rebuilt at any time
(README "Design: Principles" 7). The ``audit_tracking`` row (last store position applied) and the
``audit_fold`` checkpoint are written in the same DuckDB transaction as the rows they describe, so a
crash at any point leaves either the whole batch or none of it.

Times are kept twice: the envelope's integer nanoseconds (``*_ns``, exact, what the fold uses) and a
``TIMESTAMPTZ`` (an instant, microseconds; shown in UTC by ibledger's connections) for humans and date
arithmetic. The broker's own execution time string is also parsed into ``executions.exec_ts``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ledger.store import parse_url

# Bump when a table's shape or meaning changes: an older file is rebuilt automatically.
# 5: ``audit_fold`` names the compact fold's files (projections.foldfiles) instead of holding a whole fold.
SCHEMA_VERSION = 5

# Error codes that the IB client libraries turn into a failed / cancelled order (ib_insync: 201, 10147,
# 10148, 10349, 161; ib_async also 202, 110, and 399 / 404 as 'ValidationError'), and the statuses that
# report an order as over. The ledger never derives a terminal state from an error code; the
# ``failure_reports`` table keeps every such report so the audit can show where one was wrong.
FAILURE_CODES: tuple[int, ...] = (110, 161, 201, 202, 399, 404, 10147, 10148, 10349)
FAILURE_STATUSES: tuple[str, ...] = ("Cancelled", "ApiCancelled", "Inactive")
# Connectivity facts kept in ``connection_events`` (and errors 1100 / 1101 / 1102).
CONNECTION_KINDS: tuple[str, ...] = ("session_started", "session_ended", "connected", "disconnected",
                                     "reconcile_started", "reconcile_ended")
CONNECTION_CODES: tuple[int, ...] = (1100, 1101, 1102)

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
    # The fold's checkpoint at ``position`` (the tail after it is re-folded from the store): the compact
    # fold's state is in the files this row names (projections.foldfiles), committed with this row.
    "audit_fold": """
        position BIGINT NOT NULL,
        fold_version VARCHAR NOT NULL,
        files VARCHAR NOT NULL,            -- token of the directory <duckdb file>.fold-<token>
        slot INTEGER NOT NULL,             -- checkpoint slot (ck0 / ck1) in it
        log_len BIGINT NOT NULL,           -- committed length of its archive log
        state_len BIGINT NOT NULL,         -- length of the slot's bytes
        state_crc BIGINT NOT NULL          -- CRC-32 of the slot's bytes (a slot not committed is never read)
    """,
    # Every stored event; with ``--payloads`` also the whole payload as JSON, so any field is queryable,
    # e.g. SELECT payload->>'$.status' FROM events WHERE kind = 'order_status'.
    "events": """
        position BIGINT NOT NULL,          -- global store position
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ,
        mono_ns BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        v BIGINT NOT NULL,
        correlation_id VARCHAR,
        causation_id VARCHAR,
        payload JSON                       -- NULL unless built with payloads (ibledger audit --payloads)
    """,
    # The fold's orders, one row per OrderView, equal to ledger.core.fold.fold(...) field for field.
    "orders": """
        key VARCHAR NOT NULL,              -- perm:<permId>, or <session>:<client>:<orderId>[~n]
        session_id VARCHAR NOT NULL,       -- the session the order was first seen in
        perm_id BIGINT NOT NULL,
        order_id BIGINT NOT NULL,
        client_id BIGINT NOT NULL,
        account VARCHAR NOT NULL,
        symbol VARCHAR NOT NULL,
        sec_type VARCHAR NOT NULL,
        con_id BIGINT NOT NULL,
        action VARCHAR NOT NULL,
        total_qty DOUBLE NOT NULL,
        order_type VARCHAR NOT NULL,
        lmt_price DOUBLE,
        aux_price DOUBLE,
        tif VARCHAR NOT NULL,
        order_ref VARCHAR NOT NULL,
        broker_status VARCHAR NOT NULL,    -- last IB status accepted by the state table ('' = none)
        why_held VARCHAR NOT NULL,
        state VARCHAR NOT NULL,            -- ledger state (ledger.core.statemachine)
        overlay VARCHAR NOT NULL,          -- '' | PendingCancel | PendingModify
        filled DOUBLE NOT NULL,            -- from executions (fills are facts)
        remaining DOUBLE NOT NULL,
        avg_fill_price DOUBLE NOT NULL,
        commission DOUBLE NOT NULL,
        status_filled DOUBLE NOT NULL,     -- what the last accepted orderStatus said
        status_remaining DOUBLE NOT NULL,
        status_avg_fill_price DOUBLE NOT NULL,
        fill_pending BOOLEAN NOT NULL,     -- the broker reports more filled than executions cover
        is_live BOOLEAN NOT NULL,          -- can execute at any moment
        is_done BOOLEAN NOT NULL,
        placed BOOLEAN NOT NULL,
        unconfirmed BOOLEAN NOT NULL,      -- placed, never acknowledged: NOT failed
        manual BOOLEAN NOT NULL,
        anomaly_count BIGINT NOT NULL,
        fill_count BIGINT NOT NULL,        -- executions counted (corrections replace, not add)
        late_fill_count BIGINT NOT NULL,
        error_count BIGINT NOT NULL,
        first_seen TIMESTAMPTZ,
        last_update TIMESTAMPTZ,
        first_seen_ns BIGINT NOT NULL,
        last_update_ns BIGINT NOT NULL,
        acked_ns BIGINT NOT NULL,          -- first broker message about the order (0 = none)
        first_fill_ns BIGINT NOT NULL,     -- 0 = none
        -- kept by the projector from the order's events (not fields of the fold's OrderView):
        placed_ns BIGINT NOT NULL,         -- first place_order intent (0 = never placed by us)
        last_exec_position BIGINT NOT NULL, -- position of the order's latest new execution (0 = none)
        last_live_position BIGINT NOT NULL, -- position where it last became live (0 = never)
        first_failure_position BIGINT NOT NULL, -- first failure report (failure_reports) about it (0 = none)
        live_error_position BIGINT NOT NULL -- latest failure error code received while it was live (0 = none)
    """,
    # Every report that an order failed or is over: an error code the client libraries turn into a
    # failure, or a Cancelled / ApiCancelled / Inactive status (applied or not), with the order's state
    # when it came. Joined with orders.last_*_position it shows the reports that were wrong.
    "failure_reports": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ,
        order_key VARCHAR NOT NULL,
        report VARCHAR NOT NULL,           -- 'error 202', 'status Cancelled', ...
        is_error BOOLEAN NOT NULL,
        code BIGINT NOT NULL,
        status VARCHAR,
        state_before VARCHAR NOT NULL,
        live_before BOOLEAN NOT NULL
    """,
    # Connection lifecycle facts (a small table for the gaps query): session start/end, (dis)connects,
    # reconciliations and errors 1100 / 1101 / 1102.
    "connection_events": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ,
        kind VARCHAR NOT NULL,
        code BIGINT NOT NULL,
        ok BOOLEAN,                        -- reconcile_ended
        unknown VARCHAR                    -- reconcile_ended: the queries left unknown (JSON list)
    """,
    # Every event about an order, with the order's ledger state just before and after it: the
    # per-order timeline (statuses, executions, commissions, errors, intents, governor decisions).
    "order_events": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ,
        order_key VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        status VARCHAR,                    -- order_status / open_order / completed_order
        code BIGINT NOT NULL,              -- error code (0 otherwise)
        exec_id VARCHAR,                   -- exec_details / commission_report
        shares DOUBLE NOT NULL,            -- execution shares, status filled, or order quantity
        price DOUBLE NOT NULL,             -- execution price, avg fill price, limit, or commission
        decision VARCHAR,                  -- governor_decision
        reason VARCHAR,
        text VARCHAR,                      -- error message, whyHeld, governor message
        state_before VARCHAR NOT NULL,     -- '' when the event created the order
        state_after VARCHAR NOT NULL,
        live_before BOOLEAN NOT NULL,
        live_after BOOLEAN NOT NULL
    """,
    "transitions": """
        position BIGINT NOT NULL,          -- the event that caused it
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        ord BIGINT NOT NULL,               -- order of transitions within one event
        order_key VARCHAR NOT NULL,
        from_state VARCHAR NOT NULL,
        to_state VARCHAR NOT NULL,         -- 'Merged': the record turned out to be another order
        from_overlay VARCHAR NOT NULL,
        overlay VARCHAR NOT NULL,
        broker_status VARCHAR NOT NULL,
        cause VARCHAR NOT NULL,            -- the event kind
        critical VARCHAR NOT NULL,         -- ORDER_LIVE, FILLED, CANCELLED, CANCEL_REFUSED, ...
        live_after BOOLEAN NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ
    """,
    # Executions of the orders as the fold holds them, corrections included.
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
        account VARCHAR NOT NULL,
        exec_time VARCHAR NOT NULL,        -- the broker's own time string
        commission DOUBLE,                 -- NULL until the commission report joined
        currency VARCHAR NOT NULL,
        realized_pnl DOUBLE,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        order_first_seen_ns BIGINT NOT NULL, -- the order's first_seen_ns when written (bounds deletes)
        replaces_exec_id VARCHAR,          -- a correction: the revision it replaced
        replaced_shares DOUBLE,
        replaced_price DOUBLE,
        ts TIMESTAMPTZ
    """,
    "anomalies": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        ord BIGINT NOT NULL,
        order_key VARCHAR NOT NULL,        -- '' when no order is concerned
        kind VARCHAR NOT NULL,             -- ledger.core.fold.ANOMALY_KINDS
        from_status VARCHAR NOT NULL,
        to_status VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ
    """,
    "governor_decisions": """
        position BIGINT NOT NULL,
        session_id VARCHAR NOT NULL,
        seq BIGINT NOT NULL,
        recv_ns BIGINT NOT NULL,
        ts TIMESTAMPTZ,
        decision VARCHAR NOT NULL,         -- ALLOW | BLOCK | EMERGENCY_CANCEL | STATE_CHANGE
        reason VARCHAR NOT NULL,
        message VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        order_id BIGINT NOT NULL,
        client_id BIGINT NOT NULL,
        perm_id BIGINT NOT NULL,
        symbol VARCHAR NOT NULL,
        trading_state VARCHAR NOT NULL,
        details JSON NOT NULL,
        order_key VARCHAR,                 -- the order the decision is about, if any
        correlation_id VARCHAR,
        causation_id VARCHAR
    """,
    "sessions": """
        session_id VARCHAR NOT NULL,
        events BIGINT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        missing BIGINT NOT NULL,           -- seqs absent between first and last (the store refuses gaps)
        first_ns BIGINT NOT NULL,
        last_ns BIGINT NOT NULL,
        started TIMESTAMPTZ,
        last_event TIMESTAMPTZ,
        has_start BOOLEAN NOT NULL,
        has_end BOOLEAN NOT NULL,
        crashed BOOLEAN NOT NULL,          -- no session_ended: the recorder died (or is still recording)
        end_reason VARCHAR,
        library VARCHAR,
        library_version VARCHAR,
        client_id BIGINT NOT NULL,
        account VARCHAR,
        mode VARCHAR,
        disconnects BIGINT NOT NULL,
        link_losses BIGINT NOT NULL,       -- error 1100: TWS lost its own link to IB
        reconciles BIGINT NOT NULL,
        reconciles_unknown BIGINT NOT NULL -- reconciliations that failed or left queries unknown
    """,
}

# Deterministic row order for comparisons and exports (DuckDB tables have none of their own).
ORDER_BY: dict[str, str] = {
    "events": "position",
    "orders": "key",
    "order_events": "position, order_key",
    "failure_reports": "position",
    "connection_events": "position",
    "transitions": "position, ord",
    "fills": "order_key, exec_id",
    "anomalies": "position, ord",
    "governor_decisions": "position",
    "sessions": "session_id",
}
AUDIT_TABLES: tuple[str, ...] = tuple(ORDER_BY)


# Views over the tables above (no rows of their own, so nothing to track or rebuild). Counted executions
# only (a superseded revision is not a fill); realized P&L is the broker's (commission reports), NULL when
# no report carried a value; IB's unset sentinel (1.797e308) is treated as NULL.
_COUNTED_FILLS = """
    SELECT f.*, o.symbol, o.con_id, o.account AS order_account,
           CASE WHEN upper(coalesce(nullif(f.side, ''), o.action)) IN ('SLD', 'SELL', 'SSHORT')
                THEN -f.shares ELSE f.shares END AS delta,
           CASE WHEN abs(f.realized_pnl) < 1e300 THEN f.realized_pnl END AS realized
    FROM fills f JOIN orders o ON o.key = f.order_key
    WHERE NOT f.superseded
"""
VIEWS: dict[str, str] = {
    # Position of each (account, symbol, conId) right after each counted execution, in event order.
    "positions_over_time": f"""
        SELECT coalesce(nullif(account, ''), order_account) AS account, symbol, con_id, ts, recv_ns, session_id,
               seq, order_key, exec_id, delta, price,
               sum(delta) OVER w AS position,
               sum(realized) OVER w AS realized_pnl
        FROM ({_COUNTED_FILLS})
        WINDOW w AS (PARTITION BY coalesce(nullif(account, ''), order_account), symbol, con_id
                     ORDER BY recv_ns, session_id, seq, exec_id ROWS UNBOUNDED PRECEDING)
    """,
    # Fills with the broker's execution time as a timestamp: ISO-8601 as the simulator writes it, or IB's
    # 'yyyymmdd hh:mm:ss Zone'; NULL when there is no zone (TWS local time) or it is unknown.
    "executions": """
        SELECT f.*, coalesce(try_cast(f.exec_time AS TIMESTAMPTZ),
               CASE WHEN p.zone IN (SELECT name FROM pg_timezone_names())
                    THEN timezone(p.zone, try_strptime(substr(p.norm, 1, 17), '%Y%m%d %H:%M:%S')) END) AS exec_ts
        FROM fills f,
             LATERAL (SELECT regexp_replace(trim(f.exec_time), '\\s+', ' ', 'g') AS norm) n,
             LATERAL (SELECT n.norm AS norm, trim(substr(n.norm, 18)) AS zone) p
    """,
    # Per order: quantities, average price, commissions and realized P&L.
    "pnl": f"""
        SELECT order_key, any_value(coalesce(nullif(account, ''), order_account)) AS account,
               any_value(symbol) AS symbol, any_value(con_id) AS con_id,
               sum(greatest(delta, 0)) AS bought, sum(greatest(-delta, 0)) AS sold,
               sum(shares * price) / nullif(sum(shares), 0) AS avg_price,
               coalesce(sum(commission), 0) AS commission, sum(realized) AS realized_pnl, count(*) AS fills
        FROM ({_COUNTED_FILLS})
        GROUP BY order_key
    """,
}


# Bookkeeping tables live in their own schema, out of an analyst's SHOW TABLES; the projector's connection
# finds them through its search path, readers name them in full (``ibledger_internal.audit_tracking``).
INTERNAL_SCHEMA = "ibledger_internal"
INTERNAL_TABLES: tuple[str, ...] = ("audit_meta", "audit_tracking", "audit_fold")
SEARCH_PATH = f"{INTERNAL_SCHEMA},main"


def session_sql() -> str:
    """Run on the projector's connection: TIMESTAMPTZ values are UTC instants; internal tables resolve."""
    return (f"CREATE SCHEMA IF NOT EXISTS {INTERNAL_SCHEMA}; SET TimeZone = 'UTC'; "
            f"SET search_path = '{SEARCH_PATH}'")


def qualified(name: str) -> str:
    return f"{INTERNAL_SCHEMA}.{name}" if name in INTERNAL_TABLES else f"main.{name}"


def create_sql() -> list[str]:
    stmts = [f"CREATE SCHEMA IF NOT EXISTS {INTERNAL_SCHEMA}"]
    stmts += [f"DROP TABLE IF EXISTS main.{name}" for name in INTERNAL_TABLES]  # the layout before schema 4
    stmts += [f"CREATE TABLE IF NOT EXISTS {qualified(name)} ({cols})" for name, cols in TABLES.items()]
    return stmts + [f"CREATE OR REPLACE VIEW main.{name} AS {sql}" for name, sql in VIEWS.items()]


def comments_sql() -> str:
    """COMMENT ON every table, column and view, as one script: run once when the tables are (re)created
    (the statements are catalog writes: a few hundred of them would slow every open)."""
    from projections.comments import comment_sql

    return ";\n".join(comment_sql(TABLES, VIEWS, {n: qualified(n).removesuffix(n) for n in TABLES}))


def store_identity(store_url: str) -> str:
    """What makes two store URLs the same store (no credentials, no tuning parameters)."""
    parsed = parse_url(store_url)
    if parsed.scheme == "sqlite":
        return "sqlite:" + str(Path(parsed.path).resolve())
    schema = parsed.params.get("schema") or "public"
    return f"postgresql://{parsed.host}:{parsed.port}/{parsed.dbname}?schema={schema}"


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
    name = "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p) for p in parts) + ".duckdb"
    return (cwd or Path.cwd()) / name
