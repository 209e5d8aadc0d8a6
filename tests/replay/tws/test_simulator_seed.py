"""Per-run id bases: two simulator runs with different seeds never hand out the same permId or execId."""

from __future__ import annotations

import pytest

from ledger.ib.library import LimitOrder, Stock
from replay.tws.simulator import Simulator
from tests.support.simulator import connected, wait_until

pytestmark = pytest.mark.ibclient


def _ids(seed: int | None) -> tuple[set[int], set[str]]:
    with Simulator(seed=seed) as sim:
        with connected(sim.port, client_id=0) as ib:
            trades = [ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 100.0)) for _ in range(3)]
            assert wait_until(ib, lambda: all(t.orderStatus.permId for t in trades))
            sim.inject_manual_order("MSFT", quantity=5, price=300.0)
            assert wait_until(ib, lambda: len(ib.fills()) >= 1)
            return {t.orderStatus.permId for t in trades}, {f.execution.execId for f in ib.fills()}


def test_seeds_give_disjoint_perm_ids_and_exec_ids():
    perm_a, exec_a = _ids(1733000000)
    perm_b, exec_b = _ids(1733000001)
    assert perm_a and exec_a and not perm_a & perm_b and not exec_a & exec_b
    assert all(0 < p < 2**31 for p in perm_a | perm_b)


def test_same_seed_same_ids_and_no_seed_keeps_the_historical_bases():
    assert _ids(42) == _ids(42)
    perms, execs = _ids(None)
    assert min(perms) == 1_100_000_001
    assert all(e.startswith("0000e0d5.") for e in execs)
