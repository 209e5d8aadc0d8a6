"""broker: orderStatus, openOrder, completedOrder and errors about an order or the link."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.fold.broker import on_error, on_status
from tests.core.fold.feed import Feed, place, status


def test_connectivity_errors_move_the_broker_link() -> None:
    f = Feed()
    on_error(f.fold, f.env(ev.Error(req_id=-1, code=1100)), ev.Error(req_id=-1, code=1100))
    assert not f.fold.broker_link
    on_error(f.fold, f.env(ev.Error(req_id=-1, code=1102)), ev.Error(req_id=-1, code=1102))
    assert f.fold.broker_link and f.fold.needs_reconcile


def test_reject_error_then_inactive_makes_the_order_rejected() -> None:
    f = Feed()
    f(place())
    on_error(f.fold, f.env(ev.Error(req_id=1, code=201)), ev.Error(req_id=1, code=201, message="no"))
    v = f.fold.order_for(1, 1)
    assert v is not None and v.errors[-1][1:] == (201, "no")
    p = status("Inactive")
    out = on_status(f.fold, f.env(p), p)
    assert v.state == "Rejected" and out[-1].to_state == "Rejected"


def test_garbage_status_is_an_anomaly_not_an_exception() -> None:
    f = Feed()
    f(place())
    p = status("ValidationError")
    assert on_status(f.fold, f.env(p), p) == []
    assert f.fold.anomalies[-1].kind == "unknown_status"
