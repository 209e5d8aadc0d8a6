"""Retiring finished orders to the :class:`~ledger.core.fold.archive.Archive` and re-inflating them on demand.

The handlers of the fold only ever look orders up in the in-memory dicts (``_by_perm``, ``_bind``,
``_execs``, ``_perm_acct``). In a compact fold :func:`prefetch` runs before each event: every id the event's
handler may look up that is missing from memory is looked up in the archive, and an order found there is
re-inflated into memory first. So the handlers run unchanged, and a compact fold gives exactly the output
of a full one (``tests/core/test_fold_compact.py`` folds every pinned stream with a window of one order).
"""

from __future__ import annotations

from operator import is_

import msgspec

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold.archive import MASK, SALT_A, SALT_B, SALT_E, SALT_K, SALT_P, SALTS, Archive, stable_hash
from ledger.core.fold.state import MAX_ORDER_ID, FoldState, OrderState
from ledger.core.fold.views import Fill, OrderView, order_values

_dec = msgspec.msgpack.Decoder(OrderState)
_NO_FAMILIES: dict[str, Fill] = {}


def retire_done(led: FoldState) -> None:
    """Retire the oldest finished orders beyond the resident window."""
    done = led._done
    keep = led._keep
    while len(done) > keep:
        key, core = done.popitem(last=False)
        v = core.view
        if not v.is_done or key in led._active or key in led._suspects or led.orders.get(key) is not v:
            continue  # revived, still awaited at a checkpoint, or gone: stays resident (or is gone)
        retire(led, core)


def retire(led: FoldState, core: OrderState) -> None:
    arch: Archive = led._arch  # type: ignore[assignment]
    v = core.view
    key = v.key
    if led.on_retire is not None:  # a reader that keeps rows of orders (the projector) takes the final state
        led.on_retire(core)
    hashes = [hash(key) ^ SALT_K]
    perms: list[int] = []
    pid = v.perm_id
    by_perm = led._by_perm
    if pid and by_perm.get(pid) is core:
        del by_perm[pid]
        perms.append(pid)
        hashes.append(hash(pid) ^ SALT_P)
    accts: list[tuple[str, int]] = []
    if led._perm_acct:
        ak = (v.account, pid)
        if led._perm_acct.get(ak) is core:
            del led._perm_acct[ak]
            accts.append(ak)
            arch.accts += 1
            hashes.append(hash(ak) ^ SALT_A)
    binds: list[tuple[str, int, int]] = []
    if core.binds:
        bind = led._bind
        for bk in core.binds:
            if bind.get(bk) is core:
                del bind[bk]
                binds.append(bk)
                hashes.append(hash(bk) ^ SALT_B)
    execs: list[str] = []
    fills = v.fills
    if fills:
        ex = led._execs
        for f in fills:
            eid = f.exec_id
            if ex.get(eid) is core:
                del ex[eid]
                execs.append(eid)
                hashes.append(hash(eid) ^ SALT_E)
    families = core.families
    fam_fills = list(families.values())
    if len(fam_fills) == len(fills) and all(map(is_, fam_fills, fills)):
        core.fams = list(range(len(fills)))  # the common case: one revision per execution, in arrival order
    else:
        pos = {id(f): i for i, f in enumerate(fills)}
        core.fams = [pos[id(f)] for f in fam_fills]
    core.held = (perms, accts, binds, execs)
    if arch.stable:  # a persistent index: the keys' process-independent hashes instead
        hashes = [stable_hash("k", key)]
        hashes += [stable_hash("p", k) for k in perms]
        hashes += [stable_hash("a", k) for k in accts]
        hashes += [stable_hash("b", k) for k in binds]
        hashes += [stable_hash("e", k) for k in execs]
    core.families = _NO_FAMILIES  # (encoded as indexes, above)
    arch.put(core.idx, order_values(v), core, hashes)
    core.families = families
    del led.orders[key]
    led._resident.pop(key, None)


