"""The status table applied to one order, and re-deriving its ledger state, flags and totals after any change."""

from __future__ import annotations

from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold.state import (
    _CONTRADICTING,
    _CRITICAL_OF_STATE,
    _DERIVED,
    _FILLED,
    _FILLED_ST,
    _INACTIVE_ST,
    _KIND_OF,
    _LEGAL,
    _LIVE,
    _LIVE_STATES,
    _PARTIAL,
    _PC_OVERLAY,
    _PENDING_CANCEL,
    _PM_OVERLAY,
    _ROWS,
    _SUBMITTED,
    _TERMINAL,
    _TERMINAL_BROKER,
    EPS,
    FoldState,
    OrderState,
    _kind,
    record_anomaly,
)
from ledger.core.fold.views import Transition


def recount(led: FoldState, core: OrderState) -> None:
    v = core.view
    filled = 0.0
    notional = 0.0
    commission = 0.0
    for f in core.families.values():
        filled += f.shares
        notional += f.shares * f.price
        if f.commission is not None:
            commission += f.commission
    v.filled = filled
    core.notional = notional
    v.avg_fill_price = notional / filled if filled else 0.0
    v.commission = commission


def derive_state(core: OrderState) -> str:
    """The ledger state the order's inputs give, from scratch: fills are facts, then the accepted broker
    status, then local intents; Filled absorbs everything (the one input that is the state itself).

    Reads only ``filled``, ``total_qty``, ``broker_status``, ``broker_filled`` (when the quantity is
    unknown), ``pc_from``, ``rejected``, ``blocked``, ``placed``, ``allowed`` and the current state: a
    handler that changed none of them may skip :func:`refresh` (:func:`touch`, the incremental paths)."""
    v = core.view
    cur = v.state
    if cur == _FILLED_ST:  # Filled absorbs everything
        return cur
    filled = v.filled
    tq = v.total_qty
    bs = v.broker_status
    if filled > 0 and (
        (tq > 0 and filled >= tq - EPS) or (tq <= 0 and bs == _FILLED and filled >= v.broker_filled - EPS)
    ):
        return _FILLED_ST
    if not bs:
        if filled > 0:
            return _PARTIAL
        if core.blocked:
            return sm.BLOCKED
        if core.placed:
            return sm.UNCONFIRMED
        if core.allowed:
            return sm.CREATED
        return sm.UNKNOWN
    if bs == _PENDING_CANCEL:
        bs = core.pc_from
        if not bs or bs == _PENDING_CANCEL:
            bs = _SUBMITTED
    # (state without executions, state with some): see _DERIVED
    new = _DERIVED[bs][filled > 0]
    if new == _INACTIVE_ST and core.rejected:
        return sm.REJECTED
    return new


def derived_fields(core: OrderState) -> tuple[str, bool, bool, bool, float, bool]:
    """(state, is_live, is_done, unconfirmed, remaining, fill_pending) derived from scratch: what
    :func:`refresh` leaves on the view, recomputed from the inputs alone (the property tests compare it
    with the incrementally maintained fields after every event)."""
    v = core.view
    new = derive_state(core)
    tq = v.total_qty
    if tq > 0:
        rem = tq - v.filled
        remaining = rem if rem > 0 else 0.0
    else:
        remaining = v.broker_remaining
    return (
        new,
        new in _LIVE_STATES or (new == _INACTIVE_ST and bool(v.why_held)),
        new in _TERMINAL or (new == _INACTIVE_ST and not v.why_held),
        core.placed and not core.blocked and not v.acked_ns,
        remaining,
        v.broker_filled > v.filled + EPS,
    )


def touch(led: FoldState, core: OrderState, env: Envelope, out: list[Transition]) -> None:
    """:func:`refresh` after a change that none of the derivation's inputs saw (see :func:`derive_state`):
    the state, flags and totals already are what a refresh would derive, so only the time moves and no
    transition is made. Not for an Inactive order (a refresh re-applies its done/live split): callers
    check. (It takes refresh's arguments so the property test can run the full refresh in its place.)"""
    core.view.last_update_ns = env.recv_ns


def broker_qty(led: FoldState, core: OrderState, env: Envelope, filled: float, remaining: float) -> bool:
    """Take the broker's filled / remaining of a repeated status, incrementally: with a known quantity
    (``total_qty > 0``) neither the state nor ``remaining`` reads them, only ``fill_pending`` does. True
    when done; False when a full :func:`refresh` is needed (quantity unknown, or an Inactive order)."""
    v = core.view
    v.broker_filled = filled
    v.broker_remaining = remaining
    if v.total_qty <= 0 or v.state == _INACTIVE_ST:
        return False
    pending = filled > v.filled + EPS
    if pending != v.fill_pending:
        _set_fill_pending(led, core, pending)
    v.last_update_ns = env.recv_ns
    return True


def _set_fill_pending(led: FoldState, core: OrderState, pending: bool) -> None:
    """The broker reports more filled than the executions hold (or no longer does): the order is a suspect
    awaiting its executions until they arrive."""
    v = core.view
    v.fill_pending = pending
    if pending:
        led._suspects[v.key] = core
    else:
        led._suspects.pop(v.key, None)


