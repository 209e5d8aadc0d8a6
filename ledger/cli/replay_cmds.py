"""``ibledger replay``: a recorded, file or synthetic session through the same fold and governor as live."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer

from ledger.cli.common import console, err_console, fail
from ledger.cli.render import DecisionLine
from ledger.core.governor_config import GovernorConfig, GovernorConfigError, load_config

if TYPE_CHECKING:
    from replay.replayer import DecisionRow, ReplayResult

__all__ = ["decision_lines", "register", "replay_cmd"]


def register(app: typer.Typer) -> None:
    app.command("replay")(replay_cmd)


def decision_lines(rows: Iterable[DecisionRow]) -> list[DecisionLine]:
    """Replayed decisions next to the recorded ones (``replay.replayer.DecisionRow``), as rows of the one
    decisions table (:func:`ledger.cli.render.decisions_table`)."""
    out = []
    for r in rows:
        d = r.replayed or r.recorded
        assert d is not None
        out.append(DecisionLine(seq=r.seq, origin=r.origin, decision=d, compared=True, recorded=r.recorded,
                                missing=r.replayed is None))
    return out


@contextmanager
def _progress(total: int | None, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr, fed by the replayer's progress callback (every 16k events)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=total)
        yield lambda n: bar.update(task, completed=n)


def replay_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="A session file (.jsonl), store:SESSION_PREFIX (or just the prefix, with --store), "
            "or synthetic:SEED[:N_ORDERS]"
        ),
    ],
    governor: Annotated[
        Path | None,
        typer.Option("--governor", "-g", help="Governor config (TOML) to replay under; default: the built-in one"),
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="Compare replayed decisions and order states with the recording; exit 1 on any"),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    store: Annotated[
        str | None,
        typer.Option("--store", help="Store URL for store sources (default: $IBLEDGER_STORE or ./ibledger.db)"),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when stderr is a terminal)"),
    ] = None,
    max_rows: Annotated[int, typer.Option("--max-rows", help="Rows per table (0: all)")] = 200,
    save: Annotated[
        Path | None, typer.Option("--save", help="Also write the source stream as a session file (one session)")
    ] = None,
    allow_gaps: Annotated[
        bool,
        typer.Option("--allow-gaps", help="Replay past missing events of a damaged store (warned, result flagged "
                     "INCOMPLETE) instead of failing"),
    ] = False,
) -> None:
    """Replay a session through the same fold and governor as live; print orders, anomalies, decisions, digest.

    With --governor, replay yesterday's session under today's limits: the decisions that differ are listed
    (with --check, as divergences: event seq, recorded vs replayed, and exit code 1).
    """
    from ledger.store import GapError, StoreError
    from replay.replayer import Replayer, SourceError, open_source

    config: GovernorConfig | None = None
    if governor is not None:
        try:
            config = load_config(governor)
        except GovernorConfigError as exc:
            fail(f"governor config refused: {exc}")
    try:
        gaps: list = []
        src = open_source(source, store, on_gap=gaps.append if allow_gaps else None)
    except SourceError as exc:
        fail(str(exc))
    show = progress if progress is not None else err_console.is_terminal
    if save is not None:  # write the source out, then replay exactly what was written
        from replay.replayer import file_source
        from replay.synthetic import write_session_stream

        try:
            n = write_session_stream(save, src)
        except ValueError as exc:
            fail(f"cannot save {src.name} as one session file: {exc}")
        err_console.print(f"saved {n} events of {src.name} to {save}", highlight=False)
        name = src.name
        src = file_source(save)
        src.name = name
    # A replay allocates millions of short-lived objects next to a growing fold: fewer young-generation
    # collections make it ~15% faster (measured, tests/benchmarks/bench_replay.py). Restored afterwards.
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        with _progress(src.total, show) as progress_cb:
            result = Replayer(config, check=check, progress=progress_cb).run(src)
    except SourceError as exc:
        fail(str(exc))
    except GapError as exc:  # a hole met while streaming a store session: never a short replay
        fail(f"{src.name}: {exc.gap.describe()}; the store is damaged or rows were removed (run `ibledger "
             f"verify`; --allow-gaps replays what is readable, flagged incomplete). Nothing was replayed to "
             f"completion.", code=1)
    except StoreError as exc:
        fail(f"{src.name}: {exc}\nNothing was replayed to completion.", code=1)
    except ValueError as exc:  # a session file that turns out bad half-way (SessionFileError), schema errors
        fail(f"{src.name}: {exc}")
    finally:
        gc.set_threshold(*thresholds)
    result.source = src.name
    for g in gaps:
        err_console.print(f"[bold yellow]warning:[/] INCOMPLETE replay: {g.describe()}", highlight=False)
    if as_json:
        sys.stdout.buffer.write(msgspec.json.encode(result.to_json()) + b"\n")
        sys.stdout.flush()
    else:
        _print(result, max_rows)
    if check and result.n_divergences:
        raise typer.Exit(1)


def _print(r: ReplayResult, max_rows: int) -> None:
    from ledger.cli.render import anomalies_table, decisions_table, orders_table

    limit = max_rows if max_rows > 0 else None
    orders = r.orders
    anomalies = r.anomalies
    console.print(orders_table(orders[:limit], title=f"Orders ({len(orders)})"))
    _more(len(orders), limit)
    if anomalies:
        console.print(anomalies_table(anomalies[:limit], title=f"Anomalies ({len(anomalies)})"))
        _more(len(anomalies), limit)
    rows = r.decisions
    if rows:
        title = "Governor decisions (not ALLOW, or differing)"
        console.print(decisions_table(decision_lines(rows[:limit]), title=title))
        _more(len(rows), limit)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(r.decision_counts.items()))
    console.print(f"decisions: {counts or 'none'}", highlight=False)
    if r.unchecked_intents:
        console.print(f"intents without a recorded decision (not compared): {r.unchecked_intents}", highlight=False)
    console.print(
        f"source {r.source}: {r.events} events, {len(r.sessions)} session(s); trading state {r.trading_state}; "
        f"governor config {r.config_digest[:12]} ({r.config_origin})",
        highlight=False,
    )
    if r.config_note:
        console.print(f"[yellow]warning:[/] {r.config_note}", highlight=False)
    if r.n_divergences:
        console.print(f"[bold red]{r.n_divergences} divergence(s)[/] (event, recorded vs replayed):")
        for d in r.divergences[:limit]:
            console.print(f"  {d.describe()}", highlight=False, markup=False)
        _more(r.n_divergences, limit)
    elif r.checked:
        console.print("[green]no divergence[/]: replayed decisions and order states match the recording")
    console.print(f"digest sha256:{r.digest}", highlight=False)


def _more(n: int, limit: int | None) -> None:
    if limit is not None and n > limit:
        console.print(f"  ... {n - limit} more (--max-rows 0 or --json for all)", highlight=False)
