"""Store-level commands: import, export, sessions, orders, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from ledger.cli.common import console, fail, opened_store
from ledger.orders import fold
from ledger.sessionfile import SessionFileError, iter_session, read_header, write_session
from ledger.store import SeqConflict, StoreError
from ledger.tables import anomalies_table, anomaly_row, order_row, orders_table, verify_summary
from ledger.verify import verify

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (sqlite:///path.db or postgresql://...). Default: $IBLEDGER_STORE "
                 "or sqlite:///ibledger.db"),
]


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
    app.command("sessions")(sessions_cmd)
    app.command("orders")(orders_cmd)
    app.command("verify")(verify_cmd)


def import_cmd(
    path: Annotated[Path, typer.Argument(help="Session file (.jsonl) to import")],
    store: StoreOpt = None,
) -> None:
    """Import a session file. The whole file is validated first; a bad file imports nothing."""
    try:
        header = read_header(path)
        events = list(iter_session(path))
    except SessionFileError as exc:
        fail(f"{exc}\nNothing was imported. Fix the line or re-export the session.")
    with opened_store(store) as st:
        if st.last_seq(header.session_id):
            fail(f"session {header.session_id} is already in {st.url}; nothing was imported")
        try:
            st.append(events)
        except SeqConflict as exc:
            fail(f"{exc}; nothing was imported")
        console.print(f"imported session {header.session_id}: {len(events)} events into {st.url}")


def export_cmd(
    session: Annotated[str, typer.Argument(help="Session id (a unique prefix is enough)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Session file to write (.jsonl)")],
    store: StoreOpt = None,
) -> None:
    """Export one session as a session file (header line + one envelope per line)."""
    with opened_store(store) as st:
        try:
            sid = st.find_session(session)
        except StoreError as exc:
            fail(str(exc))
        count = st.last_seq(sid)
        write_session(out, st.read_session(sid), sid, count)
        console.print(f"exported session {sid}: {count} events to {out}")


def sessions_cmd(
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
) -> None:
    """List recording sessions, flagging crashed ones (no end event)."""
    from rich.table import Table

    with opened_store(store) as st:
        infos = st.sessions()
    if as_json:
        rows = [msgspec.to_builtins(i) | {"crashed": i.crashed} for i in infos]
        print(json.dumps(rows, indent=2))
        return
    t = Table(title="Sessions", title_justify="left")
    for col in ("session", "events", "first seq", "last seq", "status"):
        t.add_column(col)
    for i in infos:
        status = "[red]crashed / still recording[/]" if i.crashed else "closed"
        t.add_row(i.session_id, str(i.events), str(i.first_seq), str(i.last_seq), status)
    console.print(t)


def orders_cmd(
    store: StoreOpt = None,
    session: Annotated[str | None, typer.Option("--session", help="Only this session (unique prefix)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False,
) -> None:
    """Fold the store's events into orders and print them with their anomalies."""
    with opened_store(store) as st:
        if session:
            try:
                sid = st.find_session(session)
            except StoreError as exc:
                fail(str(exc))
            state = fold(st.read_session(sid))
        else:
            state = fold(env for _, env in st.read_all())
    orders = list(state.orders.values())
    if as_json:
        doc = {"orders": [order_row(o) for o in orders], "anomalies": [anomaly_row(a) for a in state.anomalies]}
        # strict JSON: a non-finite number (a flagged input the fold kept as a fact) is null, never NaN
        print(msgspec.json.format(msgspec.json.encode(doc), indent=2).decode())
        return
    console.print(orders_table(orders))
    if state.anomalies:
        console.print(anomalies_table(state.anomalies))
    else:
        console.print("no anomalies")


def verify_cmd(
    store: StoreOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check the store: gaps, crashed sessions, undecodable or tampered events. Exit 1 on any problem."""
    with opened_store(store) as st:
        report = verify(st)
    if as_json:
        print(json.dumps(msgspec.to_builtins(report), indent=2))
    else:
        console.print(verify_summary(report))
    raise typer.Exit(0 if report.ok else 1)
