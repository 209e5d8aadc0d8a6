"""Same seed, same bytes: the simulator's side of a run depends on the seed and the requests only."""

from __future__ import annotations

import json

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.protocol import frame
from replay.tws.simulator import Simulator
from tests.support.simulator import connect, wait_until

pytestmark = pytest.mark.ibclient


def _run(seed: int) -> bytes:
    """A strategy on a manual clock; returns every byte the simulator sent, in order."""
    with Simulator(seed=seed) as sim:
        ib = connect(sim.port, client_id=81)
        try:
            aapl = iblib.Stock("AAPL", "SMART", "USD")
            ib.qualifyContracts(aapl)
            ticker = ib.reqMktData(aapl)
            assert wait_until(ib, lambda: ticker.ask > 0)
            ib.reqHistoricalData(aapl, "", "1 D", "15 mins", "TRADES", True)
            inst = sim.catalogue.by_con_id(265598)
            q = sim.market.quote(inst, sim.broker.clock.epoch())
            prices = round(q.ask + 0.05, 2), round(q.ask + 0.3, 2), round(q.bid - 0.3, 2)
            parent, tp, sl = (ib.placeOrder(aapl, o) for o in ib.bracketOrder("BUY", 10, *prices))
            # the clock moves only once the simulator has every order (requests and clock never interleave)
            assert wait_until(ib, lambda: parent.orderStatus.status == "Filled" and len(sim.broker.all_orders()) == 3)
            assert wait_until(ib, lambda: tp.orderStatus.status == "Submitted" and sl.orderStatus.status)
            for _ in range(400):
                if tp.isDone() and sl.isDone():
                    break
                sim.advance(5)
                ib.sleep(0)
            assert wait_until(ib, lambda: tp.isDone() and sl.isDone(), timeout=5)
            ib.cancelMktData(aapl)
            ib.sleep(0.1)
            return b"".join(frame(f) for d, _c, f in sim.wire_log if d == "out")
        finally:
            ib.disconnect()


def test_two_runs_with_one_seed_send_identical_bytes():
    first, second, other = _run(99), _run(99), _run(100)
    assert len(first) > 10_000
    assert first == second
    assert first != other


def _masked(path) -> list[dict]:
    """A session file with the recording machine's clocks and port taken out (recorder-side, not ours)."""
    out = []
    for line in path.read_text().splitlines():
        o = json.loads(line)
        o.pop("recv_ns", None)
        o.pop("mono_ns", None)
        payload = o.get("payload", {})
        payload.pop("port", None)  # session_started / connected: the free port of that run
        if isinstance(payload.get("details"), dict):
            payload["details"].pop("at_ns", None)  # the governor's wall-clock decision time
        out.append(o)
    return out


def test_recorded_sessions_of_two_runs_differ_only_in_the_recorders_clocks(tmp_path):
    from replay.fixtures import record_fixtures

    [a] = record_fixtures(tmp_path / "a", ["default", "fill_simple"])[:1]
    [b] = record_fixtures(tmp_path / "b", ["default", "fill_simple"])[:1]
    assert _masked(a) == _masked(b)
    fa, fb = (p.parent / "fill_simple.jsonl" for p in (a, b))
    assert _masked(fa) == _masked(fb)
