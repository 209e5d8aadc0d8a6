"""The governor's pre-trade rules: one function per row of the README's "Rules" table, in its order.

A rule looks at the order being checked (:class:`Check`: the intent resolved against the ledger, a
modify taking what it leaves out from the order it modifies) and at the governor's state
(:class:`GovernorState`), and either passes (``None``) or refuses with a reason code and a message.
:data:`RULES` runs them in the table's order and the first refusal decides, so a new rule is one
function and one row here, beside one row in the README.

A rule may add the numbers behind its verdict to ``check.details`` (``limit`` / ``value`` when it
refuses; the notional rule also records the price it used when it passes). The decisions are facts
replayed byte for byte, so the order of the rules is also the order of the keys in ``details``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.governor.pricing import _NEEDS_MULTIPLIER, _finite
from ledger.core.governor.reasons import (
    HALTED,
    HALTED_REASON,
    INVALID_ORDER,
    LEDGER_STALE,
    MARKET_ORDER_NO_PRICE,
    MAX_NOTIONAL,
    MAX_OPEN_ORDERS,
    MAX_QTY,
    RATE_LIMIT_MIN,
    RATE_LIMIT_SEC,
    RECONCILING,
    RECORDER_FAULT,
    REDUCING,
    REDUCING_ONLY,
    SYMBOL_DENIED,
    SYMBOL_NOT_ALLOWED,
    UNKNOWN_MULTIPLIER,
)

if TYPE_CHECKING:
    from ledger.core.fold import LedgerFold, OrderView
    from ledger.core.governor.window import _Window
    from ledger.core.governor_config import GovernorConfig

__all__ = ["CANCELLABLE", "RULES", "SIDES", "Check", "GovernorState", "Refusal", "Rule"]

SIDES = {"BUY": 1, "SELL": -1, "SSHORT": -1, "SLONG": -1}
# States of an order the broker may be working (an emergency cancel targets them, a REDUCING check counts
# them). Created (allowed, not sent), Blocked and AwaitingExecutions (the broker says Filled) are left alone.
CANCELLABLE = frozenset(
    {sm.UNCONFIRMED, sm.UNKNOWN, sm.PENDING_SUBMIT_STATE, sm.WORKING, sm.PARTIALLY_FILLED, sm.INACTIVE_STATE}
)


class Check(msgspec.Struct):
    """A place or modify intent as the rules see it (resolved once, before the first rule runs).

    Not keyword-only: the governor builds one per pre-check positionally, in field order (a third of the
    cost of seventeen keywords)."""

    intent: ev.PlaceOrder  # ModifyOrder included
    now_ns: int  # the event time decided at
    view: OrderView | None  # the order a modify changes (not done), else None
    action: str  # place | modify
    client_id: int
    perm_id: int
    symbol: str  # upper case
    side: str  # upper case; SIDES gives its sign
    qty: float
    order_type: str
    sec_type: str  # upper case
    multiplier: float | None  # from the order's contract, the broker or the config; None: nobody knows
    price: float | None  # what the notional check uses (None: no price known)
    price_source: str
    max_qty: float  # the symbol's override, else the limit; 0: no limit
    max_notional: float
    details: dict[str, Any]  # the decision's details: the rules add what they looked at


class GovernorState(Protocol):
    """What the rules read of the governor, and nothing more (the rules never change it)."""

    config: GovernorConfig
    fold: LedgerFold
    trading_state: str
    recorder_fault: bool
    stale: bool
    deny: frozenset[str]
    allow: frozenset[str]
    rate_sec: _Window
    rate_min: _Window

    def open_count(self) -> int: ...

    def exposure(self, symbol: str, intent: ev.PlaceOrder, sign: int, own_key: str) -> tuple[float, float]: ...


Refusal = tuple[str, str]  # (reason code, message)
Rule = Callable[[GovernorState, Check], Refusal | None]


def recorder_fault(g: GovernorState, c: Check) -> Refusal | None:
    """A ``recorder_fault`` was recorded and no clean reconciliation or resume followed."""
    if g.recorder_fault:
        return RECORDER_FAULT, "the recorder reported a fault: events may be lost"
    return None


def reconciling(g: GovernorState, c: Check) -> Refusal | None:
    """Between ``reconcile_started`` and ``reconcile_ended``."""
    if g.config.state.block_while_reconciling and g.fold.reconciling:
        return RECONCILING, "reconciliation in progress: the ledger is not complete yet"
    return None


def ledger_stale(g: GovernorState, c: Check) -> Refusal | None:
    """From a disconnect or error 1100 / 1101 until the next ``reconcile_ended``."""
    if g.config.state.block_while_reconciling and g.stale:
        return LEDGER_STALE, (
            "the connection was lost (disconnect or error 1100/1101): the ledger may miss what happened "
            "meanwhile; new orders wait until the reconciliation after the reconnect has ended"
        )
    return None


def halted(g: GovernorState, c: Check) -> Refusal | None:
    """The trading state is HALTED."""
    if g.trading_state == HALTED:
        return HALTED_REASON, "trading is halted"
    return None


def symbol_lists(g: GovernorState, c: Check) -> Refusal | None:
    """The symbol is denied, or not in a non-empty allow list."""
    if c.symbol in g.deny:
        return SYMBOL_DENIED, f"{c.symbol} is in symbols.deny"
    if g.allow and c.symbol not in g.allow:
        return SYMBOL_NOT_ALLOWED, f"{c.symbol or '(no symbol)'} is not in symbols.allow"
    return None


def invalid_order(g: GovernorState, c: Check) -> Refusal | None:
    """The action is not BUY / SELL / SSHORT, or the quantity is not a positive number."""
    if c.side not in SIDES:
        return INVALID_ORDER, f"unknown order action {c.side!r}"
    qty = c.qty
    if not (_finite(qty) and qty > 0):
        c.details["qty"] = str(qty)
        return INVALID_ORDER, f"quantity must be a positive number, got {qty!r}"
    return None


def max_qty(g: GovernorState, c: Check) -> Refusal | None:
    """Quantity above ``max_qty`` (or the symbol's override)."""
    limit, qty = c.max_qty, c.qty
    if limit > 0 and qty > limit:
        c.details["limit"], c.details["value"] = limit, qty
        return MAX_QTY, f"quantity {qty:g} exceeds max_qty {limit:g}"
    return None


def unknown_multiplier(g: GovernorState, c: Check) -> Refusal | None:
    """A multiplied contract (FUT, OPT, ...) whose multiplier nobody gives: never priced x1 by guess."""
    if c.multiplier is None and c.sec_type in _NEEDS_MULTIPLIER:
        c.details["sec_type"] = c.sec_type
        sym = c.symbol
        return UNKNOWN_MULTIPLIER, (
            f"{c.sec_type} {sym or '(no symbol)'}: contract multiplier unknown (not on the order's contract "
            f"and not in [prices].multipliers); qualify the contract or set [prices].multipliers.{sym}"
        )
    return None


def market_order_no_price(g: GovernorState, c: Check) -> Refusal | None:
    """A notional limit is set and the order has no price to compute it from."""
    if c.price is None and c.max_notional > 0:
        c.details["limit"] = c.max_notional
        sym = c.symbol
        return MARKET_ORDER_NO_PRICE, (
            f"no price known for {c.order_type or 'the'} order on {sym or '(no symbol)'}: notional unknown. "
            f"Subscribe market data for the contract before placing (reqMktData: its ticks are recorded "
            f"as prices), set [prices].reference.{sym or 'SYMBOL'} in the governor config, or use a "
            f"limit order"
        )
    return None


def max_notional(g: GovernorState, c: Check) -> Refusal | None:
    """Quantity x price x multiplier above ``max_notional`` (or the symbol's override). The price used is
    recorded in the details whether or not the order passes."""
    price = c.price
    if price is None:
        return None
    qty = c.qty
    mult = c.multiplier if c.multiplier is not None else 1.0
    notional = qty * price * mult
    d = c.details
    d["price"], d["price_source"] = price, c.price_source
    d["multiplier"], d["notional"] = mult, notional
    limit = c.max_notional
    if limit > 0 and notional > limit:
        d["limit"], d["value"] = limit, notional
        return MAX_NOTIONAL, (
            f"notional {notional:,.2f} ({qty:g} x {price:g} x {mult:g}) exceeds max_notional {limit:,.2f}"
        )
    return None


def reducing_only(g: GovernorState, c: Check) -> Refusal | None:
    """Trading state REDUCING and the order does not reduce the position (with what already works on its side)."""
    if g.trading_state != REDUCING:
        return None
    sign = SIDES[c.side]
    own = c.view.key if c.view is not None else ""
    position, pending = g.exposure(c.symbol, c.intent, sign, own)
    qty = c.qty
    if position * sign >= 0 or qty + pending > abs(position) + 1e-9:
        d = c.details
        d["limit"], d["value"], d["position"] = abs(position), qty + pending, position
        return REDUCING_ONLY, (
            f"trading state REDUCING: {c.side} {qty:g} {c.symbol} does not reduce position {position:g}"
            + (f" (with {pending:g} already working)" if pending else "")
        )
    return None


def max_open_orders(g: GovernorState, c: Check) -> Refusal | None:
    """A new place while ``max_open_orders`` orders are not done (a modify opens nothing)."""
    limit = g.config.limits.max_open_orders
    if c.action == "modify" or limit <= 0:
        return None
    n_open = g.open_count()
    c.details["open_orders"] = n_open
    if n_open >= limit:
        c.details["limit"], c.details["value"] = limit, n_open + 1
        return MAX_OPEN_ORDERS, f"{n_open} orders open, max_open_orders {limit}"
    return None


def rate_limits(g: GovernorState, c: Check) -> Refusal | None:
    """``max_orders_per_sec`` / ``_per_min`` places and modifies already allowed in the last second / minute."""
    now_ns = c.now_ns
    if g.rate_sec.full_at(now_ns):
        return _rate_refusal(c, g.rate_sec.n, RATE_LIMIT_SEC, "second", "max_orders_per_sec")
    if g.rate_min.full_at(now_ns):
        return _rate_refusal(c, g.rate_min.n, RATE_LIMIT_MIN, "minute", "max_orders_per_min")
    return None


def _rate_refusal(c: Check, n: int, reason: str, span: str, key: str) -> Refusal:
    c.details["limit"], c.details["value"] = n, n + 1
    return reason, f"{n} orders in the last {span} ({key} {n})"


#: The README's "Rules" table, row by row: the codes a rule refuses with, and the rule. They run in
#: this order and the first refusal decides.
RULES: tuple[tuple[tuple[str, ...], Rule], ...] = (
    ((RECORDER_FAULT,), recorder_fault),
    ((RECONCILING,), reconciling),
    ((LEDGER_STALE,), ledger_stale),
    ((HALTED_REASON,), halted),
    ((SYMBOL_DENIED, SYMBOL_NOT_ALLOWED), symbol_lists),
    ((INVALID_ORDER,), invalid_order),
    ((MAX_QTY,), max_qty),
    ((UNKNOWN_MULTIPLIER,), unknown_multiplier),
    ((MARKET_ORDER_NO_PRICE,), market_order_no_price),
    ((MAX_NOTIONAL,), max_notional),
    ((REDUCING_ONLY,), reducing_only),
    ((MAX_OPEN_ORDERS,), max_open_orders),
    ((RATE_LIMIT_SEC, RATE_LIMIT_MIN), rate_limits),
)
