"""status: the status table applied to one order, and re-deriving its state and totals."""

from __future__ import annotations

from ledger.core.fold.state import OrderState
from ledger.core.fold.status import apply_status, recount, refresh
from ledger.core.fold.views import Fill
from tests.core.fold.feed import Feed, place, status


def _core(f: Feed) -> OrderState:
    return f.fold._bind[("S1", 1, 1)]


def test_legal_status_is_applied_and_refresh_reports_the_transition() -> None:
    f = Feed()
    f(place())
    core = _core(f)
    env = f.env(status("Submitted"))
    old = (core.view.state, core.view.overlay)
    assert apply_status(f.fold, core, env, "Submitted", "")
    out: list = []
    refresh(f.fold, core, env, *old, out)
    assert core.view.broker_status == "Submitted" and core.view.state == "Working"
    assert [(t.from_state, t.to_state) for t in out] == [("Unconfirmed", "Working")]


def test_illegal_status_is_recorded_not_applied() -> None:
    f = Feed()
    f(place(), status("Filled", filled=100))
    core = _core(f)
    assert not apply_status(f.fold, core, f.env(status("Submitted")), "Submitted", "")
    assert core.view.broker_status == "Filled"
    assert f.fold.anomalies[-1].kind == "illegal_transition"


def test_recount_sums_the_latest_revision_of_each_family() -> None:
    f = Feed()
    f(place())
    core = _core(f)
    core.families = {
        "a.1": Fill(exec_id="a.1.02", family="a.1", revision="02", shares=30, price=10.0, commission=1.0),
        "b.1": Fill(exec_id="b.1.01", family="b.1", revision="01", shares=10, price=20.0),
    }
    recount(f.fold, core)
    assert core.view.filled == 40 and core.view.avg_fill_price == 12.5 and core.view.commission == 1.0
