"""Store-level commands: import, export, sessions, orders, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from ledger.cli.common import console, err_console, fail, opened_store
from ledger.cli.options import JsonOpt, StoreOpt
from ledger.cli.render import (
    anomalies_table,
    contracts_rows,
    order_row_with_pnl,
    orders_table,
    pnl_table,
    verify_summary,
)
from ledger.core.fold import fold
from ledger.core.rows import anomaly_row
from ledger.store import GapError, SeqConflict, StoreError
from ledger.store.sessionfile import SessionFileError, iter_session, read_header, write_session
from ledger.store.verify import verify


def register(app: typer.Typer) -> None:
    app.command("import")(import_cmd)
    app.command("export")(export_cmd)
    app.command("sessions")(sessions_cmd)
    app.command("orders")(orders_cmd)
    app.command("verify")(verify_cmd)
    app.command("anchor")(anchor_cmd)


InitOpt = Annotated[
    bool,
    typer.Option("--init", help="Allow adding ibledger's tables to an existing SQLite database that holds "
                 "other tables"),
]


def import_cmd(
    path: Annotated[Path, typer.Argument(help="Session file (.jsonl) to import")],
    store: StoreOpt = None,
    init: InitOpt = False,
) -> None:
    """Import a session file, all or nothing: it is streamed into one store transaction (memory stays flat
    in the file's length) and validated on the way; a bad line anywhere rolls the whole import back."""
    try:
        header = read_header(path)
    except SessionFileError as exc:
        fail(f"{exc}\nNothing was imported. Fix the line or re-export the session.")
    with opened_store(store, write=True, init=init) as st:
        if st.last_seq(header.session_id):
            fail(f"session {header.session_id} is already in {st.url}; nothing was imported")
        try:
            count, _last = st.append_stream(iter_session(path))
        except SessionFileError as exc:
            fail(f"{exc}\nNothing was imported. Fix the line or re-export the session.")
        except SeqConflict as exc:
            fail(f"{exc}; nothing was imported")
        except StoreError as exc:  # disk full, lock timeout, connection lost: the append is one transaction
            fail(f"import of session {header.session_id} into {st.url} failed: {exc}\nNothing was imported "
                 f"(the import is one transaction); fix the cause (free disk space, retry) and run it again", code=1)
        console.print(f"imported session {header.session_id}: {count} events into {st.url}")


AllowGapsOpt = Annotated[
    bool,
    typer.Option("--allow-gaps", help="Read on past missing events of a damaged store (warned, output flagged "
                 "incomplete) instead of failing"),
]


def _gap_note(gaps: list) -> None:
    """The flag an --allow-gaps read carries: every hole, on stderr, so piped output stays parseable."""
    for g in gaps:
        err_console.print(f"[bold yellow]warning:[/] INCOMPLETE: {g.describe()}", highlight=False)


def export_cmd(
    session: Annotated[str, typer.Argument(help="Session id (a unique prefix is enough)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Session file to write (.jsonl)")],
    store: StoreOpt = None,
    allow_gaps: AllowGapsOpt = False,
) -> None:
    """Export one session as a session file (header line + one envelope per line)."""
    if not out.parent.is_dir():
        fail(f"cannot export to {out}: directory {out.parent} does not exist; create it or choose another --out")
    if out.exists() and not out.is_file():
        fail(f"cannot export to {out}: it is not a regular file; choose another --out")
    with opened_store(store) as st:
        try:
            sid = st.find_session(session)
        except StoreError as exc:
            fail(str(exc))
        gaps: list = []
        try:
            # streamed either way; with holes skipped the count is only known at the end (None)
            stream = st.read_session(sid, allow_gaps=allow_gaps, on_gap=gaps.append)
            count = write_session(out, stream, sid, None if allow_gaps else st.last_seq(sid))
        except GapError as exc:
            fail(f"{exc}; pass --allow-gaps to export what is readable (flagged incomplete).\nNothing was "
                 f"exported ({out} not written).", code=1)
        except StoreError as exc:
            fail(f"export of session {sid} failed: {exc}\nNothing was exported ({out} not written).", code=1)
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}; nothing was exported (free space or choose "
                 f"another --out)", code=1)
        _gap_note(gaps)
        console.print(f"exported session {sid}: {count} events to {out}" + (" (INCOMPLETE)" if gaps else ""))


