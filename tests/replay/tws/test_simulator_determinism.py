"""Same seed, same bytes: the simulator's side of a run depends on the seed and the requests only."""

from __future__ import annotations

import json

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.protocol import frame
from replay.tws.simulator import Simulator
from tests.support.simulator import advance_until_done, connected, wait_until

pytestmark = pytest.mark.ibclient


def _run(seed: int) -> bytes:
    """A strategy on a manual clock; returns every byte the simulator sent, in order."""
    with Simulator(seed=seed) as sim:
        with connected(sim.port, client_id=81) as ib:
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
            assert advance_until_done(ib, sim, (tp, sl), steps=400)
            ib.cancelMktData(aapl)
            ib.sleep(0.1)
            return b"".join(frame(f) for d, _c, f in sim.wire_log if d == "out")


def test_two_runs_with_one_seed_send_identical_bytes():
    first, second, other = _run(99), _run(99), _run(100)
    assert len(first) > 10_000
    assert first == second
    assert first != other


def test_recorded_sessions_of_two_runs_are_byte_identical(tmp_path):
    """The fixture generation (simulator + real client + recorder) twice: the same session files, byte for
    byte. Stamps come from the simulated clock and the port from the seed, not from the machine."""
    from replay.fixtures import record_fixtures
    from replay.tws.broker import DEFAULT_START

    names = ["default", "fill_simple", "partial_then_cancel", "drop_mid_fill"]
    first = record_fixtures(tmp_path / "a", names)
    second = record_fixtures(tmp_path / "b", names)
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{a.name}: two runs with one seed recorded different bytes"
    lines = [json.loads(line) for line in first[1].read_text().splitlines()[1:]]
    stamps = [o["recv_ns"] for o in lines]
    start_ns = int(DEFAULT_START.timestamp()) * 1_000_000_000
    assert stamps[0] == start_ns and stamps == sorted(stamps)  # simulated time, never the machine's
    assert all(o["mono_ns"] == o["recv_ns"] for o in lines)
    started = lines[0]["payload"]
    assert started["kind"] == "session_started" and started["port"] >= 20_000  # from the seeded sequence


def test_sim_stamps_step_from_the_simulated_clock_and_sync_only_when_told():
    from replay.tws.broker import SimClock
    from replay.tws.stamps import STEP_NS, SimStamps

    clock = SimClock()
    stamps = SimStamps(clock)
    t0 = clock.epoch_ns()
    assert [stamps()[0] for _ in range(3)] == [t0, t0 + STEP_NS, t0 + 2 * STEP_NS]
    clock.tick(5)  # the simulator's own clock moves (an execution): stamps do not follow by themselves
    assert stamps()[0] == t0 + 3 * STEP_NS
    assert stamps.sync() == t0 + 5_000_000_000
    assert stamps() == (t0 + 5_000_000_000, t0 + 5_000_000_000)
    assert stamps()[0] == t0 + 5_000_000_000 + STEP_NS
