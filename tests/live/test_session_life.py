"""The session's first fact and the governor's carry-over, against a real SQLite store."""

from __future__ import annotations

import logging

from ledger.core import events as ev
from ledger.core.engine import Engine
from ledger.core.governor_config import default_config, dump_config
from ledger.ib.library import IB, LIBRARY_NAME, LIBRARY_VERSION
from ledger.live.session_life import carry_over, started_payload
from ledger.store import open_store
from ledger.version import __version__


def started(sid: str, seq: int, account: str) -> ev.Envelope:
    return ev.envelope(sid, seq, ev.SessionStarted(library="x", library_version="1", account=account), recv_ns=seq)


def halted(sid: str, seq: int) -> ev.Envelope:
    d = ev.GovernorDecision(decision="STATE_CHANGE", reason="OPERATOR_HALT", action="transition",
                            trading_state="HALTED")
    return ev.envelope(sid, seq, d, recv_ns=seq)


def test_a_disconnected_client_gives_zeros_not_stale_values():
    ib = IB()
    ib.client.clientId, ib.client.host, ib.client.port = 9, "10.0.0.1", 4002  # what it was last given
    cfg = default_config()
    p = started_payload(ib.client, account="DU1", config_hash="abc", mode="live", engine_config=cfg)
    assert (p.client_id, p.host, p.port, p.server_version) == (0, "", 0, 0)
    assert (p.library, p.library_version) == (LIBRARY_NAME, LIBRARY_VERSION)
    assert (p.account, p.config_hash, p.mode, p.ibledger_version) == ("DU1", "abc", "live", __version__)
    assert p.governor_config == dump_config(cfg)


def test_the_latest_earlier_session_of_the_same_account_carries_over(sqlite_url):
    store = open_store(sqlite_url)
    try:
        store.append([started("a-old", 1, "DU1"), halted("a-old", 2)])
        store.append([started("b-other", 1, "DU2"), halted("b-other", 2)])
        store.append([started("c-new", 1, "DU1")])  # the later one of DU1, ended ACTIVE (no decisions)
        engine = Engine(default_config())
        assert carry_over(store, engine, session_id="now", account="DU2") == "b-other"
        assert engine.trading_state == "HALTED"
        fresh = Engine(default_config())
        assert carry_over(store, fresh, session_id="now", account="DU1") == "c-new"
        assert fresh.trading_state == "ACTIVE"
    finally:
        store.close()


def test_no_earlier_session_and_the_own_session_are_not_carried_over(sqlite_url):
    store = open_store(sqlite_url)
    try:
        store.append([started("now", 1, "DU1"), halted("now", 2)])
        engine = Engine(default_config())
        assert carry_over(store, engine, session_id="now", account="DU1") is None
        assert carry_over(store, engine, session_id="other", account="DU9") is None
        assert engine.trading_state == "ACTIVE"
    finally:
        store.close()


def test_an_unreadable_store_starts_the_governor_afresh(sqlite_url, caplog):
    store = open_store(sqlite_url)
    store.append([started("a", 1, "DU1"), halted("a", 2)])
    store.close()  # reading a closed store fails: the session still starts
    engine = Engine(default_config())
    with caplog.at_level(logging.ERROR, logger="ledger.live.session_life"):
        assert carry_over(store, engine, session_id="now", account="DU1") is None
    assert engine.trading_state == "ACTIVE"
    assert "starts afresh" in caplog.text


def test_the_session_end_counts_itself():
    from ledger.live.session_life import ended_payload

    end = ended_payload("normal", 41)
    assert (end.reason, end.events) == ("normal", 42)
