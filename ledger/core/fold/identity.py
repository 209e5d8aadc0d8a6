"""Order identity: keys, (session, client, order) bindings, permIds, resolving a message to its order, merges."""

from __future__ import annotations

from itertools import islice

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold.compact import bound, has_key
from ledger.core.fold.state import (
    _UNSET_LIMIT,
    EPS,
    MAX_ORDER_ID,
    FoldState,
    OrderState,
    _finite,
    _newer,
    record_anomaly,
    session_client,
)
from ledger.core.fold.status import apply_status, recount, refresh
from ledger.core.fold.views import OrderView, Transition


def create_order(
    led: FoldState,
    env: Envelope,
    cid: int,
    oid: int,
    pid: int,
    manual: bool = False,
    intent: ev.PlaceOrder | None = None,
) -> OrderState:
    sid = env.session_id
    if pid > 0:
        key = f"perm:{pid}"
    else:
        key = f"{sid}:{cid}:{oid}"
    if key in led.orders or (led._arch is not None and has_key(led, key)):
        # a superseded (client, orderId), or a perm key freed by a merge
        base = key
        n = 2
        key = f"{base}~{n}"
        while key in led.orders or key in led.merged or (led._arch is not None and has_key(led, key)):
            n += 1
            key = f"{base}~{n}"
    elif key in led.merged:
        key = f"{key}~m{len(led.merged)}"
    ns = env.recv_ns
    if intent is None:
        view = OrderView(
            key=key,
            session_id=sid,
            perm_id=pid if pid > 0 else 0,
            order_id=oid,
            client_id=cid,
            manual=manual,
            first_seen_ns=ns,
            last_update_ns=ns,
        )
    else:
        p = intent
        view = OrderView(
            key=key,
            session_id=sid,
            order_id=oid,
            client_id=cid,
            account=p.account,
            symbol=p.symbol,
            sec_type=p.sec_type,
            con_id=p.con_id,
            action=p.action,
            total_qty=p.total_qty if 0 < p.total_qty < _UNSET_LIMIT else 0.0,
            order_type=p.order_type,
            lmt_price=p.lmt_price if _finite(p.lmt_price) else None,
            aux_price=p.aux_price if _finite(p.aux_price) else None,
            tif=p.tif,
            order_ref=p.order_ref,
            placed=True,
            first_seen_ns=ns,
            last_update_ns=ns,
        )
    led._n += 1
    core = OrderState(view=view, idx=led._n, placed=intent is not None)
    led.orders[key] = view
    if led._arch is not None:
        led._arch.grow(led._n)
        led._resident[key] = core
    led._active[key] = core
    if pid > 0:
        if led._by_perm.get(pid) is None:
            led._by_perm[pid] = core
        else:
            claim_perm(led, core, pid)
    return core


def bind_key(led: FoldState, core: OrderState, bkey: tuple[str, int, int]) -> None:
    led._bind[bkey] = core
    core.bsid, core.bcid, core.boid = bkey
    if led._arch is not None:
        led._tomb.pop(bkey, None)
        if core.binds is None:
            core.binds = [bkey]
        elif bkey not in core.binds:
            core.binds.append(bkey)
    v = core.view
    if v.order_id == 0 and bkey[2] > 0:
        v.order_id = bkey[2]
        v.client_id = bkey[1]


def perm_core(led: FoldState, env: Envelope, pid: int, account: str) -> OrderState | None:
    """The order known by ``pid`` *in this account*: permIds are unique per account only."""
    core = led._by_perm.get(pid)
    if core is None:
        return None
    if account:
        known = core.view.account
        if known and known != account:
            return led._perm_acct.get((account, pid))
        return core
    if led._perm_acct:  # no account on the message (orderStatus): the session's, if it tells them apart
        alt = led._perm_acct.get((led._sess_account.get(env.session_id, ""), pid))
        if alt is not None:
            return alt
    return core


def claim_perm(led: FoldState, core: OrderState, pid: int) -> None:
    """``core`` is now the order known by ``pid``; another account's order keeps it in its scope."""
    old = led._by_perm.get(pid)
    if old is not None and old is not core and old.view.account:
        led._perm_acct[(old.view.account, pid)] = old
    led._by_perm[pid] = core
    if core.view.account:
        led._perm_acct[(core.view.account, pid)] = core


