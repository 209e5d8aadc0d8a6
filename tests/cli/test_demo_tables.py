"""The one governor-decisions table (``ledger.cli.render.decisions_table``), used by ``demo`` and ``replay``.

A recorded session's decisions show their cause; a replay's show the recorded decision beside the replayed
one (``same``, the differing one, or ``(none)``) — one set of columns, one renderer.
"""

from __future__ import annotations

import io

from rich.console import Console

from ledger.cli.demo import recorded_decisions
from ledger.cli.render import DecisionLine, decisions_table
from ledger.cli.replay_cmds import decision_lines
from ledger.core import events as ev
from ledger.core.events import envelope
from replay.replayer import DecisionRow


def _text(table) -> str:
    buf = io.StringIO()
    Console(file=buf, width=250, color_system=None).print(table)
    return buf.getvalue()


def _columns(text: str) -> list[str]:
    header = next(line for line in text.splitlines() if "seq" in line)
    return [c.strip() for c in header.strip("┃ ").split("┃")]


def _d(decision: str, reason: str, **kw) -> ev.GovernorDecision:
    return ev.GovernorDecision(decision=decision, reason=reason, action="place", order_id=7, client_id=1,
                               symbol="AAPL", trading_state="ACTIVE", message=f"{reason} message", **kw)


def test_recorded_decisions_show_their_cause_and_no_recorded_column():
    sid = "s1"
    envs = [envelope(sid, 5, _d("BLOCK", "MAX_QTY", details={"limit": 1000.0, "value": 5000.0}), recv_ns=1,
                     causation_id=f"{sid}#4")]
    text = _text(decisions_table(recorded_decisions(envs, sid)))
    assert _columns(text) == ["seq", "origin", "order", "symbol", "decision", "state", "details", "message",
                              "caused by"]
    assert "BLOCK MAX_QTY" in text and "#4" in text and "limit=1000" in text and "1:7" in text


def test_replayed_decisions_beside_the_recorded_ones():
    allow, block = _d("ALLOW", "OK"), _d("BLOCK", "MAX_NOTIONAL")
    rows = [
        DecisionRow(session_id="s", seq=3, origin="pre_check", replayed=block, recorded=block),
        DecisionRow(session_id="s", seq=9, origin="pre_check", replayed=block, recorded=allow),
        DecisionRow(session_id="s", seq=12, origin="reactive", replayed=None, recorded=block),
    ]
    lines = decision_lines(rows)
    assert all(isinstance(line, DecisionLine) and line.compared for line in lines)
    text = _text(decisions_table(lines))
    assert _columns(text) == ["seq", "origin", "order", "symbol", "decision", "recorded", "state", "details",
                              "message"]
    body = [line for line in text.splitlines() if line.startswith("│ ")]
    assert "same" in body[0] and "ALLOW OK" in body[1] and "BLOCK MAX_NOTIONAL" in body[1]
    assert "(none)" in body[2] and "BLOCK MAX_NOTIONAL" in body[2]  # recorded, not made by the replay
