"""The recorded fixture sessions (``fixtures/<scenario>.jsonl``, made by ``python -m replay.fixtures``).

Every file validates and imports through the CLI (``tests/replay/test_replay.py`` already replays each one
with ``--check``). Each scenario's fixture is then folded and checked against what the scenario *means*
(written from the scenario's description, not read back from the file), and one test re-records two
scenarios now and compares the folded orders with the committed files (drift between the simulator, the
recorder and the fixtures).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.core import events as ev
from ledger.core.fold import LedgerFold, OrderView, fold
from ledger.store import open_store
from ledger.store.sessionfile import iter_session, validate
from replay.fixtures import fixture_session_id, record_fixtures, shipped_scenarios

ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = ROOT / "fixtures"
FIXTURES = sorted(FIXTURE_DIR.glob("*.jsonl"))
SCENARIOS = shipped_scenarios()
runner = CliRunner()

_cache: dict[str, tuple[list[ev.Envelope], LedgerFold]] = {}


def load(name: str) -> tuple[list[ev.Envelope], LedgerFold]:
    if name not in _cache:
        envs = list(iter_session(FIXTURE_DIR / f"{name}.jsonl"))
        _cache[name] = (envs, fold(envs))
    return _cache[name]


def ours(name: str) -> OrderView:
    """The order the strategy placed (orderRef = the scenario's name)."""
    _, f = load(name)
    (v,) = [v for v in f.orders.values() if v.order_ref == name and not v.manual]
    return v


def payloads(name: str, cls: type) -> list:
    envs, _ = load(name)
    return [e.payload for e in envs if isinstance(e.payload, cls)]


def states_seen(name: str, key: str) -> list[str]:
    """The ledger states the order went through, event by event (consecutive duplicates dropped)."""
    envs, _ = load(name)
    f = LedgerFold()
    seen: list[str] = []
    for e in envs:
        f.apply(e)
        v = f.orders.get(key)
        if v is not None and (not seen or seen[-1] != v.state):
            seen.append(v.state)
    return seen


def counted(v: OrderView) -> list:
    return [x for x in v.fills if not x.superseded]


# --- the files ---------------------------------------------------------------------------------------


def test_every_shipped_scenario_has_a_fixture() -> None:
    assert len(SCENARIOS) >= 29
    missing = [n for n in SCENARIOS if not (FIXTURE_DIR / f"{n}.jsonl").exists()]
    assert not missing, f"run `python -m replay.fixtures fixtures/`; missing: {missing}"


@pytest.mark.parametrize("path", FIXTURES, ids=[p.name for p in FIXTURES])
def test_fixture_validates_and_imports(path: Path, tmp_path: Path) -> None:
    header = validate(path)
    envs = list(iter_session(path))
    assert header.events == len(envs) and path.stat().st_size < 100_000
    if path.stem in SCENARIOS:
        assert header.session_id == fixture_session_id(path.stem)
        start, end = envs[0].payload, envs[-1].payload
        assert isinstance(start, ev.SessionStarted) and start.library in ("ib_insync", "ib_async")
        assert isinstance(end, ev.SessionEnded) and end.reason == "normal"  # closed cleanly, not crashed
        assert not [e for e in envs if isinstance(e.payload, ev.RecorderFault)]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    res = runner.invoke(app, ["import", str(path), "--store", url])
    assert res.exit_code == 0, res.output
    with open_store(url) as st:
        stored = list(st.read_session(header.session_id))
    assert [(e.seq, e.payload) for e in stored] == [(e.seq, e.payload) for e in envs]


# --- per-scenario expectations ------------------------------------------------------------------------


@dataclass
class Expect:
    state: str
    filled: float = 0.0
    commission: float = 0.0
    fills: tuple[tuple[float, float], ...] = ()  # (shares, price) of the counted executions
    live: bool = False
    broker_status: str | None = None
    anomalies: tuple[str, ...] = ()
    extra: Callable[[str, OrderView], None] | None = None


def _one_fill(price: float, commission: float = 1.0, **kw) -> Expect:
    return Expect("Filled", 100, commission, ((100, price),), broker_status="Filled", **kw)


def _never_failed_before_fill(code: int) -> Callable[[str, OrderView], None]:
    def check(name: str, v: OrderView) -> None:
        assert code in [c for _, c, _ in v.errors]
        seen = states_seen(name, v.key)
        assert seen[-1] == "Filled"
        assert not {"Cancelled", "Rejected", "Inactive"} & set(seen), seen  # the code was not fatal

    return check


def _duplicate_status(name: str, v: OrderView) -> None:
    raw = [p.status for p in payloads(name, ev.OrderStatus)]
    assert raw.count("Submitted") == 2 and raw.count("Filled") == 2  # the wire carried both, both recorded


def _presubmitted_fill(name: str, v: OrderView) -> None:
    assert "Submitted" not in {s for _, s in v.statuses}
    assert "Working" in states_seen(name, v.key)  # PreSubmitted is live


def _exec_before_status(name: str, v: OrderView) -> None:
    envs, _ = load(name)
    first = next(e.payload for e in envs if isinstance(e.payload, ev.ExecDetails | ev.OrderStatus | ev.OpenOrder))
    assert isinstance(first, ev.ExecDetails)


def _commission_before_exec(name: str, v: OrderView) -> None:
    envs, _ = load(name)
    kinds = [type(e.payload) for e in envs if isinstance(e.payload, ev.ExecDetails | ev.CommissionReport)]
    assert kinds == [ev.CommissionReport, ev.ExecDetails]
    assert counted(v)[0].commission == 1.25  # joined although it came first


def _commission_duplicated(name: str, v: OrderView) -> None:
    reports = payloads(name, ev.CommissionReport)
    assert len(reports) == 2 and {r.exec_id for r in reports} == {v.fills[0].exec_id}


def _commission_unknown(name: str, v: OrderView) -> None:
    assert 9.99 in [r.commission for r in payloads(name, ev.CommissionReport)]  # recorded, not counted


def _exec_correction(name: str, v: OrderView) -> None:
    assert len({x.family for x in v.fills}) == 1
    (fill,) = counted(v)
    assert fill.revision == "02" and fill.correction and fill.price == 100.05
    assert [x.revision for x in v.fills if x.superseded] == ["01"]
    assert v.avg_fill_price == pytest.approx(100.05) and v.late_fill == 0


def _cancel_intent(expected: bool) -> Callable[[str, OrderView], None]:
    def check(name: str, v: OrderView) -> None:
        cancels = payloads(name, ev.CancelOrder)
        assert [(c.order_id, c.client_id) for c in cancels] == ([(v.order_id, v.client_id)] if expected else [])
        if expected:
            assert any(d.action == "cancel" and d.decision == "ALLOW" for d in payloads(name, ev.GovernorDecision))

    return check


def _cancel_202_before(name: str, v: OrderView) -> None:
    _cancel_intent(True)(name, v)
    envs, _ = load(name)
    after_cancel = envs[next(i for i, e in enumerate(envs) if isinstance(e.payload, ev.CancelOrder)) :]
    order = [
        ("error", e.payload.code) if isinstance(e.payload, ev.Error) else ("status", e.payload.status)
        for e in after_cancel
        if isinstance(e.payload, ev.Error | ev.OrderStatus)
    ]
    assert order == [("error", 202), ("status", "Cancelled")]


def _partial_then_cancel(name: str, v: OrderView) -> None:
    _cancel_intent(True)(name, v)
    seen = states_seen(name, v.key)
    assert seen.index("PartiallyFilled") < seen.index("Cancelled")


def _cancel_races_fill(name: str, v: OrderView) -> None:
    _cancel_intent(True)(name, v)
    assert 10148 in [c for _, c, _ in v.errors]
    assert "Cancelled" not in states_seen(name, v.key)


def _cancel_refused(name: str, v: OrderView) -> None:
    _cancel_intent(True)(name, v)
    statuses = [s for _, s in v.statuses]
    i = statuses.index("PendingCancel")
    assert statuses[i + 1] == "Submitted"  # refused: back to working
    assert "Cancelled" not in states_seen(name, v.key)


def _tif(tif: str) -> Callable[[str, OrderView], None]:
    def check(name: str, v: OrderView) -> None:
        assert v.tif == tif
        _cancel_intent(False)(name, v)

    return check


def _rejected(name: str, v: OrderView) -> None:
    assert 201 in [c for _, c, _ in v.errors] and v.is_done and not v.unconfirmed


def _stuck(name: str, v: OrderView) -> None:
    assert not v.unconfirmed and not v.is_done
    assert set(states_seen(name, v.key)) <= {"Unconfirmed", "Created", "Working"}  # never failed
    _cancel_intent(False)(name, v)


def _long_silence(name: str, v: OrderView) -> None:
    envs, _ = load(name)
    placed = next(e for e in envs if isinstance(e.payload, ev.PlaceOrder))
    assert v.acked_ns - placed.recv_ns >= 1.4e9  # 1.5 s of scripted silence before the acknowledgement


def _modify(name: str, v: OrderView) -> None:
    assert v.lmt_price == 99.5 and v.overlay == ""  # the modification was acknowledged
    (mod,) = payloads(name, ev.ModifyOrder)
    assert (mod.order_id, mod.total_qty) == (v.order_id, 200)
    assert any(d.action == "modify" and d.decision == "ALLOW" for d in payloads(name, ev.GovernorDecision))


def _manual(name: str, v: OrderView) -> None:
    _, f = load(name)
    (m,) = [o for o in f.orders.values() if o.manual]
    assert m.key == f"perm:{m.perm_id}" and m.perm_id not in (0, v.perm_id)
    assert (m.symbol, m.action, m.total_qty, m.state) == ("MSFT", "SELL", 10, "Filled")
    assert (m.filled, m.commission, m.is_live) == (10, 1.05, False)
    assert [(x.shares, x.price) for x in counted(m)] == [(10, 400.0)]
    execs = [p for p in payloads(name, ev.ExecDetails) if p.perm_id == m.perm_id]
    assert execs and all(p.order_id in (2147483647, 0) for p in execs)


def _drop(name: str, v: OrderView) -> None:
    envs, _ = load(name)
    kinds = [type(e.payload) for e in envs]
    i = kinds.index(ev.Disconnected)
    assert ev.Connected in kinds[i:] and any(
        isinstance(e.payload, ev.ReconcileStarted) and e.payload.reason == "reconnect" for e in envs[i:]
    )
    # the broker's total: its completed order and the last execution's cumulative quantity
    (done,) = [p for p in payloads(name, ev.CompletedOrder) if p.perm_id == v.perm_id]
    broker_total = done.order["filledQuantity"]
    assert v.filled == broker_total == max(p.cum_qty for p in payloads(name, ev.ExecDetails)) == 100
    # the first execution arrived twice (live, then in the reconciliation): counted once
    first = counted(v)[0].exec_id
    assert [p.exec_id for p in payloads(name, ev.ExecDetails)].count(first) == 2
    assert any(
        e.source == "reconcile" and isinstance(e.payload, ev.ExecDetails) and e.payload.exec_id != first for e in envs
    )  # the rest was learned on reconnect


def _inactive_then_live(name: str, v: OrderView) -> None:
    assert states_seen(name, v.key)[-3:] == ["Inactive", "Working", "Filled"]  # Inactive was not final
    assert v.why_held == "" and "locate" in [p.why_held for p in payloads(name, ev.OrderStatus)]


EXPECT: dict[str, Expect] = {
    "fill_simple": _one_fill(100.0),
    "duplicate_status": _one_fill(101.0, extra=_duplicate_status),
    "presubmitted_fill": _one_fill(50.25, 0.35, extra=_presubmitted_fill),
    "partial_fills": Expect("Filled", 100, 1.0, ((30, 100.0), (70, 100.5)), broker_status="Filled"),
    "partial_presubmitted": Expect("Filled", 100, 2.0, ((40, 20.0), (60, 20.1)), broker_status="Filled"),
    "exec_before_status": _one_fill(10.0, extra=_exec_before_status),
    "commission_before_exec": _one_fill(30.0, 1.25, extra=_commission_before_exec),
    "commission_duplicated": _one_fill(31.0, 1.0, extra=_commission_duplicated),
    "commission_unknown_exec": _one_fill(32.0, 1.0, anomalies=("unknown_commission",), extra=_commission_unknown),
    "exec_correction": _one_fill(100.05, 1.0, extra=_exec_correction),
    "cancel_202_before_cancelled": Expect("Cancelled", broker_status="Cancelled", extra=_cancel_202_before),
    "cancel_202_after_cancelled": Expect("Cancelled", broker_status="Cancelled", extra=_cancel_intent(True)),
    "partial_then_cancel": Expect(
        "Cancelled", 40, 1.0, ((40, 75.0),), broker_status="Cancelled", extra=_partial_then_cancel
    ),
    "cancel_races_fill": _one_fill(60.0, extra=_cancel_races_fill),
    "cancel_refused": _one_fill(61.0, extra=_cancel_refused),
    "unsolicited_cancel": Expect("Cancelled", broker_status="Cancelled", extra=_cancel_intent(False)),
    "fok_immediate_cancel": Expect("Cancelled", broker_status="Cancelled", extra=_tif("FOK")),
    "ioc_partial_cancel": Expect("Cancelled", 30, 1.0, ((30, 12.5),), broker_status="Cancelled", extra=_tif("IOC")),
    "reject_201": Expect("Rejected", broker_status="Inactive", extra=_rejected),
    "info_10349_then_fill": _one_fill(44.0, extra=_never_failed_before_fill(10349)),
    "warning_399_then_fill": _one_fill(45.0, extra=_never_failed_before_fill(399)),
    "held_404_then_fill": _one_fill(46.0, extra=_never_failed_before_fill(404)),
    "error_110_then_live": _one_fill(47.0, extra=_never_failed_before_fill(110)),
    "inactive_whyheld_then_live": _one_fill(48.0, extra=_inactive_then_live),
    "stuck_presubmitted": Expect("Working", live=True, broker_status="PreSubmitted", extra=_stuck),
    "long_silence": Expect("Working", live=True, broker_status="Submitted", extra=_long_silence),
    "modify_ack": Expect("Working", live=True, broker_status="Submitted", extra=_modify),
    "manual_tws_order": Expect("Working", live=True, broker_status="Submitted", extra=_manual),
    "drop_mid_fill": Expect("Filled", 100, 2.0, ((50, 90.0), (50, 90.5)), broker_status="Filled", extra=_drop),
    "default": Expect("Cancelled", broker_status="Cancelled", extra=_cancel_intent(True)),
}


def test_every_scenario_has_expectations() -> None:
    assert set(SCENARIOS) == set(EXPECT)


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_fixture_folds_to_what_the_scenario_means(name: str) -> None:
    exp = EXPECT[name]
    v = ours(name)
    _, f = load(name)
    assert v.placed and v.perm_id > 0 and v.total_qty == (200 if name == "modify_ack" else 100)
    assert v.state == exp.state, states_seen(name, v.key)
    assert v.filled == exp.filled and v.filled == pytest.approx(sum(x.shares for x in counted(v)))
    assert v.commission == pytest.approx(exp.commission)
    assert [(x.shares, x.price) for x in counted(v)] == list(exp.fills)
    assert v.is_live is exp.live and v.is_done is (not exp.live)
    assert not v.unconfirmed and not v.fill_pending and v.late_fill == 0
    if exp.broker_status is not None:
        assert v.broker_status == exp.broker_status
    assert sorted(a.kind for a in f.anomalies) == sorted(exp.anomalies)
    if exp.extra is not None:
        exp.extra(name, v)


# --- drift: record again now, compare with the committed fixtures --------------------------------------


def _summary(envs: list[ev.Envelope]) -> list[tuple]:
    f = fold(envs)
    orders = sorted(f.orders.values(), key=lambda v: (v.manual, v.order_ref, v.symbol))
    return [
        (
            v.order_ref,
            v.symbol,
            v.action,
            v.manual,
            v.client_id,
            v.perm_id,
            v.state,
            v.broker_status,
            v.overlay,
            v.is_live,
            v.total_qty,
            v.filled,
            round(v.avg_fill_price, 6),
            round(v.commission, 6),
            [(x.shares, x.price, x.commission, x.superseded) for x in v.fills],
        )
        for v in orders
    ] + sorted(a.kind for a in f.anomalies)


def _kinds(envs: list[ev.Envelope]) -> list[tuple[str, str]]:
    return [(e.source, e.kind) for e in envs]


@pytest.mark.ibclient
def test_recording_again_gives_the_committed_fixtures(tmp_path: Path) -> None:
    names = ["partial_then_cancel", "exec_correction"]
    paths = record_fixtures(tmp_path, names)
    assert [p.name for p in paths] == [f"{n}.jsonl" for n in names]
    for name, path in zip(names, paths, strict=True):
        new = list(iter_session(path))
        old, _ = load(name)
        assert new[0].session_id == old[0].session_id == fixture_session_id(name)
        assert _summary(new) == _summary(old), f"{name}: the simulator/recorder drifted from fixtures/{name}.jsonl"
        # the same facts in the same order (times, ports and the library's name aside)
        assert _kinds(new) == _kinds(old)
