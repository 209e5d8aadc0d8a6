"""``ibledger watch``: the live view beside a running recorder (wiring only; the logic is in ``ledger.live.watch``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ledger.cli.common import console, opened_store, redact, store_url
from ledger.cli.options import StoreOpt


def register(app: typer.Typer) -> None:
    app.command("watch")(watch_cmd)


def watch_cmd(
    store: StoreOpt = None,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between polls of the store.")] = 0.5,
    once: Annotated[bool, typer.Option("--once", help="Print the current state once and exit.")] = False,
) -> None:
    """Live view of the ledger: connection, reconciliation, trading state, open orders, fills, decisions,
    anomalies and the recorder's lag. Reads the store's tail, so it works from any process or host that can
    open the store (SQLite file or PostgreSQL). Ctrl-C to quit."""
    from ledger.live.watch import run_watch

    if interval <= 0:
        from ledger.cli.common import fail

        fail(f"--interval must be positive, got {interval:g}")
    with opened_store(store) as st:
        run_watch(st, interval=interval, once=once, store_label=redact(store_url(store)), console=console)
