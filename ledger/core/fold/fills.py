"""Executions, their corrections and commission reports: the fills of an order and what they add up to."""

from __future__ import annotations

import msgspec

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold.identity import resolve
from ledger.core.fold.positions import position_fill
from ledger.core.fold.state import (
    _TERMINAL,
    _UNSET_LIMIT,
    EPS,
    MAX_ORDER_ID,
    FoldState,
    OrderState,
    _newer,
    _same,
    record_anomaly,
)
from ledger.core.fold.status import recount, refresh
from ledger.core.fold.views import Fill, OrderView, Transition


def on_exec(led: FoldState, env: Envelope, p: ev.ExecDetails) -> list[Transition]:
    eid = p.exec_id
    if not eid:
        record_anomaly(led, env, None, "bad_execution", "execution without execId")
        return []
    owner = led._execs.get(eid)
    if owner is not None and same_exec(led, owner, p):
        return []  # the same execId twice: a duplicate, not a fill
    shares = p.shares
    price = p.price
    if not (0.0 <= shares < _UNSET_LIMIT and 0.0 <= price < _UNSET_LIMIT):
        record_anomaly(
            led,
            env,
            owner,
            "bad_number",
            f"execution {eid}: shares {shares!r}, price {price!r} (not finite or negative): recorded, not applied",
        )
        return []
    found = _exec_order(led, env, p)
    if found is None:
        return []
    core, out = found
    if owner is not None:
        if owner is core or any(f.exec_id == eid for f in core.view.fills):
            return out  # a duplicate (delivered again under other ids)
        record_anomaly(
            led,
            env,
            core,
            "exec_id_collision",
            f"execution {eid} of {core.view.key} has the execId of an execution of {owner.view.key}: applied to "
            f"{core.view.key} (the order its ids name); a commission report for it now joins {core.view.key}",
        )
    v = core.view
    old_state = v.state
    old_overlay = v.overlay
    ns = env.recv_ns
    if not v.acked_ns:
        v.acked_ns = ns
    if not v.first_fill_ns:
        v.first_fill_ns = ns
    i = eid.rfind(".")
    if i < 0:
        family, rev = eid, ""
    else:
        family, rev = eid[:i], eid[i + 1 :]
    fams = core.families
    prev = fams.get(family)
    if prev is None and rev != "01" and rev.isdigit() and int(rev) > 1:
        other = family_owner(led, family, rev)
        if other is not None and other is not core:
            record_anomaly(
                led,
                env,
                core,
                "exec_id_collision",
                f"correction {eid} of {core.view.key} names the execution family {family} of {other.view.key}: "
                f"kept as an execution of {core.view.key}, {other.view.key} untouched",
            )
    # a new execution after a terminal state is late; a revision of a known one is not a new fill
    late = prev is None and old_state in _TERMINAL
    fill = Fill(
        exec_id=eid,
        family=family,
        revision=rev,
        shares=shares,
        price=price,
        time=p.time,
        side=p.side,
        account=p.account,
        session_id=env.session_id,
        seq=env.seq,
        recv_ns=ns,
        late=late,
    )
    led._execs[eid] = core
    if led._pending_comm:
        pc = led._pending_comm.pop(eid, None)
        if pc is not None:
            fill.commission = pc.commission
            fill.currency = pc.currency
            fill.realized_pnl = pc.realized_pnl
            led._pending_flagged.pop(eid, None)
    v.fills.append(fill)
    # static fields the execution knows better than nothing
    if not v.symbol or not v.account or not v.con_id or not v.action:
        _fill_static(v, p)
    delta = _count_fill(led, core, fill, prev)
    if delta:
        position_fill(led, core, p, delta, ns)
    if late:
        v.late_fill += 1
        record_anomaly(led, env, core, "late_fill", f"execution {eid} ({shares:g} @ {price:g}) after {old_state}")
    tq = v.total_qty
    if tq > 0 and delta > 0 and v.filled > tq + EPS:
        record_anomaly(led, env, core, "overfill", f"executions cover {v.filled:g} of {tq:g}")
    refresh(led, core, env, old_state, old_overlay, out)
    return out


def _exec_order(led: FoldState, env: Envelope, p: ev.ExecDetails) -> tuple[OrderState, list[Transition]] | None:
    """The order an execution belongs to, and the transitions a merge on the way produced (None: unidentified).

    The fast path skips ``resolve`` when the permId's order is already bound to exactly these ids.
    """
    pid = p.perm_id
    oid = p.order_id
    core = led._by_perm.get(pid) if pid > 0 else None
    if (
        core is None
        or core.boid != oid
        or core.bcid != p.client_id
        or core.bsid != env.session_id
        or (led._perm_acct and p.account and core.view.account and core.view.account != p.account)
    ):
        led._merge_out = None
        core = resolve(led, env, p.client_id, oid, pid, True, oid == MAX_ORDER_ID or oid < 0, p.account)
        if core is None:
            record_anomaly(led, env, None, "unidentified", f"execution {p.exec_id} without orderId or permId")
            return None
        core.seen = env.session_id
        return core, led._merge_out or []
    return core, []


