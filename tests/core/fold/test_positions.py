"""positions: broker reports, and fills applied on top of the last report."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.fold.positions import on_position
from tests.core.fold.feed import Feed, execd, place


def test_fills_after_a_report_move_the_position_from_it() -> None:
    f = Feed()
    p = ev.Position(account="DU1", con_id=265598, symbol="AAPL", sec_type="STK", position=50.0, avg_cost=9.0)
    on_position(f.fold, f.env(p), p)
    pv = f.fold.positions["DU1:265598"]
    assert (pv.reported, pv.position, pv.fills_since_report) == (50.0, 50.0, 0.0)
    f(place(), execd("a.1.01", 20))
    assert pv.position == 70.0 and pv.fills_since_report == 20.0


def test_an_unset_position_is_a_bad_number() -> None:
    f = Feed()
    p = ev.Position(account="DU1", con_id=1, position=float("inf"))
    on_position(f.fold, f.env(p), p)
    assert f.fold.positions == {} and f.fold.anomalies[-1].kind == "bad_number"