def _holds(rec: OrderState, kind: str, key: object) -> bool:
    if kind == "k":
        return rec.view.key == key
    held = rec.held
    if held is None:
        return False
    if kind == "p":
        return key in held[0]
    if kind == "a":
        return key in held[1]
    if kind == "b":
        return key in held[2]
    return key in held[3]


def _find(led: FoldState, kind: str, key: object) -> OrderState | None:
    """The latest retired record holding ``key`` (None: no retired order does)."""
    arch: Archive = led._arch  # type: ignore[assignment]
    h = stable_hash(kind, key) if arch.stable else hash(key) ^ SALTS[kind]
    a = h & MASK
    if not arch.bloom[a >> 3] & (1 << (a & 7)):
        return None
    for idx in arch.candidates(h):
        rec = _dec.decode(arch.state(idx))
        if _holds(rec, kind, key):
            return rec
    return None


def decode_view(arch: Archive, idx: int) -> OrderView:
    """The view of retired order ``idx`` (a decoded copy)."""
    return _dec.decode(arch.state(idx)).view


def find_view(led: FoldState, key: str) -> OrderView | None:
    """The view of the retired order with this key (a decoded copy), if any."""
    rec = _find(led, "k", key)
    return None if rec is None else rec.view


def has_key(led: FoldState, key: str) -> bool:
    """Is ``key`` the key of a retired order (keys are never reused)?"""
    return led._arch is not None and led._arch.count > 0 and _find(led, "k", key) is not None


def load(led: FoldState, kind: str, key: object) -> OrderState | None:
    """Re-inflate the retired order holding ``key``, if any (its index entries move back into memory)."""
    rec = _find(led, kind, key)
    return None if rec is None else _inflate(led, rec)


def retired(led: FoldState, kind: str, key: object) -> OrderState | None:
    """:func:`load`, in a compact fold that has retired something; None otherwise (a full fold)."""
    arch = led._arch
    return load(led, kind, key) if arch is not None and arch.count else None


def bound(led: FoldState, bkey: tuple[str, int, int]) -> OrderState | None:
    """The order bound to (session, client id, order id), resident or retired (a binding dropped by a merge,
    ``_tomb``, is never looked up in the archive)."""
    core = led._bind.get(bkey)
    if core is None and bkey not in led._tomb:
        core = retired(led, "b", bkey)
    return core


def _inflate(led: FoldState, rec: OrderState) -> OrderState:
    arch: Archive = led._arch  # type: ignore[assignment]
    v = rec.view
    fills = v.fills
    core = rec
    core.families = {fills[i].family: fills[i] for i in rec.fams or ()}
    held = rec.held or ([], [], [], [])
    core.fams = None
    core.held = None
    # a key goes back to this order only if no later retired order took it over since (decided while this
    # record is still current, so that the latest holder is found among all of them)
    idx = rec.idx
    perms = [k for k in held[0] if k not in led._by_perm and _latest(led, "p", k, idx)]
    accts = [k for k in held[1] if k not in led._perm_acct and _latest(led, "a", k, idx)]
    binds = [k for k in held[2] if k not in led._bind and k not in led._tomb and _latest(led, "b", k, idx)]
    execs = [k for k in held[3] if k not in led._execs and _latest(led, "e", k, idx)]
    arch.drop(idx)
    for pid in perms:
        led._by_perm[pid] = core
    for ak in accts:
        led._perm_acct[ak] = core
    for bk in binds:
        led._bind[bk] = core
    for eid in execs:
        led._execs[eid] = core
    led.orders[v.key] = v
    led._resident[v.key] = core
    if v.is_done:
        led._done[v.key] = core
    if led.on_revive is not None:
        led.on_revive(core)
    return core


def _latest(led: FoldState, kind: str, key: object, idx: int) -> bool:
    other = _find(led, kind, key)
    return other is not None and other.idx == idx


