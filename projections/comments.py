"""``COMMENT ON`` text for every audit table and column, so ``duckdb_columns()`` / ``DESCRIBE`` explain
the read model to an analyst who has only the DuckDB file.

A column's comment is its inline ``--`` note in ``projections.schema.TABLES`` when it has one, else the
shared meaning of that column name below. ``comment_sql`` refuses a column with neither, so a new column
cannot ship undocumented.
"""

from __future__ import annotations

import re

TABLE_DOCS: dict[str, str] = {
    "audit_meta": "Internal: schema version and which store this projection was built from.",
    "audit_tracking": "Internal: the last store position whose effects are in every table (exactly-once tracking).",
    "audit_fold": "Internal: checkpoint of the order fold at a store position (the tail after it is re-folded); "
                  "names the fold files beside the DuckDB file that hold it.",
    "events": "Every stored event, envelope plus the whole payload as JSON.",
    "orders": "One row per order as the ledger's fold derives it (ledger state, fills, commissions).",
    "failure_reports": "Every report that an order failed or is over (error codes the IB libraries treat as "
                       "failure, Cancelled/ApiCancelled/Inactive statuses), with the order's state when it came.",
    "connection_events": "Connection lifecycle: session start/end, (dis)connects, reconciliations, errors 1100-1102.",
    "order_events": "Every event about an order, with the order's ledger state just before and after it.",
    "transitions": "Changes of an order's ledger state or overlay, one per cause.",
    "fills": "Executions as the fold holds them, corrections included (superseded revisions are not counted).",
    "anomalies": "What the fold flagged: illegal transitions, late fills, mismatches, unknown commissions...",
    "governor_decisions": "Every recorded risk-governor decision (ALLOW, BLOCK, EMERGENCY_CANCEL, STATE_CHANGE).",
    "sessions": "One row per recording session: start/end, library, client, account, disconnects, reconciliations.",
    "pnl": "View: per order, bought/sold quantity, average price, commissions and the broker's realized P&L.",
    "positions_over_time": "View: each contract's position and cumulative realized P&L after every counted execution.",
    "executions": "View: fills with the broker's execution time parsed into a timestamp (exec_ts).",
}

