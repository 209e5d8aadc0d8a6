"""identity: resolving a broker message to its order, binding ids, merging two records of one order."""

from __future__ import annotations

from ledger.core.fold.identity import resolve
from tests.core.fold.feed import Feed, place, status


def test_resolve_binds_the_perm_id_on_the_first_message_that_carries_both() -> None:
    f = Feed()
    f(place())
    core = resolve(f.fold, f.env(status("Submitted")), 1, 1, 777, True)
    assert core is not None and core is f.fold._bind[("S1", 1, 1)]
    assert f.fold._by_perm[777] is core and core.view.perm_id == 777
    assert resolve(f.fold, f.env(status("Submitted")), 0, 0, 777, False) is core  # permId alone finds it


def test_resolve_without_create_does_not_invent_orders() -> None:
    f = Feed()
    assert resolve(f.fold, f.env(status("Submitted")), 1, 9, 0, False) is None
    assert f.fold.orders == {}


def test_perm_only_and_order_id_only_records_merge_into_one() -> None:
    f = Feed()
    f(place(oid=5))
    key = f.fold._bind[("S1", 1, 5)].view.key
    # reconciliation reports the order by permId only (completedOrder-like), then a status ties the two
    core = resolve(f.fold, f.env(status("Submitted", oid=0, perm=900)), 0, 0, 900, True)
    assert core is not None and core.view.key != key and len(f.fold.orders) == 2
    f(status("Submitted", oid=5, perm=900))
    assert [a.kind for a in f.fold.anomalies] == ["identity_merged"]
    assert len(f.fold.merged) == 1 and f.fold.order_by_perm(900) is f.fold.order_for(1, 5)
