"""Intents are recorded once, in their context, and -- governed -- decided before they are recorded and sent.

The recording function here appends to a list and runs the real engine, the way the recorder does
(the recorder's own path is covered with the real client in test_recorder / test_governed_attach).
"""

from __future__ import annotations

import threading

import pytest

from ledger.core import events as ev
from ledger.core.engine import Engine, event_id
from ledger.core.governor_config import parse_config
from ledger.live.errors import RecorderError
from ledger.live.guard import OrderBlocked
from ledger.live.intents import Intents

SID = "5f0c3a1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
T0 = 1_700_000_000_000_000_000


class Log:
    """Records envelopes in seq order through a real engine; ``fail`` makes every record fail (lost)."""

    def __init__(self, config: str = "", enforce: bool = True) -> None:
        text = config + ("" if enforce else "\n[state]\nenforce = false\n")
        self.engine = Engine(parse_config(text) if text else None)
        self.envs: list[ev.Envelope] = []
        self.fail = False
        self.ns = T0
        self.record(ev.SessionStarted(library="test", library_version="0", client_id=1))

    def stamp(self) -> tuple[int, int]:
        self.ns += 1_000_000
        return self.ns, self.ns

    def record(self, payload, *, correlation_id=None, causation_id=None, recv_ns=None, mono_ns=None):
        if self.fail:
            return None
        env = ev.envelope(SID, len(self.envs) + 1, payload, recv_ns=recv_ns or self.stamp()[0],
                          correlation_id=correlation_id, causation_id=causation_id)
        self.envs.append(env)
        self.engine.process(env)
        return env

    def intents(self, governed: bool = True) -> Intents:
        return Intents(record=self.record, stamp=self.stamp, lock=threading.RLock(), engine=self.engine,
                       client_id=lambda: 1, fault=lambda: None, governed=governed)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.envs[1:]]


def _place(oid: int, qty: float = 10) -> ev.PlaceOrder:
    return ev.PlaceOrder(order_id=oid, client_id=1, symbol="AAPL", action="BUY", total_qty=qty, order_type="LMT",
                         lmt_price=100.0)


def test_governed_the_decision_comes_first_and_is_caused_by_the_intent():
    log = Log()
    it = log.intents()
    assert it.place(_place(1), (1, 1)) is None
    intent, decision = log.envs[1:]
    assert (intent.kind, decision.kind, decision.payload.decision) == ("place_order", "governor_decision", "ALLOW")
    assert decision.causation_id == event_id(intent) and decision.recv_ns == intent.recv_ns
    assert it.last == intent and (1, 1) in it.placed


def test_a_block_is_refused_and_the_order_not_remembered_as_placed():
    log = Log("[limits]\nmax_qty = 5\n")
    it = log.intents()
    refusal = it.place(_place(2, qty=50), (1, 2))
    assert isinstance(refusal, OrderBlocked) and refusal.reason == "MAX_QTY" and refusal.limit == 5
    assert (1, 2) not in it.placed and log.kinds() == ["place_order", "governor_decision"]


def test_shadow_mode_records_the_block_and_sends():
    log = Log("[limits]\nmax_qty = 5\n", enforce=False)
    it = log.intents()
    assert it.place(_place(3, qty=50), (1, 3)) is None
    assert log.envs[-1].payload.action == "shadow_place" and (1, 3) in it.placed


def test_an_intent_the_caller_recorded_is_not_recorded_or_decided_again():
    log = Log()
    it = log.intents()
    p = _place(4)
    env = log.record(p)
    it.recorded_by_caller(p, env)
    assert it.place(p, (1, 4)) is None
    assert log.kinds() == ["place_order"] and it.last == env and it.prerecorded == {}


def test_intents_carry_the_context_of_the_block_they_are_recorded_in():
    log = Log()
    it = log.intents(governed=False)
    with it.context("corr-1", "cause-1"):
        it.cancel(ev.CancelOrder(order_id=4, client_id=1))
    it.record(ev.GlobalCancel())
    assert [(e.correlation_id, e.causation_id) for e in log.envs[1:]] == [("corr-1", "cause-1"), (None, None)]


def test_an_unrecordable_governed_intent_raises_and_an_unchecked_one_is_refused():
    log = Log()
    it = log.intents()
    log.fail = True
    with pytest.raises(RecorderError, match="could not be recorded"):
        it.govern(_place(5))
    refusal = it.unchecked_place(ValueError("bad contract"), 6, "AAPL", enforce=True)
    assert isinstance(refusal, OrderBlocked) and refusal.reason == "RECORDER_FAULT"
    assert it.unchecked_place(ValueError("bad contract"), 6, "AAPL", enforce=False) is None
