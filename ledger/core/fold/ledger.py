"""``LedgerFold``: the state the pieces share, the one type-indexed dispatch table, and the read API."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold.broker import on_completed, on_error, on_open, on_status
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
from ledger.core.fold.views import OrderView, Snapshot, Transition

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
        try:
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
            core = self._bind.get((session_id, client_id, order_id))
            return core.view if core is not None else None
        for sid in reversed(self._sessions):
            core = self._bind.get((sid, client_id, order_id))
            if core is not None:
                return core.view
        return None


    def order_of_exec(self, exec_id: str) -> OrderView | None:
        """The order an execution (and so its commission report) belongs to, as the fold decided it.

        Readers of the fold (the projector) ask here instead of keeping an index of their own, so a
        colliding or re-delivered execId is attributed the same way everywhere.
        """
        core = self._execs.get(exec_id)
        return core.view if core is not None else None


    def order_by_perm(self, perm_id: int) -> OrderView | None:
        core = self._by_perm.get(perm_id)
        return core.view if core is not None else None


    def open_orders(self) -> list[OrderView]:
        """Orders not done (live, unconfirmed, pending submit, awaiting executions...), by activation."""
        return [c.view for c in self._active.values()]


    @property
    def pending_commissions(self) -> list[str]:
        """execIds of commission reports still waiting for their execution."""
        return list(self._pending_comm)


    def snapshot_struct(self) -> Snapshot:
        return Snapshot(
            orders=list(self.orders.values()),
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

