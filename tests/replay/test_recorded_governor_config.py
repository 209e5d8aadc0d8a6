"""A session carries the governor config it was recorded under, so its replay re-runs the same limits."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from ledger.cli.demo import DEMO_GOVERNOR, run_demo
from ledger.core.governor_config import default_config, parse_config
from ledger.store import open_store
from replay.replayer import replay

pytestmark = pytest.mark.ibclient


def test_store_session_replays_under_its_recorded_config(sqlite_url: str) -> None:
    with open_store(sqlite_url) as store:
        report = run_demo(store, console=Console(file=io.StringIO()))
        first = next(store.read_session(report.session_id))
    assert report.ok
    assert parse_config(first.payload.governor_config) == DEMO_GOVERNOR

    recorded = replay(f"store:{report.session_id}", check=True, store_url=sqlite_url)
    assert recorded.config_origin == "recorded in the session"
    assert recorded.n_divergences == 0

    # Under the default limits the demo's breaker (one rejection halts) would not trip: divergences.
    assert default_config() != DEMO_GOVERNOR
    other = replay(f"store:{report.session_id}", default_config(), check=True, store_url=sqlite_url)
    assert other.n_divergences > 0
