"""Running the ``ibledger`` command in tests: in a fresh process, or in this one through typer's CliRunner.

Both drop the caller's IBKR_* / IBLEDGER_* variables, so a developer's shell never changes a test.
"""

from __future__ import annotations

import os
import subprocess
import sys

CLI = [sys.executable, "-c", "from ledger.cli import main; main()"]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBKR_", "IBLEDGER_"))}
    env.update({"COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``ibledger ARGS`` in a fresh process (IBKR_* / IBLEDGER_* from the caller's shell removed)."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=clean_env(env), timeout=timeout)


def invoke(*args: str, env: dict[str, str] | None = None):
    """Run ``ibledger ARGS`` in this process (typer's CliRunner): the same code, without the start-up cost."""
    import logging

    from typer.testing import CliRunner

    from ledger.cli import app
    from ledger.ib.library import LIBRARY_NAME

    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith(("IBKR_", "IBLEDGER_"))}
    clean.update({"COLUMNS": "200"} | (env or {}))
    loggers = [logging.getLogger(n) for n in (LIBRARY_NAME, "ledger")]
    levels = [lg.level for lg in loggers]
    try:
        return CliRunner().invoke(app, list(args), env=clean)
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
