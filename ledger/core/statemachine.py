"""The order state machine as data: the README's status table, the ledger states, and their meaning.

Two layers (README, "Design: Order state machine"):

* the **broker status** actually observed: the raw IB ``orderStatus`` string (also carried by
  ``openOrder`` / ``completedOrder``), validated against :data:`STATUS_TABLE` below;
* the **ledger state** derived by :mod:`ledger.core.fold` from the accepted broker status, the executions
  (fills are facts) and the local intents, plus an *overlay* (pending cancel / pending modify) that is
  cleared, restoring the state underneath, when the broker refuses the request.

Nothing here imports anything but the standard library: it is pure data plus two tiny lookups.
"""

from __future__ import annotations

from typing import Final

# --- broker statuses (raw IB strings) ------------------------------------------------------------

NEW: Final = ""  # row "(new)": no status applied yet for this order
PENDING_SUBMIT: Final = "PendingSubmit"
PRE_SUBMITTED: Final = "PreSubmitted"
SUBMITTED: Final = "Submitted"
PENDING_CANCEL: Final = "PendingCancel"
API_CANCELLED: Final = "ApiCancelled"
CANCELLED: Final = "Cancelled"
FILLED: Final = "Filled"
INACTIVE: Final = "Inactive"

BROKER_STATUSES: Final[tuple[str, ...]] = (
    PENDING_SUBMIT,
    PRE_SUBMITTED,
    SUBMITTED,
    PENDING_CANCEL,
    API_CANCELLED,
    CANCELLED,
    FILLED,
    INACTIVE,
)
LIVE_STATUSES: Final = frozenset({PRE_SUBMITTED, SUBMITTED})  # the order can execute at any moment

# --- verdicts (one per table cell) ---------------------------------------------------------------

LEGAL: Final = "legal"  # ✓  applied
DUP: Final = "dup"  # dup  idempotent no-op (the observation is still listed on the order)
WARN: Final = "warn"  # ⚠  applied, and an anomaly (warning) is recorded
ILLEGAL: Final = "illegal"  # ✗  not applied; an anomaly with a reason is recorded
IF_WHY_HELD: Final = "if_why_held"  # ✓ if whyHeld (on the held Inactive status or the incoming one), else ✗
IF_FILL: Final = "if_fill"  # ⚠ if the order has at least one execution, else ✗
UNSPECIFIED: Final = "unspecified"  # –  a cell the README ("Design") leaves open: applied and flagged (see below)

_SYMBOLS: Final = {
    "✓": LEGAL,
    "dup": DUP,
    "⚠": WARN,
    "✗": ILLEGAL,
    "✓why": IF_WHY_HELD,
    "⚠fill": IF_FILL,
    "–": UNSPECIFIED,
}

# The README's status table, cell for cell. Rows: current broker status ("(new)" = none yet); columns: the
# incoming status, in BROKER_STATUSES order. "✓why" = "✓ if whyHeld", "⚠fill" = "⚠ only with a fill".
#
# The one "–" cell, (new) → PendingCancel, is a first status of PendingCancel: it happens when we first
# learn about an order during a cancel (reconnect mid-cancel, another client's cancel). Refusing it
# would leave a possibly-live order looking unacknowledged, so it is applied and flagged
# (``unexpected_first_status``); the order is treated as live with a pending cancel.
_TABLE_ROWS: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    #                 PendSub  PreSub  Submit  PendCan  ApiCan   Cancel  Filled   Inactive
    ("(new)",         ("✓",    "✓",    "✓",    "–",     "✓",     "✓",    "✓",     "✓")),
    (PENDING_SUBMIT,  ("dup",  "✓",    "✓",    "✓",     "✓",     "✓",    "✓",     "✓")),
    (PRE_SUBMITTED,   ("✗",    "dup",  "✓",    "✓",     "✓",     "✓",    "✓",     "✓")),
    (SUBMITTED,       ("✗",    "⚠",    "dup",  "✓",     "✗",     "✓",    "✓",     "✓")),
    (PENDING_CANCEL,  ("✗",    "✓",    "✓",    "dup",   "✓",     "✓",    "✓",     "✓")),
    (API_CANCELLED,   ("✗",    "✗",    "✗",    "✗",     "dup",   "✓",    "⚠fill", "✗")),
    (CANCELLED,       ("✗",    "✗",    "✗",    "✗",     "✗",     "dup",  "⚠fill", "✗")),
    (FILLED,          ("✗",    "✗",    "✗",    "✗",     "✗",     "✗",    "dup",   "✗")),
    (INACTIVE,        ("✗",    "✓why", "✓why", "✓",     "✗",     "✓",    "✓",     "dup")),
)  # fmt: skip


def _build() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for row, cells in _TABLE_ROWS:
        src = NEW if row == "(new)" else row
        assert len(cells) == len(BROKER_STATUSES), row
        for dst, sym in zip(BROKER_STATUSES, cells, strict=True):
            table[(src, dst)] = _SYMBOLS[sym]
    return table


STATUS_TABLE: Final[dict[tuple[str, str], str]] = _build()
"""``(from_status, to_status) -> verdict`` for every cell of the README's status table (``NEW`` = "(new)")."""


