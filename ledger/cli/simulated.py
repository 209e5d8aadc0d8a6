"""Starting the built-in TWS simulator for ``--simulate``: the command line wires it into live sessions.

Live code (placement, health) takes the starter as an argument, so only the command line and the replay
tools import the simulator.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run_seed() -> int:
    """A seed for this run's permId/execId bases, from the start time (microseconds).

    Every ``--simulate`` run records into the same store as earlier runs; fixed bases would make a second run
    reuse the first run's permIds and execIds, which the ledger then reads as one order or a duplicate fill.
    """
    return time.time_ns() // 1000


def start_simulator(
    account: str,
    scenarios_dir: str | Path | None = None,
    seed: int | None = None,
    *,
    market_seed: int | None = None,
    port_seed: int | None = None,
) -> Any:
    """A running simulator on a free port serving ``account``, with the built-in scenarios (plus a user's).

    ``seed`` fixes the permId/execId bases (reproducible output); by default each run gets its own.
    ``market_seed`` fixes the price paths apart from them; ``port_seed`` picks the port from a sequence
    fixed by that seed (a recording names its port) instead of any free one.
    """
    from replay.tws.scenarios import BUILTIN_DIR
    from replay.tws.simulator import Simulator

    dirs = [BUILTIN_DIR, Path(scenarios_dir)] if scenarios_dir else None
    return Simulator(accounts=(account,), scenarios_dir=dirs, seed=run_seed() if seed is None else seed,
                     market_seed=market_seed, port_seed=port_seed).start()
