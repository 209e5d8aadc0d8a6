"""Every column of every projection table is pinned, for rebuild and incremental builds alike.

test_projection_pinned.py pins the columns the tables had when the Arrow ingest arrived, over the
fixtures and one small seeded stream. This file pins every column the tables hold now (read from
``DESCRIBE``, so a new column changes the digest on purpose), over larger and rougher input: a seeded
synthetic session of the kind the build benchmark uses, a seeded multi-session stream, and a seeded
"garbage" stream (IB's unset sentinels, NaN, infinities, shuffled events). The digests were taken before
the projector's row building was rewritten for speed, so a faster projector has to produce exactly the
same rows. Small batches put many batch boundaries (and, incrementally, fold checkpoints) in the input.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from ledger.store import open_store
from ledger.store.sessionfile import iter_session
from projections import projector, schema
from replay.strategies import generate_stream
from replay.synthetic import synthetic_session
from tests.core.test_fold_digests import garbage_stream

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# taken on the projector before the column-building rewrite (payload column on, then off)
PINNED: dict[str, str] = {
    "events": "31222:ded1c6fca64044e761a95ad0",
    "events:no-payload": "31222:33764dc1bbbecb4a87b5918e",
    "orders": "3986:f9236c76e06d89b0207bee19",
    "order_events": "30243:029440e39270aafc39c0f1d7",
    "failure_reports": "1857:92c0a4d2fcea4e8a9d9db519",
    "connection_events": "246:52e819b034f217f908e33283",
    "transitions": "14592:f7828e2c567a20928a14d680",
    "fills": "4667:0b934b0d0fb3c6f7946519e5",
    "anomalies": "1206:05b2b11004d67a1d2c2397fe",
    "governor_decisions": "1981:ee846bd29155c581ba65600c",
    "sessions": "42:1e2d2229c4c8d19100e32a61",
}


def table_digests(path: Path) -> dict[str, str]:
    """sha256 over every audit table's column names and types and every row (all columns, in the schema's
    row order), with the row count in front."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = {}
        for table in schema.AUDIT_TABLES:
            desc = con.execute(f"DESCRIBE {table}").fetchall()
            cols = [r[0] for r in desc]
            h = hashlib.sha256(repr([(r[0], r[1]) for r in desc]).encode())  # names and types too
            n = 0
            for row in con.execute(f"SELECT {', '.join(cols)} FROM {table} "
                                   f"ORDER BY {schema.ORDER_BY[table]}").fetchall():
                h.update(repr(row).encode())
                n += 1
            out[table] = f"{n}:{h.hexdigest()[:24]}"
        return out
    finally:
        con.close()


def _load(store) -> None:
    for f in sorted(FIXTURES.glob("*.jsonl")):
        store.append(list(iter_session(f)))
    store.append(list(synthetic_session(1313, 1500)))
    store.append(generate_stream(seed=1314, n_events=4_000))
    store.append(garbage_stream(1315, 4_000))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, dict[str, str]]:
    d = tmp_path_factory.mktemp("tables")
    with open_store(f"sqlite:///{d / 'ledger.db'}") as store:
        _load(store)
        projector.rebuild(store, d / "rebuilt.duckdb", payloads=True, batch_events=1009)
        projector.rebuild(store, d / "default.duckdb")
        with projector.AuditProjection(store, d / "incr.duckdb", batch_events=313, checkpoint_every=2_000,
                                       payloads=True) as proj:
            proj.catch_up()
    return {name: table_digests(d / f"{name}.duckdb") for name in ("rebuilt", "default", "incr")}


@pytest.mark.parametrize("table", schema.AUDIT_TABLES)
def test_rebuild_with_payloads_is_pinned(built, table: str) -> None:
    assert built["rebuilt"][table] == PINNED[table]


@pytest.mark.parametrize("table", schema.AUDIT_TABLES)
def test_incremental_equals_rebuild(built, table: str) -> None:
    assert built["incr"][table] == PINNED[table]


@pytest.mark.parametrize("table", [t for t in schema.AUDIT_TABLES if t != "events"])
def test_default_rebuild_differs_only_in_payloads(built, table: str) -> None:
    assert built["default"][table] == PINNED[table]


def test_default_rebuild_events_are_pinned(built) -> None:
    assert built["default"]["events"] == PINNED["events:no-payload"]
