"""The live commands as a user runs them: subprocesses, the simulator, a real SQLite store."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from ledger.store import open_store
from replay.tws.simulator import Simulator
from tests.support.cli import CLI, invoke, run_cli
from tests.support.cli import clean_env as _env

pytestmark = pytest.mark.ibclient

@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def test_order_simulate_json_filled(url):
    r = run_cli("order", "BUY", "AAPL", "100", "--limit", "100", "--order-ref", "fill_simple", "--simulate",
                "--json", "--store", url)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["verdict"] == "FILLED" and res["filled"] == 100.0 and res["commission"] == 1.0
    assert res["remaining"] == 0.0 and isinstance(res["avg_fill_price"], float) and res["settled"]
    with open_store(url) as st:
        (info,) = st.sessions()
        kinds = [e.kind for e in st.read_session(info.session_id)]
    assert kinds[0] == "session_started" and kinds[-1] == "session_ended"
    assert kinds.count("place_order") == 1 and "governor_decision" in kinds and "exec_details" in kinds


def test_order_live_presubmitted_is_success_and_blocked_is_not(url):
    r = invoke("order", "SELL", "IBM", "10", "--limit", "150", "--order-ref", "stuck_presubmitted", "--timeout",
               "0.3", "--simulate", "--json", "--store", url)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["verdict"] == "LIVE" and res["is_live"] and res["timed_out"]
    r = invoke("order", "BUY", "AAPL", "5000", "--limit", "100", "--simulate", "--store", url)
    assert r.exit_code == 3 and "BLOCKED" in r.stdout and "MAX_QTY" in r.stdout


def test_missing_host_names_the_flag_and_the_variable(url):
    r = run_cli("order", "BUY", "AAPL", "1", "--limit", "1", "--store", url,
                env={"IBKR_PORT": "7497", "IBKR_CLIENT_ID": "3", "IBKR_ACCOUNT": "DU1"})
    assert r.returncode == 2
    assert "--host" in r.stderr and "IBKR_HOST" in r.stderr and "[ibkr]" in r.stderr
    assert "IBKR_PORT" not in r.stderr  # only what is missing


def test_live_port_refused_without_the_switch(url, tmp_path):
    cfg = tmp_path / "ib.toml"
    cfg.write_text('[ibkr]\nhost = "127.0.0.1"\nport = 7496\nclient_id = 4\naccount = "DU1"\n')
    r = run_cli("order", "BUY", "AAPL", "1", "--limit", "1", "--store", url, "--config", str(cfg))
    assert r.returncode == 2 and "7496" in r.stderr and "live" in r.stderr and "IBLEDGER_ALLOW_LIVE=yes" in r.stderr
    r = invoke("positions", "--store", url, "--config", str(cfg), "--live")  # the flag alone is not enough
    assert r.exit_code == 2 and "IBLEDGER_ALLOW_LIVE" in r.output


def test_account_mismatch_is_a_hard_error(url):
    with Simulator(accounts=("DU1234567",)) as sim:
        r = run_cli("order", "BUY", "AAPL", "1", "--limit", "1", "--store", url, "--host", "127.0.0.1",
                    "--port", str(sim.port), "--client-id", "3", "--account", "DU7777777")
        assert sim.broker.all_orders() == []  # nothing was placed
    assert r.returncode == 2 and "account mismatch" in r.stderr and "DU1234567" in r.stderr


def test_cancel_all_positions_health(url):
    r = invoke("cancel-all", "--simulate", "--store", url, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["confirmed"] is True
    r = invoke("positions", "--simulate", "--store", url, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout) == {"positions": []}
    r = invoke("health", "--simulate", "--store", url, "--json")
    assert r.exit_code == 0, r.output
    health = json.loads(r.stdout)
    assert health["healthy"] and {c["check"] for c in health["checks"]} >= {
        "store", "connection", "account", "recorder", "reconciliation", "governor", "open orders"}


def test_record_until_sigint(url):
    p = subprocess.Popen([*CLI, "record", "--simulate", "--store", url], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while time.monotonic() < deadline and "connected:" not in seen:
            line = p.stdout.readline()
            if not line:
                break
            seen += line
        assert "recording session" in seen and "connected:" in seen, seen + p.stderr.read()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, seen + out + err
    assert "stopped: SIGINT" in out
    with open_store(url) as st:
        (info,) = st.sessions()
        assert not info.crashed
