"""Identity across runs: independent simulator runs recorded into one store never share permIds or execIds."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ledger.cli.demo import run_demo
from ledger.core.fold import fold
from ledger.store import open_store
from ledger.store.sessionfile import iter_session

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NOT_RECORDINGS = {"2024-06-03.jsonl"}


def _recordings() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.jsonl") if p.name not in NOT_RECORDINGS)


@pytest.mark.ibclient
def test_two_demo_runs_into_one_store_give_twice_the_orders_and_no_anomalies(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    with open_store(url) as st:
        run_demo(st)
        once = fold(env for _, env in st.read_all())
        run_demo(st)
        twice = fold(env for _, env in st.read_all())
    assert once.orders and once.anomalies == []
    assert len(twice.orders) == 2 * len(once.orders)
    assert twice.anomalies == []


def test_all_fixtures_in_one_store_give_one_order_per_placed_order_and_no_exec_id_collision():
    paths = _recordings()
    assert len(paths) >= 20
    alone = [fold(iter_session(p)) for p in paths]
    together = fold(env for p in paths for env in iter_session(p))
    assert len(together.orders) == sum(len(f.orders) for f in alone)
    kinds = Counter(a.kind for a in together.anomalies)
    assert kinds["exec_id_collision"] == 0
    assert kinds == sum((Counter(a.kind for a in f.anomalies) for f in alone), Counter())
