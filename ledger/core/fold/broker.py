"""Broker messages about an order: orderStatus, openOrder, completedOrder and order errors."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold.identity import resolve
from ledger.core.fold.state import _DUP, _ROWS, _UNSET_LIMIT, _WARNING_CODES, FoldState, _same, record_anomaly
from ledger.core.fold.status import apply_status, broker_qty, refresh
from ledger.core.fold.views import OrderView, Transition


def on_status(led: FoldState, env: Envelope, p: ev.OrderStatus) -> list[Transition]:
    filled, rem, avg, last = p.filled, p.remaining, p.avg_fill_price, p.last_fill_price
    # NaN fails every comparison; ±inf or a sentinel makes the sum too large
    if not (
        filled >= 0.0 and rem >= 0.0 and avg >= 0.0 and last >= 0.0 and filled + rem + avg + last < _UNSET_LIMIT
    ):
        record_anomaly(
            led,
            env,
            None,
            "bad_number",
            f"orderStatus {p.status} of order {p.order_id} (permId {p.perm_id}): filled {p.filled!r}, remaining "
            f"{p.remaining!r}, avgFillPrice {p.avg_fill_price!r}, lastFillPrice {p.last_fill_price!r}: recorded, "
            "not applied",
        )
        return []
    pid = p.perm_id
    oid = p.order_id
    core = led._by_perm.get(pid) if pid > 0 else None
    merged = None
    if core is None or core.boid != oid or core.bcid != p.client_id or core.bsid != env.session_id:
        led._merge_out = None
        core = resolve(led, env, p.client_id, oid, pid, True, oid <= 0)
        if core is None:
            record_anomaly(led, env, None, "unidentified", f"orderStatus {p.status} without orderId or permId")
            return []
        core.seen = env.session_id
        merged = led._merge_out
    v = core.view
    status = p.status
    if merged is None and not p.why_held and _ROWS[v.broker_status].get(status) == _DUP:
        # fast path: a repeated status (the most common message of all)
        ns = env.recv_ns
        if led.timeline:
            v.statuses.append((ns, status))
        v.broker_avg_fill_price = p.avg_fill_price
        if p.filled == v.broker_filled and (p.remaining == v.broker_remaining or v.total_qty > 0):
            v.last_update_ns = ns
            return []
        if broker_qty(led, core, env, p.filled, p.remaining):
            return []
        out: list[Transition] = []
        refresh(led, core, env, v.state, v.overlay, out)
        return out
    out = merged or []
    old_state, old_overlay = v.state, v.overlay
    if apply_status(led, core, env, status, p.why_held) or v.broker_status == status:
        v.broker_filled = p.filled
        v.broker_remaining = p.remaining
        v.broker_avg_fill_price = p.avg_fill_price
    refresh(led, core, env, old_state, old_overlay, out)
    return out


def on_open(led: FoldState, env: Envelope, p: ev.OpenOrder, completed: bool = False) -> list[Transition]:
    if p.order.get("whatIf") is True:
        return []  # the broker's answer to a what-if (margin, commission): not an order
    led._merge_out = None
    oid = 0 if completed else p.order_id
    core = resolve(
        led,
        env, p.client_id, oid, p.perm_id, True, (not completed) and p.order_id <= 0, p.account
    )
    if core is None:
        record_anomaly(led, env, None, "unidentified", f"{env.kind} without orderId or permId")
        return []
    core.seen = env.session_id
    out: list[Transition] = led._merge_out or []
    v = core.view
    old_state, old_overlay = v.state, v.overlay
    if not v.acked_ns:
        v.acked_ns = env.recv_ns
    _copy_order_fields(v, p)
    pm = core.pending_mod
    if pm is not None and _reflects(p, pm):
        core.pending_mod = None
        if v.overlay == sm.PENDING_MODIFY_OVERLAY:
            v.overlay = ""
    if p.status and apply_status(led, core, env, p.status, "") and completed:
        # A completed order (reconciliation after a reconnect) carries the broker's final filled
        # quantity; without it broker_filled would keep the last pre-disconnect orderStatus value.
        bf = p.order.get("filledQuantity")
        if isinstance(bf, int | float) and 0 <= bf < _UNSET_LIMIT:
            v.broker_filled = float(bf)
            if v.total_qty > 0:
                v.broker_remaining = max(v.total_qty - float(bf), 0.0)
    refresh(led, core, env, old_state, old_overlay, out)
    return out


def on_completed(led: FoldState, env: Envelope, p: ev.CompletedOrder) -> list[Transition]:
    return on_open(led, env, p, True)


def on_error(led: FoldState, env: Envelope, p: ev.Error) -> list[Transition]:
    code = p.code
    if code == sm.ERR_CONNECTIVITY_LOST:
        led.broker_link = False
    elif code == sm.ERR_CONNECTIVITY_RESTORED_LOST or code == sm.ERR_CONNECTIVITY_RESTORED:
        led.broker_link = True
        led.needs_reconcile = True
    rid = p.req_id
    if rid <= 0:
        return []
    sid = env.session_id
    core = led._bind.get((sid, led._sess_client.get(sid, 0), rid))
    if core is None:
        return []
    v = core.view
    old_state, old_overlay = v.state, v.overlay
    v.errors.append((env.recv_ns, code, p.message))
    if code == sm.ERR_REJECTED:
        core.rejected = True
    if code in sm.CANCEL_REFUSAL_CODES and v.overlay == sm.PENDING_CANCEL_OVERLAY:
        v.overlay = ""
    elif v.overlay == sm.PENDING_MODIFY_OVERLAY and code not in _WARNING_CODES and not 2100 <= code < 2200:
        v.overlay = ""  # modify refused; pending_mod kept so the transition says MODIFY_REFUSED
    out: list[Transition] = []
    refresh(led, core, env, old_state, old_overlay, out)
    core.pending_mod = None if not v.overlay else core.pending_mod
    return out


def _copy_order_fields(v: OrderView, p: ev.PlaceOrder | ev.OpenOrder) -> None:
    """The order's terms from an intent or an openOrder/completedOrder; unset fields keep what is known."""
    if p.account:
        v.account = p.account
    if p.symbol:
        v.symbol = p.symbol
    if p.sec_type:
        v.sec_type = p.sec_type
    if p.con_id:
        v.con_id = p.con_id
    if p.action:
        v.action = p.action
    if 0 < p.total_qty < _UNSET_LIMIT:
        v.total_qty = p.total_qty
    if p.order_type:
        v.order_type = p.order_type
    # NaN, ±inf and unset sentinels are no price: what is known is kept
    if p.lmt_price is not None and -_UNSET_LIMIT < p.lmt_price < _UNSET_LIMIT:
        v.lmt_price = p.lmt_price
    if p.aux_price is not None and -_UNSET_LIMIT < p.aux_price < _UNSET_LIMIT:
        v.aux_price = p.aux_price
    if p.tif:
        v.tif = p.tif
    if p.order_ref:
        v.order_ref = p.order_ref


def _reflects(o: ev.OpenOrder, m: ev.PlaceOrder) -> bool:
    """Does the broker's openOrder show the requested modification?"""
    if m.total_qty > 0 and not _same(o.total_qty, m.total_qty):
        return False
    if m.lmt_price is not None and not _same(o.lmt_price, m.lmt_price):
        return False
    if m.aux_price is not None and not _same(o.aux_price, m.aux_price):
        return False
    if m.order_type and o.order_type and o.order_type != m.order_type:
        return False
    if m.tif and o.tif and o.tif != m.tif:
        return False
    return True
