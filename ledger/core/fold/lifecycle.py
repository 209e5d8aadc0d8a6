"""Session, connection and reconciliation events, and the checkpoints they trigger."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold.state import FoldState, record_anomaly
from ledger.core.fold.views import Transition


def on_session_started(led: FoldState, env: Envelope, p: ev.SessionStarted) -> list[Transition]:
    led._sess_client[env.session_id] = p.client_id
    if p.account:
        led._sess_account[env.session_id] = p.account
    return []


def on_connected(led: FoldState, env: Envelope, p: ev.Connected) -> list[Transition]:
    led._sess_client[env.session_id] = p.client_id
    led.connected = True
    led.broker_link = True
    led.needs_reconcile = True
    return []


def on_disconnected(led: FoldState, env: Envelope, p: ev.Disconnected) -> list[Transition]:
    led.connected = False
    if led.reconciling:
        led.reconciling = False  # interrupted: what it was fetching is unknown, not empty
    led.needs_reconcile = True
    return []


def on_reconcile_started(led: FoldState, env: Envelope, p: ev.ReconcileStarted) -> list[Transition]:
    led.reconciling = True
    return []


def on_reconcile_ended(led: FoldState, env: Envelope, p: ev.ReconcileEnded) -> list[Transition]:
    led.reconciling = False
    led.reconcile_unknown = list(p.unknown)
    if p.ok and not p.unknown:
        led.needs_reconcile = False
        checkpoint(led, env, "after reconciliation")
    return []


def on_session_ended(led: FoldState, env: Envelope, p: ev.SessionEnded) -> list[Transition]:
    checkpoint(led, env, "at session end")
    for eid in led._pending_comm:
        if eid not in led._pending_flagged:
            led._pending_flagged[eid] = True
            record_anomaly(led, env, None, "unknown_commission", f"commission report for execution {eid} never seen")
    led.connected = False
    led.reconciling = False
    return []


def on_recorder_fault(led: FoldState, env: Envelope, p: ev.RecorderFault) -> list[Transition]:
    record_anomaly(led, env, None, "recorder_fault", f"{p.message} (lost {p.lost})")
    return []


def checkpoint(led: FoldState, env: Envelope, when: str) -> None:
    for core in list(led._suspects.values()):
        v = core.view
        if v.fill_pending and core.mismatch_flagged != v.broker_filled:
            core.mismatch_flagged = v.broker_filled
            record_anomaly(
                led,
                env,
                core,
                "fill_status_mismatch",
                f"broker reports {v.broker_filled:g} filled ({v.broker_status}), executions cover "
                f"{v.filled:g} {when}",
                v.broker_status,
                "",
            )
