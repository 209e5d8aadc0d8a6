"""Handing each recorded envelope to the engine and, after the outermost record call, to subscribers.

Both are isolated from recording on purpose: an engine that raises leaves the fact recorded (the
interpretation can be redone on replay), and a subscriber that raises neither stops recording nor
keeps the other subscribers from seeing the event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ledger.core.events import Envelope

log = logging.getLogger(__name__)

Subscriber = Callable[[Envelope, list, list], None]
Notice = tuple[Envelope, list, list]  # (envelope, transitions, decisions) as the engine produced them


def engine_step(engine: Any, env: Envelope) -> tuple[list, list] | None:
    """The engine's (transitions, decisions) for ``env``; None when the engine failed (logged)."""
    try:
        transitions, decisions = engine.step(env)
    except Exception:  # noqa: BLE001 - interpretation never stops recording
        log.exception("engine failed on %s seq %s (recorded anyway)", env.kind, env.seq)
        return None
    return list(transitions), list(decisions)


def deliver(subscribers: Sequence[Subscriber], notices: Sequence[Notice]) -> int:
    """Tell every subscriber about every notice, in order; returns how many calls failed (logged)."""
    failed = 0
    for env, transitions, decisions in notices:
        for fn in subscribers:
            try:
                fn(env, transitions, decisions)
            except Exception:  # noqa: BLE001
                failed += 1
                log.exception("recorder subscriber %r failed on %s seq %s", fn, env.kind, env.seq)
    return failed
