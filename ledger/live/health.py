"""Health checks: connection, account, recorder, reconciliation, governor, store, open orders (read-only).

Each check is a plain dict ``{"check", "ok", "detail"}`` so the CLI can print it as a line or as JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledger.ib.settings import ConnectError, ConnectionSettings, SettingsError


def store_check(st: Any) -> dict[str, Any]:
    try:
        return {"check": "store", "ok": True,
                "detail": f"{st.url}: {len(st.sessions())} session(s), position {st.max_position()}"}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"check": "store", "ok": False, "detail": f"{st.url}: {exc}"}


def ledger_checks(st: Any, gov: Any) -> list[dict[str, Any]]:
    """Recorder, reconciliation, governor and open orders as the store's latest session recorded them.

    Read from the store only (the same fold and governor as the recorder, over that session's events), so
    it tells the state of a recorder running in another process or on another host.
    """
    from ledger.core import events as ev
    from ledger.core.engine import Engine

    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    sessions = st.sessions()
    if not sessions:
        check("recorder", True, "no session recorded yet")
        return checks
    info = sessions[-1]
    eng = Engine(gov)
    faults = 0
    for env in st.read_session(info.session_id):
        eng.process(env)
        faults += isinstance(env.payload, ev.RecorderFault)
    fold = eng.fold
    state = "recording (or crashed: no end event)" if info.crashed else "closed"
    check("recorder", faults == 0, f"latest session {info.session_id}: {info.events} events, {state}"
          + (f", {faults} recorder fault(s)" if faults else ""))
    check("reconciliation", not fold.reconciling and not fold.reconcile_unknown,
          "running" if fold.reconciling else (
              f"incomplete, unknown: {', '.join(fold.reconcile_unknown)}" if fold.reconcile_unknown else "ok"))
    check("governor", eng.trading_state == "ACTIVE" and not eng.recorder_fault,
          f"{eng.trading_state}{', recorder fault' if eng.recorder_fault else ''}, config {eng.config.digest()[:12]}")
    check("open orders", True, f"{len(fold.open_orders())} in the latest session")
    return checks


async def run_checks(
    settings: ConnectionSettings, st: Any, gov: Any, timeout: float,
    start_simulator: Callable[[str, Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """Connect read-only (nothing is recorded: a health check must not add a session), then report the
    link and the ledger's state from the store. Never raises for a bad link. ``start_simulator`` serves
    ``--simulate`` (passed in by the command line, as for live sessions)."""
    from ledger.ib.library import IB
    from ledger.ib.settings import check_account, connect_client

    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    sim = None
    if settings.simulate:
        if start_simulator is None:
            check("connection", False, "--simulate needs the simulator, which the ibledger command line starts")
            return checks
        sim = start_simulator(settings.account, None)
        settings = settings.with_endpoint("127.0.0.1", sim.port)
    ib = IB()
    try:
        await connect_client(ib, settings.host, settings.port, settings.client_id, timeout=timeout,
                             account=settings.account, readonly=True)
        check("connection", ib.isConnected(),
              f"{settings.host}:{settings.port} client id {settings.client_id} ({settings.mode}), server version "
              f"{ib.client.serverVersion()}")
        managed = list(ib.managedAccounts())
        try:
            check_account(settings, managed)
            check("account", True, f"{settings.account} (managed: {', '.join(managed)})")
        except SettingsError as exc:
            check("account", False, str(exc))
    except (ConnectError, SettingsError) as exc:
        check("connection", False, str(exc))
    finally:
        ib.disconnect()
        if sim is not None:
            sim.stop()
    checks.extend(ledger_checks(st, gov))
    return checks
