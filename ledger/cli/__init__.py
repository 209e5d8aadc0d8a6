"""The ``ibledger`` command: wiring only, the logic lives in the packages.

Each area registers its commands from its own module so the pieces stay small:
``ledger_cmds`` (store, import/export, orders, verify), ``simulator_cmds`` (simulate),
``live_cmds`` (record, order, cancel-all, positions, health, doctor, demo),
``replay_cmds`` (replay), ``audit_cmds`` (audit, report).
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ibledger",
    help="Event-sourced order ledger with replay for Interactive Brokers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_COMMAND_MODULES = ("ledger_cmds", "simulator_cmds", "live_cmds", "replay_cmds", "audit_cmds")

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"ledger.cli.{_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"ledger.cli.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Run the CLI. Commands catch the errors they expect; this is the backstop for the rest, so a user
    never sees a traceback (set IBLEDGER_DEBUG=1 to get one)."""
    from ledger.cli.common import run_guarded

    run_guarded(app)
