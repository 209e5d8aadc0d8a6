"""A fold checkpoint (msgspec, no pickle) resumes exactly: every pinned stream, cut in two around a checkpoint,
folds on to its pinned digest."""

from __future__ import annotations

import hashlib
import json

import pytest

from ledger.core.fold import LedgerFold
from tests.core.test_fold_digests import DATA, streams

WANT = json.loads(DATA.read_text())


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_checkpoint_resumes_to_the_pinned_digests(cut: float) -> None:
    for name, envs in streams().items():
        k = int(len(envs) * cut)
        first = LedgerFold().apply_all(envs[:k])
        blob = first.checkpoint()
        again = LedgerFold.from_checkpoint(blob)
        assert again.snapshot() == first.snapshot(), name
        again.apply_all(envs[k:])
        assert hashlib.sha256(again.snapshot()).hexdigest()[:16] == WANT[name], name


def test_checkpoint_refuses_garbage_and_compact_folds() -> None:
    with pytest.raises(ValueError, match="unreadable"):
        LedgerFold.from_checkpoint(b"\x93not a checkpoint")
    with pytest.raises(ValueError, match="compact"):
        LedgerFold(compact=True).checkpoint()
