"""The projection's tables hold the same content before and after the Arrow ingest / write-once rebuild.

The digests were first taken from the NumPy-ingest projector (per-batch order rewrites, payload column
always on) over every fixture plus a seeded synthetic stream, and the Arrow projector matched them. They
were taken again, with rebuild and incremental equal, when the fold's meaning changed on purpose (IB's
unset values read as None, held orders live, identity scoped by account, commissions attributed by the
fold's own execution index). Each table is hashed over the columns it
had then, in the schema's row order, so a table that gains columns later still compares.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from ledger.store import open_store
from ledger.store.sessionfile import iter_session
from projections import projector, schema
from tests.support.audit_streams import generate

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

COLUMNS = {
    "events": "position, session_id, seq, kind, recv_ns, ts, mono_ns, source, v, correlation_id, causation_id, "
              "payload",
    "order_events": "position, session_id, seq, recv_ns, ts, order_key, kind, status, code, exec_id, shares, price, "
                    "decision, reason, text, state_before, state_after, live_before, live_after",
    "transitions": "position, session_id, seq, ord, order_key, from_state, to_state, from_overlay, overlay, "
                   "broker_status, cause, critical, live_after, recv_ns, ts",
    "anomalies": "position, session_id, seq, ord, order_key, kind, from_status, to_status, reason, recv_ns, ts",
    "governor_decisions": "position, session_id, seq, recv_ns, ts, decision, reason, message, action, order_id, "
                          "client_id, perm_id, symbol, trading_state, details, order_key, correlation_id, "
                          "causation_id",
    "orders": "key, session_id, perm_id, order_id, client_id, account, symbol, sec_type, con_id, action, total_qty, "
              "order_type, lmt_price, aux_price, tif, order_ref, broker_status, why_held, state, overlay, filled, "
              "remaining, avg_fill_price, commission, status_filled, status_remaining, status_avg_fill_price, "
              "fill_pending, is_live, is_done, placed, unconfirmed, manual, anomaly_count, fill_count, "
              "late_fill_count, error_count, first_seen, last_update, first_seen_ns, last_update_ns, acked_ns, "
              "first_fill_ns, placed_ns, last_exec_position, last_live_position, first_failure_position, "
              "live_error_position",
    "failure_reports": "position, session_id, seq, recv_ns, ts, order_key, report, is_error, code, status, "
                       "state_before, live_before",
    "connection_events": "position, session_id, seq, recv_ns, ts, kind, code, ok, unknown",
    "fills": "order_key, exec_id, exec_prefix, revision, is_correction, superseded, late, shares, price, side, "
             "account, exec_time, commission, currency, realized_pnl, session_id, seq, recv_ns, "
             "order_first_seen_ns, replaces_exec_id, replaced_shares, replaced_price, ts",
    "sessions": "session_id, events, first_seq, last_seq, missing, first_ns, last_ns, started, last_event, "
                "has_start, has_end, crashed, end_reason, library, library_version, client_id, account, mode, "
                "disconnects, link_losses, reconciles, reconciles_unknown",
}

PINNED: dict[str, str] = {
    "events": "b796a23f3062748fee039f24",
    "order_events": "972e28d2a9d74e5e0c5c54a4",
    "transitions": "74e7d40c164a57436df4d31b",
    "anomalies": "47533c5e52c6aa2f095aa0a1",
    "governor_decisions": "64de83d6516a054cfb74e4a2",
    "orders": "ac114a0147c661437b6e7721",
    "failure_reports": "41e5528a9938cf65c716ce07",
    "connection_events": "d236b01442fa1a7445abba36",
    "fills": "699f540646b28d4af17ac21e",
    "sessions": "b91260550af0227ee41692b1",
}


def digests(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table, cols in COLUMNS.items():
            # UTC times are TIMESTAMPTZ now: hash them as the UTC wall time the pinned (naive) columns held
            types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            sel = ", ".join(f"timezone('UTC', {c}) AS {c}" if types.get(c) == "TIMESTAMP WITH TIME ZONE" else c
                            for c in (c.strip() for c in cols.split(",")))
            h = hashlib.sha256()
            for row in con.execute(f"SELECT {sel} FROM {table} ORDER BY {schema.ORDER_BY[table]}").fetchall():
                h.update(repr(row).encode())
            out[table] = h.hexdigest()[:24]
        return out
    finally:
        con.close()


# The session files the digests were taken over (fixtures added later are not part of the pinned input).
PINNED_FIXTURES = (
    "cancel_202_after_cancelled.jsonl",
    "cancel_202_before_cancelled.jsonl",
    "cancel_races_fill.jsonl",
    "cancel_refused.jsonl",
    "commission_before_exec.jsonl",
    "commission_duplicated.jsonl",
    "commission_unknown_exec.jsonl",
    "default.jsonl",
    "drop_mid_fill.jsonl",
    "duplicate_status.jsonl",
    "error_110_then_live.jsonl",
    "exec_before_status.jsonl",
    "exec_correction.jsonl",
    "fill_simple.jsonl",
    "fok_immediate_cancel.jsonl",
    "held_404_then_fill.jsonl",
    "inactive_whyheld_then_live.jsonl",
    "info_10349_then_fill.jsonl",
    "ioc_partial_cancel.jsonl",
    "long_silence.jsonl",
    "manual_tws_order.jsonl",
    "modify_ack.jsonl",
    "partial_fills.jsonl",
    "partial_presubmitted.jsonl",
    "partial_then_cancel.jsonl",
    "presubmitted_fill.jsonl",
    "reject_201.jsonl",
    "stuck_presubmitted.jsonl",
    "unsolicited_cancel.jsonl",
    "warning_399_then_fill.jsonl",
)


def _load(store) -> None:
    for name in PINNED_FIXTURES:
        store.append(list(iter_session(FIXTURES / name)))
    store.append(generate(n_sessions=3, orders_per_session=40, seed=13).envelopes)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[dict[str, str], dict[str, str], Path]:
    d = tmp_path_factory.mktemp("pinned")
    with open_store(f"sqlite:///{d / 'ledger.db'}") as store:
        _load(store)
        projector.rebuild(store, d / "rebuilt.duckdb", payloads=True)
        with projector.AuditProjection(store, d / "incr.duckdb", batch_events=97, checkpoint_every=300,
                                       payloads=True) as proj:
            proj.catch_up()
        projector.rebuild(store, d / "default.duckdb")
    return digests(d / "rebuilt.duckdb"), digests(d / "incr.duckdb"), d / "default.duckdb"


@pytest.mark.parametrize("table", list(COLUMNS))
def test_rebuild_content_is_pinned(built, table: str) -> None:
    assert built[0][table] == PINNED[table]


@pytest.mark.parametrize("table", list(COLUMNS))
def test_incremental_content_is_pinned(built, table: str) -> None:
    assert built[1][table] == PINNED[table]


def test_payload_column_is_off_by_default_and_nothing_else_changes(built) -> None:
    path = built[2]
    got = digests(path)
    assert {t: v for t, v in got.items() if t != "events"} == {t: v for t, v in PINNED.items() if t != "events"}
    con = duckdb.connect(str(path), read_only=True)
    try:
        n, with_payload = con.execute("SELECT count(*), count(payload) FROM events").fetchall()[0]
    finally:
        con.close()
    assert n > 0 and with_payload == 0
