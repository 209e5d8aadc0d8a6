"""Starting the built-in TWS simulator for ``--simulate``: the command line wires it into live sessions.

Live code (placement, health) takes the starter as an argument, so only the command line and the replay
tools import the simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def start_simulator(account: str, scenarios_dir: str | Path | None = None) -> Any:
    """A running simulator on a free port serving ``account``, with the built-in scenarios (plus a user's)."""
    from replay.tws.scenarios import BUILTIN_DIR
    from replay.tws.simulator import Simulator

    dirs = [BUILTIN_DIR, Path(scenarios_dir)] if scenarios_dir else None
    return Simulator(accounts=(account,), scenarios_dir=dirs).start()
