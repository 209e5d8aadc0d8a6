"""The strategy's intents (place, modify, cancel, global cancel) as a recorder records them.

Three rules, kept here together:

* **once**: an intent the caller recorded itself (``rec.record(PlaceOrder(...))``, e.g. after its own
  pre-check) and then sends through the hooked ``ib.placeOrder`` is not recorded a second time: the hook
  finds it by (client id, order id) and only makes it ``last_intent``;
* **in context**: intents recorded inside ``intent_context(...)`` carry its correlation / causation ids
  (e.g. the governor decision an emergency cancel carries out);
* **decided first** (governed): the governor's pre-check runs on the state before the intent, then the
  intent and its decision (caused by the intent) are recorded under one stamp; a BLOCK that is not shadow
  mode refuses the placement (:class:`~ledger.live.guard.OrderBlocked`), and an order that could not be
  checked is refused too (fail closed).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from ledger.core import events as ev
from ledger.core.engine import event_id
from ledger.core.events import Envelope
from ledger.live.errors import RecorderError
from ledger.live.guard import OrderBlocked

__all__ = ["Intents"]


class _Record(Protocol):
    def __call__(
        self, payload: ev.Event, *, correlation_id: str | None = None, causation_id: str | None = None,
        recv_ns: int | None = None, mono_ns: int | None = None,
    ) -> Envelope | None: ...


class Intents:
    """One recorder's intents: what was placed, what the caller recorded itself, the current context."""

    def __init__(
        self,
        *,
        record: _Record,
        stamp: Callable[[], tuple[int, int]],
        lock: threading.RLock,
        engine: Any,
        client_id: Callable[[], int],
        fault: Callable[[], BaseException | None],
        governed: bool,
    ) -> None:
        self._record = record
        self._stamp = stamp
        self._lock = lock
        self._engine = engine
        self._client_id = client_id
        self._fault = fault
        self.governed = governed
        self.placed: dict[tuple[int, int], None] = {}  # (client id, order id) placed through this recorder
        self.prerecorded: dict[tuple, Envelope] = {}  # intents recorded by rec.record(), not yet sent
        self.last: Envelope | None = None  # envelope of the latest intent recorded by a hook
        self._local = threading.local()

    def key(self, payload: ev.Event) -> tuple | None:
        """What identifies an intent between ``rec.record()`` and the hook that sends it."""
        if isinstance(payload, ev.PlaceOrder):  # ModifyOrder included
            return ("place", payload.client_id or self._client_id(), payload.order_id)
        if isinstance(payload, ev.CancelOrder):
            return ("cancel", payload.client_id or self._client_id(), payload.order_id)
        if isinstance(payload, ev.GlobalCancel):
            return ("global",)
        return None

    def recorded_by_caller(self, payload: ev.Event, env: Envelope) -> None:
        """``rec.record(payload)`` just recorded it: the hook that sends it will not record it again."""
        key = self.key(payload)
        if key is not None:
            self.prerecorded[key] = env

    @contextlib.contextmanager
    def context(self, correlation_id: str | None, causation_id: str | None) -> Iterator[None]:
        """Intents recorded in this thread inside the block carry these ids."""
        loc = self._local
        prev = getattr(loc, "ctx", None)
        loc.ctx = (correlation_id, causation_id)
        try:
            yield
        finally:
            loc.ctx = prev

    def _ids(self) -> tuple[str | None, str | None]:
        ctx = getattr(self._local, "ctx", None)
        return ctx if ctx is not None else (None, None)

    def record(self, payload: ev.Event) -> None:
        """Record an intent once (unless the caller did already), in the current context."""
        if self.prerecorded:
            pre = self.prerecorded.pop(self.key(payload), None)
            if pre is not None:  # already recorded through rec.record() just before sending
                self.last = pre
                return
        correlation_id, causation_id = self._ids()
        env = self._record(payload, correlation_id=correlation_id, causation_id=causation_id)
        if env is not None:
            self.last = env

    def govern(self, payload: ev.Event) -> ev.GovernorDecision:
        """The engine's protocol for one intent: pre-check on the state before it, record the intent,
        then its decision (caused by the intent), one stamp for both. Returns the decision."""
        correlation_id, causation_id = self._ids()
        with self._lock:
            recv_ns, mono_ns = self._stamp()
            decision = self._engine.pre_check(payload, recv_ns)
            i_env = self._record(payload, correlation_id=correlation_id, causation_id=causation_id,
                                 recv_ns=recv_ns, mono_ns=mono_ns)
            if i_env is None:
                raise RecorderError(f"the intent could not be recorded: {self._fault()}")
            self.last = i_env
            self._record(decision, correlation_id=correlation_id, causation_id=event_id(i_env),
                         recv_ns=recv_ns, mono_ns=mono_ns)
        return decision

    def _decided_already(self, payload: ev.Event) -> bool:
        return not self.governed or self.key(payload) in self.prerecorded

    def place(self, payload: ev.PlaceOrder, key: tuple[int, int]) -> BaseException | None:
        """A placement about to be sent: governed, decided first (a BLOCK, not shadow, is refused: the
        exception to raise); else recorded. A sent placement is remembered (a later one is a modify)."""
        if self._decided_already(payload):
            self.record(payload)
        else:
            decision = self.govern(payload)
            if decision.decision == "BLOCK" and not decision.action.startswith("shadow_"):
                return OrderBlocked(decision)
        self.placed[key] = None
        return None

    def unchecked_place(self, exc: BaseException, order_id: int, symbol: str, enforce: bool) -> BaseException | None:
        """A placement that could not be checked and recorded: governed and enforcing, it is not sent."""
        if not (self.governed and enforce):
            return None
        return OrderBlocked(ev.GovernorDecision(
            decision="BLOCK", reason="RECORDER_FAULT", action="place", order_id=order_id, symbol=symbol,
            message=f"the order could not be checked and recorded ({type(exc).__name__}: {exc})",
        ))  # fmt: skip

    def cancel(self, payload: ev.CancelOrder) -> None:
        """A cancel about to be sent: governed, decided (always allowed) and recorded; else recorded."""
        if self._decided_already(payload):
            self.record(payload)
        else:
            self.govern(payload)

    def forget(self, key: tuple[int, int]) -> None:
        """The placement never left the client (dropped by the kill switch)."""
        self.placed.pop(key, None)
