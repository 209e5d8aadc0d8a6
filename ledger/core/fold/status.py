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


def refresh(
    led: FoldState, core: OrderState, env: Envelope, old_state: str, old_overlay: str, out: list[Transition]
) -> None:
    """Re-derive the ledger state and the flags after a change; record the transition, if any."""
    v = core.view
    cur = v.state
    filled = v.filled
    tq = v.total_qty
    # --- derive: fills are facts, then the accepted broker status, then local intents ---
    if cur == _FILLED_ST:  # Filled absorbs everything
        new = cur
    else:
        bs = v.broker_status
        if filled > 0 and (
            (tq > 0 and filled >= tq - EPS) or (tq <= 0 and bs == _FILLED and filled >= v.broker_filled - EPS)
        ):
            new = _FILLED_ST
        elif not bs:
            if filled > 0:
                new = _PARTIAL
            elif core.blocked:
                new = sm.BLOCKED
            elif core.placed:
                new = sm.UNCONFIRMED
            elif core.allowed:
                new = sm.CREATED
            else:
                new = sm.UNKNOWN
        else:
            if bs == _PENDING_CANCEL:
                bs = core.pc_from
                if not bs or bs == _PENDING_CANCEL:
                    bs = _SUBMITTED
            # (state without executions, state with some): see _DERIVED
            new = _DERIVED[bs][filled > 0]
            if new == _INACTIVE_ST and core.rejected:
                new = sm.REJECTED
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
        v.fill_pending = pending
        if pending:
            led._suspects[v.key] = core
        else:
            led._suspects.pop(v.key, None)
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
    out.append(
        Transition(
            key=v.key,
            from_state=old_state,
            to_state=new,
            from_overlay=old_overlay,
            overlay=overlay,
            broker_status=v.broker_status,
            cause=_KIND_OF.get(type(env.payload)) or _kind(env.payload),
            session_id=env.session_id,
            seq=env.seq,
            recv_ns=ns,
            critical=critical,
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
