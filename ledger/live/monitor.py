"""Event-driven order monitor: waits on the recorder's subscription, never sleep-polls.

A :class:`Watch` subscribes once to the recorder (``recorder.subscribe(cb(env, transitions,
decisions))``, called on the IB event loop after the fold and the governor ran) and wakes the
:class:`OrderMonitor`\\ s waiting on that loop (an ``asyncio.Event`` per monitor, set from the callback).

When is an order *settled*? Not at its first terminal status (the README ("Design"): fills are facts, statuses are
observations). Settled means all of:

* the ledger state is done (Filled, Cancelled, Rejected, Blocked, Inactive without whyHeld);
* the executions cover the filled quantity the broker reported (no ``fill_pending``);
* every counted execution has its commission report;
* and nothing about the order arrived for ``linger`` seconds (default 0.3) after that: late corrections
  (``.02`` executions) and late fills still land in the result. Anything later still reaches the ledger:
  the recorder keeps recording after the monitor returns.

A timeout never turns into a failure: an order that was never acknowledged is ``UNCONFIRMED`` (it may be
live), a PreSubmitted / Submitted order is ``LIVE``, a partly filled working order is
``PARTIALLY_FILLED``. The monitor never cancels anything by itself.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from ledger.core import statemachine as sm
from ledger.core.events import Envelope, GovernorDecision
from ledger.core.fold import LedgerFold, OrderView, Transition

DEFAULT_LINGER = 0.3

# Verdicts (MonitorResult.verdict). There is deliberately no FAILED.
FILLED = "FILLED"
BROKER_FILLED = "BROKER_FILLED"  # the broker says Filled; not every execution has arrived yet
PARTIALLY_FILLED = "PARTIALLY_FILLED"  # live with part filled
LIVE = "LIVE"  # PreSubmitted / Submitted: can execute at any moment
HELD = "HELD"  # Inactive with whyHeld (locate, child, trigger): a working order the broker holds; live
UNCONFIRMED = "UNCONFIRMED"  # sent, no acknowledgement yet: may be live
CANCELLED = "CANCELLED"  # possibly with fills (see filled)
REJECTED = "REJECTED"
INACTIVE = "INACTIVE"
BLOCKED = "BLOCKED"  # the governor refused it: never sent
UNKNOWN = "UNKNOWN"

VERDICT_OF_STATE: dict[str, str] = {
    sm.FILLED_STATE: FILLED,
    sm.AWAITING_EXECUTIONS: BROKER_FILLED,
    sm.PARTIALLY_FILLED: PARTIALLY_FILLED,
    sm.WORKING: LIVE,
    sm.UNCONFIRMED: UNCONFIRMED,
    sm.PENDING_SUBMIT_STATE: UNCONFIRMED,
    sm.CREATED: UNCONFIRMED,
    sm.CANCELLED_STATE: CANCELLED,
    sm.REJECTED: REJECTED,
    sm.INACTIVE_STATE: INACTIVE,
    sm.BLOCKED: BLOCKED,
    sm.UNKNOWN: UNKNOWN,
}



def verdict_of(v: OrderView) -> str:
    """The monitor's verdict for an order view; a held order is HELD (live), never INACTIVE."""
    if v.state == sm.INACTIVE_STATE and v.why_held:
        return HELD
    return VERDICT_OF_STATE.get(v.state, UNKNOWN)


Subscriber = Callable[[Envelope, list[Transition], list[GovernorDecision]], None]


class StatusEvent(msgspec.Struct, frozen=True, kw_only=True):
    recv_ns: int
    status: str
    ms: float  # since the monitor started


class FillInfo(msgspec.Struct, frozen=True, kw_only=True):
    exec_id: str
    shares: float
    price: float
    commission: float | None
    time: str = ""
    correction: bool = False
    superseded: bool = False
    late: bool = False


