"""``LedgerFold``: the state the pieces share, the one type-indexed dispatch table, and the read API."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import msgspec

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold.archive import Archive
from ledger.core.fold.broker import on_completed, on_error, on_open, on_status
from ledger.core.fold.checkpoint import dump as dump_state
from ledger.core.fold.checkpoint import load as load_state
from ledger.core.fold.compact import PREFETCH, bound, decode_view, find_view, retire_done, retired
from ledger.core.fold.fills import on_commission, on_exec
from ledger.core.fold.intents import on_cancel, on_decision, on_global_cancel, on_modify, on_place
from ledger.core.fold.lifecycle import (
    on_connected,
    on_disconnected,
    on_reconcile_ended,
    on_reconcile_started,
    on_recorder_fault,
    on_session_ended,
    on_session_started,
)
from ledger.core.fold.positions import on_position
from ledger.core.fold.state import FoldState, record_anomaly
from ledger.core.fold.views import OrderView, Snapshot, Transition, order_values

_snapshot_encoder = msgspec.msgpack.Encoder()


class LedgerFold(FoldState):
    """Incremental fold of envelopes into order views (see the ``ledger.core.fold`` docstring for the rules)."""

    def apply(self, env: Envelope) -> list[Transition]:
        """Apply one envelope; return the ledger-state transitions it caused (often none)."""
        sid = env.session_id
        seq = env.seq
        if sid == self._cur_sid:
            if seq <= self._cur_hw:
                self.redelivered += 1
                return []
        else:
            hw = self._hw.get(sid)
            if hw is not None and seq <= hw:
                self.redelivered += 1
                return []
            if self._cur_sid is not None:
                self._hw[self._cur_sid] = self._cur_hw
            if sid not in self._sessions:
                self._sessions[sid] = None
            self._cur_sid = sid
        self._cur_hw = seq
        ns = env.recv_ns
        if ns > self.last_ns:
            self.last_ns = ns
        p = env.payload
        handler = HANDLERS.get(type(p))
        if handler is None:
            return []
        arch = self._arch
        try:
            if arch is not None:
                if arch.count:
                    pf = PREFETCH.get(type(p))
                    if pf is not None:
                        pf(self, env, p)
                out = handler(self, env, p)
                if len(self._done) > self._keep:
                    retire_done(self)
                return out
            return handler(self, env, p)
        except Exception as exc:  # never crash on input: record the bug as a fact
            record_anomaly(self, env, None, "internal_error", f"{type(exc).__name__}: {exc}")
            return []


    def apply_all(self, envs: Iterable[Envelope]) -> LedgerFold:
        apply = self.apply
        for env in envs:
            apply(env)
        return self


    def order_for(self, client_id: int, order_id: int, session_id: str | None = None) -> OrderView | None:
        """The order bound to (client_id, order_id) in ``session_id`` (default: the latest binding)."""
        if session_id is not None:
            core = bound(self, (session_id, client_id, order_id))
            return core.view if core is not None else None
        for sid in reversed(self._sessions):
            core = bound(self, (sid, client_id, order_id))
            if core is not None:
                return core.view
        return None



    def open_order_for(self, client_id: int, order_id: int, session_id: str) -> OrderView | None:
        """The order bound to (client_id, order_id) in ``session_id`` if it is in memory and not done, else
        None: what the governor's pre-check needs. A retired order is done, so the archive is never read
        (and nothing is re-inflated) for a new order's id -- the common case."""
        core = self._bind.get((session_id, client_id, order_id))
        if core is None or core.view.is_done:
            return None
        return core.view

    def order_of_exec(self, exec_id: str) -> OrderView | None:
        """The order an execution (and so its commission report) belongs to, as the fold decided it.

        Readers of the fold (the projector) ask here instead of keeping an index of their own, so a
        colliding or re-delivered execId is attributed the same way everywhere.
        """
        core = self._execs.get(exec_id)
        if core is None:
            core = retired(self, "e", exec_id)
        return core.view if core is not None else None


    def order_by_perm(self, perm_id: int) -> OrderView | None:
        core = self._by_perm.get(perm_id)
        if core is None:
            core = retired(self, "p", perm_id)
        return core.view if core is not None else None

    def order(self, key: str) -> OrderView | None:
        """The order with this key, resident or retired (a retired one is a decoded copy)."""
        v = self.orders.get(key)
        if v is None and self._arch is not None and self._arch.count:
            return find_view(self, key)
        return v

    def iter_orders(self) -> Iterator[OrderView]:
        """Every order, in order of creation (what ``orders.values()`` holds in a full fold). A compact
        fold decodes its retired orders from the archive on the way (copies: reading them changes nothing)."""
        arch = self._arch
        if arch is None or not arch.count:
            yield from self.orders.values()
            return
        for kind, idx, obj in self._walk():
            yield obj if kind else decode_view(arch, idx)

    def iter_order_rows(self, chunk: int = 4096) -> Iterator[tuple[int, bytes]]:
        """``(n, bytes)`` per ``chunk`` orders: the msgpack encoding of ``[order_values(o) ...]`` without the
        array header -- what the replay digest hashes, read straight from the archive for retired orders."""
        arch = self._arch
        enc = _snapshot_encoder.encode
        if arch is None or not arch.count:
            orders = list(self.orders.values())
            for i in range(0, len(orders), chunk):
                part = orders[i : i + chunk]
                yield len(part), b"".join(enc(order_values(o)) for o in part)
            return
        parts: list[bytes] = []
        run: list[int] = []
        n = 0
        for kind, idx, obj in self._walk():
            if kind:
                if run:
                    parts.append(arch.rows(run))
                    run = []
                parts.append(enc(order_values(obj)))
            else:
                run.append(idx)
            n += 1
            if n == chunk:
                if run:
                    parts.append(arch.rows(run))
                    run = []
                yield n, b"".join(parts)
                parts, n = [], 0
        if run:
            parts.append(arch.rows(run))
        if n:
            yield n, b"".join(parts)

    def _walk(self) -> Iterator[tuple[bool, int, Any]]:
        """(resident?, idx, view) for every order by idx: archived ones (view None) merged with resident."""
        arch = self._arch
        assert arch is not None
        res = sorted((c.idx, c.view) for c in self._resident.values() if self.orders.get(c.view.key) is c.view)
        off = arch.off
        j = 0
        nres = len(res)
        for idx in range(1, len(off)):
            if j < nres and res[j][0] == idx:
                yield True, idx, res[j][1]
                j += 1
            elif off[idx] >= 0:
                yield False, idx, None

    def checkpoint(self) -> bytes:
        """The state as msgspec bytes (:mod:`ledger.core.fold.checkpoint`): a full fold's whole state, or a
        compact fold's resident state and archive index (its archive must be persistent; it is synced)."""
        return dump_state(self)

    @classmethod
    def from_checkpoint(cls, blob: bytes, archive: Archive | None = None, *, keep: int = 20_000,
                        timeline: bool = True) -> LedgerFold:
        """A fold restored from :meth:`checkpoint` bytes (``ValueError`` if they are not one): a full fold, or
        with ``archive`` (the persistent archive it was checkpointed with, reopened at the log length the
        checkpoint recorded) a compact one, with the ``keep`` and ``timeline`` it was made with."""
        led = cls(keep=keep, timeline=timeline, archive=archive)
        load_state(blob, led)
        return led

    def close(self) -> None:
        """Release a compact fold's temporary file (also released when the fold is garbage-collected)."""
        if self._arch is not None:
            self._arch.close()


    def open_orders(self) -> list[OrderView]:
        """Orders not done (live, unconfirmed, pending submit, awaiting executions...), by activation."""
        return [c.view for c in self._active.values()]


    @property
    def pending_commissions(self) -> list[str]:
        """execIds of commission reports still waiting for their execution."""
        return list(self._pending_comm)


    def snapshot_struct(self) -> Snapshot:
        return Snapshot(
            orders=list(self.iter_orders()),
            anomalies=self.anomalies,
            positions=list(self.positions.values()),
            connected=self.connected,
            broker_link=self.broker_link,
            reconciling=self.reconciling,
            needs_reconcile=self.needs_reconcile,
            reconcile_unknown=self.reconcile_unknown,
            pending_commissions=list(self._pending_comm),
            merged=self.merged,
            last_ns=self.last_ns,
        )


    def snapshot(self) -> bytes:
        """Canonical msgpack projection: two folds of one stream give byte-identical bytes."""
        return _snapshot_encoder.encode(self.snapshot_struct())


def fold(envs: Iterable[Envelope]) -> LedgerFold:
    """Fold a whole stream from scratch."""
    return LedgerFold().apply_all(envs)


# The one type-indexed dispatch table: payload type -> handler(fold, env, payload).
HANDLERS: dict[type, Callable[[FoldState, Envelope, Any], list[Transition]]] = {
    ev.OrderStatus: on_status,
    ev.ExecDetails: on_exec,
    ev.CommissionReport: on_commission,
    ev.OpenOrder: on_open,
    ev.CompletedOrder: on_completed,
    ev.PlaceOrder: on_place,
    ev.ModifyOrder: on_modify,
    ev.CancelOrder: on_cancel,
    ev.GlobalCancel: on_global_cancel,
    ev.GovernorDecision: on_decision,
    ev.Error: on_error,
    ev.Position: on_position,
    ev.SessionStarted: on_session_started,
    ev.SessionEnded: on_session_ended,
    ev.Connected: on_connected,
    ev.Disconnected: on_disconnected,
    ev.ReconcileStarted: on_reconcile_started,
    ev.ReconcileEnded: on_reconcile_ended,
    ev.RecorderFault: on_recorder_fault,
}

