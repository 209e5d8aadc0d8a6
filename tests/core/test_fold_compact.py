"""A compact fold (finished orders retired to a temporary file) gives exactly the output of a full one.

Every pinned stream of ``test_fold_digests`` is folded with a resident window of zero and of a few finished
orders, so nearly every late event (commission, correction, re-delivered execution, reused orderId, merge)
has to find its order in the archive and re-inflate it: the snapshot digests must still be the pinned ones.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from ledger.core.fold import LedgerFold, fold
from ledger.core.rows import order_values
from tests.core.test_fold_digests import DATA, streams

WANT = json.loads(DATA.read_text())
STREAMS = streams()


@pytest.mark.parametrize("keep", [0, 3])
def test_compact_fold_matches_the_pinned_digests(keep: int) -> None:
    retired = 0
    for name, envs in STREAMS.items():
        f = LedgerFold(compact=True, keep=keep).apply_all(envs)
        assert hashlib.sha256(f.snapshot()).hexdigest()[:16] == WANT[name], name
        retired += f._arch.count  # type: ignore[union-attr]
        f.close()
    assert retired > 1000  # the archive was really used


def test_compact_fold_keeps_only_the_window_in_memory() -> None:
    envs = STREAMS["synthetic:1"]
    full = fold(envs)
    f = LedgerFold(compact=True, keep=5).apply_all(envs)
    assert len(f.orders) < len(full.orders) // 4
    assert [o.key for o in f.iter_orders()] == list(full.orders)
    rows = b"".join(r for _n, r in f.iter_order_rows(7))
    import msgspec

    enc = msgspec.msgpack.Encoder().encode
    assert rows == b"".join(enc(order_values(o)) for o in full.orders.values())
    for key, v in list(full.orders.items())[::17]:
        assert f.order(key) == v
        if v.perm_id:
            assert f.order_by_perm(v.perm_id) == full.order_by_perm(v.perm_id)
    f.close()


def test_timeline_off_changes_nothing_but_the_timeline() -> None:
    envs = STREAMS["garbage:12"]
    full = fold(envs)
    lean = LedgerFold(compact=True, timeline=False, keep=2).apply_all(envs)
    assert [order_values(o) for o in lean.iter_orders()] == [order_values(o) for o in full.orders.values()]
    assert lean.anomalies == full.anomalies
    assert lean.positions == full.positions
    assert all(not o.statuses for o in lean.iter_orders())


def test_archive_index_keeps_every_record_under_a_shared_hash() -> None:
    """Two records indexed under one hash (a collision, or an order retired, revived and retired again)
    are both candidates, latest first, before and after their keys are sealed into a sorted chunk."""
    from ledger.core.fold import archive as am

    arch = am.Archive()
    try:
        arch.grow(3)
        arch.put(1, (1,), {"a": 1}, [42, 7])
        arch.put(2, (2,), {"b": 2}, [42])
        arch.put(2, (2,), {"b": 3}, [42])  # the same order again (re-retired): still one candidate
        assert arch.candidates(42) == [2, 1]
        assert arch.candidates(7) == [1]
        assert arch.maybe(42) and arch.candidates(99) == []
        arch._seal()
        arch.put(3, (3,), {"c": 3}, [42])
        assert arch.candidates(42) == [3, 2, 1]
        arch.drop(2)
        assert arch.candidates(42) == [3, 1]
        assert arch.row(3) == b"\x91\x03" and arch.state(3) == b"\x81\xa1c\x03"
    finally:
        arch.close()
