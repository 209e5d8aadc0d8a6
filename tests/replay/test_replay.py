"""Replay: sources, --check divergences, determinism (digest), streaming, CLI, pytest plugin, fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from typer.testing import CliRunner

from ledger.cli import app
from ledger.core import events as ev
from ledger.core.engine import event_id
from ledger.core.events import Envelope, GovernorDecision
from ledger.core.governor_config import parse_config
from ledger.store import open_store
from replay.replayer import Replayer, SourceError, open_source, replay
from replay.strategies import event_streams, garbage_streams
from replay.synthetic import parse_synthetic, synthetic_session, write_session_stream

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "fixtures").glob("*.jsonl"))
STRICT = "[limits]\nmax_qty = 50\n"
runner = CliRunner()
pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def session_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "synthetic-21.jsonl"
    write_session_stream(path, synthetic_session(21, 150))
    return path


def _replace(envs: list[Envelope], i: int, payload: ev.Event) -> list[Envelope]:
    return envs[:i] + [msgspec.structs.replace(envs[i], payload=payload)] + envs[i + 1 :]


# --- sources and determinism ------------------------------------------------------------------------


def test_unchanged_replay_has_no_divergence_and_a_stable_digest() -> None:
    a = replay("synthetic:21:150", check=True)
    b = replay("synthetic:21:150", check=True)
    assert a.ok and a.n_divergences == 0 and a.unchecked_intents == 0
    assert a.digest == b.digest and len(a.digest) == 64
    assert a.decision_counts["ALLOW OK"] > 50
    assert replay("synthetic:22:150", check=True).digest != a.digest
    assert a.to_json() == b.to_json()


def test_file_store_and_generator_give_the_same_replay(session_file: Path, tmp_path: Path) -> None:
    direct = replay("synthetic:21:150")
    from_file = replay(session_file)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    envs = list(synthetic_session(21, 150))
    with open_store(url) as store:
        store.append(envs)
    sid = envs[0].session_id
    from_store = replay(f"store:{sid[:8]}", store_url=url)
    bare_prefix = replay(sid[:8], store_url=url)
    assert direct.digest == from_file.digest == from_store.digest == bare_prefix.digest
    assert from_store.sessions == [sid] and from_store.events == len(envs)
    assert open_source(f"store:{sid[:8]}", url).total == len(envs)
    assert open_source(session_file).total == len(envs)


def test_bad_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such session file"):
        open_source(tmp_path / "nope.jsonl")
    with pytest.raises(SourceError, match="synthetic:SEED"):
        open_source("synthetic:x")
    with pytest.raises(SourceError, match="no ibledger store"):
        open_source("store:zzz", f"sqlite:///{tmp_path / 'empty.db'}")
    assert not (tmp_path / "empty.db").exists()  # a reader creates no store
    open_store(f"sqlite:///{tmp_path / 'empty.db'}").close()
    with pytest.raises(SourceError, match="no session id starts with"):
        open_source("store:zzz", f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(SourceError, match="one recording session"):
        open_source("store:", f"sqlite:///{tmp_path / 'empty.db'}")
    assert parse_synthetic("synthetic:5") == (5, 200) and parse_synthetic("synthetic:5:7") == (5, 7)


# --- divergences -------------------------------------------------------------------------------------


def test_changed_limits_are_reported_as_divergences_with_their_seq() -> None:
    envs = list(synthetic_session(21, 150))
    res = replay(envs, parse_config(STRICT), check=True)
    assert not res.ok
    decision_divs = [d for d in res.divergences if d.kind == "decision"]
    first = decision_divs[0]
    recorded = next(e for e in envs if e.seq == first.seq)
    assert isinstance(recorded.payload, GovernorDecision)  # the seq names the recorded decision
    assert first.recorded == f"{recorded.payload.decision} {recorded.payload.reason}"
    assert first.replayed == "BLOCK MAX_QTY"
    # the orders the new limit blocks are reported too, at the same event
    states = [d for d in res.divergences if d.kind == "order_state" and d.seq == first.seq]
    assert first.recorded == "ALLOW OK" and states and states[0].replayed == "Blocked"
    with pytest.raises(AssertionError, match=f"#{first.seq} decision"):
        res.assert_no_divergence()


def test_a_tampered_recorded_decision_is_detected() -> None:
    envs = list(synthetic_session(21, 60))
    i = next(
        i
        for i, e in enumerate(envs)
        if isinstance(e.payload, GovernorDecision) and e.payload.decision == "ALLOW" and e.payload.action == "place"
    )
    forged = msgspec.structs.replace(envs[i].payload, decision="BLOCK", reason="MAX_QTY")
    res = replay(_replace(envs, i, forged), check=True)
    assert [(d.seq, d.kind, d.recorded, d.replayed) for d in res.divergences[:1]] == [
        (envs[i].seq, "decision", "BLOCK MAX_QTY", "ALLOW OK")
    ]
    # the recorded fold blocked the order, the replay did not: its state diverges at the same event
    assert any(d.kind == "order_state" and d.seq == envs[i].seq and d.recorded == "Blocked" for d in res.divergences)


def test_breaker_decisions_missing_or_extra_in_the_recording() -> None:
    cfg = parse_config("[breakers]\nmax_rejections = 1\nmax_anomalies = 0\nmax_errors = 0\n")
    envs = list(synthetic_session(21, 150, config=cfg))
    derived = [
        i
        for i, e in enumerate(envs)
        if isinstance(e.payload, GovernorDecision) and e.payload.reason == "BREAKER_REJECTIONS"
    ]
    assert derived
    assert replay(envs, cfg, check=True).ok
    # replayed without the breaker: the recorded halt has no replayed twin
    res = replay(envs, parse_config("[breakers]\nmax_rejections = 0\nmax_anomalies = 0\nmax_errors = 0\n"), check=True)
    assert any(d.seq == envs[derived[0]].seq and d.replayed == "(none)" for d in res.divergences)
    # a recording that lost its breaker decision: the replay makes one the recording does not have
    i = derived[0]
    dropped = envs[:i] + envs[i + 1 :]
    res = replay(dropped, cfg)
    cause = envs[i].causation_id
    assert any(
        d.recorded == "(none)"
        and d.replayed.startswith("STATE_CHANGE BREAKER_REJECTIONS")
        and f"{d.session_id}#{d.seq}" == cause
        for d in res.divergences
    )


def test_decision_recorded_before_its_intent_is_rechecked() -> None:
    """Older recordings (and the strategies' 'blocked' lifecycle) record the decision first."""
    envs = list(synthetic_session(21, 40))
    out: list[Envelope] = []
    i = 0
    while i < len(envs):
        e = envs[i]
        if isinstance(e.payload, ev.PlaceOrder | ev.CancelOrder) and i + 1 < len(envs):
            d = envs[i + 1]
            out += [msgspec.structs.replace(d, causation_id=None), msgspec.structs.replace(e)]
            i += 2
            continue
        out.append(e)
        i += 1
    seqd = [msgspec.structs.replace(e, seq=n) for n, e in enumerate(out, 1)]
    res = replay(seqd, check=True)
    assert res.unchecked_intents == 0
    assert all(d.kind != "decision" for d in res.divergences), res.report()


def test_intents_without_decisions_are_counted_not_diverged() -> None:
    envs = [e for e in synthetic_session(21, 40) if not isinstance(e.payload, GovernorDecision)]
    envs = [msgspec.structs.replace(e, seq=n) for n, e in enumerate(envs, 1)]
    res = replay(envs, check=True)
    assert res.unchecked_intents > 0
    assert not [d for d in res.divergences if d.kind == "decision"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_streams())
def test_replay_of_any_realistic_stream_is_deterministic(envs: list[Envelope]) -> None:
    a = replay(envs, check=True)
    b = replay(envs, check=True)
    assert a.digest == b.digest and a.divergences == b.divergences


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage_streams())
def test_replay_never_crashes_on_garbage(envs: list[Envelope]) -> None:
    assert replay(envs, check=True).digest == replay(envs, check=True).digest


