"""Local intents: place, modify, cancel, global cancel, and the governor's decisions on them."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold.broker import _copy_order_fields
from ledger.core.fold.identity import bind_key, create_order
from ledger.core.fold.state import _INACTIVE_ST, MAX_ORDER_ID, FoldState, OrderState, record_anomaly, session_client
from ledger.core.fold.status import refresh, touch
from ledger.core.fold.views import Transition


def on_place(led: FoldState, env: Envelope, p: ev.PlaceOrder) -> list[Transition]:
    oid = p.order_id
    if oid == 0 or oid == MAX_ORDER_ID:
        record_anomaly(led, env, None, "unidentified", f"place_order with orderId {oid}")
        return []
    sid = env.session_id
    cid = p.client_id or led._sess_client.get(sid, 0)
    bkey = (sid, cid, oid)
    if p.order.get("whatIf") is True:
        # a what-if asks for margin and commission; the broker never works it: not an order
        if bkey not in led._what_if:
            led._what_if[bkey] = None
            led.what_ifs.append(bkey)
        b = led._bind.get(bkey)
        if b is not None and b.allowed and not b.placed and not b.view.acked_ns and not b.view.fills:
            # the governor's ALLOW made a Created record for it: a what-if is never an order
            del led._bind[bkey]
            del led.orders[b.view.key]
            led._active.pop(b.view.key, None)
            if led._arch is not None:
                led._tomb[bkey] = None
                led._resident.pop(b.view.key, None)
                led._done.pop(b.view.key, None)
        return []
    out: list[Transition] = []
    b = led._bind.get(bkey)
    if b is not None:
        bv = b.view
        attach = not b.placed and not bv.acked_ns and (b.blocked or b.allowed) and not bv.fills
        if not attach and not bv.is_done:
            return apply_modify(led, env, b, p, out)
        if attach:
            v = b.view
            old_state, old_overlay = v.state, v.overlay
            b.placed = True
            v.placed = True
            _copy_order_fields(v, p)
            refresh(led, b, env, old_state, old_overlay, out)
            return out
    core = create_order(led, env, cid, oid, 0, intent=p)
    bind_key(led, core, bkey)
    refresh(led, core, env, "", "", out)
    return out


def apply_modify(
    led: FoldState, env: Envelope, core: OrderState, p: ev.PlaceOrder, out: list[Transition]
) -> list[Transition]:
    v = core.view
    old_state, old_overlay = v.state, v.overlay
    core.pending_mod = p
    if not v.acked_ns:
        _copy_order_fields(v, p)  # nothing confirmed yet: the intent is all we know
    if v.overlay != sm.PENDING_CANCEL_OVERLAY:
        v.overlay = sm.PENDING_MODIFY_OVERLAY
    refresh(led, core, env, old_state, old_overlay, out)
    return out


def on_modify(led: FoldState, env: Envelope, p: ev.ModifyOrder) -> list[Transition]:
    sid = env.session_id
    core = led._bind.get((sid, session_client(led, sid, p.client_id), p.order_id))
    if core is None:
        record_anomaly(led, env, None, "unknown_order", f"modify for unknown orderId {p.order_id}")
        return []
    if core.view.is_done:
        record_anomaly(led, env, core, "modify_after_done", f"modify of a {core.view.state} order")
        return []
    return apply_modify(led, env, core, p, [])


def on_cancel(led: FoldState, env: Envelope, p: ev.CancelOrder) -> list[Transition]:
    core = led._by_perm.get(p.perm_id) if p.perm_id > 0 else None
    if core is None:
        sid = env.session_id
        core = led._bind.get((sid, session_client(led, sid, p.client_id), p.order_id))
    if core is None:
        record_anomaly(led, env, None, "unknown_order", f"cancel for unknown orderId {p.order_id}")
        return []
    v = core.view
    if v.is_done or v.overlay == sm.PENDING_CANCEL_OVERLAY:
        return []  # a cancel racing a terminal state is not an anomaly
    old_state, old_overlay = v.state, v.overlay
    v.overlay = sm.PENDING_CANCEL_OVERLAY
    out: list[Transition] = []
    refresh(led, core, env, old_state, old_overlay, out)
    return out


def on_global_cancel(led: FoldState, env: Envelope, p: ev.GlobalCancel) -> list[Transition]:
    out: list[Transition] = []
    for core in list(led._active.values()):
        v = core.view
        if v.is_done or v.overlay == sm.PENDING_CANCEL_OVERLAY or v.state in (sm.CREATED, sm.BLOCKED):
            continue
        old_state, old_overlay = v.state, v.overlay
        v.overlay = sm.PENDING_CANCEL_OVERLAY
        refresh(led, core, env, old_state, old_overlay, out)
    return out


def on_decision(led: FoldState, env: Envelope, p: ev.GovernorDecision) -> list[Transition]:
    oid = p.order_id
    if oid <= 0 or oid == MAX_ORDER_ID:
        return []
    sid = env.session_id
    cid = session_client(led, sid, p.client_id)
    bkey = (sid, cid, oid)
    b = led._bind.get(bkey)
    out: list[Transition] = []
    if p.action == "modify" and p.decision == "BLOCK":
        if b is not None and b.view.overlay == sm.PENDING_MODIFY_OVERLAY:
            v = b.view
            old_state, old_overlay = v.state, v.overlay
            v.overlay = ""
            refresh(led, b, env, old_state, old_overlay, out)
        return out
    if p.action != "place" or p.decision not in ("BLOCK", "ALLOW"):
        return out
    fresh = b is None or (b.view.is_done and (b.placed or b.blocked))
    if fresh:
        core = create_order(led, env, cid, oid, 0)
        bind_key(led, core, bkey)
        if p.symbol:
            core.view.symbol = p.symbol
        old_state, old_overlay = "", ""
    else:
        core = b  # type: ignore[assignment]
        old_state, old_overlay = core.view.state, core.view.overlay
    v = core.view
    if p.decision == "BLOCK":
        if v.acked_ns or v.fills:
            record_anomaly(led, env, core, "block_after_ack", f"BLOCK ({p.reason}) for an order the broker knows")
            return out
        core.blocked = True
    else:
        if not fresh and v.state != _INACTIVE_ST and (
            core.allowed or core.placed or core.blocked or v.broker_status or v.filled > 0
        ):
            # the derivation reads ``allowed`` only for an order with no status, fill, block or placement:
            # an ALLOW for any other (the common one: the answer to its own place_order) changes nothing
            core.allowed = True
            touch(led, core, env, out)
            return out
        core.allowed = True
    refresh(led, core, env, old_state, old_overlay, out)
    return out
