"""lifecycle: connection and reconciliation flags, and the checkpoints that compare fills with statuses."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.fold.lifecycle import on_disconnected, on_reconcile_ended, on_reconcile_started
from tests.core.fold.feed import Feed, place, status


def test_a_disconnect_during_reconciliation_leaves_it_needed() -> None:
    f = Feed()
    f(ev.Connected(host="h", port=1, client_id=1))
    on_reconcile_started(f.fold, f.env(ev.ReconcileStarted()), ev.ReconcileStarted())
    on_disconnected(f.fold, f.env(ev.Disconnected()), ev.Disconnected())
    assert not f.fold.connected and not f.fold.reconciling and f.fold.needs_reconcile


def test_a_clean_reconciliation_is_a_checkpoint_for_fills_the_broker_reports_but_we_lack() -> None:
    f = Feed()
    f(place(), status("Submitted", filled=40))
    p = ev.ReconcileEnded(ok=False, unknown=["executions"])
    on_reconcile_ended(f.fold, f.env(p), p)
    assert f.fold.reconcile_unknown == ["executions"] and f.fold.anomalies == []
    p = ev.ReconcileEnded()
    on_reconcile_ended(f.fold, f.env(p), p)
    assert [a.kind for a in f.fold.anomalies] == ["fill_status_mismatch"] and not f.fold.needs_reconcile
