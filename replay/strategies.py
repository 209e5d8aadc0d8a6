"""Hypothesis strategies over realistic IB event streams (install ``ibledger[testing]``).

They draw the same lifecycle templates as the seeded generator (:mod:`replay.templates`) through a
:class:`DrawChooser`, so a failure shrinks towards the plain, quirk-free lifecycle.

Public entry points:

* ``order_lifecycles()`` — one order's payloads;
* ``event_streams()`` — full multi-session envelope streams;
* ``garbage_streams()`` — realistic streams with arbitrary, type-correct garbage mixed in;
* ``generate_stream(seed, n_events)`` — re-exported from :mod:`replay.templates`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hypothesis import strategies as st

from ledger.core import events as ev
from ledger.core.events import Envelope, Event
from replay.templates import (
    CONTRACTS,
    MANUAL_EXEC_ORDER_ID,
    T0_NS,
    TEMPLATES,
    Ids,
    RandomChooser,
    _build_stream,
    generate_stream,
    to_envelopes,
)

__all__ = [
    "CONTRACTS",
    "TEMPLATES",
    "DrawChooser",
    "RandomChooser",
    "event_streams",
    "garbage_payloads",
    "garbage_streams",
    "generate_stream",
    "order_lifecycles",
    "to_envelopes",
]

T = TypeVar("T")

class DrawChooser:
    """Choices drawn through Hypothesis; every choice shrinks to its first / smallest / "no" option."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self._draw = draw

    def integer(self, lo: int, hi: int) -> int:
        return self._draw(st.integers(lo, hi))

    def chance(self, pct: int) -> bool:
        return self._draw(st.integers(0, 99)) >= 100 - pct

    def pick(self, options: Sequence[T]) -> T:
        return options[self._draw(st.integers(0, len(options) - 1))]


# --- Hypothesis strategies -------------------------------------------------------------------------


@st.composite
def order_lifecycles(draw: Any, templates: Sequence[str] | None = None) -> list[Event]:
    """One order's payloads, from one of :data:`TEMPLATES` (or the given names)."""
    c = DrawChooser(draw)
    names = tuple(templates) if templates else tuple(TEMPLATES)
    return TEMPLATES[c.pick(names)](c, Ids())


@st.composite
def event_streams(draw: Any, max_sessions: int = 3, max_orders: int = 6, max_open: int = 4) -> list[Envelope]:
    """Complete envelope streams: 1..max_sessions recording sessions of interleaved lifecycles."""
    c = DrawChooser(draw)
    return _build_stream(c, c.integer(1, max_sessions), c.integer(1, max_orders), c.integer(1, max_open), False)


_STATUSES = (
    "PendingSubmit",
    "PreSubmitted",
    "Submitted",
    "PendingCancel",
    "ApiCancelled",
    "Cancelled",
    "Filled",
    "Inactive",
    "ApiPending",
    "ValidationError",
    "",
    "filled",
)
_i32 = st.integers(-(2**31), 2**31 - 1)
_small_id = st.sampled_from((0, -1, 1, 2, 3, MANUAL_EXEC_ORDER_ID))
_ids = st.one_of(_small_id, _i32)
_perm = st.one_of(st.sampled_from((0, 1_000_001, 1_000_002, 1_000_003)), st.integers(-(2**63), 2**63 - 1))
_qty = st.one_of(st.sampled_from((0.0, 1.0, 100.0, -5.0)), st.floats(allow_nan=True, allow_infinity=True))
_price = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
_exec_ids = st.one_of(
    st.sampled_from(("", ".", "a", "a.01", "a.02", "a.b.01.01", "a.b.01.02", "000f4241.00000001.01.01")),
    st.text(max_size=12),
)
_text = st.one_of(st.sampled_from(("", "x", "BOT", "SLD", "BUY", "SELL", "locate")), st.text(max_size=8))


