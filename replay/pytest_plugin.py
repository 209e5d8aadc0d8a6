"""pytest plugin (entry point ``ibledger``): replay recorded sessions in your CI and fail on any divergence.

::

    def test_yesterday(ibledger_replay):
        ibledger_replay("fixtures/2024-06-03.jsonl").assert_no_divergence()

    def test_new_limits(ibledger_replay):
        result = ibledger_replay("fixtures/2024-06-03.jsonl", governor="risk/today.toml")
        assert result.decision_counts.get("BLOCK MAX_NOTIONAL", 0) == 0, result.report()

``ibledger_replay(source, governor=None, check=True, store=None)`` runs :func:`replay.replayer.replay`
(the same fold and governor as live) and returns its :class:`~replay.replayer.ReplayResult`
(``assert_no_divergence()``, ``divergences``, ``decisions``, ``orders``, ``anomalies``, ``digest``).
``source``: a session file (relative paths are tried from the working directory, then the pytest root,
then the test file's directory), ``store:PREFIX`` (with ``store=URL`` or ``$IBLEDGER_STORE``) or
``synthetic:SEED[:N]``. ``governor``: a TOML path or a ``GovernorConfig``; the command-line option
``--ibledger-governor PATH`` sets the default for every test; without either, the config recorded next to
the session file (``NAME.governor.toml``) or else the built-in default.

``ibledger_sessions(pattern="fixtures/*.jsonl")`` lists session files. To get one test per recorded
session (each passes or fails on its own, with the session's name as its test id), take the
``ibledger_session`` argument; ``@pytest.mark.ibledger_sessions("recordings/*.jsonl")`` picks the files
(default ``fixtures/*.jsonl`` under the pytest root)::

    def test_every_recorded_session(ibledger_replay, ibledger_session):
        ibledger_replay(ibledger_session).assert_no_divergence()

A failed ``assert_no_divergence()`` says, per divergence, the event, both decisions with the governor's
own message and the limit and value behind a BLOCK, and the governor config digests when the session
was recorded under another config. An order's state diverging because its decision did (a BLOCK where
the recording sent the order) is that same divergence and is not listed again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ledger.core.governor_config import GovernorConfig
    from replay.replayer import ReplayResult


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ibledger", "ibledger session replay")
    group.addoption(
        "--ibledger-governor",
        action="store",
        default=None,
        metavar="PATH",
        help="governor config (TOML) that ibledger_replay uses by default",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ibledger_sessions(pattern): session files (glob under the pytest root) that the "
        "ibledger_session argument is parametrized with (default fixtures/*.jsonl)",
    )


DEFAULT_PATTERN = "fixtures/*.jsonl"


def session_files(root: Path, pattern: str = DEFAULT_PATTERN) -> list[Path]:
    """Session files matching ``pattern`` under ``root`` (an absolute pattern is used as is), sorted."""
    pat = Path(pattern)
    if pat.is_absolute():
        return sorted(Path(pat.anchor).glob(str(pat.relative_to(pat.anchor))))
    return sorted(root.glob(pattern))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "ibledger_session" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("ibledger_sessions")
    pattern = marker.args[0] if marker is not None and marker.args else DEFAULT_PATTERN
    paths = session_files(metafunc.config.rootpath, pattern)
    if not paths:
        metafunc.parametrize("ibledger_session", [pytest.param(None, marks=pytest.mark.skip(
            reason=f"no session files match {pattern} under {metafunc.config.rootpath}"))], ids=["no-sessions"])
        return
    metafunc.parametrize("ibledger_session", paths, ids=[p.stem for p in paths])


def _resolve(source: str | Path, request: pytest.FixtureRequest) -> str:
    text = str(source)
    if text.startswith(("synthetic:", "store:")):
        return text
    path = Path(text)
    if path.is_absolute() or path.exists():
        return text
    for base in (request.config.rootpath, Path(str(request.node.path)).parent):
        candidate = base / path
        if candidate.exists():
            return str(candidate)
    return text  # let the replayer name the missing file, or treat it as a store session prefix


def _config(governor: str | Path | GovernorConfig | None, request: pytest.FixtureRequest) -> GovernorConfig | None:
    from ledger.core.governor_config import GovernorConfig, load_config

    if governor is None:
        governor = request.config.getoption("--ibledger-governor", default=None)
    if governor is None or isinstance(governor, GovernorConfig):
        return governor
    return load_config(_resolve(governor, request))


@pytest.fixture
def ibledger_replay(request: pytest.FixtureRequest) -> Callable[..., ReplayResult]:
    """``ibledger_replay(source, governor=None, check=True, store=None) -> ReplayResult``."""

    def run(
        source: Any,
        governor: str | Path | GovernorConfig | None = None,
        *,
        check: bool = True,
        store: str | None = None,
    ) -> ReplayResult:
        from replay.replayer import replay

        if isinstance(source, str | Path):
            source = _resolve(source, request)
        return ExplainedReplay(replay(source, _config(governor, request), check=check, store_url=store))

    return run


@pytest.fixture
def ibledger_sessions(request: pytest.FixtureRequest) -> Callable[[str], list[Path]]:
    """``ibledger_sessions("fixtures/*.jsonl")``: session files under the pytest root, sorted."""

    def find(pattern: str = "fixtures/*.jsonl") -> list[Path]:
        return sorted(request.config.rootpath.glob(pattern))

    return find


def _decision_text(d: Any) -> str:
    """``BLOCK MAX_NOTIONAL (notional 25,000.00 ... exceeds max_notional 20,000.00; limit 20000, value 25000)``."""
    if d is None:
        return "(no decision)"
    head = f"{d.decision} {d.reason}"
    if d.decision == "STATE_CHANGE":
        head += f" -> {d.trading_state}"
    bits = []
    if d.message and d.reason != "OK":
        bits.append(d.message)
    details = d.details or {}
    if "limit" in details or "value" in details:
        bits.append(f"limit {details.get('limit', '-')}, value {details.get('value', '-')}")
    return f"{head} ({'; '.join(bits)})" if bits else head


class ExplainedReplay:
    """A :class:`~replay.replayer.ReplayResult` whose failures explain themselves (every other attribute is
    the result's own)."""

    def __init__(self, result: ReplayResult) -> None:
        self.result = result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def explain(self, limit: int = 50) -> str:
        r = self.result
        rows = {(row.session_id, row.seq): row for row in r.decisions}
        decided = {(d.session_id, d.seq) for d in r.divergences if d.kind == "decision"}
        lines: list[str] = []
        derived = 0
        for d in r.divergences:
            where = f"{d.session_id[:8]}#{d.seq}" if d.seq else f"{d.session_id[:8]} (end)"
            if d.kind == "order_state" and (d.session_id, d.seq) in decided:
                derived += 1
                continue
            if d.kind == "decision" and (row := rows.get((d.session_id, d.seq))) is not None:
                lead = f"{where} decision {d.subject}:"
                lines.append(f"  {lead} recorded {_decision_text(row.recorded)}")
                lines.append(f"  {' ' * len(lead)} replayed {_decision_text(row.replayed)}")
            else:
                lines.append(f"  {where} {d.kind} {d.subject}: recorded {d.recorded}, replayed {d.replayed}")
        shown = r.n_divergences - derived
        head = [f"{shown} divergence(s) replaying {r.source} ({r.events} events)"
                + (f"; {derived} order state(s) that follow from them not repeated" if derived else "") + ":"]
        if r.config_note:
            head.append(f"  governor config: recorded {r.recorded_config_hash[:12]}, replayed {r.config_digest[:12]} "
                        f"({r.config_origin}): decisions may differ for that reason alone")
        if len(lines) > 2 * limit:
            lines = lines[: 2 * limit] + [f"  ... and more ({r.n_divergences} in all)"]
        elif r.n_divergences > len(r.divergences):
            lines.append(f"  ... and {r.n_divergences - len(r.divergences)} more not kept")
        return "\n".join(head + lines)

    def report(self, limit: int = 50) -> str:
        return self.explain(limit)

    def assert_no_divergence(self) -> ExplainedReplay:
        """Fail the test with :meth:`explain` (this frame hidden from pytest's traceback)."""
        __tracebackhide__ = True
        if self.result.n_divergences:
            raise AssertionError(self.explain())
        return self
