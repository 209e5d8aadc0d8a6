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

``ibledger_sessions(pattern="fixtures/*.jsonl")`` lists session files for parametrizing.
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
        return replay(source, _config(governor, request), check=check, store_url=store)

    return run


@pytest.fixture
def ibledger_sessions(request: pytest.FixtureRequest) -> Callable[[str], list[Path]]:
    """``ibledger_sessions("fixtures/*.jsonl")``: session files under the pytest root, sorted."""

    def find(pattern: str = "fixtures/*.jsonl") -> list[Path]:
        return sorted(request.config.rootpath.glob(pattern))

    return find
