"""NautilusTrader's Interactive Brokers adapter connects to the simulator, starts its engines, places an order.

Stretch of the paper-broker work: the adapter is a fourth, independent client. It runs from its own
environment (``.venv-nautilus``: ``pip install 'nautilus_trader==1.221.0' 'nautilus-ibapi==10.30.1' protobuf``,
the newest NautilusTrader for Python 3.11 with the ibapi it pins); without it the test is skipped with that
command. What it needs from a TWS beyond the order flow, and the simulator answers: contract details with
an ISIN in the secIdList (its equity symbology), the account summary values (its execution client waits
for them before the engines start), positions, open orders and executions for its reconciliation.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from replay.tws.simulator import Simulator

ROOT = Path(__file__).resolve().parents[3]
PYTHON = ROOT / ".venv-nautilus" / "bin" / "python"
SCRIPT = Path(__file__).with_name("nautilus_reference.py")
BUILD = "python3 -m venv .venv-nautilus && .venv-nautilus/bin/pip install 'nautilus_trader==1.221.0' " \
        "'nautilus-ibapi==10.30.1' protobuf"


def test_nautilus_trader_connects_starts_and_fills_an_order(caplog):
    if not PYTHON.exists():
        pytest.skip(f"no .venv-nautilus: build it with `{BUILD}`")
    caplog.set_level(logging.WARNING, logger="replay.tws.simulator")
    with Simulator(seed=2024, market_speed=10) as sim:
        done = subprocess.run([str(PYTHON), str(SCRIPT), str(sim.port)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        orders = sim.broker.all_orders()
    assert seen["started"] and seen["instrument"] == "AAPL.NASDAQ", seen
    assert seen["account"] == "INTERACTIVE_BROKERS-DU1234567", seen
    assert seen["events"][:3] == ["OrderSubmitted", "OrderAccepted", "OrderFilled"], seen
    [order] = orders
    assert (order.client_id, order.spec.orderType, order.status, order.filled) == (91, "MKT", "Filled", 10.0)
    assert seen["filled"] == [10.0, pytest.approx(order.avg_fill_price)]
    # every request the adapter made was answered (an unanswered one is logged at WARNING by the simulator)
    assert not [r for r in caplog.records if r.name == "replay.tws.simulator" and "not simulated" in r.getMessage()]
