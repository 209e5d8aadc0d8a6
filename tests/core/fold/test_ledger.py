"""ledger: the one dispatch table and LedgerFold.apply's redelivery and fault handling."""

from __future__ import annotations

import inspect

from ledger.core import events as ev
from ledger.core.fold import LedgerFold
from ledger.core.fold.ledger import HANDLERS
from tests.core.fold.feed import Feed, place


def test_every_handler_is_a_plain_function_of_the_state() -> None:
    assert ev.OrderStatus in HANDLERS and ev.ExecDetails in HANDLERS and ev.RecorderFault in HANDLERS
    for typ, fn in HANDLERS.items():
        assert inspect.isfunction(fn) and list(inspect.signature(fn).parameters)[:3] == ["led", "env", "p"], typ


def test_a_redelivered_envelope_is_counted_not_applied() -> None:
    f = Feed()
    env = f.env(place())
    f.fold.apply(env)
    assert f.fold.apply(env) == [] and f.fold.redelivered == 1 and len(f.fold.orders) == 1


def test_a_payload_the_fold_does_not_handle_is_ignored() -> None:
    fold = LedgerFold()
    f = Feed()
    assert fold.apply(f.env(ev.NextValidId(order_id=3))) == [] and fold.orders == {}
