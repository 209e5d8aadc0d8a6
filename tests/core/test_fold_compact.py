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