COLUMN_DOCS: dict[str, str] = {
    "position": "Global store position of the event (the store's total order).",
    "session_id": "Recording session the event belongs to.",
    "seq": "Gapless sequence number of the event within its session.",
    "recv_ns": "Receive time of the event, nanoseconds since the Unix epoch (UTC).",
    "ts": "Receive time of the event as a timestamp (UTC instant).",
    "mono_ns": "Monotonic clock at receipt (latency within one process only).",
    "source": "live | replay | synthetic | reconcile | import.",
    "v": "Schema version of the payload.",
    "correlation_id": "Correlation id from the envelope, if any.",
    "causation_id": "Id of the event that caused this one (e.g. the intent a decision is about).",
    "payload": "The whole event payload as JSON (payload->>'$.field').",
    "kind": "Event kind (order_status, exec_details, governor_decision, ...).",
    "account": "IB account.",
    "action": "BUY / SELL (orders); place / modify / cancel / state (decisions).",
    "anomaly_count": "Anomalies flagged on the order.",
    "aux_price": "Stop / trigger price (NULL: not set).",
    "avg_fill_price": "Average execution price over counted executions.",
    "commission": "Commissions from joined commission reports.",
    "con_id": "IB contract id (0: unknown).",
    "client_id": "API client id.",
    "order_id": "API order id (repeats across TWS logins: not an identity on its own).",
    "perm_id": "IB permanent order id (0: not known yet).",
    "symbol": "Contract symbol.",
    "sec_type": "Security type (STK, FUT, OPT, ...).",
    "total_qty": "Order quantity.",
    "order_type": "Order type (LMT, MKT, STP, ...).",
    "order_ref": "orderRef set by the strategy.",
    "lmt_price": "Limit price (NULL: not set).",
    "tif": "Time in force.",
    "remaining": "Quantity not filled (from executions).",
    "why_held": "IB's whyHeld (a held order is live, not failed).",
    "manual": "A TWS (non-API) order, known by permId.",
    "placed": "A place_order intent was recorded for it.",
    "is_done": "No further activity expected.",
    "error_count": "Error callbacks about the order.",
    "late_fill_count": "Executions that arrived after a terminal state.",
    "first_seen": "When the ledger first saw the order (UTC).",
    "first_seen_ns": "When the ledger first saw the order, ns since the epoch.",
    "last_update": "Last event about the order (UTC).",
    "last_update_ns": "Last event about the order, ns since the epoch.",
    "status_avg_fill_price": "Average fill price the last accepted orderStatus reported.",
    "status_remaining": "Remaining quantity the last accepted orderStatus reported.",
    "code": "IB error code (0 when the row is not an error).",
    "is_error": "The report is an error code (else a status).",
    "status": "IB order status string.",
    "state_before": "Ledger state of the order before the event ('' when the event created it).",
    "state_after": "Ledger state of the order after the event.",
    "live_before": "The order could execute before the event.",
    "live_after": "The order could execute after the event.",
    "order_key": "Ledger key of the order (orders.key).",
    "reason": "Reason code or text.",
    "from_state": "Ledger state before the transition.",
    "from_overlay": "Overlay before the transition ('' | PendingCancel | PendingModify).",
    "overlay": "Overlay after the transition.",
    "broker_status": "Last broker status accepted by the state table.",
    "from_status": "Status the order was in.",
    "to_status": "Status that was reported.",
    "ord": "Order of rows produced by one event.",
    "exec_id": "IB execution id (corrections share the prefix before the last '.').",
    "shares": "Execution quantity.",
    "price": "Execution price.",
    "side": "BOT / SLD.",
    "currency": "Commission currency.",
    "realized_pnl": "Realized P&L from the commission report (NULL: not reported / unset).",
    "replaced_shares": "A correction: shares of the revision it replaced.",
    "replaced_price": "A correction: price of the revision it replaced.",
    "message": "Human-readable text of the decision.",
    "trading_state": "Trading state after the decision (ACTIVE | HALTED | REDUCING).",
    "details": "The numbers behind the decision (JSON: limit, value, qty, price, notional, ...).",
    "events": "Number of events.",
    "first_seq": "First seq of the session.",
    "last_seq": "Last seq of the session.",
    "first_ns": "Receive time of the session's first event, ns since the epoch.",
    "last_ns": "Receive time of the session's last event, ns since the epoch.",
    "started": "Receive time of the session's first event (UTC).",
    "last_event": "Receive time of the session's last event (UTC).",
    "has_start": "A session_started event was recorded.",
    "has_end": "A session_ended event was recorded.",
    "end_reason": "Reason recorded in session_ended.",
    "library": "IB client library that recorded the session.",
    "library_version": "Its version.",
    "mode": "paper | live | simulation | import.",
    "disconnects": "Disconnects recorded in the session.",
    "reconciles": "Reconciliations that ran.",
    "key": "Metadata key.",
    "value": "Metadata value.",
    "projection": "Projection name.",
    "fold_version": "Hash of the fold's code when the checkpoint was written.",
    "state": "Serialized fold state (msgpack).",
}

_COLUMN = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s+[A-Z]")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def column_comments(tables: dict[str, str]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for table, body in tables.items():
        for line in body.splitlines():
            m = _COLUMN.match(line)
            if not m:
                continue
            name = m.group(1)
            note = line.split("--", 1)[1].strip() if "--" in line else ""
            text = note or COLUMN_DOCS.get(name, "")
            if not text:
                raise ValueError(f"column {table}.{name} has no comment: add one in projections/comments.py")
            out[(table, name)] = text
    return out


def comment_sql(tables: dict[str, str], views: dict[str, str], schema_of: dict[str, str]) -> list[str]:
    """COMMENT ON statements for every table, column and view. ``schema_of``: table -> schema prefix."""
    stmts = []
    for table in tables:
        q = f"{schema_of.get(table, '')}{table}"
        stmts.append(f"COMMENT ON TABLE {q} IS {_quote(TABLE_DOCS[table])}")
    for (table, col), text in column_comments(tables).items():
        stmts.append(f"COMMENT ON COLUMN {schema_of.get(table, '')}{table}.{col} IS {_quote(text)}")
    for view in views:
        stmts.append(f"COMMENT ON VIEW main.{view} IS {_quote(TABLE_DOCS[view])}")
    return stmts
