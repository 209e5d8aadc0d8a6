"""Connection settings: precedence flags > env > file, hard errors that say where to set things, paper
by default, and the after-connect account check."""

from __future__ import annotations

import pytest

from ledger.ib.settings import (
    ENV_ALLOW_LIVE,
    SIMULATOR_ACCOUNT,
    SettingsError,
    check_account,
    is_paper_account,
    partial,
    resolve,
)

FULL_ENV = {"IBKR_HOST": "10.0.0.5", "IBKR_PORT": "4002", "IBKR_CLIENT_ID": "9", "IBKR_ACCOUNT": "DU555"}


def write_config(tmp_path, body: str):
    p = tmp_path / "ibledger.toml"
    p.write_text(body, encoding="utf-8")
    return p


def test_precedence_flags_over_env_over_file(tmp_path):
    cfg = write_config(
        tmp_path, '[ibkr]\nhost = "172.20.0.1"\nport = 7497\nclient_id = 3\naccount = "DU111"\n[governor]\nx = 1\n'
    )
    s = resolve(config=cfg, env={})
    assert (s.host, s.port, s.client_id, s.account) == ("172.20.0.1", 7497, 3, "DU111")
    assert s.origin["host"].startswith("config file")
    s = resolve(config=cfg, env={"IBKR_HOST": "10.1.1.1", "IBKR_CLIENT_ID": "4"})
    assert (s.host, s.port, s.client_id) == ("10.1.1.1", 7497, 4)
    assert s.origin["host"] == "environment $IBKR_HOST"
    s = resolve(host="h.example", client_id=5, config=cfg, env={"IBKR_HOST": "10.1.1.1"})
    assert (s.host, s.client_id, s.account) == ("h.example", 5, "DU111")
    assert s.origin["host"] == "flag --host"
    assert s.mode == "paper" and not s.live


def test_config_from_env_variable(tmp_path):
    cfg = write_config(tmp_path, '[ibkr]\nhost = "h"\nport = 4002\nclient_id = 1\naccount = "DF42"\n')
    s = resolve(env={"IBLEDGER_CONFIG": str(cfg)})
    assert s.account == "DF42" and s.config_path == str(cfg)


@pytest.mark.parametrize("missing", ["host", "port", "client_id", "account"])
def test_missing_value_names_flag_env_and_key(missing):
    env = dict(FULL_ENV)
    del env[f"IBKR_{missing.upper()}"]
    with pytest.raises(SettingsError) as e:
        resolve(env=env)
    msg = str(e.value)
    flag = "--" + missing.replace("_", "-")
    assert flag in msg and f"IBKR_{missing.upper()}" in msg and f"{missing} = ..." in msg


def test_everything_missing_lists_everything_and_suggests_doctor_and_simulate():
    with pytest.raises(SettingsError) as e:
        resolve(env={})
    msg = str(e.value)
    for needle in ("--host", "IBKR_HOST", "--port", "IBKR_PORT", "--client-id", "--account", "doctor", "--simulate"):
        assert needle in msg


def test_bad_values_and_bad_config(tmp_path):
    with pytest.raises(SettingsError, match="integer"):
        resolve(env=FULL_ENV | {"IBKR_PORT": "seventy"})
    with pytest.raises(SettingsError, match="not a TCP port"):
        resolve(env=FULL_ENV | {"IBKR_PORT": "70000"})
    with pytest.raises(SettingsError, match="unknown key"):
        resolve(config=write_config(tmp_path, '[ibkr]\nhots = "x"\n'), env=FULL_ENV)
    with pytest.raises(SettingsError, match="not valid TOML"):
        resolve(config=write_config(tmp_path, "[ibkr\n"), env=FULL_ENV)
    with pytest.raises(SettingsError, match="does not exist"):
        resolve(config=tmp_path / "nope.toml", env=FULL_ENV)


@pytest.mark.parametrize("port", [7496, 4001])
def test_live_ports_refused_without_the_switch(port):
    with pytest.raises(SettingsError, match="live") as e:
        resolve(port=port, env=FULL_ENV)
    assert "IBLEDGER_ALLOW_LIVE=yes" in str(e.value) and "--live" in str(e.value)


def test_live_needs_flag_and_environment():
    with pytest.raises(SettingsError, match=ENV_ALLOW_LIVE):
        resolve(port=7496, live=True, env=FULL_ENV)
    # the env variable alone is not enough either
    with pytest.raises(SettingsError):
        resolve(port=7496, env=FULL_ENV | {ENV_ALLOW_LIVE: "yes"})
    s = resolve(port=7496, account="U1234567", live=True, env=FULL_ENV | {ENV_ALLOW_LIVE: "yes"})
    assert s.live and s.mode == "live"


def test_non_paper_account_refused():
    assert is_paper_account("DU1234567") and is_paper_account("DF998") and not is_paper_account("U1234567")
    with pytest.raises(SettingsError, match="not a paper account"):
        resolve(account="U1234567", env=FULL_ENV)


def test_simulate_needs_nothing_and_refuses_endpoint_flags():
    s = resolve(simulate=True, env={})
    assert s.simulate and s.account == SIMULATOR_ACCOUNT and s.client_id == 1
    s2 = s.with_endpoint("127.0.0.1", 4242)
    assert s2.port == 4242 and s2.origin["port"] == "simulator"
    # the environment's host/port are ignored in simulation (asked for explicitly) ...
    s = resolve(simulate=True, env=FULL_ENV)
    assert s.host == "127.0.0.1" and s.account == "DU555"
    # ... but flags that contradict --simulate are an error, not silently dropped
    with pytest.raises(SettingsError, match="--simulate"):
        resolve(simulate=True, port=7497, env={})
    with pytest.raises(SettingsError, match="exclude"):
        resolve(simulate=True, live=True, env={})


def test_account_check_after_connect():
    s = resolve(env=FULL_ENV)
    check_account(s, "DU555,DU556")
    with pytest.raises(SettingsError, match="account mismatch") as e:
        check_account(s, ["DU999"])
    assert "DU999" in str(e.value) and "DU555" in str(e.value)
    with pytest.raises(SettingsError, match="no managed accounts"):
        check_account(s, "")
    with pytest.raises(SettingsError, match="live account"):
        check_account(s, "DU555,U777")


def test_partial_for_doctor():
    values, origin = partial(env={"IBKR_PORT": "4002"})
    assert values == {"port": 4002} and origin == {"port": "environment $IBKR_PORT"}


def test_a_simulated_session_expects_the_account_the_simulator_manages():
    """One home for the simulated session's defaults (ledger.core.events): the simulator's own default
    account must be the one ``--simulate`` expects, and the doctor's probe id is never the session's."""
    from ledger.core.events import SIMULATOR_CLIENT_ID
    from ledger.ib.doctor import PROBE_CLIENT_ID
    from replay.tws.broker import Broker

    assert Broker().accounts == (SIMULATOR_ACCOUNT,)
    assert PROBE_CLIENT_ID != SIMULATOR_CLIENT_ID
