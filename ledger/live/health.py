"""Health checks: connection, account, recorder, reconciliation, governor, store, open orders.

Each check is a plain dict ``{"check", "ok", "detail"}`` so the CLI can print it as a line or as JSON.
"""

from __future__ import annotations

from typing import Any

from ledger.ib.settings import ConnectError, ConnectionSettings, SettingsError
from ledger.live.placement import open_session


def store_check(st: Any) -> dict[str, Any]:
    try:
        return {"check": "store", "ok": True,
                "detail": f"{st.url}: {len(st.sessions())} session(s), position {st.max_position()}"}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"check": "store", "ok": False, "detail": f"{st.url}: {exc}"}


async def run_checks(
    settings: ConnectionSettings, st: Any, gov: Any, timeout: float, **session_kw: Any
) -> list[dict[str, Any]]:
    """Connect (recorded, like any session), then report each part's state. Never raises for a bad link."""
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    try:
        async with open_session(settings, st, governor=gov, connect_timeout=timeout, **session_kw) as sess:
            ib = sess.ib
            check("connection", ib.isConnected(),
                  f"{sess.settings.host}:{sess.settings.port} client id {sess.settings.client_id} "
                  f"({sess.settings.mode}), server version {ib.client.serverVersion()}")
            check("account", True, f"{settings.account} (managed: {', '.join(ib.managedAccounts())})")
            rec = sess.recorder
            await rec.flush_async()
            last = rec.reconciler.last
            check("recorder", rec.healthy,
                  f"session {rec.session_id}, {rec.last_seq} events, committed {rec.committed_seq}"
                  + (f", FAULT {rec.fault}" if rec.fault else ""))
            check("reconciliation", last is not None and last.ok and not rec.reconciling,
                  "running" if rec.reconciling else (
                      f"ok: {last.open_orders} open, {last.completed_orders} completed, {last.executions} "
                      f"executions, {last.positions} positions" if last is not None and last.ok
                      else f"incomplete, unknown: {', '.join(last.unknown) if last else 'never ran'}"))
            eng = sess.engine
            check("governor", eng.trading_state == "ACTIVE" and not eng.recorder_fault,
                  f"{eng.trading_state}{', recorder fault' if eng.recorder_fault else ''}, config "
                  f"{eng.config.digest()[:12]}")
            opened = sess.fold.open_orders()
            check("open orders", True, f"{len(opened)}")
    except (ConnectError, SettingsError) as exc:
        check("connection", False, str(exc))
    return checks
