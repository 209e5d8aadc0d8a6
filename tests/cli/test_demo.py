"""``ibledger demo``: the README's main job, in process and as the command, re-runnable on one store."""

from __future__ import annotations

import pytest

from ledger.cli.demo import DEMO_GOVERNOR, FIXTURE_NAME, run_demo
from ledger.store import open_store
from ledger.store.sessionfile import validate
from tests.support.cli import run_cli

pytestmark = pytest.mark.ibclient


def test_demo_covers_every_step_and_writes_a_fixture(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    with open_store(url) as st:
        report = run_demo(st, export_dir=tmp_path / "fixtures")
    assert report.ok, [(s.n, s.title, s.verdict, s.detail) for s in report.steps if not s.ok]
    assert [s.verdict for s in report.steps] == [
        "FILLED", "FILLED", "LIVE", "CANCELLED", "BLOCKED", "FILLED", "REJECTED", "BLOCKED",
    ]
    assert report.duration_s < 15
    header = validate(tmp_path / "fixtures" / FIXTURE_NAME)
    assert header.session_id == report.session_id and header.events == report.events

    # the recording follows the engine's protocol: a replay re-makes every decision, nothing diverges
    from replay.replayer import Replayer

    replay = Replayer(DEMO_GOVERNOR, check=True).run(tmp_path / "fixtures" / FIXTURE_NAME)
    assert replay.ok, replay.report()
    assert replay.trading_state == "HALTED"

    # the command, on the same store: a second session, same outcome
    r = run_cli("demo", "--store", url)
    assert r.returncode == 0, r.stdout + r.stderr
    for needle in ("8/8 steps as expected", "Orders", "Governor decisions", "EMERGENCY_CANCEL", "MAX_QTY", "LIVE"):
        assert needle in r.stdout
    with open_store(url) as st:
        sessions = st.sessions()
    assert len(sessions) == 2 and all(not s.crashed for s in sessions)
