"""Every cell of the README's status table, through the fold.

The expected table below is transcribed from the README ("Design: Order state machine"), independently of
``ledger.core.statemachine``. For each cell an order is driven into the *from* broker status along a legal
path, then the *to* status arrives; the test checks whether it was applied and which anomaly (if any)
was recorded.
"""

from __future__ import annotations

import pytest

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold import LedgerFold

COLUMNS = ("PendingSubmit", "PreSubmitted", "Submitted", "PendingCancel", "ApiCancelled", "Cancelled", "Filled",
           "Inactive")  # fmt: skip

# ✓ legal   dup   ⚠ flagged   ✗ anomaly   why = ✓ if whyHeld   fill = ⚠ only with a fill   – = unspecified
DESIGN_TABLE = {
    "(new)":         "✓    ✓    ✓    –    ✓    ✓    ✓    ✓",
    "PendingSubmit": "dup  ✓    ✓    ✓    ✓    ✓    ✓    ✓",
    "PreSubmitted":  "✗    dup  ✓    ✓    ✓    ✓    ✓    ✓",
    "Submitted":     "✗    ⚠    dup  ✓    ✗    ✓    ✓    ✓",
    "PendingCancel": "✗    ✓    ✓    dup  ✓    ✓    ✓    ✓",
    "ApiCancelled":  "✗    ✗    ✗    ✗    dup  ✓    fill ✗",
    "Cancelled":     "✗    ✗    ✗    ✗    ✗    dup  fill ✗",
    "Filled":        "✗    ✗    ✗    ✗    ✗    ✗    dup  ✗",
    "Inactive":      "✗    why  why  ✓    ✗    ✓    ✓    dup",
}  # fmt: skip

CELLS = [(frm, to, sym) for frm, row in DESIGN_TABLE.items() for to, sym in zip(COLUMNS, row.split(), strict=True)]

# A legal path from "(new)" to each broker status.
PATHS = {
    "(new)": [],
    "PendingSubmit": ["PendingSubmit"],
    "PreSubmitted": ["PreSubmitted"],
    "Submitted": ["Submitted"],
    "PendingCancel": ["Submitted", "PendingCancel"],
    "ApiCancelled": ["PendingSubmit", "ApiCancelled"],
    "Cancelled": ["Submitted", "Cancelled"],
    "Filled": ["Submitted", "Filled"],
    "Inactive": ["Inactive"],
}


class Feed:
    def __init__(self) -> None:
        self.fold = LedgerFold()
        self.seq = 0

    def __call__(self, *payloads: ev.Event) -> None:
        for p in payloads:
            self.seq += 1
            self.fold.apply(
                Envelope(session_id="S", seq=self.seq, recv_ns=1000 * self.seq, mono_ns=0, source="live", payload=p)
            )


def _status(s: str, why: str = "", filled: float = 0.0) -> ev.OrderStatus:
    return ev.OrderStatus(order_id=1, client_id=1, perm_id=77, status=s, why_held=why, filled=filled,
                          remaining=100.0 - filled)  # fmt: skip


def _run(frm: str, to: str, *, why: str = "", with_fill: bool = False, why_on_to: bool = False):
    feed = Feed()
    feed(
        ev.SessionStarted(library="t", library_version="0", client_id=1),
        ev.PlaceOrder(order_id=1, client_id=1, symbol="AAPL", action="BUY", total_qty=100.0, order_type="LMT",
                      lmt_price=1.0),
    )  # fmt: skip
    path = PATHS[frm]
    for i, s in enumerate(path):
        if with_fill and i == len(path) - 1:
            feed(ev.ExecDetails(exec_id="e.1.01", order_id=1, client_id=1, perm_id=77, shares=40.0, price=1.0,
                                side="BOT"))  # fmt: skip
        feed(_status(s, why if s == "Inactive" else ""))
    if with_fill and not path:
        feed(ev.ExecDetails(exec_id="e.1.01", order_id=1, client_id=1, perm_id=77, shares=40.0, price=1.0))
    order = feed.fold.order_by_perm(77) if path else feed.fold.order_for(1, 1)
    assert order is not None
    assert order.broker_status == ("" if frm == "(new)" else frm)
    assert feed.fold.anomalies == [], "the path itself must be legal"
    n_obs = len(order.statuses)
    feed(_status(to, why if why_on_to else ""))
    order = feed.fold.order_by_perm(77)
    assert order is not None
    assert len(order.statuses) == n_obs + 1, "every observed status is listed"
    return order, [a.kind for a in feed.fold.anomalies]


