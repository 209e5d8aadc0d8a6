"""The session's connection state (ledger.live.connection) through a real client on the simulator's wire:
when ``session_started`` is written, the held handshake, and ``connected`` / ``disconnected`` alternating
across a server drop and a reconnect."""

from __future__ import annotations

import pytest

from ledger.core import events as ev
from ledger.ib.library import IB
from ledger.live.recorder import Recorder
from tests.support.recording import stored, wait_for

pytestmark = pytest.mark.ibclient

CONNECTION_KINDS = ("session_started", "connected", "disconnected", "session_ended")


def _connection_kinds(envs: list[ev.Envelope]) -> list[str]:
    return [e.kind for e in envs if e.kind in CONNECTION_KINDS]


def test_attached_before_connect_the_handshake_waits_for_the_account(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    state = rec.connection
    assert (state.started, state.open, state.connects, state.pending) == (False, False, 0, None)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=31, timeout=3)
        assert (state.started, state.open, state.connects, state.pending) == (True, True, 1, None)
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    started, connected = envs[0], envs[1]
    assert (started.kind, connected.kind, envs[2].kind) == ("session_started", "connected", "reconcile_started")
    # the ack was held until managedAccounts named the account; both facts carry the handshake's stamp
    assert started.payload.account == "DU1234567" and started.payload.client_id == 31
    assert started.recv_ns == connected.recv_ns and started.mono_ns == connected.mono_ns
    assert _connection_kinds(envs) == ["session_started", "connected", "disconnected", "session_ended"]


def test_something_recorded_before_any_connection_starts_the_session_with_zeros(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    try:
        rec.record(ev.PositionEnd())
        assert rec.connection.started and not rec.connection.open
        ib.connect("127.0.0.1", sim.port, clientId=32, timeout=3)
        assert rec.connection.connects == 1 and rec.connection.pending is None  # recorded at once, not held
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    first = envs[0].payload
    assert isinstance(first, ev.SessionStarted)
    assert (first.client_id, first.port, first.server_version, first.account) == (0, 0, 0, "")
    assert [e.kind for e in envs[:3]] == ["session_started", "position_end", "connected"]


def test_connected_and_disconnected_alternate_across_a_drop_and_a_reconnect(sim, sqlite_url):
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=33, timeout=3)
        assert sim.drop_connections() == 1
        assert wait_for(ib, lambda: not rec.connection.open)
        assert not rec.fold.connected  # the fold saw the drop
        ib.disconnect()  # the client's own disconnect after the drop: no second `disconnected`
        ib.connect("127.0.0.1", sim.port, clientId=33, timeout=3)
        assert rec.connection.open and rec.connection.connects == 2
        assert wait_for(ib, lambda: rec.reconciler.runs >= 2 and not rec.reconciling)  # a reconnect reconciles
        ib.disconnect()
        ib.disconnect()  # nothing open: nothing recorded
        assert not rec.connection.open
    finally:
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    assert _connection_kinds(envs) == [
        "session_started", "connected", "disconnected", "connected", "disconnected", "session_ended",
    ]
    reasons = [e.payload.reason for e in envs if e.kind == "disconnected"]
    assert "closed" in reasons[0].lower() and reasons[1] == "client disconnect"
    assert rec.connects == 2 and not rec.fold.connected


def test_attached_to_a_connected_client_the_session_starts_at_once(sim, sqlite_url):
    ib = IB()
    ib.connect("127.0.0.1", sim.port, clientId=34, timeout=3)
    try:
        rec = Recorder.attach(ib, sqlite_url)
        assert rec.connection.started and rec.connection.open and rec.connection.connects == 1
        rec.flush()
    finally:
        ib.disconnect()
        rec.close()
    envs = stored(sqlite_url, rec.session_id)
    assert envs[0].payload.client_id == 34 and envs[0].payload.account == "DU1234567"
    assert _connection_kinds(envs) == ["session_started", "connected", "disconnected", "session_ended"]
