"""The official ibapi client (``ibapi-stable`` 10.50, its own environment) runs the reference strategy.

``tests/run`` builds ``.venv-ibapi``; without it these tests are skipped with the command to build it.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from replay.tws.simulator import Simulator

pytestmark = pytest.mark.ibapi

ROOT = Path(__file__).resolve().parents[3]
PYTHON = ROOT / ".venv-ibapi" / "bin" / "python"


@pytest.fixture(scope="module")
def ibapi_python() -> Path:
    if not PYTHON.exists():
        pytest.skip("no .venv-ibapi: build it with `bash tests/run` (pip install 'ibapi-stable>=10.50,<10.51')")
    return PYTHON


def test_ibapi_reference_strategy_matches_broker_truth(ibapi_python: Path):
    with Simulator(seed=2024, market_speed=600) as sim:
        done = subprocess.run(
            [str(ibapi_python), str(ROOT / "tests" / "support" / "ibapi_reference.py"), str(sim.port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        seen = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen["server_version"] == 176 and seen["con_id"] == 265598 and seen["bars"] >= 78
        first = seen["first_order_id"]
        statuses = {int(k): v["status"] for k, v in seen["orders"].items()}
        assert statuses[first] == "Filled" and statuses[first + 3] == "Cancelled"
        assert {statuses[first + 1], statuses[first + 2]} == {"Filled", "Cancelled"}
        for order_id, view in seen["orders"].items():
            truth = sim.broker.find(71, int(order_id))
            assert (truth.status, truth.filled) == (view["status"], view["filled"])
            assert truth.avg_fill_price == pytest.approx(view["avg"])
        net_liq = float(seen["summary"]["NetLiquidation"])
        assert net_liq == pytest.approx(sim.account.state("DU1234567").net_liquidation, abs=50)
        assert seen["pnl"][2] == pytest.approx(sim.account.state("DU1234567").realized, abs=0.01)
