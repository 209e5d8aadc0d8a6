"""Commands that talk to TWS / IB Gateway (or the simulator): doctor, order, cancel-all, positions,
health, record, demo. Wiring only: the logic is in ``ledger.settings``, ``ledger.doctor``,
``ledger.placement``, ``ledger.monitor``, ``ledger.recording`` and ``ledger.demo``.

Connection flags (every command that connects): ``--host``, ``--port``, ``--client-id``, ``--account``
(or ``IBKR_HOST`` / ``IBKR_PORT`` / ``IBKR_CLIENT_ID`` / ``IBKR_ACCOUNT``, or ``[ibkr]`` in ``--config``),
``--live`` (with ``IBLEDGER_ALLOW_LIVE=yes``) and ``--simulate`` (the built-in simulator on a free port).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import msgspec
import typer
from rich.markup import escape as esc

from ledger.cli.common import console, err_console, fail

HostOpt = Annotated[str | None, typer.Option("--host", help="TWS / Gateway host. Env: IBKR_HOST.")]
PortOpt = Annotated[
    int | None, typer.Option("--port", help="API port (7497 TWS paper, 4002 Gateway paper). Env: IBKR_PORT.")
]
ClientIdOpt = Annotated[int | None, typer.Option("--client-id", help="API client id. Env: IBKR_CLIENT_ID.")]
AccountOpt = Annotated[
    str | None, typer.Option("--account", help="Account the server must report (DU.../DF... paper). Env: IBKR_ACCOUNT.")
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", help="TOML file with an \\[ibkr] table (host, port, client_id, account). "
                              "Env: IBLEDGER_CONFIG.")
]
LiveOpt = Annotated[
    bool, typer.Option("--live", help="Allow live ports/accounts (also needs IBLEDGER_ALLOW_LIVE=yes).")
]
SimulateOpt = Annotated[
    bool, typer.Option("--simulate", help="Run against the built-in TWS simulator on a free port (no broker).")
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (sqlite:///path.db or postgresql://...). Default: $IBLEDGER_STORE "
                 "or sqlite:///ibledger.db"),
]
GovernorOpt = Annotated[
    Path | None, typer.Option("--governor", help="Governor config (TOML). Default: built-in limits.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
    app.command("order")(order_cmd)
    app.command("cancel-all")(cancel_all_cmd)
    app.command("positions")(positions_cmd)
    app.command("health")(health_cmd)
    app.command("record")(record_cmd)
    app.command("demo")(demo_cmd)


# --- shared wiring -------------------------------------------------------------------------------


def _quiet_library() -> None:
    """The IB library logs every error and disconnect; they are recorded as events and reported by us."""
    import logging

    from ledger.iblib import LIBRARY_NAME

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(LIBRARY_NAME).setLevel(logging.CRITICAL)


def _settings(
    host: str | None, port: int | None, client_id: int | None, account: str | None, config: Path | None,
    live: bool, simulate: bool,
):
    from ledger.settings import SettingsError, resolve

    try:
        return resolve(host=host, port=port, client_id=client_id, account=account, config=config, live=live,
                       simulate=simulate)
    except SettingsError as exc:
        fail(esc(str(exc)))


def _governor(path: Path | None):
    if path is None:
        return None
    from ledger.governor_config import GovernorConfigError, load_config

    try:
        return load_config(path)
    except GovernorConfigError as exc:
        fail(esc(f"governor config: {exc}"))


def _run_session(settings, store: str | None, governor, body, **session_kw):
    """Open the store and a recorded session, run ``await body(session)``, map errors to clear messages."""
    import asyncio

    from ledger.cli.common import opened_store
    from ledger.placement import open_session
    from ledger.settings import ConnectError, SettingsError

    _quiet_library()

    async def main(st):
        async with open_session(settings, st, governor=governor, **session_kw) as sess:
            return await body(sess)

    with opened_store(store, write=True) as st:
        try:
            return asyncio.run(main(st))
        except ConnectError as exc:
            fail(esc(str(exc)))
        except SettingsError as exc:
            fail(esc(str(exc)))


def _dump(obj) -> None:
    print(json.dumps(msgspec.to_builtins(obj), indent=2))


# --- doctor --------------------------------------------------------------------------------------


def doctor_cmd(
    host: HostOpt = None,
    port: PortOpt = None,
    client_id: ClientIdOpt = None,
    account: AccountOpt = None,
    config: ConfigOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per connection / handshake.")] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Diagnose the connection to TWS / IB Gateway (WSL, trusted IPs, API settings, ports, accounts).

    Without --host / --port it probes 127.0.0.1 (and, under WSL, the Windows host) on 7497, 4002, 7496 and
    4001. Exit code 0 when an API session works; 3 nothing listens, 4 reset (untrusted address),
    5 handshake timeout, 6 unreachable, 7 API error, 8 account mismatch, 2 bad settings.
    """
    from ledger.doctor import run_doctor
    from ledger.settings import SettingsError, partial

    try:
        values, _origin = partial(host=host, port=port, client_id=client_id, account=account, config=config)
    except SettingsError as exc:
        fail(esc(str(exc)))
    report = run_doctor(
        host=values.get("host"),
        port=values.get("port"),
        client_id=values.get("client_id"),
        account=values.get("account"),
        timeout=timeout,
    )
    if as_json:
        print(json.dumps(msgspec.to_builtins(report), indent=2))
        raise typer.Exit(report.exit_code)
    from rich.table import Table

    envi = report.environment
    if envi.wsl:
        console.print(
            f"WSL{'2' if envi.wsl2 else ''} detected ({envi.wsl_distro or 'distro unknown'}); Windows host: "
            f"{envi.windows_host or 'unknown'} (default gateway {envi.default_gateway or '-'}, resolv.conf "
            f"nameserver {envi.nameserver or '-'})",
            highlight=False,
        )
    t = Table(title="Connection probes", title_justify="left")
    for col in ("target", "result", "detail", "our address", "ms"):
        t.add_column(col)
    for p in report.probes:
        style = "green" if p.ok else "red"
        t.add_row(f"{p.host}:{p.port}", f"[{style}]{p.status}[/]", esc(p.detail), p.local_address or "-",
                  f"{p.elapsed_ms:g}")
    console.print(t)
    style = "green" if report.exit_code == 0 else "bold red"
    console.print(f"[{style}]{esc(report.summary)}[/]", highlight=False)
    for line in report.advice:
        console.print(f"  → {esc(line)}", highlight=False)
    if report.exit_code:
        err_console.print(f"doctor: {report.status} (exit {report.exit_code})", highlight=False)
    raise typer.Exit(report.exit_code)


