"""``ibledger simulate``: run the wire-level TWS simulator (wiring only; the logic is in ``replay``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import console, fail
from ledger.core.events import SIMULATOR_ACCOUNT


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one (printed).")] = 7497,
        host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
        scenarios: Annotated[
            list[Path] | None,
            typer.Option("--scenarios", help="Scenario directory (repeatable; overrides built-ins by name)."),
        ] = None,
        trusted_ip: Annotated[
            list[str] | None,
            typer.Option("--trusted-ip", help="Peer address allowed to connect (repeatable). Default: 127.0.0.1."),
        ] = None,
        account: Annotated[
            list[str] | None,
            typer.Option("--account", help=f"Managed account (repeatable). Default: {SIMULATOR_ACCOUNT}."),
        ] = None,
        time_scale: Annotated[float, typer.Option("--time-scale", help="Multiply every scenario delay.")] = 1.0,
        session: Annotated[
            Path | None,
            typer.Option("--session", help="Recorded session file to play back on the wire to each new client."),
        ] = None,
        instruments: Annotated[
            list[Path] | None,
            typer.Option("--instruments", help="Extra instruments (TOML [[instrument]] or CSV; repeatable)."),
        ] = None,
        seed: Annotated[
            int | None,
            typer.Option("--seed", help="Seed of the market and the permId/execId bases (default: the start time)."),
        ] = None,
        speed: Annotated[
            float,
            typer.Option("--speed", help="Simulated market seconds per wall second (0: the clock stands still)."),
        ] = 1.0,
        bars: Annotated[
            list[Path] | None,
            typer.Option("--bars", help="OHLCV bars file (CSV, or Parquet with pyarrow) driving its symbols' prices."),
        ] = None,
        slippage_ticks: Annotated[
            int, typer.Option("--slippage-ticks", help="Ticks beyond the touch that market-following fills pay.")
        ] = 0,
    ) -> None:
        """Serve a TWS stand-in that ib_insync / ib_async connect to; stops on Ctrl-C or SIGTERM."""
        from replay.tws.catalogue import BUILTIN, Catalogue, CatalogueError, load_instruments
        from replay.tws.market import BarsFileError, load_bars
        from replay.tws.scenarios import BUILTIN_DIR, ScenarioError
        from replay.tws.simulator import Simulator, serve_forever

        dirs = [BUILTIN_DIR, *scenarios] if scenarios else None
        if speed < 0:
            fail(f"--speed {speed}: must be 0 or more")
        if slippage_ticks < 0:
            fail(f"--slippage-ticks {slippage_ticks}: must be 0 or more")
        run_seed = seed if seed is not None else int(time.time())
        paths: dict[str, list] = {}
        try:
            for path in bars or ():
                for symbol, rows in load_bars(path).items():
                    paths.setdefault(symbol, []).extend(rows)
        except BarsFileError as exc:
            fail(f"bad bars file: {exc}")
        try:
            extra = [inst for path in instruments or () for inst in load_instruments(path)]
        except CatalogueError as exc:
            fail(f"bad instruments file: {exc}")
        try:
            sim = Simulator(
                catalogue=Catalogue([*BUILTIN, *extra]),
                seed=run_seed,
                market_speed=speed,
                bars=paths,
                slippage_ticks=slippage_ticks,
                host=host,
                port=port,
                scenarios_dir=dirs,
                trusted_ips=tuple(trusted_ip or ()) or ("127.0.0.1",),
                accounts=tuple(account or ()) or (SIMULATOR_ACCOUNT,),
                time_scale=time_scale,
            )
        except ScenarioError as exc:
            fail(f"bad scenario file: {exc}")
        if session is not None:
            try:
                from replay.tws.wire_replay import load_playback
            except ImportError as exc:  # pragma: no cover - depends on the session-file module
                fail(f"wire replay unavailable: {exc}")
            try:
                sim.playback = load_playback(session)
            except (OSError, ValueError) as exc:
                fail(f"cannot load session {session}: {exc}")

        def ready(s: Simulator) -> None:
            console.print(f"listening on {s.host}:{s.port}", highlight=False)
            console.print(
                f"  {len(s.scenario_names())} scenarios; trusted peers: {', '.join(sorted(s.trusted_ips))}; "
                f"accounts: {', '.join(s.accounts)}",
                highlight=False,
            )
            console.print(
                f"  {len(s.catalogue)} instruments; seed {run_seed}; market clock x{speed:g}", highlight=False
            )
            console.file.flush()

        try:
            serve_forever(sim, on_ready=ready)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {exc}")
        console.print("simulator stopped", highlight=False)
