"""Connection-level behaviour: handshake speed, trusted peers, client ids, drops, routing, CLI."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from ledger.ib.library import IB, LIBRARY_NAME, LimitOrder, Stock
from replay.tws.scenarios import Match, Scenario, Step
from replay.tws.simulator import Simulator
from tests.support.simulator import (
    Recorder,
    connect,
    connected,
    ibledger_command,
    simulate_cli,
    wait_events,
    wait_until,
)


def test_connect_is_fast_and_negotiates_176(sim: Simulator):
    ib = IB()
    started = time.monotonic()
    ib.connect("127.0.0.1", sim.port, clientId=11, timeout=3)
    elapsed = time.monotonic() - started
    try:
        assert elapsed < 1.0, f"{LIBRARY_NAME} connect took {elapsed:.3f}s"
        assert ib.isConnected()
        assert ib.client.serverVersion() == 176
        assert ib.managedAccounts() == ["DU1234567"]
        assert sim.connected_clients() == [11]
        # every startup request was answered (none waited for its timeout)
        answered = {int(f[0]) for d, cid, f in sim.wire_log if d == "out" and cid == 11}
        assert {15, 9, 62, 53, 102, 54, 74, 55} <= answered
    finally:
        ib.disconnect()


def test_several_accounts_each_get_account_updates_multi_end():
    with Simulator(accounts=("DU111", "DU222")) as sim:
        ib = IB()
        started = time.monotonic()
        ib.connect("127.0.0.1", sim.port, clientId=1, timeout=3)
        try:
            assert time.monotonic() - started < 1.0
            assert ib.managedAccounts() == ["DU111", "DU222"]
            ends = [f for d, _c, f in sim.wire_log if d == "out" and f[0] == "74"]
            assert len(ends) == 2
        finally:
            ib.disconnect()


def test_untrusted_peer_is_reset_and_client_reports_it():
    # the client connects from 127.0.0.1, which this simulator does not trust
    with Simulator(trusted_ips=("127.0.0.2",)) as sim:
        ib = IB()
        errors: list[str] = []
        ib.client.apiError += errors.append
        with pytest.raises((TimeoutError, ConnectionError)):
            ib.connect("127.0.0.1", sim.port, clientId=1, timeout=0.5)
        assert any("reset by peer" in e.lower() for e in errors), errors
        assert sim.refused_peers == ["127.0.0.1"]
        assert not ib.isConnected()


def test_default_trust_refuses_127_0_0_2_with_a_reset(sim: Simulator):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", sim.port))
        with pytest.raises(ConnectionResetError):
            s.sendall(b"API\0" + struct.pack(">I", 9) + b"v157..176")
            time.sleep(0.1)
            s.sendall(b"x")
            if not s.recv(100):
                raise AssertionError("closed without a reset")
    finally:
        s.close()
    assert sim.refused_peers == ["127.0.0.2"]


def test_client_id_in_use_is_refused(sim: Simulator):
    with connected(sim.port, client_id=1) as first:
        second = IB()
        with pytest.raises((TimeoutError, ConnectionError)):
            second.connect("127.0.0.1", sim.port, clientId=1, timeout=0.5)
        codes = [f[3] for d, _c, f in sim.wire_log if d == "out" and f[0] == "4"]
        assert "326" in codes
        assert first.isConnected() and sim.connected_clients() == [1]


def test_drop_connections_disconnects_the_client(sim: Simulator):
    ib = connect(sim.port, client_id=1)
    closed: list[bool] = []
    ib.disconnectedEvent += lambda: closed.append(True)
    assert sim.drop_connections() == 1
    assert wait_until(ib, lambda: not ib.isConnected())
    assert closed == [True]
    ib.connect("127.0.0.1", sim.port, clientId=1, timeout=2)
    assert ib.isConnected()
    ib.disconnect()


def test_messages_are_routed_to_the_placing_client(sim: Simulator):
    with connected(sim.port, client_id=1) as a, connected(sim.port, client_id=2) as b:
        rec_a, rec_b = Recorder(a), Recorder(b)
        ta = a.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0, orderRef="fill_simple"))
        tb = b.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 2, 1.0, orderRef="stuck_presubmitted"))
        wait_events(a, rec_a, 5)
        wait_events(b, rec_b, 2)
        assert {x[0] for x in rec_a.raw_of("status")} == {ta.order.orderId}
        assert [e[0] for e in rec_b.of()] == ["open", "status"]
        assert {x[8] for x in rec_b.raw_of("status")} == {2}
        assert tb.orderStatus.status == "PreSubmitted"


def test_scenario_chosen_by_symbol_action_quantity():
    custom = Scenario(
        name="tsla_sell_7_rejected",
        match=Match(symbol="TSLA", action="SELL", quantity=7),
        steps=(
            Step("error", code=201, msg="Order rejected - reason:no shares"),
            Step("status", status="Inactive"),
        ),
    )
    with Simulator(scenarios=[custom]) as sim:
        with connected(sim.port) as ib:
            rec = Recorder(ib)
            ib.placeOrder(Stock("TSLA", "SMART", "USD"), LimitOrder("SELL", 7, 200.0))
            ib.placeOrder(Stock("TSLA", "SMART", "USD"), LimitOrder("SELL", 8, 200.0))  # default
            wait_events(ib, rec, 4)
            events = rec.of()
            assert ("error", 201) in events and ("status", "Inactive", 0.0, 7.0, 0.0, 0.0, "") in events
            assert ("status", "Submitted", 0.0, 8.0, 0.0, 0.0, "") in events
            assert [o.scenario for o in sim.broker.all_orders()] == ["tsla_sell_7_rejected", "default"]


def test_time_scale_and_custom_scenarios_dir(tmp_path: Path):
    (tmp_path / "mine.toml").write_text(
        '[[scenario]]\nname = "slow_ack"\n[[scenario.steps]]\ntype = "status"\nstatus = "Submitted"\nafter_ms = 5000\n'
    )
    with Simulator(scenarios_dir=tmp_path, time_scale=0.01) as sim:
        assert sim.scenario_names() == ["slow_ack"]
        with connected(sim.port) as ib:
            rec = Recorder(ib)
            ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0, orderRef="slow_ack"))
            assert wait_events(ib, rec, 1, timeout=1.0) == [("status", "Submitted", 0.0, 1.0, 0.0, 0.0, "")]


def test_cli_simulate_serves_and_stops_on_sigint():
    with simulate_cli() as (proc, port):
        ib = connect(port)
        trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0, orderRef="fill_simple"))
        assert wait_until(ib, lambda: trade.orderStatus.status == "Filled")
        ib.disconnect()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(5) == 0


def test_cli_reports_bad_scenario_file(tmp_path: Path):
    (tmp_path / "bad.toml").write_text('[[scenario]]\nname = "x"\n[[scenario.steps]]\ntype = "teleport"\n')
    res = subprocess.run(
        [*ibledger_command(), "simulate", "--port", "0", "--scenarios", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "300"},
    )
    assert res.returncode != 0
    assert "bad.toml" in res.stderr and "steps[0]" in res.stderr and "teleport" in res.stderr