def refresh(
    led: FoldState, core: OrderState, env: Envelope, old_state: str, old_overlay: str, out: list[Transition]
) -> None:
    """Re-derive the ledger state and the flags after a change; record the transition, if any."""
    v = core.view
    cur = v.state
    filled = v.filled
    tq = v.total_qty
    new = derive_state(core)
    if new != old_state or new != cur or new == _INACTIVE_ST:
        if new in _TERMINAL and v.overlay:
            v.overlay = ""
            core.pending_mod = None
        v.state = new
        # a held order (Inactive with whyHeld: locate, child, trigger) is working: it may execute
        v.is_live = new in _LIVE_STATES or (new == _INACTIVE_ST and bool(v.why_held))
        done = new in _TERMINAL or (new == _INACTIVE_ST and not v.why_held)
        if done != v.is_done:
            v.is_done = done
        key = v.key
        active = led._active
        if done:
            if key in active:
                del active[key]
                if led._arch is not None:
                    led._done[key] = core
        elif key not in active:
            active[key] = core
            if led._arch is not None:
                led._done.pop(key, None)
    if v.unconfirmed or (core.placed and not v.acked_ns):
        unconfirmed = core.placed and not core.blocked and not v.acked_ns
        if unconfirmed != v.unconfirmed:
            v.unconfirmed = unconfirmed
    if tq > 0:
        rem = tq - filled
        v.remaining = rem if rem > 0 else 0.0
    else:
        v.remaining = v.broker_remaining
    pending = v.broker_filled > filled + EPS
    if pending != v.fill_pending:
        _set_fill_pending(led, core, pending)
    ns = env.recv_ns
    v.last_update_ns = ns
    overlay = v.overlay
    if new != old_state:
        critical = _CRITICAL_OF_STATE.get(new, "")
    elif overlay != old_overlay:
        if old_overlay == _PC_OVERLAY and not overlay:
            critical = sm.CANCEL_REFUSED
        elif old_overlay == _PM_OVERLAY and not overlay:
            critical = sm.MODIFIED if core.pending_mod is None else "MODIFY_REFUSED"
        else:
            critical = ""
    else:
        return
    # positional, in Transition's field order: key, from_state, to_state, from_overlay, overlay,
    # broker_status, cause, session_id, seq, recv_ns, critical
    out.append(
        Transition(
            v.key,
            old_state,
            new,
            old_overlay,
            overlay,
            v.broker_status,
            _KIND_OF.get(type(env.payload)) or _kind(env.payload),
            env.session_id,
            env.seq,
            ns,
            critical,
        )
    )


def check_move(
    led: FoldState, core: OrderState, env: Envelope, frm: str, status: str, cell: str | None, why_held: str
) -> bool:
    """The non-✓ cells: record what must be recorded; True if the status is still to be applied."""
    v = core.view
    if cell is None:
        record_anomaly(
            led,
            env,
            core,
            "unknown_status",
            f"{status!r} is not an IB order status this ledger knows",
            frm,
            status,
        )
        return False
    if cell == sm.DUP:
        if why_held:
            v.why_held = why_held
        return False
    if cell == sm.IF_WHY_HELD:
        if not (why_held or v.why_held):
            record_anomaly(
                led,
                env,
                core,
                "illegal_transition",
                f"{frm} → {status} is legal only for a held order (no whyHeld)",
                frm,
                status,
            )
            return False
    elif cell == sm.IF_FILL:
        if not v.fills:
            record_anomaly(
                led,
                env,
                core,
                "illegal_transition",
                f"{frm} → {status} without any execution",
                frm,
                status,
            )
            return False
        record_anomaly(
            led,
            env,
            core,
            "flagged_transition",
            f"{frm} → {status}: late execution after a cancel",
            frm,
            status,
        )
    elif cell == sm.ILLEGAL:
        record_anomaly(led, env, core, "illegal_transition", f"{frm} → {status} is not a legal transition", frm, status)
        return False
    elif cell == sm.WARN:
        record_anomaly(led, env, core, "flagged_transition", f"{frm} → {status} is legal but unusual", frm, status)
    elif cell == sm.UNSPECIFIED:
        record_anomaly(
            led,
            env,
            core,
            "unexpected_first_status",
            f"first status {status}: order first seen while a cancel is pending",
            frm,
            status,
        )
    return True


def apply_status(
    led: FoldState, core: OrderState, env: Envelope, status: str, why_held: str, observe: bool = True
) -> bool:
    """Validate one observed broker status against the table; apply it if allowed. True if applied."""
    v = core.view
    if observe:
        if led.timeline:
            v.statuses.append((env.recv_ns, status))
        if not v.acked_ns:
            v.acked_ns = env.recv_ns
    frm = v.broker_status
    cell = _ROWS[frm].get(status)
    if cell != _LEGAL and not check_move(led, core, env, frm, status, cell, why_held):
        return False
    # apply
    if not frm and core.blocked and not v.fills:
        record_anomaly(led, env, core, "blocked_order_at_broker", f"broker reports {status} for a blocked order")
    if status in _LIVE:
        if frm == _PENDING_CANCEL and v.overlay == _PC_OVERLAY:
            v.overlay = ""  # cancel refused: the state underneath is back
        core.rejected = False
    elif status in _TERMINAL_BROKER:
        if v.overlay:
            v.overlay = ""
            core.pending_mod = None
    elif status == _PENDING_CANCEL:
        core.pc_from = frm
        v.overlay = _PC_OVERLAY
    v.broker_status = status
    if why_held or status != sm.INACTIVE:
        v.why_held = why_held
    if v.state == _FILLED_ST and status in _CONTRADICTING:
        record_anomaly(
            led,
            env,
            core,
            "status_contradicts_fills",
            f"executions cover the order ({v.filled:g}) but the broker reports {status}",
            frm,
            status,
        )
    return True
