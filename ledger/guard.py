"""The governed ``placeOrder``: what ``Recorder.attach(ib, store, governor=...)`` adds to a user's ``IB``.

With a governor, every order the strategy sends through ``ib.placeOrder`` (new or modify) is checked
on the ledger's state *before* anything leaves the process, the way :mod:`ledger.placement` does for the
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
queue, and placements still waiting in that queue (never sent) are dropped and recorded as blocked
with reason ``DROPPED_UNSENT``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec

from ledger import events as ev
from ledger.governor_config import GovernorConfig, default_config, load_config

log = logging.getLogger("ledger.guard")

__all__ = ["DROPPED_UNSENT", "OrderBlocked", "resolve_governor", "send_ahead", "take_unsent_placements"]

DROPPED_UNSENT = "DROPPED_UNSENT"
_PLACE_ORDER_MSG = "3"  # the TWS API message id of PLACE_ORDER (first field of a queued request)


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


def take_unsent_placements(client: Any) -> list[int]:
    """Remove PLACE_ORDER requests still waiting in the client's throttle queue; return their order ids.

    Both libraries queue serialized requests (``client._msgQ``, fields joined by NUL) when more than
    ``MaxRequests`` went out within ``RequestsInterval``: those are not sent yet, so dropping them sends
    nothing. Other queued requests (market data, queries) stay queued in their order."""
    q = getattr(client, "_msgQ", None)
    if not q:
        return []
    dropped: list[int] = []
    keep = []
    for msg in list(q):
        fields = msg.split("\0")
        if fields and fields[0] == _PLACE_ORDER_MSG and len(fields) > 1:
            try:
                dropped.append(int(fields[1]))
                continue
            except ValueError:
                pass
        keep.append(msg)
    q.clear()
    q.extend(keep)
    return dropped


def send_ahead(client: Any, send: Any) -> Any:
    """Run ``send()`` (a library cancel call) so its request leaves now, ahead of the throttle queue.

    The queue is set aside while the call runs with throttling off, then put back as it was (it keeps
    draining at the library's pace)."""
    q = getattr(client, "_msgQ", None)
    if q is None or not hasattr(client, "MaxRequests"):
        return send()
    waiting = list(q)
    q.clear()
    had = client.__dict__.get("MaxRequests", None)
    client.MaxRequests = 0  # 0 = no throttling, for this one call
    try:
        return send()
    finally:
        if had is None:
            del client.MaxRequests
        else:
            client.MaxRequests = had
        q.extend(waiting)
