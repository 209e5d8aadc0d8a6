"""A fold's whole state as msgspec bytes (no pickle): what a projection stores to resume in a new process.

Each order is encoded once, as the :class:`OrderState` it is (families as indexes into its fills); the
shared tables (bindings, permIds, execIds, open and suspect orders) refer to orders by their ``idx``, in
their dict order, so a loaded fold iterates exactly as the saved one did and folds on to the same bytes
(``tests/core/test_fold_checkpoint.py`` cuts every pinned stream in two around a checkpoint).

A compact fold is checkpointed when its archive is persistent: the bytes then hold only the orders in memory
(open and recently finished), the compact tables (finished orders in retirement order, dropped bindings) and
the archive's index (:class:`~ledger.core.fold.archive.ArchiveState`); the retired orders stay in the
archive's log, which the loader reopens at the length recorded here.
"""

from __future__ import annotations

from collections import OrderedDict

import msgspec
from msgspec import Struct

from ledger.core import events as ev
from ledger.core.fold.archive import ArchiveState
from ledger.core.fold.state import FoldState, OrderState
from ledger.core.fold.views import Anomaly, PositionView

FORMAT = 2


class _Compact(Struct, array_like=True):
    keep: int
    timeline: bool
    done: list[int]  # finished orders in memory, oldest first (the next to retire)
    tomb: list[tuple[str, int, int]]
    archive: ArchiveState


class _Saved(Struct, array_like=True):
    format: int
    orders: list[OrderState]  # in the orders dict's order; families as ``fams`` indexes
    others: list[OrderState]  # orders no longer in ``orders`` that tables still refer to (merged away, deleted)
    anomalies: list[Anomaly]
    positions: list[PositionView]
    flags: tuple[bool, bool, bool, bool]  # connected, broker_link, reconciling, needs_reconcile
    reconcile_unknown: list[str]
    last_ns: int
    redelivered: int
    active: list[int]
    by_perm: list[tuple[int, int]]
    bind: list[tuple[tuple[str, int, int], int]]
    sessions: list[str]
    hw: list[tuple[str, int]]
    cur_sid: str | None
    cur_hw: int
    sess_client: list[tuple[str, int]]
    sess_account: list[tuple[str, str]]
    perm_acct: list[tuple[tuple[str, int], int]]
    what_ifs: list[tuple[str, int, int]]
    what_if: list[tuple[str, int, int]]
    execs: list[tuple[str, int]]
    pending_comm: list[tuple[str, ev.CommissionReport]]
    pending_flagged: list[str]
    suspects: list[int]
    merged: dict[str, str]
    n: int
    compact: _Compact | None = None


_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(_Saved)


def dump(led: FoldState) -> bytes:
    """The fold's state as bytes (a full fold, or a compact one with a persistent archive, which is synced)."""
    arch = led._arch
    compact = None
    if arch is not None:
        if not arch.stable:
            raise ValueError("a compact fold with a temporary archive cannot be checkpointed")
        arch.sync()
        compact = _Compact(keep=led._keep, timeline=led.timeline, done=[c.idx for c in led._done.values()],
                           tomb=list(led._tomb), archive=arch.snapshot())
    cores: dict[int, OrderState] = {}  # idx -> order, every order any table refers to
    for table in (led._active, led._suspects, led._resident, led._done):
        for c in table.values():
            cores[c.idx] = c
    for c in led._by_perm.values():
        cores[c.idx] = c
    for c in led._bind.values():
        cores[c.idx] = c
    for c in led._execs.values():
        cores[c.idx] = c
    for c in led._perm_acct.values():
        cores[c.idx] = c
    listed = {id(v) for v in led.orders.values()}
    by_view = {id(c.view): c for c in cores.values()}
    orders = []
    for v in led.orders.values():
        c = by_view.get(id(v))
        if c is None:  # no id leads to it any more (its permId and ids were taken over): a view only
            c = OrderState(view=v, idx=-1 - len(orders))
        orders.append(c)
    others = [c for c in cores.values() if id(c.view) not in listed]
    saved_fams: list[tuple[OrderState, dict]] = []
    for c in orders + others:
        fills = c.view.fills
        pos = {id(f): i for i, f in enumerate(fills)}
        c.fams = [pos[id(f)] for f in c.families.values()]
        saved_fams.append((c, c.families))
        c.families = {}
    try:
        blob = _enc.encode(
            _Saved(
                format=FORMAT,
                orders=orders,
                others=others,
                anomalies=led.anomalies,
                positions=list(led.positions.values()),
                flags=(led.connected, led.broker_link, led.reconciling, led.needs_reconcile),
                reconcile_unknown=led.reconcile_unknown,
                last_ns=led.last_ns,
                redelivered=led.redelivered,
                active=[c.idx for c in led._active.values()],
                by_perm=[(k, c.idx) for k, c in led._by_perm.items()],
                bind=[(k, c.idx) for k, c in led._bind.items()],
                sessions=list(led._sessions),
                hw=list(led._hw.items()),
                cur_sid=led._cur_sid,
                cur_hw=led._cur_hw,
                sess_client=list(led._sess_client.items()),
                sess_account=list(led._sess_account.items()),
                perm_acct=[(k, c.idx) for k, c in led._perm_acct.items()],
                what_ifs=led.what_ifs,
                what_if=list(led._what_if),
                execs=[(k, c.idx) for k, c in led._execs.items()],
                pending_comm=list(led._pending_comm.items()),
                pending_flagged=list(led._pending_flagged),
                suspects=[c.idx for c in led._suspects.values()],
                merged=led.merged,
                n=led._n,
                compact=compact,
            )
        )
    finally:
        for c, fams in saved_fams:
            c.families = fams
            c.fams = None
    return blob