class TransitionInfo(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    recv_ns: int
    from_state: str
    to_state: str
    overlay: str
    broker_status: str
    critical: str
    cause: str


class AnomalyInfo(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    kind: str
    reason: str
    from_status: str = ""
    to_status: str = ""


class DecisionInfo(msgspec.Struct, frozen=True, kw_only=True):
    decision: str
    reason: str
    message: str = ""
    action: str = ""
    order_id: int = 0
    trading_state: str = ""
    seq: int = 0


class MonitorResult(msgspec.Struct, kw_only=True):
    """What happened to one order. Numbers are numbers (0.0, never null)."""

    verdict: str
    message: str
    order_id: int = 0
    perm_id: int = 0
    client_id: int = 0
    order_key: str = ""
    symbol: str = ""
    action: str = ""
    total_qty: float = 0.0
    order_ref: str = ""
    broker_status: str = ""  # last broker status ("" = none heard)
    state: str = ""  # ledger state
    overlay: str = ""
    is_live: bool = False
    is_filled: bool = False
    is_done: bool = False
    unconfirmed: bool = False
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    commission: float = 0.0
    broker_filled: float = 0.0
    fills: list[FillInfo] = msgspec.field(default_factory=list)
    statuses: list[StatusEvent] = msgspec.field(default_factory=list)
    transitions: list[TransitionInfo] = msgspec.field(default_factory=list)  # the critical ones
    anomalies: list[AnomalyInfo] = msgspec.field(default_factory=list)
    decisions: list[DecisionInfo] = msgspec.field(default_factory=list)
    timed_out: bool = False
    settled: bool = False
    elapsed_s: float = 0.0
    session_id: str = ""


def decision_info(d: GovernorDecision, seq: int = 0) -> DecisionInfo:
    return DecisionInfo(
        decision=d.decision, reason=d.reason, message=d.message, action=d.action, order_id=d.order_id,
        trading_state=d.trading_state, seq=seq,
    )


def settled(v: OrderView) -> bool:
    """Done, executions cover what the broker reported, every counted execution has its commission."""
    if not v.is_done or v.fill_pending or v.broker_filled > v.filled + 1e-9:
        return False
    return all(f.commission is not None for f in v.fills if not f.superseded)


class Watch:
    """One subscription to the recorder, fanned out to the monitors and hooks on the IB loop.

    The recorder calls subscribers on the IB loop's thread; if it ever calls from another thread the
    wake-up is handed to the loop with ``call_soon_threadsafe``.
    """

    def __init__(self, recorder: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.recorder = recorder
        self.loop = loop or asyncio.get_event_loop()
        self._thread = threading.get_ident()
        self._listeners: list[Subscriber] = []
        recorder.subscribe(self._on_event)

    def add(self, fn: Subscriber) -> Callable[[], None]:
        self._listeners.append(fn)

        def remove() -> None:
            if fn in self._listeners:
                self._listeners.remove(fn)

        return remove

    def _on_event(self, env: Envelope, transitions: list[Transition], decisions: list[GovernorDecision]) -> None:
        if threading.get_ident() != self._thread:
            self.loop.call_soon_threadsafe(self._dispatch, env, transitions, decisions)
        else:
            self._dispatch(env, transitions, decisions)

    def _dispatch(self, env: Envelope, transitions: list[Transition], decisions: list[GovernorDecision]) -> None:
        for fn in list(self._listeners):
            fn(env, transitions, decisions)


class OrderMonitor:
    """Follows one order (by client id + order id, then its ledger key) until it settles or times out.

    Start it *before* placing (so nothing is missed), bind it once the order id is known.
    """

    def __init__(self, watch: Watch, fold: LedgerFold, *, linger: float = DEFAULT_LINGER) -> None:
        self.watch = watch
        self.fold = fold
        self.linger = linger
        self.client_id = 0
        self.order_id = 0
        self.key = ""
        self.session_id = ""
        self.transitions: list[TransitionInfo] = []
        self.decisions: list[DecisionInfo] = []
        self._pending_transitions: list[tuple[Envelope, Transition]] = []
        self._wake = asyncio.Event()
        self._fp: tuple = ()
        self._n_decisions = 0
        self._t0 = time.monotonic()
        # the recorder's stamp source (a simulated session's clock), so status times share one time base
        clock = getattr(watch.recorder, "clock", None)
        self._t0_ns = clock()[0] if clock is not None else time.time_ns()
        self._remove = watch.add(self._on_event)

    def bind(self, client_id: int, order_id: int, session_id: str = "") -> None:
        """Follow the order (about to be) placed with this id; its ledger key is found once recorded."""
        self.client_id, self.order_id, self.session_id = client_id, order_id, session_id
        self._resolve_key()
        self._wake.set()

    def follow(self, view: OrderView) -> None:
        """Follow an order the ledger already knows (e.g. to cancel it)."""
        self.client_id, self.order_id, self.session_id, self.key = (
            view.client_id, view.order_id, view.session_id, view.key
        )
        self._wake.set()

    def _resolve_key(self) -> None:
        v = self.fold.order_for(self.client_id, self.order_id, self.session_id or None)
        if v is not None:
            self.key = v.key
            # transitions seen before the key was known (the place intent's own, typically)
            for env, t in self._pending_transitions:
                if t.key == self.key:
                    self._add_transition(env, t)
            self._pending_transitions.clear()

    def _add_transition(self, env: Envelope, t: Transition) -> None:
        if t.critical or t.to_state != t.from_state:
            self.transitions.append(
                TransitionInfo(
                    seq=env.seq, recv_ns=t.recv_ns, from_state=t.from_state, to_state=t.to_state,
                    overlay=t.overlay, broker_status=t.broker_status, critical=t.critical, cause=t.cause,
                )
            )

    def _on_event(self, env: Envelope, transitions: list[Transition], decisions: list[GovernorDecision]) -> None:
        for t in transitions:
            if self.key and t.key == self.key:
                self._add_transition(env, t)
                if t.to_state == sm.MERGED:  # our record was merged into an earlier one: follow it
                    self.key = ""
                    self._resolve_key()
            elif not self.key:
                self._pending_transitions.append((env, t))
        # every decision is also delivered as an event of its own (pre-checks, breakers, emergency
        # cancels): collect them from there, once
        p = env.payload
        if isinstance(p, GovernorDecision) and self._concerns(p):
            self.decisions.append(decision_info(p, env.seq))
        # wake the waiter only when something about *this* order changed (other orders' traffic must
        # not keep extending the linger)
        fp = self._fingerprint()
        if fp != self._fp or len(self.decisions) != self._n_decisions:
            self._fp = fp
            self._n_decisions = len(self.decisions)
            self._wake.set()

    def _fingerprint(self) -> tuple:
        v = self.view()
        if v is None:
            return ()
        commissions = sum(1 for f in v.fills if f.commission is not None)
        return (v.key, v.state, v.overlay, v.broker_status, v.filled, v.commission, v.broker_filled,
                len(v.fills), commissions, len(v.statuses), v.anomaly_count, len(v.errors))

    def _concerns(self, d: GovernorDecision) -> bool:
        if d.order_id == 0:
            return d.decision in ("EMERGENCY_CANCEL", "STATE_CHANGE")  # global: kill switch, halts
        return d.order_id == self.order_id and (d.client_id in (0, self.client_id))

    def view(self) -> OrderView | None:
        if self.key:
            v = self.fold.orders.get(self.key)
            if v is not None:
                return v
        if self.order_id:
            self._resolve_key()
            if self.key:
                return self.fold.orders.get(self.key)
        return None

    def close(self) -> None:
        self._remove()

    async def wait(self, timeout: float) -> MonitorResult:
        """Wait until the order settles (plus the linger) or ``timeout`` seconds pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        settle_at: float | None = None
        try:
            while True:
                self._wake.clear()
                v = self.view()
                now = loop.time()
                if v is not None and settled(v):
                    if settle_at is None:
                        settle_at = now + self.linger
                    elif now >= settle_at:
                        return self.result(timed_out=False, is_settled=True)
                else:
                    settle_at = None
                if now >= deadline:
                    if settle_at is not None:  # settled, the linger cut short by the timeout
                        return self.result(timed_out=False, is_settled=True)
                    return self.result(timed_out=True, is_settled=False)
                until = min(deadline, settle_at) if settle_at is not None else deadline
                try:
                    await asyncio.wait_for(self._wake.wait(), max(until - now, 0.0))
                except TimeoutError:
                    pass
                if settle_at is not None and self._wake.is_set():
                    settle_at = None  # something arrived during the linger: re-check, linger again
        finally:
            self.close()

    def result(self, *, timed_out: bool, is_settled: bool) -> MonitorResult:
        return build_result(
            self.view(), self.fold, transitions=self.transitions, decisions=self.decisions,
            timed_out=timed_out, is_settled=is_settled, elapsed_s=time.monotonic() - self._t0,
            t0_ns=self._t0_ns, order_id=self.order_id, client_id=self.client_id,
        )


def build_result(
    v: OrderView | None,
    fold: LedgerFold,
    *,
    transitions: list[TransitionInfo] | None = None,
    decisions: list[DecisionInfo] | None = None,
    timed_out: bool = False,
    is_settled: bool = False,
    elapsed_s: float = 0.0,
    t0_ns: int = 0,
    order_id: int = 0,
    client_id: int = 0,
) -> MonitorResult:
    critical = [t for t in (transitions or []) if t.critical]
    if v is None:
        return MonitorResult(
            verdict=UNCONFIRMED if order_id else UNKNOWN,
            message="no event about this order reached the ledger yet: it may still be live at the broker "
            "(not failed); check `ibledger orders`",
            order_id=order_id, client_id=client_id, transitions=critical, decisions=list(decisions or []),
            timed_out=timed_out, elapsed_s=round(elapsed_s, 3),
        )
    verdict = verdict_of(v)
    anomalies = [
        AnomalyInfo(seq=a.seq, kind=a.kind, reason=a.reason, from_status=a.from_status, to_status=a.to_status)
        for a in fold.anomalies
        if a.key == v.key
    ] if v.anomaly_count else []
    t0 = t0_ns or (v.statuses[0][0] if v.statuses else 0)
    statuses = [StatusEvent(recv_ns=ns, status=s, ms=round((ns - t0) / 1e6, 3)) for ns, s in v.statuses]
    fills = [
        FillInfo(exec_id=f.exec_id, shares=f.shares, price=f.price, commission=f.commission, time=f.time,
                 correction=f.correction, superseded=f.superseded, late=f.late)
        for f in v.fills
    ]
    return MonitorResult(
        verdict=verdict,
        message=describe(verdict, v, timed_out),
        order_id=v.order_id,
        perm_id=v.perm_id,
        client_id=v.client_id,
        order_key=v.key,
        symbol=v.symbol,
        action=v.action,
        total_qty=float(v.total_qty or 0.0),
        order_ref=v.order_ref,
        broker_status=v.broker_status,
        state=v.state,
        overlay=v.overlay,
        is_live=v.is_live,
        is_filled=v.state == sm.FILLED_STATE,
        is_done=v.is_done,
        unconfirmed=v.unconfirmed,
        filled=float(v.filled or 0.0),
        remaining=float(v.remaining or 0.0),
        avg_fill_price=float(v.avg_fill_price or 0.0),
        commission=float(v.commission or 0.0),
        broker_filled=float(v.broker_filled or 0.0),
        fills=fills,
        statuses=statuses,
        transitions=critical,
        anomalies=anomalies,
        decisions=list(decisions or []),
        timed_out=timed_out,
        settled=is_settled,
        elapsed_s=round(elapsed_s, 3),
        session_id=v.session_id,
    )


def describe(verdict: str, v: OrderView, timed_out: bool) -> str:
    qty = f"{v.filled:g}/{v.total_qty:g}"
    pending_cancel = " (cancel requested, not confirmed)" if v.overlay == sm.PENDING_CANCEL_OVERLAY else ""
    if verdict == LIVE:
        return (
            f"LIVE at the broker ({v.broker_status}){pending_cancel}: working, can fill at any moment. Not failed"
            + (" — still working when the wait ended; the recorder keeps following it" if timed_out else "")
        )
    if verdict == HELD:
        return (
            f"HELD by the broker ({v.why_held}): a live, working order that can still execute. Not failed, not "
            "inactive: do not place it again"
        )
    if verdict == PARTIALLY_FILLED:
        return f"PARTIALLY FILLED {qty} and still LIVE ({v.broker_status}){pending_cancel}; the rest can still fill"
    if verdict == UNCONFIRMED:
        return (
            "sent, not yet acknowledged by the broker: it may be live. Not failed; the recorder keeps "
            "following it (check `ibledger orders`)"
        )
    if verdict == FILLED:
        missing = sum(1 for f in v.fills if f.commission is None and not f.superseded)
        tail = f"; {missing} commission report(s) still outstanding" if missing else ""
        return f"FILLED {qty} @ {v.avg_fill_price:g}, commission {v.commission:g}{tail}"
    if verdict == BROKER_FILLED:
        return (
            f"the broker reports Filled ({v.broker_filled:g}) but executions cover {v.filled:g} so far: "
            "waiting for the executions (they are the facts)"
        )
    if verdict == CANCELLED:
        return f"CANCELLED with {qty} filled" if v.filled else "CANCELLED, nothing filled"
    if verdict == REJECTED:
        why = next((m for _, c, m in reversed(v.errors) if c == sm.ERR_REJECTED), "")
        return f"REJECTED by the broker{': ' + why if why else ''}"
    if verdict == INACTIVE:
        return f"INACTIVE at the broker{' (held: ' + v.why_held + ')' if v.why_held else ''}"
    if verdict == BLOCKED:
        return "BLOCKED by the governor: never sent"
    return f"state {v.state}, broker status {v.broker_status or 'none'}"
