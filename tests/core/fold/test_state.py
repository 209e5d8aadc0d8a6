"""state: FoldState holds all of the fold's state; record_anomaly and session_client read and write it."""

from __future__ import annotations

from ledger.core.fold.state import FoldState, record_anomaly, session_client
from tests.core.fold.feed import Feed, place


def test_fresh_states_share_nothing() -> None:
    a, b = FoldState(), FoldState()
    a.orders["x"] = None  # type: ignore[assignment]
    a._bind[("S", 1, 1)] = None  # type: ignore[assignment]
    assert b.orders == {} and b._bind == {} and b.anomalies == [] and not b.connected


def test_record_anomaly_counts_on_the_order() -> None:
    f = Feed()
    f(place())
    core = f.fold._bind[("S1", 1, 1)]
    env = f.env(place())
    record_anomaly(f.fold, env, core, "unknown_order", "why", "A", "B")
    a = f.fold.anomalies[-1]
    assert (a.seq, a.key, a.kind, a.from_status, a.to_status) == (env.seq, core.view.key, "unknown_order", "A", "B")
    assert core.view.anomaly_count == 1
    record_anomaly(f.fold, env, None, "recorder_fault", "lost")
    assert f.fold.anomalies[-1].key == "" and core.view.anomaly_count == 1


def test_session_client_falls_back_to_the_sessions_client() -> None:
    f = Feed()
    assert session_client(f.fold, "S1", 0) == 1
    assert session_client(f.fold, "S1", 7) == 7
    assert session_client(f.fold, "other", 0) == 0