def resolve(
    led: FoldState, env: Envelope, cid: int, oid: int, pid: int, create: bool, manual: bool = False, account: str = ""
) -> OrderState | None:
    """Find (or create) the order a broker message is about, binding identities on the way."""
    core = led._by_perm.get(pid) if pid > 0 else None
    if core is not None and (account or led._perm_acct):
        core = perm_core(led, env, pid, account)
    if oid == 0 or oid == MAX_ORDER_ID:
        if core is None and create and pid > 0:
            core = create_order(led, env, session_client(led, env.session_id, cid), 0, pid, manual)
        return core
    sid = env.session_id
    if not cid:
        cid = led._sess_client.get(sid, 0)
    if core is not None and core.boid == oid and core.bcid == cid and core.bsid == sid:
        return core  # fast path: already bound to exactly this (session, client, order)
    bkey = (sid, cid, oid)
    b = led._bind.get(bkey)
    if b is None:
        if core is None:
            # placed in an earlier session and never acknowledged: the broker is now telling us
            # about it (the recorder restarted while the order was in flight)
            u = unacked_elsewhere(led, sid, cid, oid)
            if u is not None and _plausible(u.view, env.payload):
                core = u
                if pid > 0:
                    if u.view.perm_id == 0:
                        u.view.perm_id = pid
                    led._by_perm[pid] = u
            elif not create:
                return None
            else:
                core = create_order(led, env, cid, oid, pid, manual or oid < 0)
        bind_key(led, core, bkey)
        return core
    if core is None:
        bp = b.view.perm_id
        if pid <= 0 or bp == pid:
            return b
        if bp == 0:
            b.view.perm_id = pid
            led._by_perm[pid] = b
            return b
        # the same (client, orderId) now names another permId: TWS reused the id
        if not b.view.is_done:
            record_anomaly(
                led,
                env,
                b,
                "order_id_reused",
                f"orderId {oid} (client {cid}) now reported with permId {pid}, was {bp} (still open)",
            )
        if not create:
            return None
        core = create_order(led, env, cid, oid, pid, manual or oid < 0)
        bind_key(led, core, bkey)
        return core
    if b is core:
        return core
    if b.view.perm_id == 0:
        if b.placed and b.idx > core.idx and b.view.session_id == sid and core.view.session_id != sid and (
            core.seen != sid and core.bsid != sid
        ):
            # A fresh placement of this session answered with a permId an order of an earlier session
            # holds, which this session never heard of: an independent run (another simulator, a
            # restarted paper broker) reusing permIds. The new order takes the permId from here on.
            b.view.perm_id = pid
            claim_perm(led, b, pid)
            return b
        return merge(led, env, b, core, pid)
    # bound to an order with another permId, and the permId is known elsewhere: follow the permId
    bind_key(led, core, bkey)
    return core


def unacked_elsewhere(led: FoldState, sid: str, cid: int, oid: int) -> OrderState | None:
    """The latest order placed under (cid, oid) in an earlier session and never acknowledged."""
    for other in islice(reversed(led._sessions), 4):  # the recorder's last few restarts
        if other == sid:
            continue
        core = bound(led, (other, cid, oid))  # a retired order is done: never the answer, but it ends the search
        if core is not None:
            v = core.view
            return core if (v.unconfirmed and not v.perm_id and not v.is_done) else None
    return None