@pytest.mark.parametrize(("frm", "to", "sym"), CELLS, ids=[f"{f}->{t}" for f, t, _ in CELLS])
def test_cell(frm: str, to: str, sym: str) -> None:
    expected_from = "" if frm == "(new)" else frm
    if sym == "✓":
        order, kinds = _run(frm, to)
        assert order.broker_status == to
        assert kinds == []
    elif sym == "dup":
        order, kinds = _run(frm, to)
        assert order.broker_status == to == expected_from
        assert kinds == []
    elif sym == "⚠":
        order, kinds = _run(frm, to)
        assert order.broker_status == to
        assert kinds == ["flagged_transition"]
    elif sym == "✗":
        order, kinds = _run(frm, to)
        assert order.broker_status == expected_from, "an illegal status is not applied"
        assert kinds == ["illegal_transition"]
    elif sym == "why":
        held, kinds = _run(frm, to, why="locate")
        assert held.broker_status == to and kinds == []
        held_on_to, kinds = _run(frm, to, why="locate", why_on_to=True)
        assert held_on_to.broker_status == to and kinds == []
        not_held, kinds = _run(frm, to)
        assert not_held.broker_status == expected_from and kinds == ["illegal_transition"]
    elif sym == "fill":
        with_fill, kinds = _run(frm, to, with_fill=True)
        assert with_fill.broker_status == to
        assert kinds == ["flagged_transition"]
        no_fill, kinds = _run(frm, to)
        assert no_fill.broker_status == expected_from
        assert kinds == ["illegal_transition"]
    elif sym == "–":
        # unspecified in the README ("Design"); ibledger applies it (the order may be live) and flags it
        order, kinds = _run(frm, to)
        assert order.broker_status == to
        assert kinds == ["unexpected_first_status"]
        assert order.overlay == "PendingCancel" and order.is_live
    else:  # pragma: no cover
        raise AssertionError(sym)


def test_code_table_matches_design() -> None:
    """The data table in ledger.core.statemachine says the same as the README ("Design") (cell by cell)."""
    symbol_of = {"✓": sm.LEGAL, "dup": sm.DUP, "⚠": sm.WARN, "✗": sm.ILLEGAL, "why": sm.IF_WHY_HELD,
                 "fill": sm.IF_FILL, "–": sm.UNSPECIFIED}  # fmt: skip
    for frm, to, sym in CELLS:
        assert sm.verdict("" if frm == "(new)" else frm, to) == symbol_of[sym], (frm, to)
    assert len(sm.STATUS_TABLE) == len(CELLS)


@pytest.mark.parametrize("status", ["ApiPending", "ValidationError", "", "filled", "Garbage"])
def test_unknown_status_is_flagged_not_applied(status: str) -> None:
    feed = Feed()
    feed(ev.OrderStatus(order_id=1, client_id=1, perm_id=5, status="Submitted"))
    feed(ev.OrderStatus(order_id=1, client_id=1, perm_id=5, status=status))
    order = feed.fold.order_by_perm(5)
    assert order is not None and order.broker_status == "Submitted" and order.is_live
    assert [a.kind for a in feed.fold.anomalies] == ["unknown_status"]


def test_resolve_conditions() -> None:
    assert sm.resolve("Inactive", "Submitted", why_held=True, has_fill=False) == sm.LEGAL
    assert sm.resolve("Inactive", "Submitted", why_held=False, has_fill=False) == sm.ILLEGAL
    assert sm.resolve("Cancelled", "Filled", why_held=False, has_fill=True) == sm.WARN
    assert sm.resolve("Cancelled", "Filled", why_held=False, has_fill=False) == sm.ILLEGAL
    assert sm.resolve("Submitted", "Nope", why_held=False, has_fill=False) == sm.ILLEGAL
