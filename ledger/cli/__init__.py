"""The ``ibledger`` command: wiring only, the logic lives in the packages.

Each area registers its commands from its own module so the pieces stay small:
``ledger_cmds`` (store, import/export, orders, verify), ``simulator_cmds`` (simulate),
``live_cmds`` (record, order, cancel-all, positions, health, doctor, demo),
``replay_cmds`` (replay), ``audit_cmds`` (audit, report).
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="ibledger",
    help="Event-sourced order ledger with replay for Interactive Brokers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _version(value: bool) -> None:
    if value:
        from ledger.ib.choice import library_description
        from ledger.version import __version__

        typer.echo(f"ibledger {__version__} ({library_description()})")
        raise typer.Exit()


def configure_logging(level: str | None, verbose: int) -> str:
    """--log-level wins, then -v (info) / -vv (debug), then $IBLEDGER_LOG, then warning. Returns the level."""
    chosen = (level or ("debug" if verbose >= 2 else "info" if verbose == 1 else "")
              or os.environ.get("IBLEDGER_LOG", "") or "warning").lower()
    if chosen not in LOG_LEVELS:
        raise typer.BadParameter(f"{chosen!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level / "
                                 "IBLEDGER_LOG")
    logging.basicConfig(level=chosen.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("ledger").setLevel(chosen.upper())
    return chosen


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and the IB library, then exit.",
                                          callback=_version, is_eager=True)] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="More log output (-v info, -vv debug).")] = 0,
    log_level: Annotated[str | None, typer.Option("--log-level", help="debug | info | warning | error | critical. "
                                                  "Env: IBLEDGER_LOG.", show_default=False)] = None,
) -> None:
    """Event-sourced order ledger with replay for Interactive Brokers."""
    configure_logging(log_level, verbose)

_COMMAND_MODULES = ("ledger_cmds", "simulator_cmds", "live_cmds", "replay_cmds", "audit_cmds", "watch_cmds")

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"ledger.cli.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"ledger.cli.{_name}":
            raise
        continue
    _module.register(app)


def build_command() -> Any:
    """The click command behind ``app``, with every boolean flag shown as a flag (no ``<bool>`` value)."""
    cmd = typer.main.get_command(app)
    commands = [cmd, *getattr(cmd, "commands", {}).values()]
    for command in commands:
        for param in command.params:
            if getattr(param, "param_type_name", "") == "option" and (param.is_flag or param.count):
                param.metavar = ""
    return cmd


def main() -> None:
    """Run the CLI. Commands catch the errors they expect; this is the backstop for the rest, so a user
    never sees a traceback (set IBLEDGER_DEBUG=1 to get one)."""
    from ledger.cli.common import run_guarded

    command = build_command()
    run_guarded(lambda: command(prog_name="ibledger"))