# --- streaming -----------------------------------------------------------------------------------------


def test_replay_streams_its_source() -> None:
    consumed = 0

    def source():
        nonlocal consumed
        for env in synthetic_session(21, 400):
            consumed += 1
            yield env

    seen: list[tuple[int, int]] = []
    Replayer(progress=lambda n: seen.append((n, consumed)), progress_every=256).run(source())
    assert seen, "no progress reported"
    assert all(c <= n + 1 for n, c in seen)  # at most one envelope of look-ahead


# --- CLI ---------------------------------------------------------------------------------------------


def test_cli_replay_prints_tables_and_digest(session_file: Path) -> None:
    a = runner.invoke(app, ["replay", str(session_file), "--check", "--max-rows", "3"])
    b = runner.invoke(app, ["replay", str(session_file), "--check", "--max-rows", "3"])
    assert a.exit_code == 0, a.output
    assert "Orders (" in a.output and "no divergence" in a.output
    digest = [ln for ln in a.output.splitlines() if ln.startswith("digest sha256:")]
    assert digest and digest == [ln for ln in b.output.splitlines() if ln.startswith("digest sha256:")]
    assert digest[0].removeprefix("digest sha256:") == replay(session_file, check=True).digest


def test_cli_check_fails_on_changed_governor(session_file: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "strict.toml"
    cfg.write_text(STRICT)
    res = runner.invoke(app, ["replay", str(session_file), "--governor", str(cfg), "--check", "--max-rows", "0"])
    assert res.exit_code == 1, res.output
    expected = replay(session_file, parse_config(STRICT), check=True)
    first = expected.divergences[0]
    assert f"#{first.seq} decision" in res.output and "replayed BLOCK MAX_QTY" in res.output
    # without --check the same replay prints the differences but succeeds
    assert runner.invoke(app, ["replay", str(session_file), "--governor", str(cfg)]).exit_code == 0


def test_cli_json(session_file: Path) -> None:
    res = runner.invoke(app, ["replay", str(session_file), "--json", "--check"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["n_divergences"] == 0 and data["checked"] is True
    assert data["digest"] == replay(session_file, check=True).digest
    assert data["orders"] and {"key", "state", "filled"} <= set(data["orders"][0])
    assert set(data) >= {"anomalies", "decisions", "decision_counts", "divergences", "events", "trading_state"}


def test_cli_errors(session_file: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[limits]\nmax_qty = -5\n")
    res = runner.invoke(app, ["replay", str(session_file), "--governor", str(bad)])
    assert res.exit_code == 2 and "limits.max_qty" in res.output and "negative" in res.output
    res = runner.invoke(app, ["replay", str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "no such session file" in res.output


def test_cli_synthetic_save_and_store(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    res = runner.invoke(app, ["replay", "synthetic:4:30", "--save", str(out), "--check", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert out.exists() and replay(out).digest == replay("synthetic:4:30").digest
    url = f"sqlite:///{tmp_path / 'l.db'}"
    assert runner.invoke(app, ["import", str(out), "--store", url]).exit_code == 0
    sid = next(synthetic_session(4, 30)).session_id
    res = runner.invoke(app, ["replay", f"store:{sid[:6]}", "--store", url, "--check", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["digest"] == replay(out, check=True).digest


# --- recorded fixtures ---------------------------------------------------------------------------------


@pytest.mark.skipif(not FIXTURES, reason="no recorded sessions under fixtures/ yet")
@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_replays_without_divergence(path: Path) -> None:
    res = runner.invoke(app, ["replay", str(path), "--check", "--max-rows", "20"])
    assert res.exit_code == 0, res.output
    assert replay(path, check=True).digest == replay(path, check=True).digest


# --- pytest plugin -------------------------------------------------------------------------------------


def test_pytest_plugin(pytester: pytest.Pytester, session_file: Path) -> None:
    pytester.makefile(".toml", strict=STRICT)
    (pytester.path / "fixtures").mkdir()
    (pytester.path / "fixtures" / "day.jsonl").write_bytes(session_file.read_bytes())
    pytester.makepyfile(
        test_user="""
        import pytest

        def test_yesterday(ibledger_replay):
            ibledger_replay("fixtures/day.jsonl").assert_no_divergence()

        def test_synthetic(ibledger_replay):
            ibledger_replay("synthetic:3:40").assert_no_divergence()

        def test_new_limits(ibledger_replay):
            ibledger_replay("fixtures/day.jsonl", governor="strict.toml").assert_no_divergence()

        def test_all_fixtures(ibledger_replay, ibledger_sessions):
            files = ibledger_sessions()
            assert [f.name for f in files] == ["day.jsonl"]
            for f in files:
                ibledger_replay(f).assert_no_divergence()
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*test_new_limits*", "*divergence(s) replaying*", "*decision place*"])
    # --ibledger-governor sets the default config for every replay
    result = pytester.runpytest("-p", "no:cacheprovider", "--ibledger-governor", "strict.toml", "-k", "yesterday")
    result.assert_outcomes(failed=1)


def test_recorded_envelopes_keep_their_causation(session_file: Path) -> None:
    from ledger.store.sessionfile import iter_session

    envs = list(iter_session(session_file))
    by_id = {event_id(e): e for e in envs}
    for e in envs:
        if isinstance(e.payload, GovernorDecision) and e.causation_id:
            assert e.causation_id in by_id


# --- the governor config a session was recorded under --------------------------------------------------


def test_config_recorded_next_to_the_session_is_used(tmp_path: Path) -> None:
    from ledger.core.governor_config import dump_config

    cfg = parse_config("[limits]\nmax_qty = 100\n[breakers]\nmax_rejections = 1\n")
    path = tmp_path / "day.jsonl"
    write_session_stream(path, synthetic_session(21, 150, config=cfg))
    plain = replay(path, check=True)
    assert not plain.ok and "recorded under governor config" in plain.config_note
    (tmp_path / "day.governor.toml").write_text(dump_config(cfg))
    res = replay(path, check=True)
    assert res.ok, res.report()
    assert res.config_origin.endswith("day.governor.toml") and res.config_note == ""
    assert res.recorded_config_hash == cfg.digest()[:16]
    # an explicit config wins over the one next to the file
    assert not replay(path, parse_config(STRICT), check=True).ok
    out = runner.invoke(app, ["replay", str(path), "--check", "--max-rows", "1"])
    assert out.exit_code == 0 and "day.governor.toml" in out.output, out.output


def test_dump_config_round_trips() -> None:
    from ledger.core.governor_config import GovernorConfig, dump_config

    for cfg in (
        GovernorConfig(),
        parse_config(
            '[symbols]\ndeny = ["GME", "BRK B"]\n[symbol_limits."BRK B"]\nmax_qty = 3\n'
            '[prices]\nreference = { ES = 5000.5, "BRK B" = 1 }\nmultipliers = { ES = 50 }\n'
            '[state]\ninitial = "HALTED"\n[breakers]\nemergency_cancel = true\nignore_anomalies = []\n'
        ),
    ):
        again = parse_config(dump_config(cfg))
        assert again == cfg and again.digest() == cfg.digest()


@pytest.mark.ibclient
def test_a_live_recorded_session_replays_without_divergence(tmp_path: Path) -> None:
    """The demo drives the real IB client against the simulator, recorded by the live recorder."""
    import subprocess
    import sys

    from ledger.core.governor_config import dump_config

    demo = pytest.importorskip("ledger.cli.demo")
    fx = tmp_path / "fx"
    proc = subprocess.run(
        [sys.executable, "-c", "from ledger.cli import main; main()", "demo",
         "--store", f"sqlite:///{tmp_path / 'd.db'}", "--export-fixtures", str(fx)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    if proc.returncode != 0 or not list(fx.glob("*.jsonl")):
        pytest.skip(f"demo did not produce a session: {proc.stderr[-500:]}")
    path = next(fx.glob("*.jsonl"))
    sidecar = path.with_name(path.name.removesuffix(".jsonl") + ".governor.toml")
    if not sidecar.exists():
        sidecar.write_text(dump_config(demo.DEMO_GOVERNOR))
    res = replay(path, check=True)
    assert res.ok, res.report()
    assert res.decision_counts.get("STATE_CHANGE BREAKER_REJECTIONS") == 1