def load(blob: bytes, into: FoldState) -> None:
    """Restore ``into`` from :func:`dump` bytes; raises ``ValueError`` on a bad blob. ``into`` is a fresh
    fold: a full one for a full checkpoint; for a compact one, a fold opened on the same persistent archive
    (cut back to the log length the checkpoint recorded), with the same window and timeline setting."""
    try:
        s = _dec.decode(blob)
    except msgspec.DecodeError as exc:
        raise ValueError(f"fold checkpoint unreadable: {exc}") from exc
    if s.format != FORMAT:
        raise ValueError(f"fold checkpoint format {s.format}, this code reads {FORMAT}")
    led = into
    arch = led._arch
    if (s.compact is None) != (arch is None):
        raise ValueError("fold checkpoint is of a " + ("full" if s.compact is None else "compact") + " fold")
    if s.compact is not None and arch is not None:
        if not arch.stable or arch.count:
            raise ValueError("a compact fold checkpoint loads into a fresh fold on its persistent archive")
        if (s.compact.keep, s.compact.timeline) != (led._keep, led.timeline):
            raise ValueError(f"fold checkpoint keeps {s.compact.keep} finished orders (timeline "
                             f"{s.compact.timeline}), this fold {led._keep} ({led.timeline})")
        arch.restore(s.compact.archive)
    by_idx: dict[int, OrderState] = {}
    for c in s.orders:
        by_idx[c.idx] = c
        led.orders[c.view.key] = c.view
    for c in s.others:
        by_idx[c.idx] = c
    for c in by_idx.values():
        fills = c.view.fills
        c.families = {fills[i].family: fills[i] for i in c.fams or ()}
        c.fams = None
    led.anomalies = s.anomalies
    led.positions = {p.key: p for p in s.positions}
    led.connected, led.broker_link, led.reconciling, led.needs_reconcile = s.flags
    led.reconcile_unknown = s.reconcile_unknown
    led.last_ns = s.last_ns
    led.redelivered = s.redelivered
    led._active = {by_idx[i].view.key: by_idx[i] for i in s.active}
    led._by_perm = {k: by_idx[i] for k, i in s.by_perm}
    led._bind = {k: by_idx[i] for k, i in s.bind}
    led._sessions = dict.fromkeys(s.sessions)
    led._hw = dict(s.hw)
    led._cur_sid = s.cur_sid
    led._cur_hw = s.cur_hw
    led._sess_client = dict(s.sess_client)
    led._sess_account = dict(s.sess_account)
    led._perm_acct = {k: by_idx[i] for k, i in s.perm_acct}
    led.what_ifs = s.what_ifs
    led._what_if = dict.fromkeys(s.what_if)
    led._execs = {k: by_idx[i] for k, i in s.execs}
    led._pending_comm = dict(s.pending_comm)
    led._pending_flagged = dict.fromkeys(s.pending_flagged, True)
    led._suspects = {by_idx[i].view.key: by_idx[i] for i in s.suspects}
    led.merged = s.merged
    led._n = s.n
    if s.compact is not None:
        led._resident = {c.view.key: c for c in s.orders}
        led._done = OrderedDict((by_idx[i].view.key, by_idx[i]) for i in s.compact.done)
        led._tomb = dict.fromkeys(s.compact.tomb)