def verdict(from_status: str, to_status: str) -> str | None:
    """The raw table cell; ``None`` when either status is not an IB status this table knows."""
    return STATUS_TABLE.get((from_status, to_status))


def resolve(from_status: str, to_status: str, *, why_held: bool, has_fill: bool) -> str:
    """The effective verdict (LEGAL / DUP / WARN / ILLEGAL / UNSPECIFIED) once conditions are known.

    Unknown statuses (``ApiPending``, ib_async's made-up ``ValidationError``, garbage) are ILLEGAL: the
    fold records them as an ``unknown_status`` anomaly and does not apply them.
    """
    cell = STATUS_TABLE.get((from_status, to_status))
    if cell is None:
        return ILLEGAL
    if cell == IF_WHY_HELD:
        return LEGAL if why_held else ILLEGAL
    if cell == IF_FILL:
        return WARN if has_fill else ILLEGAL
    return cell


# --- ledger states -------------------------------------------------------------------------------

CREATED: Final = "Created"
"""The governor ALLOWed a place for this order id, but no ``place_order`` intent is recorded yet."""
BLOCKED: Final = "Blocked"
"""The governor BLOCKed the place: never sent. Terminal (unless the broker later proves otherwise)."""
UNCONFIRMED: Final = "Unconfirmed"
"""``place_order`` recorded, nothing heard from the broker yet. NOT failed, NOT rejected: it may be live."""
UNKNOWN: Final = "Unknown"
"""Known only from a message that says nothing about its status (e.g. an execution of zero shares)."""
PENDING_SUBMIT_STATE: Final = "PendingSubmit"
"""The broker reports PendingSubmit: transmitted, not yet accepted by the destination."""
WORKING: Final = "Working"
"""Live (PreSubmitted / Submitted, or PendingCancel not yet confirmed): can execute at any moment."""
PARTIALLY_FILLED: Final = "PartiallyFilled"
"""Live with executions covering part of the quantity (derived from executions, not statuses)."""
AWAITING_EXECUTIONS: Final = "AwaitingExecutions"
"""The broker reports Filled but the executions seen so far do not cover the quantity yet."""
FILLED_STATE: Final = "Filled"
"""Executions cover the total quantity. Terminal and absorbing."""
CANCELLED_STATE: Final = "Cancelled"
"""Broker Cancelled / ApiCancelled (possibly with fills). Terminal; later fills are flagged late fills."""
REJECTED: Final = "Rejected"
"""Inactive together with error 201 (in either order). Terminal."""
INACTIVE_STATE: Final = "Inactive"
"""Broker Inactive without a 201: dormant (outside hours, held...). Done unless held (whyHeld set)."""
MERGED: Final = "Merged"
"""Only ever a transition target: two ledger records turned out to be one order (see orders.py)."""

LEDGER_STATES: Final[tuple[str, ...]] = (
    CREATED,
    BLOCKED,
    UNCONFIRMED,
    UNKNOWN,
    PENDING_SUBMIT_STATE,
    WORKING,
    PARTIALLY_FILLED,
    AWAITING_EXECUTIONS,
    FILLED_STATE,
    CANCELLED_STATE,
    REJECTED,
    INACTIVE_STATE,
)
LIVE_STATES: Final = frozenset({WORKING, PARTIALLY_FILLED})
TERMINAL_STATES: Final = frozenset({BLOCKED, FILLED_STATE, CANCELLED_STATE, REJECTED})
"""A new execution in one of these is a flagged late fill. (Inactive is not here: the table allows
Inactive → Filled.)"""
DONE_STATES: Final = TERMINAL_STATES | {INACTIVE_STATE}
"""No further activity expected (``is_done``); an Inactive order with whyHeld is not done."""

# Overlays (``OrderView.overlay``)
NO_OVERLAY: Final = ""
PENDING_CANCEL_OVERLAY: Final = "PendingCancel"
PENDING_MODIFY_OVERLAY: Final = "PendingModify"

# Critical flags on transitions, by the ledger state entered (monitor / governor hooks).
CRITICAL_OF_STATE: Final[dict[str, str]] = {
    WORKING: "ORDER_LIVE",
    PARTIALLY_FILLED: "PARTIALLY_FILLED",
    AWAITING_EXECUTIONS: "BROKER_FILLED",
    FILLED_STATE: "FILLED",
    CANCELLED_STATE: "CANCELLED",
    REJECTED: "REJECTED",
    INACTIVE_STATE: "INACTIVE",
    BLOCKED: "BLOCKED",
}
CANCEL_REFUSED: Final = "CANCEL_REFUSED"  # PendingCancel overlay cleared while the order stays live
MODIFIED: Final = "MODIFIED"  # PendingModify overlay cleared by an openOrder reflecting the change

# Error codes with a meaning for the fold. None of them makes an order terminal by itself.
ERR_REJECTED: Final = 201  # with Inactive → Rejected
# cannot cancel: 10148 (state Filled...), 161 (not cancellable), 10147 (orderId not found)
CANCEL_REFUSAL_CODES: Final = frozenset({10148, 161, 10147})
ERR_CONNECTIVITY_LOST: Final = 1100
ERR_CONNECTIVITY_RESTORED_LOST: Final = 1101  # data lost: reconcile
ERR_CONNECTIVITY_RESTORED: Final = 1102  # data maintained: check anyway
