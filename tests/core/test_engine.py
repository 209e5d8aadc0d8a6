"""Engine = fold + governor: one code path; deterministic; never crashes on any stream."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings

from ledger.core import events as ev
from ledger.core.engine import Engine, event_id
from ledger.core.events import Envelope, GovernorDecision
from ledger.core.fold import fold
from ledger.core.governor_config import parse_config
from replay.strategies import event_streams, garbage_streams
from replay.synthetic import synthetic_session

_INTENTS = (ev.PlaceOrder, ev.ModifyOrder, ev.CancelOrder)
# tight limits so that streams exercise blocks and breakers
TIGHT = parse_config(
    "[limits]\nmax_qty = 100\nmax_notional = 20000\nmax_open_orders = 3\nmax_orders_per_sec = 2\n"
    "max_orders_per_min = 10\n[breakers]\nmax_rejections = 1\nmax_errors = 2\nmax_anomalies = 2\n"
    "emergency_cancel = true\n"
)


def run(envs: list[Envelope], config=None) -> tuple[Engine, list[tuple[int, GovernorDecision]]]:
    """Process a stream the way the recorder does, pre-checking every intent on the state before it."""
    e = Engine(config)
    out: list[tuple[int, GovernorDecision]] = []
    for env in envs:
        if isinstance(env.payload, _INTENTS):
            out.append((env.seq, e.pre_check(env.payload, env.recv_ns)))
        out += [(env.seq, d) for d in e.process(env)]
    return e, out


def test_event_id_is_session_and_seq() -> None:
    env = ev.envelope("abc", 7, ev.OpenOrderEnd(), recv_ns=1)
    assert event_id(env) == "abc#7"


def test_engine_fold_is_the_plain_fold() -> None:
    envs = list(synthetic_session(11, 80))
    e = Engine()
    for env in envs:
        e.process(env)
    assert e.fold.snapshot() == fold(envs).snapshot()
    assert e.events == len(envs)


def test_step_returns_transitions_and_decisions() -> None:
    e = Engine(parse_config("[breakers]\nmax_errors = 1\n"))
    tr, out = e.step(
        ev.envelope("s", 1, ev.PlaceOrder(order_id=1, client_id=1, symbol="X", action="BUY", total_qty=1), recv_ns=1)
    )
    assert [t.to_state for t in tr] == ["Unconfirmed"] and out == []
    tr, out = e.step(ev.envelope("s", 2, ev.Error(req_id=1, code=103), recv_ns=2))
    assert tr == [] and [d.reason for d in out] == ["BREAKER_ERRORS"]


def test_open_orders_track_the_fold() -> None:
    envs = list(synthetic_session(5, 120))
    e = Engine()
    for i, env in enumerate(envs):
        e.process(env)
        if i % 50 == 0:
            assert [o.key for o in e.open_orders()] == [o.key for o in e.fold.open_orders()]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_realistic_streams_same_stream_same_decisions(envs: list[Envelope]) -> None:
    for config in (None, TIGHT):
        e1, d1 = run(envs, config)
        e2, d2 = run(envs, config)
        assert d1 == d2
        assert e1.fold.snapshot() == e2.fold.snapshot()
        assert e1.trading_state == e2.trading_state
        for _seq, d in d1:  # every decision survives the codecs
            assert msgspec.json.decode(msgspec.json.encode(d), type=GovernorDecision) == d


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage_streams())
def test_governor_never_crashes_on_garbage(envs: list[Envelope]) -> None:
    _, d1 = run(envs, TIGHT)
    _, d2 = run(envs, TIGHT)
    assert d1 == d2
    for _seq, d in d1:
        msgspec.json.decode(msgspec.json.encode(d), type=GovernorDecision)


def test_synthetic_sessions_are_deterministic_and_exercise_the_governor() -> None:
    a = list(synthetic_session(3, 300))
    assert a == list(synthetic_session(3, 300))
    assert a != list(synthetic_session(4, 300))
    reasons = {e.payload.reason for e in a if isinstance(e.payload, GovernorDecision)}
    assert {"OK", "MAX_NOTIONAL"} <= reasons
    seqs = [e.seq for e in a]
    assert seqs == list(range(1, len(a) + 1))
    # every intent is followed by its decision, caused by it
    for i, env in enumerate(a):
        if isinstance(env.payload, _INTENTS):
            nxt = a[i + 1]
            assert isinstance(nxt.payload, GovernorDecision) and nxt.causation_id == event_id(env)


def test_synthetic_session_under_tight_limits_halts_and_resumes() -> None:
    envs = list(synthetic_session(8, 300, config=TIGHT))
    reasons = [e.payload.reason for e in envs if isinstance(e.payload, GovernorDecision)]
    assert any(r.startswith("BREAKER_") for r in reasons)
    assert "MANUAL_RESUME" in reasons and "EMERGENCY_CANCEL" in {
        e.payload.decision for e in envs if isinstance(e.payload, GovernorDecision)
    }
    # replaying it under the same config reproduces every derived decision
    e = Engine(TIGHT)
    made = []
    for env in envs:
        made += e.process(env)
    recorded_derived = [
        env.payload
        for env in envs
        if isinstance(env.payload, GovernorDecision) and env.payload.reason.startswith("BREAKER_")
    ]
    assert [d for d in made if d.reason.startswith("BREAKER_")] == recorded_derived
