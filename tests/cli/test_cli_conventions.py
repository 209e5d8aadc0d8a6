"""The conventions a user expects of a command: --version, -h, completion, logging flags, flags shown as
flags, ``python -m ledger``, one definition of the connection options, a read-only ``health``, and
``sessions`` that says who recorded what."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import subprocess
import sys

import pytest

from ledger.cli import build_command, configure_logging
from ledger.store import open_store
from tests.cli.test_cli_live import _env, run_cli

CONNECTION = ("--host", "--port", "--client-id", "--account", "--config", "--live", "--simulate")
CONNECTING_COMMANDS = ("order", "cancel-all", "positions", "health", "record")


def test_version_names_the_package_and_the_ib_library_in_use():
    from ledger.ib.library import LIBRARY_NAME, LIBRARY_VERSION

    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["ibledger", importlib.metadata.version("ibledger")]
    assert f"{LIBRARY_NAME} {LIBRARY_VERSION}" in r.stdout


def test_python_dash_m_ledger_and_short_help():
    r = subprocess.run([sys.executable, "-m", "ledger", "-h"], capture_output=True, text=True, env=_env(),
                       timeout=60)
    assert r.returncode == 0 and "Usage:" in r.stdout and "sessions" in r.stdout, r.stderr
    r = run_cli("orders", "-h")
    assert r.returncode == 0 and "--json" in r.stdout


def test_boolean_flags_take_no_value_in_help():
    cmd = build_command()
    for name, sub in cmd.commands.items():
        for p in sub.params:
            if getattr(p, "is_flag", False):
                assert p.metavar == "", (name, p.name)
    r = run_cli("orders", "-h")
    json_line = next(line for line in r.stdout.splitlines() if "--json" in line)
    assert "<bool>" not in json_line and "BOOLEAN" not in json_line


def test_shell_completion_completes_command_names():
    r = subprocess.run([sys.executable, "-m", "ledger"], capture_output=True, text=True, timeout=60,
                       env=_env({"_IBLEDGER_COMPLETE": "complete_bash", "COMP_WORDS": "ibledger ver",
                                 "COMP_CWORD": "1"}))
    assert r.returncode == 0 and r.stdout.split() == ["verify"], (r.stdout, r.stderr)


def test_log_level_flags_and_environment():
    assert configure_logging("error", 0) == "error" and logging.getLogger("ledger").level == logging.ERROR
    assert configure_logging(None, 2) == "debug" and logging.getLogger("ledger").level == logging.DEBUG
    r = run_cli("--log-level", "loud", "sessions")
    assert r.returncode == 2 and "loud" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("sessions", env={"IBLEDGER_LOG": "chatty"})
    assert r.returncode == 2 and "IBLEDGER_LOG" in r.stderr and "Traceback" not in r.stderr


def test_connection_options_are_one_definition():
    cmd = build_command()
    seen = {}
    for name in CONNECTING_COMMANDS:
        opts = {o: (p.help, p.default) for p in cmd.commands[name].params for o in p.opts if o in CONNECTION}
        assert set(opts) == set(CONNECTION), name
        seen[name] = opts
    first = seen[CONNECTING_COMMANDS[0]]
    assert all(v == first for v in seen.values())
    doctor = {o for p in cmd.commands["doctor"].params for o in p.opts}
    assert doctor >= set(CONNECTION[:5]) and not doctor & {"--live", "--simulate"}


@pytest.mark.ibclient
def test_health_is_read_only_and_sessions_say_who_recorded(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    r = run_cli("order", "BUY", "AAPL", "5", "--limit", "100", "--order-ref", "fill_simple", "--simulate",
                "--client-id", "9", "--store", url)
    assert r.returncode == 0, r.stderr
    with open_store(url) as st:
        before = [(s.session_id, s.events) for s in st.sessions()]
    r = run_cli("health", "--simulate", "--json", "--store", url)
    assert r.returncode == 0, r.stdout + r.stderr
    checks = {c["check"]: c for c in json.loads(r.stdout)["checks"]}
    assert checks["connection"]["ok"] and checks["recorder"]["ok"] and before[0][0] in checks["recorder"]["detail"]
    with open_store(url) as st:
        assert [(s.session_id, s.events) for s in st.sessions()] == before  # nothing written
    r = run_cli("sessions", "--json", "--store", url)
    (s,) = json.loads(r.stdout)["sessions"]
    assert (s["client_id"], s["account"], s["orders"], s["state"]) == (9, "DU1234567", 1, "closed")
    assert s["started_at"].endswith("Z") and s["started_ns"] > 0
    r = run_cli("sessions", "--store", url)
    assert "DU1234567" in r.stdout and s["started_at"][:10] in r.stdout
