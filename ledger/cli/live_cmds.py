"""Commands that talk to TWS / IB Gateway (or the simulator): doctor, order, cancel-all, positions,
health, record, demo. Wiring only: the logic is in ``ledger.ib.settings``, ``ledger.ib.doctor``,
``ledger.live.placement``, ``ledger.live.monitor``, ``ledger.live.recording`` and ``ledger.cli.demo``.

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
from ledger.cli.options import NO_CONNECTION, ConnectionOptions, GovernorOpt, JsonOpt, StoreOpt, with_connection
from ledger.cli.simulated import start_simulator


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

    from ledger.ib.library import LIBRARY_NAME

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(LIBRARY_NAME).setLevel(logging.CRITICAL)


def _settings(conn: ConnectionOptions):
    from ledger.ib.settings import SettingsError, resolve

    try:
        return resolve(host=conn.host, port=conn.port, client_id=conn.client_id, account=conn.account,
                       config=conn.config, live=conn.live, simulate=conn.simulate)
    except SettingsError as exc:
        fail(esc(str(exc)))


def _governor(path: Path | None):
    if path is None:
        return None
    from ledger.core.governor_config import GovernorConfigError, load_config

    try:
        return load_config(path)
    except GovernorConfigError as exc:
        fail(esc(f"governor config: {exc}"))


def _run_session(settings, store: str | None, governor, body, **session_kw):
    """Open the store and a recorded session, run ``await body(session)``, map errors to clear messages."""
    import asyncio

    from ledger.cli.common import opened_store
    from ledger.ib.settings import ConnectError, SettingsError
    from ledger.live.placement import open_session

    _quiet_library()

    async def main(st):
        async with open_session(settings, st, governor=governor, start_simulator=start_simulator, **session_kw) as sess:
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


@with_connection(endpoint_only=True)
def doctor_cmd(
    conn: ConnectionOptions = NO_CONNECTION,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per connection / handshake.")] = 3.0,
    as_json: JsonOpt = False,
) -> None:
    """Diagnose the connection to TWS / IB Gateway (WSL, trusted IPs, API settings, ports, accounts).

    Without --host / --port it probes 127.0.0.1 (and, under WSL, the Windows host) on 7497, 4002, 7496 and
    4001. Exit code 0 when an API session works; 3 nothing listens, 4 reset (untrusted address),
    5 handshake timeout, 6 unreachable, 7 API error, 8 account mismatch, 2 bad settings.
    """
    from ledger.ib.doctor import run_doctor
    from ledger.ib.settings import SettingsError, partial

    try:
        values, _origin = partial(host=conn.host, port=conn.port, client_id=conn.client_id, account=conn.account,
                                  config=conn.config)
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


TIFS = ("DAY", "GTC", "IOC", "FOK", "GTD", "OPG", "DTC", "AUC")
MAX_SYMBOL = 24


def _check_order_args(symbol: str, tif: str) -> None:
    """Refuse, before connecting, what TWS would refuse or misread: a clear message and exit 2."""
    sym = symbol.strip()
    if not sym:
        fail("symbol is empty: give the ticker, e.g. `ibledger order BUY AAPL 10`")
    if len(sym) > MAX_SYMBOL or not sym.isprintable():
        shown = sym[:MAX_SYMBOL] + "..." if len(sym) > MAX_SYMBOL else sym
        fail(f"symbol {esc(repr(shown))} is not a ticker (at most {MAX_SYMBOL} printable characters)")
    if tif not in TIFS:
        fail(f"--tif {esc(repr(tif))} is not a time in force IB knows; use one of {', '.join(TIFS)}")


@with_connection
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
    conn: ConnectionOptions = NO_CONNECTION,
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
    _check_order_args(symbol, tif)
    settings = _settings(conn)
    gov = _governor(governor)

    async def body(sess):
        from ledger.ib.library import LimitOrder, MarketOrder, Stock

        contract = Stock(symbol.upper(), "SMART", "USD")
        if limit is not None:
            order = LimitOrder(action, quantity, limit, orderRef=order_ref, tif=tif)
        else:
            order = MarketOrder(action, quantity, orderRef=order_ref, tif=tif)
            await sess.quote(contract)  # a recorded market price for the governor's notional check
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


@with_connection
def cancel_all_cmd(
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for confirmations")] = 10.0,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    conn: ConnectionOptions = NO_CONNECTION,
) -> None:
    """Kill switch: reqGlobalCancel, then wait until every open order is confirmed cancelled (or filled).

    Each order is reported; one not confirmed in time is UNKNOWN (it may still be live). Exit 1 if any.
    """
    settings = _settings(conn)

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


@with_connection
def positions_cmd(
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    conn: ConnectionOptions = NO_CONNECTION,
) -> None:
    """Positions as the broker reports them (recorded; the ledger's view after reconciliation)."""
    settings = _settings(conn)

    async def body(sess):
        return [p for p in sess.fold.positions.values()]

    positions = _run_session(settings, store, None, body)
    if as_json:
        _dump({"positions": [{"account": p.account, "symbol": p.symbol, "sec_type": p.sec_type, "con_id": p.con_id,
                              "position": p.position, "avg_cost": p.avg_cost} for p in positions]})
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


@with_connection
def health_cmd(
    as_json: JsonOpt = False,
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Connect timeout (seconds)")] = 10.0,
    conn: ConnectionOptions = NO_CONNECTION,
) -> None:
    """Connection, server version, account, store, recorder and governor state, open orders. Exit 1 if unhealthy."""
    import asyncio

    from ledger.cli.common import opened_store
    from ledger.live.health import run_checks, store_check

    settings = _settings(conn)
    gov = _governor(governor)
    _quiet_library()
    with opened_store(store) as st:
        found = asyncio.run(run_checks(settings, st, gov, timeout, start_simulator=start_simulator))
        checks = [store_check(st), *found]
    healthy = all(c["ok"] for c in checks)
    if as_json:
        print(json.dumps({"healthy": healthy, "checks": checks}, indent=2))
    else:
        for c in checks:
            mark = "[green]ok[/]  " if c["ok"] else "[bold red]FAIL[/]"
            console.print(f"{mark} {c['check']:<15} {esc(c['detail'])}", highlight=False)
    raise typer.Exit(0 if healthy else 1)


# --- record ----------------------------------------------------------------------------------------


@with_connection
def record_cmd(
    store: StoreOpt = None,
    governor: GovernorOpt = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Connect timeout (seconds)")] = 4.0,
    session_id: Annotated[str | None, typer.Option("--session-id", help="Session id (default: a new one)")] = None,
    conn: ConnectionOptions = NO_CONNECTION,
) -> None:
    """Record every callback into the store until Ctrl-C / SIGTERM, reconnecting and reconciling."""
    from ledger.cli.common import opened_store, redact, store_url
    from ledger.live.recorder import RecorderError
    from ledger.live.recording import run_recording
    from ledger.store import StoreError

    settings = _settings(conn)
    gov = _governor(governor)
    _quiet_library()
    sim = None
    if settings.simulate:
        from replay.tws.simulator import Simulator

        sim = Simulator(accounts=(settings.account,)).start()
        settings = settings.with_endpoint("127.0.0.1", sim.port)
    url = store_url(store)
    with opened_store(url, write=True):
        pass  # create the store here, where a foreign or unusable path gets a clear error
    status = _StatusLine(console)

    def ready(rec) -> None:
        console.print(f"recording session {rec.session_id} from {settings.describe()} into {redact(url)}; "
                      "Ctrl-C to stop", highlight=False)
        status.start(rec)

    def state(s: str, detail: str) -> None:
        status.link = s
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
        status.stop()
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


class _StatusLine:
    """On a terminal, a live line under the log: events, committed, open orders, trading state, link."""

    def __init__(self, out) -> None:
        self.out = out
        self.link = "connecting"
        self._live = None
        self._thread = None
        self._stop = None

    def start(self, rec) -> None:
        if not self.out.is_terminal:
            return
        import threading

        from rich.live import Live

        from ledger.live.watch import record_status

        self._stop = threading.Event()
        self._live = Live("", console=self.out, auto_refresh=False, transient=True)
        self._live.start()

        def loop() -> None:
            while not self._stop.wait(0.25):
                self._live.update(f"[dim]{esc(record_status(rec, self.link))}[/]", refresh=True)

        self._thread = threading.Thread(target=loop, name="ibledger-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()
            self._thread.join(2.0)
            self._live.stop()
            self._stop = None


# --- demo ------------------------------------------------------------------------------------------


def demo_cmd(
    store: StoreOpt = None,
    export_fixtures: Annotated[
        Path | None, typer.Option("--export-fixtures", help="Also write the session file into this directory")
    ] = None,
    as_json: JsonOpt = False,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Record the same session, byte for byte, every run (session id, ids and port "
                     "from the seed); default: a new session with its own ids"),
    ] = None,
) -> None:
    """Run a short deterministic paper session against the built-in simulator and print the ledger.

    A strategy against the simulated market (bars and a quote, a market order filled at the touch, a bracket
    whose take-profit fills and whose stop is cancelled by OCA), then a normal fill, partial fills, an order
    that stays PreSubmitted (reported LIVE, not failed), a cancel, a governor block, a dropped connection
    mid-fill with reconciliation, and a circuit breaker's emergency cancel, all recorded into the store (a
    new session per run, or the same one every run with --seed).
    """
    from rich.console import Console

    from ledger.cli.common import opened_store
    from ledger.cli.demo import DemoError, run_demo

    _quiet_library()
    import logging

    logging.getLogger("ledger").setLevel(logging.ERROR)  # the demo prints what happens itself
    out = Console(stderr=True) if as_json else console
    with opened_store(store, write=True) as st:
        try:
            report = run_demo(st, console=out, export_dir=export_fixtures, seed=seed)
        except DemoError as exc:
            fail(str(exc))
    if as_json:
        _dump(report)
    raise typer.Exit(0 if report.ok else 1)
