"""fills: executions, their corrections and commission reports."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.fold.fills import on_commission, on_exec
from tests.core.fold.feed import Feed, execd, place


def test_a_correction_replaces_its_family_and_keeps_the_commission_pending_then_joined() -> None:
    f = Feed()
    f(place())
    p = execd("a.1.01", 40, 10.0)
    on_exec(f.fold, f.env(p), p)
    p = execd("a.1.02", 30, 10.0)  # the broker corrected a.1.01
    on_exec(f.fold, f.env(p), p)
    v = f.fold.order_for(1, 1)
    assert v is not None and v.filled == 30
    got = [(x.exec_id, x.superseded, x.correction) for x in v.fills]
    assert got == [("a.1.01", True, False), ("a.1.02", False, True)]
    c = ev.CommissionReport(exec_id="b.1.01", commission=1.5, currency="USD")
    on_commission(f.fold, f.env(c), c)  # before its execution: waits
    assert f.fold.pending_commissions == ["b.1.01"]
    p = execd("b.1.01", 10, 10.0)
    on_exec(f.fold, f.env(p), p)
    assert f.fold.pending_commissions == [] and v.commission == 1.5 and v.filled == 40


def test_an_execution_without_exec_id_is_recorded_not_applied() -> None:
    f = Feed()
    f(place())
    p = execd("", 10)
    assert on_exec(f.fold, f.env(p), p) == []
    assert f.fold.anomalies[-1].kind == "bad_execution" and f.fold.order_for(1, 1).filled == 0