def _count_fill(led: FoldState, core: OrderState, fill: Fill, prev: Fill | None) -> float:
    """Count ``fill`` into its order's totals; return the change in filled shares it makes.

    A new family adds incrementally (the hot path); a newer revision replaces the one before it and
    recounts; an older or equal revision is kept as superseded and changes nothing.
    """
    v = core.view
    shares = fill.shares
    if prev is None:
        core.families[fill.family] = fill
        filled = v.filled + shares
        v.filled = filled
        core.notional += shares * fill.price
        v.avg_fill_price = core.notional / filled if filled else 0.0
        if fill.commission is not None:
            v.commission += fill.commission
        return shares
    if _newer(fill.revision, prev.revision):
        prev.superseded = True
        fill.correction = True
        core.families[fill.family] = fill
        recount(led, core)
        return shares - prev.shares
    fill.superseded = True
    return 0.0


def same_exec(led: FoldState, owner: OrderState, p: ev.ExecDetails) -> bool:
    """Is an execution with a known execId about the order that already holds it (a duplicate)?"""
    v = owner.view
    if p.perm_id > 0 and led._by_perm.get(p.perm_id) is not owner:
        return False  # another order holds that permId now (or another account's): resolve it
    return not (p.account and v.account and p.account != v.account)


def family_owner(led: FoldState, family: str, rev: str) -> OrderState | None:
    """The order holding an earlier revision of ``family`` ("F.01" for "F.02"), if any."""
    width = len(rev)
    top = int(rev)
    for n in range(top - 1, max(top - 10, 0), -1):
        owner = led._execs.get(f"{family}.{n:0{width}d}")
        if owner is not None:
            return owner
    return None


def on_commission(led: FoldState, env: Envelope, p: ev.CommissionReport) -> list[Transition]:
    eid = p.exec_id
    core = led._execs.get(eid)
    c = p.commission
    rp = p.realized_pnl
    if rp is not None and (rp >= ev.UNSET_DOUBLE or rp <= -ev.UNSET_DOUBLE):
        # IB's "no value" (an opening execution has no realized P&L): the commission still applies
        p = msgspec.structs.replace(p, realized_pnl=None)
    if c is None or not -_UNSET_LIMIT < c < _UNSET_LIMIT or (
        p.realized_pnl is not None and not -_UNSET_LIMIT < p.realized_pnl < _UNSET_LIMIT
    ):
        record_anomaly(
            led,
            env,
            core,
            "bad_number",
            f"commission report for {eid}: commission {c!r}, realizedPNL {p.realized_pnl!r}: recorded, not applied",
        )
        return []
    if core is None:
        prev = led._pending_comm.get(eid)
        if prev is None:
            led._pending_comm[eid] = p
        elif not (_same(prev.commission, p.commission) and prev.currency == p.currency):
            record_anomaly(
                led,
                env,
                None,
                "duplicate_commission",
                f"second commission report for {eid} differs ({prev.commission:g} vs {p.commission:g});"
                " kept the first",
            )
        return []
    for fill in reversed(core.view.fills):
        if fill.exec_id == eid:
            break
    else:  # pragma: no cover - the index and the fills agree
        return []
    if fill.commission is None:
        fill.commission = p.commission
        fill.currency = p.currency
        fill.realized_pnl = p.realized_pnl
        if not fill.superseded:
            core.view.commission += p.commission
        return []
    if not (_same(fill.commission, p.commission) and fill.currency == p.currency):
        record_anomaly(
            led,
            env,
            core,
            "duplicate_commission",
            f"second commission report for {eid} differs ({fill.commission:g} vs {p.commission:g}); kept the first",
        )
    return []


def _fill_static(v: OrderView, p: ev.ExecDetails) -> None:
    if not v.account and p.account:
        v.account = p.account
    if not v.symbol and p.symbol:
        v.symbol = p.symbol
    if not v.con_id and p.con_id:
        v.con_id = p.con_id
    if not v.sec_type and p.sec_type:
        v.sec_type = p.sec_type
    if not v.action and p.side:
        v.action = "BUY" if p.side == "BOT" else "SELL" if p.side == "SLD" else ""
