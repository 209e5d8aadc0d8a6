"""The governed ``placeOrder``: what ``Recorder.attach(ib, store, governor=...)`` adds to a user's ``IB``.

With a governor, every order the strategy sends through ``ib.placeOrder`` (new or modify) is checked
on the ledger's state *before* anything leaves the process, the way :mod:`ledger.live.placement` does for the
CLI: pre-check, then the intent, then the decision (caused by the intent), all recorded. A BLOCK raises
:class:`OrderBlocked` from ``placeOrder`` (nothing sent: the strategy's code sees an exception, not a
silently dropped order); an ALLOW sends the order unchanged.

``enforce=False`` is shadow mode (the config's ``state.enforce = false``, so a replay decides the same):
a BLOCK is recorded with action ``shadow_place`` / ``shadow_modify`` (the fold does not take the order
for blocked) and every order is sent -- to see what a new set of limits would refuse before turning it on.

The guard also carries out what the governor decides on its own: an ``EMERGENCY_CANCEL`` (a circuit
breaker with ``breakers.emergency_cancel``, or ``Engine.halt(..., cancel_all=True)``) cancels the order
through the same ``IB``. A cancel is a kill switch and must not wait behind the client's own request
throttle (ib_insync / ib_async queue requests beyond 45 a second): it is sent at once, ahead of the
queue, and placements still waiting in that queue (never sent) are dropped and recorded as a
``cancel_order`` with reason ``DROPPED_UNSENT``; a governed ``reqGlobalCancel`` drops them too (they
would otherwise go out after it and be live).

An intent the caller recorded itself (``rec.record(PlaceOrder(...))``, as :mod:`ledger.live.placement` does
after its own pre-check) is taken as decided: the hook does not check it a second time.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec

from ledger.core import events as ev
from ledger.core.governor_config import GovernorConfig, default_config, load_config
from ledger.ib.client_hooks import client_id
from ledger.ib.request_queue import send_ahead, take_unsent_placements
from ledger.ib.trades import library_order, mark_cancelled_locally

log = logging.getLogger("ledger.live.guard")

__all__ = ["DROPPED_UNSENT", "KillSwitch", "OrderBlocked", "resolve_governor"]

DROPPED_UNSENT = "DROPPED_UNSENT"

class OrderBlocked(RuntimeError):
    """The governor refused an order before it was sent. ``decision`` is the recorded decision."""

    def __init__(self, decision: ev.GovernorDecision) -> None:
        self.decision = decision
        self.reason = decision.reason
        self.message = decision.message
        self.limit = decision.details.get("limit")
        self.value = decision.details.get("value")
        what = f"{decision.action} order {decision.order_id} {decision.symbol}".strip()
        super().__init__(f"BLOCKED by the governor ({decision.reason}): {decision.message} [{what}; nothing was sent]")


def resolve_governor(spec: Any, enforce: bool = True) -> GovernorConfig | None:
    """``None`` (no governor), ``"default"`` (built-in limits), a path to a TOML file, or a config;
    ``enforce=False`` turns it into shadow mode."""
    if spec is None:
        return None
    if isinstance(spec, GovernorConfig):
        cfg = spec
    elif isinstance(spec, str) and spec == "default":
        cfg = default_config()
    elif isinstance(spec, str | Path):
        cfg = load_config(spec)  # GovernorConfigError names the file, key and reason
    else:
        raise TypeError(f"governor must be None, 'default', a path or a GovernorConfig, got {type(spec).__name__}")
    if not enforce and cfg.state.enforce:
        cfg = msgspec.structs.replace(cfg, state=msgspec.structs.replace(cfg.state, enforce=False))
    return cfg


class KillSwitch:
    """Carries out a governed recorder's ``EMERGENCY_CANCEL`` decisions through its ``IB``.

    Decided while a broker callback is being recorded (a breaker), the cancels run on the event loop
    right after the library handled that callback; decided by the caller (``engine.halt``), at once.
    Placements still queued in the client are dropped first (never sent), then each order is cancelled
    ahead of the client's request queue; an order this client cannot cancel by id (another client's, a
    manual TWS order) is reached by one global cancel."""

    def __init__(self, recorder: Any) -> None:
        self.rec = recorder
        self.pending: list[tuple[str, ev.GovernorDecision]] = []
        self.dropped: set[tuple[int, int]] = set()  # (client id, order id) dropped before sending

    def on_event(self, env: ev.Envelope, transitions: list, decisions: list) -> None:
        """Recorder subscriber: collect emergency cancels as they are recorded."""
        p = env.payload
        if type(p) is not ev.GovernorDecision or p.decision != "EMERGENCY_CANCEL":
            return
        self.pending.append((f"{env.session_id}#{env.seq}", p))
        rec = self.rec
        loop = rec.loop
        if rec.in_callback and loop is not None and not loop.is_closed():
            loop.call_soon(self.run)  # inside a callback: once the library has handled it
        else:
            self.run()

    def run(self) -> None:
        pending, self.pending = self.pending, []
        rec = self.rec
        if not pending or rec.closed:
            return
        ib = rec.ib
        cid = client_id(rec.ib)
        self.drop_unsent()
        global_sent = False
        for ref, d in pending:
            view = rec.fold.order_by_perm(d.perm_id) if d.perm_id else None
            if view is None and d.order_id:
                view = rec.fold.order_for(d.client_id or cid, d.order_id)
            if view is not None and (view.is_done or (view.client_id, view.order_id) in self.dropped):
                continue
            try:
                with rec.intent_context(causation_id=ref):
                    if view is not None and view.client_id == cid and view.order_id:
                        ib.cancelOrder(library_order(ib, view))  # the recorder's hook sends it ahead
                    elif not global_sent:
                        global_sent = True
                        send_ahead(ib.client, ib.reqGlobalCancel)
            except Exception as exc:  # noqa: BLE001 - e.g. not connected: the decision stays recorded
                log.error("emergency cancel %s could not be sent: %s", d.message, exc)

    def drop_unsent(self) -> None:
        """Drop the placements still waiting in the client's request queue; each is recorded as a
        ``cancel_order`` (reason ``DROPPED_UNSENT``) with its decision, and its ``Trade`` shows Cancelled."""
        rec = self.rec
        ib = rec.ib
        cid = client_id(rec.ib)
        for oid in take_unsent_placements(ib.client):
            log.warning("kill switch: order %s:%s was still queued in the client: dropped, never sent", cid, oid)
            intent = ev.CancelOrder(order_id=oid, client_id=cid, reason=f"{DROPPED_UNSENT}: still queued in the "
                                    "client when the kill switch ran; never sent to the broker")
            try:
                rec.intents.govern(intent)
            except Exception:  # noqa: BLE001 - recorded as a fault by the recorder; the drop stands
                log.exception("could not record the dropped placement %s:%s", cid, oid)
            rec.intents.forget((cid, oid))
            self.dropped.add((cid, oid))
            mark_cancelled_locally(ib, oid, "dropped by the kill switch before it was sent")
