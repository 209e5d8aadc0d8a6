"""Record the fixture sessions: one recorded session per simulator scenario, as session files.

For each scenario (default: every scenario shipped in ``replay/tws/scenarios/*.toml`` plus the built-in
``default``) :func:`record_fixtures`

1. starts the wire-level simulator (a fresh one per scenario) seeded from the scenario's name
   (:func:`fixture_seed`), so permIds and execIds are the same every time yet no two fixtures share any,
   on the first free port of a sequence fixed by that seed (the recording names the port);
2. opens a recorded session (:func:`ledger.live.placement.open_session`: the real client library from
   ``ledger.ib.library`` over a real socket, the :class:`~ledger.live.recorder.Recorder` writing into a temporary
   SQLite store, the engine, background reconnect) with the deterministic session id
   ``derived_id("fixture", scenario)``, stamping every event from the simulator's clock
   (:meth:`~replay.tws.simulator.Simulator.recording_clock`), so two runs write the same bytes;
3. drives the scenario the way a strategy would, through safe placement: a limit order with
   ``orderRef`` = the scenario's name (and its ``match`` symbol / side / quantity / tif, if any), then
   the cancel or modify the scenario reacts to (as ``tests/replay/tws/test_simulator_scenarios.py`` does), waiting
   on the order monitor and until the simulator has nothing left to send and the ledger is quiet;
4. closes the session cleanly (``session_ended``) and exports it to ``<out_dir>/<scenario>.jsonl``.

Regenerate the committed fixtures with ``python -m replay.fixtures fixtures/``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.core.session import derived_id

__all__ = ["DRIVES", "Drive", "fixture_path", "fixture_session_id", "record_fixtures", "shipped_scenarios"]

DEFAULT_SYMBOL = "AAPL"
DEFAULT_ACTION = "BUY"
DEFAULT_QTY = 100.0
DEFAULT_TIF = "DAY"
DEFAULT_PRICE = 100.0
MODIFIED_QTY = 200.0
MODIFIED_PRICE = 99.5


@dataclass(frozen=True)
class Drive:
    """How a strategy drives one scenario (what ``tests/replay/tws/test_simulator_scenarios.py`` does by hand)."""

    action: str = ""  # "" | "cancel" | "modify": sent once the scenario's own steps have played out
    live: bool = False  # the order stays working after its steps (the placement monitor times out)
    place_timeout: float = 5.0  # how long the placement monitor follows the order
    client_id: int = 1  # manual TWS orders are only sent to clientId 0


_LIVE = Drive(live=True, place_timeout=0.3)
_CANCEL = Drive(action="cancel", live=True, place_timeout=0.3)

#: Scenarios that need more than "place and wait until it settles". Any other scenario is driven that way.
DRIVES: dict[str, Drive] = {
    "default": _CANCEL,
    "cancel_202_before_cancelled": _CANCEL,
    "cancel_202_after_cancelled": _CANCEL,
    "partial_then_cancel": _CANCEL,
    "cancel_races_fill": _CANCEL,
    "cancel_refused": _CANCEL,
    "stuck_presubmitted": _LIVE,
    "long_silence": Drive(live=True, place_timeout=2.0),  # 1.5 s of silence before the acknowledgement
    "modify_ack": Drive(action="modify", live=True, place_timeout=0.3),
    "manual_tws_order": Drive(live=True, place_timeout=0.3, client_id=0),
    "drop_mid_fill": Drive(place_timeout=10.0),  # the reconnect + reconciliation bring the rest
}


def shipped_scenarios() -> list[str]:
    """Every scenario in ``replay/tws/scenarios/*.toml`` (file order), plus the built-in ``default``."""
    from replay.tws.scenarios import BUILTIN_DIR, load_dir

    names = [s.name for s in load_dir(BUILTIN_DIR)]
    return names + ([] if "default" in names else ["default"])


def fixture_path(out_dir: str | Path, scenario: str) -> Path:
    return Path(out_dir) / f"{scenario}.jsonl"


def fixture_session_id(scenario: str) -> str:
    return derived_id("fixture", scenario)


def fixture_seed(scenario: str) -> int:
    """The simulator seed for ``scenario``'s fixture: fixed per name, distinct across names."""
    return zlib.crc32(f"fixture:{scenario}".encode())


def record_fixtures(
    out_dir: str | Path,
    scenarios: Iterable[str] | None = None,
    *,
    progress: Callable[[str, Path, int], None] | None = None,
) -> list[Path]:
    """Record one session per scenario and write ``<out_dir>/<scenario>.jsonl``; returns the paths.

    ``scenarios``: names (default :func:`shipped_scenarios`). ``progress(name, path, events)`` is called
    after each file is written.
    """
    names = list(scenarios) if scenarios is not None else shipped_scenarios()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_record_all(out, names, progress))


async def _record_all(out: Path, names: Sequence[str], progress: Callable[[str, Path, int], None] | None) -> list[Path]:
    from ledger.store import open_store
    from ledger.store.sessionfile import write_session
    from replay.tws.scenarios import BUILTIN_DIR, ScenarioBook

    book = ScenarioBook.from_dirs([BUILTIN_DIR])
    unknown = [n for n in names if n not in book and n != "default"]
    if unknown:
        raise ValueError(f"unknown scenario(s): {', '.join(unknown)} (known: {', '.join(shipped_scenarios())})")
    paths: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="ibledger-fixtures-") as tmp:
        with open_store(f"sqlite:///{Path(tmp) / 'fixtures.db'}") as store:
            for name in names:
                scenario = book[name] if name in book else book.default
                sid = await _record_one(store, scenario)
                envs = list(store.read_session(sid))
                path = fixture_path(out, name)
                write_session(path, envs, sid, len(envs))
                paths.append(path)
                if progress is not None:
                    progress(name, path, len(envs))
    return paths


def _order_for(scenario: Any) -> tuple[Any, Any]:
    from ledger.ib.library import LimitOrder, Stock

    m = scenario.match
    symbol = m.symbol or DEFAULT_SYMBOL
    action = (m.action or DEFAULT_ACTION).upper()
    qty = float(m.quantity) if m.quantity is not None else DEFAULT_QTY
    tif = (m.tif or DEFAULT_TIF).upper()
    price = float(scenario.price) if scenario.price is not None else DEFAULT_PRICE
    order = LimitOrder(action, qty, price, orderRef=scenario.name, tif=tif)
    return Stock(symbol, "SMART", "USD"), order


async def _quiet(sess: Any, sim: Any, timeout: float = 5.0, quiet_s: float = 0.15) -> None:
    """Until the simulator has no step pending, the client is connected and reconciled, and nothing was
    recorded for ``quiet_s``. Polls (this is the recording harness, not the monitor). Raises on timeout:
    a fixture cut short would silently lack the scenario's end."""
    deadline = time.monotonic() + timeout
    last = (-1, 0.0)
    while time.monotonic() < deadline:
        seq = sess.recorder.last_seq
        now = time.monotonic()
        if seq != last[0]:
            last = (seq, now)
        elif now - last[1] >= quiet_s and sess.ready_now() and sim.idle():
            return
        await asyncio.sleep(0.01)
    raise TimeoutError(
        f"session {sess.session_id}: not quiet after {timeout}s (simulator idle: {sim.idle()}, "
        f"connected and reconciled: {sess.ready_now()})"
    )


async def _record_one(store: Any, scenario: Any) -> str:
    from ledger.ib.settings import resolve
    from ledger.live.placement import open_session
    from replay.tws.simulator import Simulator

    drive = DRIVES.get(scenario.name, Drive())
    sid = fixture_session_id(scenario.name)
    seed = fixture_seed(scenario.name)
    with Simulator(port=0, seed=seed, port_seed=seed) as sim:
        settings = resolve(host="127.0.0.1", port=sim.port, client_id=drive.client_id, account=sim.accounts[0], env={})
        async with open_session(settings, store, session_id=sid, reconnect_delay=0.1, linger=0.2,
                                clock=sim.recording_clock()) as sess:
            contract, order = _order_for(scenario)
            await sess.place(contract, order, timeout=drive.place_timeout)
            await _quiet(sess, sim)
            view = sess.fold.order_for(sess.client_id, int(order.orderId))
            if drive.action and view is None:
                raise RuntimeError(f"{scenario.name}: the order never reached the ledger; cannot {drive.action} it")
            if drive.action == "cancel":
                await sess.cancel(view, timeout=5.0)
            elif drive.action == "modify":
                order.totalQuantity = MODIFIED_QTY
                order.lmtPrice = MODIFIED_PRICE
                await sess.modify(contract, order, timeout=0.3)
            await _quiet(sess, sim)
    return sid


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m replay.fixtures",
        description="Record one session file per simulator scenario (the committed fixtures).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write <scenario>.jsonl into (e.g. fixtures/)")
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: every shipped scenario)")
    args = parser.parse_args(argv)
    t0 = time.monotonic()

    def report(name: str, path: Path, events: int) -> None:
        print(f"{path}  {events} events", flush=True)

    try:
        paths = record_fixtures(args.out_dir, args.scenarios or None, progress=report)
    except (ValueError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(paths)} session file(s) written to {args.out_dir} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