def prefetch(led: FoldState, env: Envelope, p: object) -> None:
    """Re-inflate the retired orders this event's handler may look up (see the module docstring)."""
    f = _PREFETCH.get(type(p))
    if f is not None:
        f(led, env, p)


def _pf_commission(led: FoldState, env: Envelope, p: ev.CommissionReport) -> None:
    if p.exec_id not in led._execs:
        load(led, "e", p.exec_id)


def _pf_status(led: FoldState, env: Envelope, p: ev.OrderStatus) -> None:
    pid = p.perm_id
    if pid > 0:
        core = led._by_perm.get(pid)
        if core is not None and core.boid == p.order_id and core.bcid == p.client_id and core.bsid == env.session_id:
            return  # broker.on_status takes this order as is (its fast path): it looks nothing else up
    _pf_broker(led, env, p)


def _pf_broker(led: FoldState, env: Envelope, p: ev.OrderStatus | ev.ExecDetails | ev.OpenOrder) -> None:
    sid = env.session_id
    pid = p.perm_id
    if pid > 0:
        if pid not in led._by_perm:
            load(led, "p", pid)
        if led._arch.accts:  # type: ignore[union-attr]
            acct = getattr(p, "account", "") or led._sess_account.get(sid, "")
            if acct and (acct, pid) not in led._perm_acct:
                load(led, "a", (acct, pid))
    oid = 0 if type(p) is ev.CompletedOrder else p.order_id
    if oid and oid != MAX_ORDER_ID:
        cid = p.client_id or led._sess_client.get(sid, 0)
        bk = (sid, cid, oid)
        if bk not in led._bind and bk not in led._tomb:
            load(led, "b", bk)
    if type(p) is ev.ExecDetails:
        _exec(led, p.exec_id)


def _pf_intent(led: FoldState, env: Envelope, p: ev.PlaceOrder | ev.ModifyOrder | ev.GovernorDecision) -> None:
    oid = p.order_id
    if oid and oid != MAX_ORDER_ID:
        sid = env.session_id
        bk = (sid, p.client_id or led._sess_client.get(sid, 0), oid)
        if bk not in led._bind and bk not in led._tomb:
            load(led, "b", bk)


def _pf_cancel(led: FoldState, env: Envelope, p: ev.CancelOrder) -> None:
    if p.perm_id > 0 and p.perm_id not in led._by_perm:
        load(led, "p", p.perm_id)
    _pf_intent(led, env, p)


def _pf_error(led: FoldState, env: Envelope, p: ev.Error) -> None:
    if p.req_id > 0:
        sid = env.session_id
        _bind(led, (sid, led._sess_client.get(sid, 0), p.req_id))


# payload type -> the prefetch of its handler (LedgerFold.apply looks it up itself: one dict look-up per event)
PREFETCH = _PREFETCH = {
    ev.CommissionReport: _pf_commission,
    ev.OrderStatus: _pf_status,
    ev.ExecDetails: _pf_broker,
    ev.OpenOrder: _pf_broker,
    ev.CompletedOrder: _pf_broker,
    ev.PlaceOrder: _pf_intent,
    ev.ModifyOrder: _pf_intent,
    ev.GovernorDecision: _pf_intent,
    ev.CancelOrder: _pf_cancel,
    ev.Error: _pf_error,
}


def _bind(led: FoldState, bk: tuple[str, int, int]) -> None:
    if bk not in led._bind and bk not in led._tomb:
        load(led, "b", bk)


def _exec(led: FoldState, eid: str) -> None:
    if not eid:
        return
    if eid not in led._execs:
        load(led, "e", eid)
    i = eid.rfind(".")
    if i >= 0:
        rev = eid[i + 1 :]
        if rev.isdigit() and int(rev) > 1:  # a correction: the earlier revisions' order (family_owner)
            family, width, top = eid[:i], len(rev), int(rev)
            for n in range(top - 1, max(top - 10, 0), -1):
                k = f"{family}.{n:0{width}d}"
                if k not in led._execs:
                    load(led, "e", k)