def garbage_payloads() -> st.SearchStrategy[Event]:
    """Type-correct payloads with arbitrary values (what a decoded-but-hostile stream can contain)."""
    return st.one_of(
        st.builds(
            ev.OrderStatus,
            order_id=_ids,
            status=st.one_of(st.sampled_from(_STATUSES), st.text(max_size=8)),
            filled=_qty,
            remaining=_qty,
            avg_fill_price=_qty,
            perm_id=_perm,
            client_id=_ids,
            why_held=_text,
        ),
        st.builds(
            ev.ExecDetails,
            exec_id=_exec_ids,
            order_id=_ids,
            perm_id=_perm,
            client_id=_ids,
            side=_text,
            shares=_qty,
            price=_qty,
            account=_text,
            symbol=_text,
            con_id=_ids,
        ),
        st.builds(ev.CommissionReport, exec_id=_exec_ids, commission=_qty, currency=_text),
        st.builds(
            ev.OpenOrder,
            order_id=_ids,
            perm_id=_perm,
            client_id=_ids,
            total_qty=_qty,
            lmt_price=_price,
            status=st.one_of(st.sampled_from(_STATUSES), st.text(max_size=8)),
            symbol=_text,
        ),
        st.builds(ev.CompletedOrder, order_id=_ids, perm_id=_perm, client_id=_ids, total_qty=_qty, status=_text),
        st.builds(ev.Error, req_id=_ids, code=st.sampled_from((201, 202, 10148, 161, 399, 1100, 1101, 1102, 0))),
        st.builds(ev.PlaceOrder, order_id=_ids, client_id=_ids, total_qty=_qty, lmt_price=_price, action=_text),
        st.builds(ev.ModifyOrder, order_id=_ids, client_id=_ids, total_qty=_qty, lmt_price=_price),
        st.builds(ev.CancelOrder, order_id=_ids, client_id=_ids, perm_id=_perm),
        st.builds(ev.GlobalCancel),
        st.builds(
            ev.GovernorDecision,
            decision=st.sampled_from(("ALLOW", "BLOCK", "EMERGENCY_CANCEL", "STATE_CHANGE")),
            reason=_text,
            action=st.sampled_from(("place", "modify", "cancel", "")),
            order_id=_ids,
            client_id=_ids,
        ),
        st.builds(ev.Position, account=_text, con_id=_ids, symbol=_text, position=_qty, avg_cost=_qty),
        st.builds(ev.Connected, host=_text, port=_i32, client_id=_ids),
        st.builds(ev.Disconnected),
        st.builds(ev.ReconcileStarted),
        st.builds(ev.ReconcileEnded, ok=st.booleans()),
        st.builds(ev.SessionEnded),
        st.builds(ev.RecorderFault, message=_text, lost=_i32),
    )


@st.composite
def garbage_streams(draw: Any) -> list[Envelope]:
    """A realistic stream with garbage payloads spliced in (seq renumbered, recv_ns sometimes going back)."""
    base = draw(event_streams(max_sessions=2, max_orders=4))
    extra = draw(st.lists(st.tuples(st.integers(0, max(len(base), 1)), garbage_payloads()), max_size=25))
    payloads: list[tuple[str, Event, int]] = [(e.session_id, e.payload, e.recv_ns) for e in base]
    for pos, p in sorted(extra, key=lambda t: t[0], reverse=True):
        sid = payloads[min(pos, len(payloads) - 1)][0] if payloads else "garbage"
        ns = draw(st.one_of(st.just(T0_NS), st.integers(0, 2**62)))
        payloads.insert(pos, (sid, p, ns))
    out: list[Envelope] = []
    seqs: dict[str, int] = {}
    for sid, p, ns in payloads:
        seqs[sid] = seqs.get(sid, 0) + 1
        out.append(Envelope(session_id=sid, seq=seqs[sid], recv_ns=ns, mono_ns=0, source="synthetic", payload=p))  # type: ignore[arg-type]
    return out