def merge(led: FoldState, env: Envelope, a: OrderState, b: OrderState, pid: int) -> OrderState:
    """Two records are one order: fold the later-created into the earlier."""
    keep, gone = (a, b) if a.idx < b.idx else (b, a)
    kv, gv = keep.view, gone.view
    out: list[Transition] = []
    old_state, old_overlay = kv.state, kv.overlay
    kv.perm_id = pid
    led._by_perm[pid] = keep
    for bkey in [k for k, c in led._bind.items() if c is gone]:
        bind_key(led, keep, bkey)
    for name in ("account", "symbol", "sec_type", "action", "order_type", "tif", "order_ref"):
        if not getattr(kv, name) and getattr(gv, name):
            setattr(kv, name, getattr(gv, name))
    for name in ("con_id", "total_qty"):
        if not getattr(kv, name) and getattr(gv, name):
            setattr(kv, name, getattr(gv, name))
    if kv.lmt_price is None:
        kv.lmt_price = gv.lmt_price
    if kv.aux_price is None:
        kv.aux_price = gv.aux_price
    if kv.order_id == 0 and gv.order_id > 0:
        kv.order_id, kv.client_id = gv.order_id, gv.client_id
    keep.placed = keep.placed or gone.placed
    keep.allowed = keep.allowed or gone.allowed
    keep.rejected = keep.rejected or gone.rejected
    kv.manual = kv.manual and gv.manual
    if gv.acked_ns and (not kv.acked_ns or gv.acked_ns < kv.acked_ns):
        kv.acked_ns = gv.acked_ns
    if gv.first_fill_ns and (not kv.first_fill_ns or gv.first_fill_ns < kv.first_fill_ns):
        kv.first_fill_ns = gv.first_fill_ns
    kv.first_seen_ns = min(kv.first_seen_ns, gv.first_seen_ns)
    kv.statuses = sorted(kv.statuses + gv.statuses, key=lambda s: s[0])
    kv.errors = sorted(kv.errors + gv.errors, key=lambda e: e[0])
    kv.late_fill += gv.late_fill
    kv.anomaly_count += gv.anomaly_count
    if not kv.broker_filled:
        kv.broker_filled = gv.broker_filled
        kv.broker_remaining = gv.broker_remaining
        kv.broker_avg_fill_price = gv.broker_avg_fill_price
    # the absorbed record's broker status goes through the table once
    if gv.broker_status and gv.broker_status != kv.broker_status:
        if not kv.why_held:
            kv.why_held = gv.why_held
        apply_status(led, keep, env, gv.broker_status, gv.why_held, observe=False)
    if gv.overlay and not kv.overlay:
        kv.overlay = gv.overlay
        keep.pending_mod = gone.pending_mod
    for f in gv.fills:
        led._execs[f.exec_id] = keep
        kv.fills.append(f)
        prev = keep.families.get(f.family)
        if f.superseded:
            continue
        if prev is None or _newer(f.revision, prev.revision):
            if prev is not None:
                prev.superseded = True
                f.correction = True
            keep.families[f.family] = f
        else:
            f.superseded = True
    recount(led, keep)
    # retire the absorbed record
    del led.orders[gv.key]
    if led._arch is not None:
        led._resident.pop(gv.key, None)
        led._done.pop(gv.key, None)
    led._active.pop(gv.key, None)
    led._suspects.pop(gv.key, None)
    led.merged[gv.key] = kv.key
    out.append(
        Transition(
            key=gv.key,
            from_state=gv.state,
            to_state=sm.MERGED,
            from_overlay=gv.overlay,
            overlay="",
            broker_status=gv.broker_status,
            cause=env.kind,
            session_id=env.session_id,
            seq=env.seq,
            recv_ns=env.recv_ns,
            critical="",
        )
    )
    record_anomaly(led, env, keep, "identity_merged", f"{gv.key} is the same order as {kv.key} (permId {pid})")
    refresh(led, keep, env, old_state, old_overlay, out)
    led._merge_out = out
    return keep


def _plausible(v: OrderView, p: object) -> bool:
    """Could this broker message be about ``v`` (an unacknowledged order of an earlier session)?"""
    tq = v.total_qty
    if isinstance(p, ev.OrderStatus):
        q = p.filled + p.remaining
        return not (q > 0 and tq > 0 and abs(q - tq) > EPS)
    if isinstance(p, ev.ExecDetails):
        if p.con_id and v.con_id and p.con_id != v.con_id:
            return False
        if p.symbol and v.symbol and p.symbol != v.symbol:
            return False
        if v.action and p.side and (p.side == "BOT") != (v.action == "BUY"):
            return False
        return not (tq > 0 and p.shares > tq + EPS)
    if isinstance(p, ev.OpenOrder):
        if p.con_id and v.con_id and p.con_id != v.con_id:
            return False
        if p.symbol and v.symbol and p.symbol != v.symbol:
            return False
        if p.action and v.action and p.action != v.action:
            return False
        return not (p.total_qty > 0 and tq > 0 and abs(p.total_qty - tq) > EPS)
    return True
