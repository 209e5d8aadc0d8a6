"""views: the public value types and exec_family."""

from __future__ import annotations

import msgspec

from ledger.core.fold import Anomaly, OrderView, Snapshot, exec_family
from ledger.core.fold.views import ANOMALY_KINDS


def test_exec_family_splits_the_revision_off() -> None:
    assert exec_family("0001f4e8.65a.01.02") == ("0001f4e8.65a.01", "02")
    assert exec_family("noperiod") == ("noperiod", "")


def test_snapshot_round_trips_through_msgpack() -> None:
    snap = Snapshot(
        orders=[OrderView(key="S1:1:1", session_id="S1", client_id=1, order_id=1)],
        anomalies=[Anomaly(seq=1, session_id="S1", recv_ns=5, key="", kind="recorder_fault", reason="lost")],
        positions=[], connected=True, broker_link=True, reconciling=False, needs_reconcile=False,
        reconcile_unknown=[], pending_commissions=[], merged={}, last_ns=5,
    )
    back = msgspec.msgpack.decode(msgspec.msgpack.encode(snap), type=Snapshot)
    assert back == snap and back.anomalies[0].kind in ANOMALY_KINDS
