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
    Path | None, typer.Option("--config", help="TOML file with an [ibkr] table (host, port, client_id, account). "
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
        fail(str(exc))
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
        t.add_row(f"{p.host}:{p.port}", f"[{style}]{p.status}[/]", p.detail, p.local_address or "-",
                  f"{p.elapsed_ms:g}")
    console.print(t)
    style = "green" if report.exit_code == 0 else "bold red"
    console.print(f"[{style}]{report.summary}[/]", highlight=False)
    for line in report.advice:
        console.print(f"  → {line}", highlight=False)
    if report.exit_code:
        err_console.print(f"doctor: {report.status} (exit {report.exit_code})", highlight=False)
    raise typer.Exit(report.exit_code)
