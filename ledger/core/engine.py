"""The one code path that folds events and runs the governor -- live, in replay and in tests.

``Engine`` = a :class:`~ledger.core.fold.LedgerFold` + a :class:`~ledger.core.governor.Governor` over it. Both are
pure: the engine imports neither an IB library nor the store, reads no clock, and has no replay mode.

Protocol for a live caller (the recorder) -- the replayer relies on it to re-check every decision::

    d = engine.pre_check(intent, now_ns)        # 1. decide on the state *before* the intent
    i_env = envelope(sid, seq, intent, recv_ns=now_ns)                       # 2. record the intent ...
    d_env = envelope(sid, seq + 1, d, recv_ns=now_ns,                        #    ... then its decision
                     causation_id=event_id(i_env))                           #    (one batch, in this order)
    for env in (i_env, d_env):
        for r in engine.process(env):           # 3. process both; record what process returns
            append(envelope(sid, next_seq, r, recv_ns=env.recv_ns, causation_id=event_id(env)))
    if d.decision == "ALLOW": send it to IB    # 4. a BLOCKed intent stays recorded, never sent

* ``now_ns`` is the intent envelope's ``recv_ns`` (the decision also carries it as ``details["at_ns"]``).
* Every envelope the recorder appends (callbacks, intents, decisions) goes through :meth:`Engine.process`,
  in seq order; the decisions it returns (circuit breakers: ``STATE_CHANGE``; ``EMERGENCY_CANCEL``) are
  recorded right away with ``causation_id = event_id(env)`` and processed too (a no-op for the governor,
  which applied them when it made them). On ``EMERGENCY_CANCEL`` the caller cancels that order (and
  records the ``cancel_order`` intent through the same protocol).
* Operator actions: :meth:`Engine.halt` / :meth:`Engine.resume` / :meth:`Engine.reduce` return decisions
  to record the same way; they take effect at once and again, idempotently, when processed -- which is
  how a replay learns them.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.core import statemachine as sm
from ledger.core.events import Envelope, GovernorDecision, OrderStatus
from ledger.core.fold import LedgerFold, OrderView, Transition
from ledger.core.governor import (
    HALTED,
    MANUAL_HALT,
    MANUAL_REDUCING,
    MANUAL_RESUME,
    OBSERVERS,
    REDUCING,
    Governor,
    Intent,
)
from ledger.core.governor_config import GovernorConfig

__all__ = ["GOVERNOR_KINDS", "Engine", "event_id"]

# The payload kinds Governor.observe reacts to by kind (its OBSERVERS table: prices, multipliers, link state,
# faults, sessions, decisions, and orderStatus, which matters there only when Inactive); any other event
# reaches it only through transitions or anomalies (see Engine.step).
GOVERNOR_KINDS: frozenset[type] = frozenset(OBSERVERS)
INACTIVE = sm.INACTIVE


def event_id(env: Envelope) -> str:
    """The id other events refer to (``causation_id`` / ``correlation_id``): ``"<session_id>#<seq>"``."""
    return f"{env.session_id}#{env.seq}"


class Engine:
    """Fold + governor. ``process`` every envelope in order; ``pre_check`` every intent before recording it."""

    def __init__(
        self, config: GovernorConfig | None = None, *, compact: bool = False, timeline: bool = True, keep: int = 20_000
    ) -> None:
        """``compact`` / ``timeline``: see :class:`~ledger.core.fold.LedgerFold` (a replay retires finished
        orders and keeps no status timeline; a live recorder keeps everything for its monitors)."""
        self.fold = LedgerFold(compact=compact, timeline=timeline, keep=keep)
        self.governor = Governor(config, self.fold)
        # bound once: step runs per event
        self._apply = self.fold.apply
        self._observe = self.governor.observe_as
        self.events = 0
        self._anomalies = 0  # fold anomalies the governor has seen
        self._session = ""  # session of the last event the governor observed
        # set by a governed recorder: operator decisions (halt / resume / reduce) are recorded through it
        # (and emergency cancels carried out) the moment they are made; without one the caller records them
        self.sink: Callable[[list[GovernorDecision]], None] | None = None

    @property
    def config(self) -> GovernorConfig:
        return self.governor.config

    @property
    def trading_state(self) -> str:
        return self.governor.trading_state

    @property
    def recorder_fault(self) -> bool:
        return self.governor.recorder_fault

    def process(self, env: Envelope) -> list[GovernorDecision]:
        """Fold ``env``, then let the governor react; returns the new decisions to record (often none)."""
        return self.step(env)[1]

    def step(self, env: Envelope) -> tuple[list[Transition], list[GovernorDecision]]:
        """:meth:`process`, also returning the fold's transitions (the replayer compares them).

        One type-indexed dispatch in the fold; the governor observes an event only when it can act on it:
        the fold reported transitions or new anomalies (breakers, open orders), the session changed, or
        the payload is of a kind ``Governor.observe`` reads (:data:`GOVERNOR_KINDS`; an ``orderStatus``
        only when it is ``Inactive``). Everything else (commission reports, intents, positions, repeated
        statuses -- about half of a session) would be a no-op there.
        """
        self.events += 1
        transitions = self._apply(env)
        p = env.payload
        observer = OBSERVERS.get(type(p))
        n = len(self.fold.anomalies)
        if (
            transitions
            or n != self._anomalies
            or env.session_id != self._session
            or (observer is not None and (type(p) is not OrderStatus or p.status == INACTIVE))
        ):
            self._anomalies = n
            self._session = env.session_id
            return transitions, self._observe(env, transitions, observer)
        return transitions, []

    def pre_check(self, intent: Intent, now_ns: int, session_id: str | None = None) -> GovernorDecision:
        """ALLOW / BLOCK for a place, modify or cancel intent at event time ``now_ns``. Pure.
        ``session_id`` defaults to the session of the last processed event (the recorder's own)."""
        return self.governor.pre_check(intent, now_ns, session_id)

    def open_orders(self) -> list[OrderView]:
        """Orders not done, as the governor counts them for ``max_open_orders``."""
        return self.governor.open_orders()

    # --- operator actions (record what they return) ------------------------------------------------

    def halt(self, reason: str, now_ns: int = 0, cancel_all: bool = False) -> list[GovernorDecision]:
        """Kill switch: HALTED (no new orders, no modifies); with ``cancel_all`` an EMERGENCY_CANCEL per
        order that may be live. ``now_ns`` is accepted for symmetry; the decision's time is its envelope's."""
        return self._operator(self.governor.set_state(HALTED, MANUAL_HALT, reason, cancel_all))

    def resume(self, reason: str, now_ns: int = 0) -> list[GovernorDecision]:
        """Back to ACTIVE; clears a recorder fault and the breaker windows."""
        return self._operator(self.governor.set_state("ACTIVE", MANUAL_RESUME, reason))

    def reduce(self, reason: str, now_ns: int = 0) -> list[GovernorDecision]:
        """REDUCING: only orders that reduce a position are allowed."""
        return self._operator(self.governor.set_state(REDUCING, MANUAL_REDUCING, reason))

    def _operator(self, decisions: list[GovernorDecision]) -> list[GovernorDecision]:
        if self.sink is not None:
            self.sink(decisions)
        return decisions