def sessions_cmd(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recording sessions: start time, client id, account, mode, order count, state (crashed flagged)."""
    from ledger.cli.render import session_summaries, sessions_table

    with opened_store(store) as st:
        rows = session_summaries(st)
    if as_json:
        print(json.dumps({"sessions": [msgspec.to_builtins(r) for r in rows]}, indent=2))
        return
    console.print(sessions_table(rows))


def orders_cmd(
    store: StoreOpt = None,
    session: Annotated[str | None, typer.Option("--session", help="Only this session (unique prefix)")] = None,
    as_json: JsonOpt = False,
    allow_gaps: AllowGapsOpt = False,
) -> None:
    """Fold the store's events into orders and print them with P&L per contract and their anomalies."""
    gaps: list = []
    with opened_store(store) as st:
        try:
            if session:
                try:
                    sid = st.find_session(session)
                except StoreError as exc:
                    fail(str(exc))
                state = fold(st.read_session(sid, allow_gaps=allow_gaps, on_gap=gaps.append))
            else:
                state = fold(env for _, env in st.read_all(allow_gaps=allow_gaps, on_gap=gaps.append))
        except GapError as exc:
            fail(f"{exc}; pass --allow-gaps to fold what is readable (flagged incomplete).\nNo orders printed.",
                 code=1)
        except StoreError as exc:
            fail(f"{exc}\nNo orders printed.", code=1)
    _gap_note(gaps)
    orders = list(state.orders.values())
    if as_json:
        doc = {"orders": [order_row_with_pnl(o) for o in orders], "contracts": contracts_rows(orders),
               "anomalies": [anomaly_row(a) for a in state.anomalies]}
        if gaps:
            doc["incomplete"] = [g.describe() for g in gaps]
        # strict JSON: a non-finite number (a flagged input the fold kept as a fact) is null, never NaN
        print(msgspec.json.format(msgspec.json.encode(doc), indent=2).decode())
        return
    console.print(orders_table(orders))
    if any(o.fills for o in orders):
        console.print(pnl_table(orders))
    if state.anomalies:
        console.print(anomalies_table(state.anomalies))
    else:
        console.print("no anomalies")


KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="HMAC key for anchors (created 0600 on first use). Default: "
                 "$IBLEDGER_KEY_FILE or ~/.config/ibledger/anchor.key"),
]


def verify_cmd(
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    anchor: Annotated[
        Path | None, typer.Option("--anchor", help="Also check against signed session heads (`ibledger anchor`)")
    ] = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Check the store: gaps, crashed sessions, undecodable or tampered events. Exit 1 on any problem."""
    from ledger.store.anchor import AnchorCheck, AnchorError, load_key, read_anchors

    anchors = None
    check = None
    if anchor is not None:
        try:
            key = load_key(key_file, create=False)
            check = AnchorCheck(file=str(anchor))
            anchors = read_anchors(anchor, key, check)
        except AnchorError as exc:
            fail(str(exc))
    with opened_store(store) as st:
        try:
            report = verify(st, anchors)
        except StoreError as exc:
            fail(f"verify could not read {st.url}: {exc}", code=1)
    if check is not None:
        report.anchor_file = check.file
        report.anchor_problems = check.problems + report.anchor_problems
    if as_json:
        print(json.dumps(msgspec.to_builtins(report), indent=2))
    else:
        console.print(verify_summary(report), highlight=False)
    raise typer.Exit(0 if report.ok else 1)


def anchor_cmd(
    file: Annotated[Path, typer.Option("--file", "-f", help="Anchor file to append to (keep it outside the "
                                       "database, append-only)")],
    store: StoreOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Append every session's signed head to an anchor file; `verify --anchor` later proves nothing changed."""
    import time

    from ledger.store.anchor import AnchorError, anchor_store, load_key

    with opened_store(store) as st:
        try:
            report = verify(st)
        except StoreError as exc:
            fail(f"verify could not read {st.url}: {exc}", code=1)
        if not report.ok:
            console.print(verify_summary(report), highlight=False)
            fail("the store does not verify: anchoring it would sign damage; nothing anchored", code=1)
        try:
            key = load_key(key_file, create=True)
            n = anchor_store(st, file, key, time.time_ns())
        except AnchorError as exc:
            fail(str(exc))
    console.print(f"anchored {n} sessions of {st.url} in {file}", highlight=False)
