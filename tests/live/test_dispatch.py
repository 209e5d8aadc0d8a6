"""Engine step and subscriber delivery: failures are contained and counted, order is kept."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.engine import Engine
from ledger.core.governor_config import default_config
from ledger.live.dispatch import deliver, engine_step


def env(seq: int, payload: ev.Event) -> ev.Envelope:
    return ev.envelope("s", seq, payload, recv_ns=seq)


def test_the_real_engine_steps_and_a_failing_engine_gives_none():
    engine = Engine(default_config())
    got = engine_step(engine, env(1, ev.SessionStarted(library="x", library_version="1")))
    assert got is not None and engine.events == 1
    assert engine_step(object(), env(2, ev.SessionEnded())) is None  # no step(): logged, not raised


def test_every_subscriber_sees_every_notice_in_order_despite_one_that_raises():
    seen: list[tuple[str, int]] = []

    def bad(e, t, d):
        raise ValueError("boom")

    def good(e, t, d):
        seen.append(("good", e.seq))

    first = env(1, ev.SessionStarted(library="x", library_version="1"))
    notices = [(first, [], []), (env(2, ev.SessionEnded()), [], [])]
    assert deliver([bad, good], notices) == 2
    assert seen == [("good", 1), ("good", 2)]
    assert deliver([], notices) == 0