# --- order -----------------------------------------------------------------------------------------

# exit codes of `order`: a live, unconfirmed, filled or cancelled order is not a failure
ORDER_EXIT = {"BLOCKED": 3, "REJECTED": 4}


def order_cmd(
    action: Annotated[str, typer.Argument(help="BUY or SELL", case_sensitive=False)],
    symbol: Annotated[str, typer.Argument(help="Stock symbol (SMART / USD)")],
    quantity: Annotated[float, typer.Argument(help="Quantity (shares)")],
    limit: Annotated[float | None, typer.Option("--limit", help="Limit price; without it a market order")] = None,
    order_ref: Annotated[str, typer.Option("--order-ref", help="orderRef (with --simulate: picks the scenario)")] = "",
    tif: Annotated[str, typer.Option("--tif", help="Time in force")] = "DAY",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to follow the order before reporting")] = 10.0,
    linger: Annotated[float, typer.Option("--linger", help="Seconds to wait for late corrections once settled")] = 0.3,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    client_id: ClientIdOpt = None,
    account: AccountOpt = None,
    config: ConfigOpt = None,
    live: LiveOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Place one order safely: governor pre-check, recorded intent, event-driven monitor.

    Prints the result (verdict LIVE / UNCONFIRMED / PARTIALLY_FILLED / FILLED / CANCELLED / REJECTED /
    BLOCKED ...). A timeout on a live or unacknowledged order reports it as LIVE / UNCONFIRMED, never as
    failed, and never cancels it. Exit 0 unless BLOCKED (3) or REJECTED (4); 2 for connection/settings errors.
    """
    action = action.upper()
    if action not in ("BUY", "SELL"):
        fail(f"action must be BUY or SELL, got {action!r}")
    import math

    if not math.isfinite(quantity) or quantity <= 0:
        fail(f"quantity must be a finite number > 0, got {quantity:g}")
    if limit is not None and (not math.isfinite(limit) or limit <= 0):
        fail(f"--limit must be a finite price > 0, got {limit:g}; leave it out for a market order")
    for name in ("timeout", "linger"):
        value = locals()[name]
        if not math.isfinite(value) or value < 0:
            fail(f"--{name} must be a finite number of seconds >= 0, got {value:g}")
    settings = _settings(host, port, client_id, account, config, live, simulate)
    gov = _governor(governor)

    async def body(sess):
        from ledger.iblib import LimitOrder, MarketOrder, Stock

        contract = Stock(symbol.upper(), "SMART", "USD")
        if limit is not None:
            order = LimitOrder(action, quantity, limit, orderRef=order_ref, tif=tif)
        else:
            order = MarketOrder(action, quantity, orderRef=order_ref, tif=tif)
        return await sess.place(contract, order, timeout=timeout)

    result = _run_session(settings, store, gov, body, linger=linger)
    if as_json:
        _dump(result)
    else:
        _print_result(result)
    raise typer.Exit(ORDER_EXIT.get(result.verdict, 0))


def _print_result(r) -> None:
    from rich.table import Table

    color = {"FILLED": "green", "LIVE": "bold green", "PARTIALLY_FILLED": "bold green", "UNCONFIRMED": "yellow",
             "BLOCKED": "red", "REJECTED": "red"}.get(r.verdict, "cyan")
    console.print(f"[{color}]{r.verdict}[/]: {esc(r.message)}", highlight=False)
    console.print(
        f"order {r.client_id}:{r.order_id} permId {r.perm_id or '-'} {r.action} {r.total_qty:g} {r.symbol}; "
        f"broker status {r.broker_status or '-'}, ledger state {r.state}{' (' + r.overlay + ')' if r.overlay else ''}; "
        f"filled {r.filled:g} remaining {r.remaining:g} avg {r.avg_fill_price:g} commission {r.commission:g}"
        f"{'; wait ended (timed out)' if r.timed_out else ''}",
        highlight=False,
    )
    if r.statuses:
        console.print("statuses: " + ", ".join(f"{s.status} +{s.ms:.0f}ms" for s in r.statuses), highlight=False)
    if r.fills:
        t = Table(title="Executions", title_justify="left")
        for col in ("execId", "shares", "price", "commission", "note"):
            t.add_column(col)
        for f in r.fills:
            note = "superseded" if f.superseded else ("correction" if f.correction else ("late" if f.late else ""))
            t.add_row(f.exec_id, f"{f.shares:g}", f"{f.price:g}",
                      "pending" if f.commission is None else f"{f.commission:g}", note)
        console.print(t)
    for d in r.decisions:
        console.print(esc(f"governor: {d.decision} {d.reason} {d.message}".rstrip()), highlight=False)
    for a in r.anomalies:
        console.print(f"[yellow]anomaly[/] {a.kind}: {esc(a.reason)}", highlight=False)


# --- cancel-all ------------------------------------------------------------------------------------


def cancel_all_cmd(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for confirmations")] = 10.0,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    client_id: ClientIdOpt = None,
    account: AccountOpt = None,
    config: ConfigOpt = None,
    live: LiveOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Kill switch: reqGlobalCancel, then wait until every open order is confirmed cancelled (or filled).

    Each order is reported; one not confirmed in time is UNKNOWN (it may still be live). Exit 1 if any.
    """
    settings = _settings(host, port, client_id, account, config, live, simulate)

    async def body(sess):
        return await sess.cancel_all(timeout)

    report = _run_session(settings, store, _governor(governor), body)
    if as_json:
        _dump(report)
    else:
        from rich.table import Table

        t = Table(title="cancel-all", title_justify="left")
        for col in ("order", "perm", "symbol", "side", "qty", "before", "now", "broker status", "filled", "result"):
            t.add_column(col)
        for o in report.orders:
            style = "bold red" if o.verdict == "UNKNOWN" else "green"
            t.add_row(f"{o.client_id}:{o.order_id}", str(o.perm_id or "-"), o.symbol, o.action, f"{o.total_qty:g}",
                      o.state_before, o.state, o.broker_status or "-", f"{o.filled:g}", f"[{style}]{o.verdict}[/]")
        if report.orders:
            console.print(t)
        console.print(report.message, highlight=False)
    raise typer.Exit(0 if report.confirmed else 1)


# --- positions -------------------------------------------------------------------------------------


def positions_cmd(
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    host: HostOpt = None,
    port: PortOpt = None,
    client_id: ClientIdOpt = None,
    account: AccountOpt = None,
    config: ConfigOpt = None,
    live: LiveOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Positions as the broker reports them (recorded; the ledger's view after reconciliation)."""
    settings = _settings(host, port, client_id, account, config, live, simulate)

    async def body(sess):
        return [p for p in sess.fold.positions.values()]

    positions = _run_session(settings, store, None, body)
    if as_json:
        _dump([{"account": p.account, "symbol": p.symbol, "sec_type": p.sec_type, "con_id": p.con_id,
                "position": p.position, "avg_cost": p.avg_cost} for p in positions])
        return
    if not positions:
        console.print(f"no positions in {settings.account}", highlight=False)
        return
    from rich.table import Table

    t = Table(title="Positions", title_justify="left")
    for col in ("account", "symbol", "type", "conId", "position", "avg cost"):
        t.add_column(col, justify="right" if col in ("position", "avg cost") else "left")
    for p in positions:
        t.add_row(p.account, p.symbol, p.sec_type, str(p.con_id or "-"), f"{p.position:g}", f"{p.avg_cost:g}")
    console.print(t)


# --- health ----------------------------------------------------------------------------------------


def health_cmd(
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Connect timeout (seconds)")] = 10.0,
    host: HostOpt = None,
    port: PortOpt = None,
    client_id: ClientIdOpt = None,
    account: AccountOpt = None,
    config: ConfigOpt = None,
    live: LiveOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Connection, server version, account, store, recorder and governor state, open orders. Exit 1 if unhealthy."""
    import asyncio

    from ledger.cli.common import opened_store
    from ledger.health import run_checks, store_check

    settings = _settings(host, port, client_id, account, config, live, simulate)
    gov = _governor(governor)
    _quiet_library()
    with opened_store(store) as st:
        checks = [store_check(st), *asyncio.run(run_checks(settings, st, gov, timeout))]
    healthy = all(c["ok"] for c in checks)
    if as_json:
        print(json.dumps({"healthy": healthy, "checks": checks}, indent=2))
    else:
        for c in checks:
            mark = "[green]ok[/]  " if c["ok"] else "[bold red]FAIL[/]"
            console.print(f"{mark} {c['check']:<15} {esc(c['detail'])}", highlight=False)
    raise typer.Exit(0 if healthy else 1)


# --- record ----------------------------------------------------------------------------------------


def record_cmd(
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Connect timeout (seconds)")] = 4.0,
    session_id: Annotated[str | None, typer.Option("--session-id", help="Session id (default: a new one)")] = None,
    host: HostOpt = None,
    port: PortOpt = None,
    client_id: ClientIdOpt = None,
    account: AccountOpt = None,
    config: ConfigOpt = None,
    live: LiveOpt = False,
    simulate: SimulateOpt = False,
) -> None:
    """Record every callback into the store until Ctrl-C / SIGTERM, reconnecting and reconciling."""
    from ledger.cli.common import opened_store, redact, store_url
    from ledger.recorder import RecorderError
    from ledger.recording import run_recording
    from ledger.store import StoreError

    settings = _settings(host, port, client_id, account, config, live, simulate)
    gov = _governor(governor)
    _quiet_library()
    sim = None
    if settings.simulate:
        from replay.simulator import Simulator

        sim = Simulator(accounts=(settings.account,)).start()
        settings = settings.with_endpoint("127.0.0.1", sim.port)
    url = store_url(store)
    with opened_store(url, write=True):
        pass  # create the store here, where a foreign or unusable path gets a clear error

    def ready(rec) -> None:
        console.print(f"recording session {rec.session_id} from {settings.describe()} into {redact(url)}; "
                      "Ctrl-C to stop", highlight=False)

    def state(s: str, detail: str) -> None:
        console.print(esc(f"{s}: {detail}"), highlight=False)

    try:
        result = run_recording(
            settings.host, settings.port, settings.client_id, url, settings.account, mode=settings.mode,
            config_hash=gov.digest() if gov is not None else "", governor_config=gov, session_id=session_id,
            timeout=timeout, on_ready=ready, on_state=state,
        )
    except (RecorderError, StoreError) as exc:  # session id reuse, store refused: nothing was recorded
        fail(esc(str(exc)))
    finally:
        if sim is not None:
            sim.stop()
    console.print(
        f"session {result.session_id}: {result.events} events, {result.committed_seq} committed, "
        f"{result.connects} connect(s), stopped: {result.reason}"
        + (f"; FAULT {result.fault} (lost {result.lost})" if result.fault else ""), highlight=False,
    )
    if result.reason.startswith(("account mismatch", "live login")):
        fail(esc(result.reason))
    raise typer.Exit(0 if result.ok else 1)


# --- demo ------------------------------------------------------------------------------------------


def demo_cmd(
    store: StoreOpt = None,
    export_fixtures: Annotated[
        Path | None, typer.Option("--export-fixtures", help="Also write the session file into this directory")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a short deterministic paper session against the built-in simulator and print the ledger.

    Normal fill, partial fills, an order that stays PreSubmitted (reported LIVE, not failed), a cancel, a
    governor block, a dropped connection mid-fill with reconciliation, and a circuit breaker's emergency
    cancel, all recorded into the store (a new session per run).
    """
    from rich.console import Console

    from ledger.cli.common import opened_store
    from ledger.demo import run_demo

    _quiet_library()
    import logging

    logging.getLogger("ledger").setLevel(logging.ERROR)  # the demo prints what happens itself
    out = Console(stderr=True) if as_json else console
    with opened_store(store, write=True) as st:
        report = run_demo(st, console=out, export_dir=export_fixtures)
    if as_json:
        _dump(report)
    raise typer.Exit(0 if report.ok else 1)
