"""Incremental derived state: the shortcuts that skip a full ``refresh`` leave what a full one would.

Two properties over random streams (realistic and with garbage spliced in):

* after every event, every order's derived fields (state, is_live, is_done, unconfirmed, remaining,
  fill_pending) equal a from-scratch derivation from its inputs (``status.derived_fields``);
* a fold whose shortcuts are replaced by the full ``refresh`` gives the same transitions event by event
  and the same snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest.mock import patch

from hypothesis import HealthCheck, given, settings

from ledger.core.events import Envelope
from ledger.core.fold import LedgerFold
from ledger.core.fold import broker as broker_mod
from ledger.core.fold import intents as intents_mod
from ledger.core.fold.state import FoldState, OrderState
from ledger.core.fold.status import derived_fields, refresh
from ledger.core.fold.views import Transition
from replay.strategies import event_streams, garbage_streams, generate_stream
from tests.core.fold.feed import Feed, place, status

PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _full_touch(led: FoldState, core: OrderState, env: Envelope, out: list[Transition]) -> None:
    refresh(led, core, env, core.view.state, core.view.overlay, out)


def _full_qty(led: FoldState, core: OrderState, env: Envelope, filled: float, remaining: float) -> bool:
    core.view.broker_filled = filled
    core.view.broker_remaining = remaining
    return False  # on_status runs the full refresh


@contextmanager
def full_refresh() -> Iterator[None]:
    """Every shortcut replaced by the full refresh (the reference the incremental fold is held to)."""
    with patch.object(intents_mod, "touch", _full_touch), patch.object(broker_mod, "broker_qty", _full_qty):
        yield


def _views(led: LedgerFold) -> Iterator[tuple[str, tuple, tuple]]:
    """(key, derived from scratch, as the view holds it) for every order in memory."""
    for core in led._resident.values():
        v = core.view
        if led.orders.get(v.key) is not v:
            continue
        yield v.key, derived_fields(core), (v.state, v.is_live, v.is_done, v.unconfirmed, v.remaining, v.fill_pending)


def _check(envs: list[Envelope], every: int = 1) -> None:
    """``every``: compare the derived fields after every ``every``-th event (all of them by default)."""
    # compact with a window larger than any stream here: every order stays resident, with its OrderState
    inc = LedgerFold(compact=True, keep=1 << 30)
    got = []
    for i, env in enumerate(envs, 1):
        got.append(inc.apply(env))
        if i % every and i != len(envs):
            continue
        for key, scratch, held in _views(inc):
            assert scratch == held, (key, env.session_id, env.seq, type(env.payload).__name__)
    with full_refresh():
        ref = LedgerFold(compact=True, keep=1 << 30)
        want = [ref.apply(env) for env in envs]
    assert got == want
    assert inc.snapshot() == ref.snapshot()
    assert [a.reason for a in inc.anomalies if a.kind == "internal_error"] == []


@PROPS
@given(event_streams())
def test_incremental_state_equals_a_from_scratch_derivation(envs: list[Envelope]) -> None:
    _check(envs)


@PROPS
@given(garbage_streams())
def test_incremental_state_equals_a_from_scratch_derivation_with_garbage(envs: list[Envelope]) -> None:
    _check(envs)


def test_incremental_state_on_a_long_seeded_stream() -> None:
    _check(generate_stream(7, 20_000), every=97)


def test_the_shortcuts_are_taken_and_can_fail() -> None:
    """The reference really differs in what it runs: a repeated status with a new filled quantity takes the
    incremental path, and corrupting the derived field it maintains is caught by the from-scratch check."""
    f = Feed()
    f(place(), status("Submitted"))
    core = f.fold._bind[("S1", 1, 1)]
    calls = []
    real = broker_mod.broker_qty

    def spy(*a: object) -> bool:
        calls.append(a)
        return real(*a)  # type: ignore[arg-type]

    with patch.object(broker_mod, "broker_qty", spy):
        f(status("Submitted", filled=40))
    assert calls and core.view.fill_pending and core.view.key in f.fold._suspects
    assert derived_fields(core)[5] is True
    core.view.fill_pending = False
    assert derived_fields(core)[5] != core.view.fill_pending
