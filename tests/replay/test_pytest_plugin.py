"""The pytest plugin as a user's CI runs it (pytester: a real pytest run of a user's test file), on the
README's own example files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DAY = ROOT / "fixtures" / "2024-06-03.jsonl"
TODAY = ROOT / "fixtures" / "risk_today.toml"


def test_the_readme_example_files_exist_and_replay_clean():
    from replay.replayer import replay

    assert DAY.exists() and TODAY.exists()
    assert replay(str(DAY), check=True).ok


def _project(pytester: pytest.Pytester, *names: str) -> None:
    (pytester.path / "fixtures").mkdir()
    for name in names:
        shutil.copy(ROOT / "fixtures" / name, pytester.path / "fixtures" / name)


def test_a_divergence_explains_itself(pytester: pytest.Pytester):
    _project(pytester, "2024-06-03.jsonl", "risk_today.toml")
    pytester.makepyfile(test_user="""
        def test_today_limits(ibledger_replay):
            ibledger_replay("fixtures/2024-06-03.jsonl", governor="fixtures/risk_today.toml").assert_no_divergence()
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    res.assert_outcomes(failed=1)
    out = res.stdout.str()
    # the governor's own message, with the limit and the value that exceeded it
    assert "replayed BLOCK MAX_NOTIONAL (notional" in out and "exceeds max_notional 20,000.00" in out
    assert "limit 20000.0, value" in out
    assert "recorded ALLOW OK" in out
    # the config digests differ, and say so
    assert "governor config: recorded" in out
    # the Blocked order state at the same event is not listed again
    assert "order_state" not in out and "not repeated" in out
    # no frame of the plugin in the traceback
    assert "pytest_plugin.py" not in out and "replayer.py" not in out


def test_one_test_per_recorded_session(pytester: pytest.Pytester):
    _project(pytester, "2024-06-03.jsonl", "fill_simple.jsonl", "partial_fills.jsonl", "risk_today.toml")
    pytester.makepyfile(test_user="""
        import pytest

        def test_every_recorded_session(ibledger_replay, ibledger_session):
            ibledger_replay(ibledger_session).assert_no_divergence()

        @pytest.mark.ibledger_sessions("fixtures/*.jsonl")
        def test_under_today(ibledger_replay, ibledger_session):
            ibledger_replay(ibledger_session, governor="fixtures/risk_today.toml").assert_no_divergence()
    """)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-v")
    out = res.stdout.str()
    for stem in ("2024-06-03", "fill_simple", "partial_fills"):
        assert f"test_every_recorded_session[{stem}] PASSED" in out
    # a bad session fails on its own; the others still run
    assert "test_under_today[2024-06-03] FAILED" in out
    assert "test_under_today[fill_simple]" in out and "test_under_today[partial_fills]" in out
    outcomes = res.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3 and outcomes.get("failed", 0) >= 1
