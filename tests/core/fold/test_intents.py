"""intents: place, modify, cancel and the governor's decisions."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.fold.intents import on_cancel, on_decision, on_place
from tests.core.fold.feed import Feed, place, status


def test_placing_a_live_order_id_again_is_a_modify_and_after_done_a_new_order() -> None:
    f = Feed()
    p = place(qty=100)
    on_place(f.fold, f.env(p), p)
    f(status("Submitted"))
    p = place(qty=50)
    on_place(f.fold, f.env(p), p)
    assert len(f.fold.orders) == 1 and f.fold.order_for(1, 1).overlay == "PendingModify"
    f(status("Cancelled"))
    p = place(qty=10)
    on_place(f.fold, f.env(p), p)
    assert len(f.fold.orders) == 2 and f.fold.order_for(1, 1).total_qty == 10


def test_cancel_of_an_unknown_order_is_an_anomaly() -> None:
    f = Feed()
    p = ev.CancelOrder(order_id=42, client_id=1)
    assert on_cancel(f.fold, f.env(p), p) == []
    assert f.fold.anomalies[-1].kind == "unknown_order"


def test_a_block_decision_blocks_the_unacknowledged_order() -> None:
    f = Feed()
    f(place())
    d = ev.GovernorDecision(decision="BLOCK", reason="MAX_QTY", action="place", order_id=1, client_id=1)
    on_decision(f.fold, f.env(d), d)
    assert f.fold.order_for(1, 1).state == "Blocked"
