"""A session stored under an older schema stays verified after an upgrade bumped its kinds' schema."""

from __future__ import annotations

import sys

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.store import open_store
from ledger.store.verify import verify

UNSET_DOUBLE = sys.float_info.max


def test_old_schema_rows_verify_and_read_upcast(tmp_path):
    sid = "old-session"
    payloads = [
        ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=1),
        ev.OrderStatus(order_id=1, status="Submitted", remaining=10.0, perm_id=7, client_id=1,
                       mkt_cap_price=UNSET_DOUBLE),
        ev.SessionEnded(reason="normal"),
    ]
    envs = [Envelope(session_id=sid, seq=i, recv_ns=1_700_000_000_000_000_000 + i, mono_ns=i, source="live",
                     payload=p, v=1) for i, p in enumerate(payloads, 1)]
    assert ev.OrderStatus.SCHEMA_VERSION > 1  # the kind was bumped after these rows were written
    with open_store(f"sqlite:///{tmp_path / 'l.db'}") as st:
        st.append(envs)
        report = verify(st)
        assert report.ok, report
        (_, status, _) = list(st.read_session(sid))
    assert status.v == ev.OrderStatus.SCHEMA_VERSION and status.payload.mkt_cap_price is None
