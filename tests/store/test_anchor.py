"""Tamper evidence a database writer cannot forge: signed session heads in a file outside the store.

Each attack below is one the keyless hash chain cannot see (plain ``verify`` passes, asserted first), done
with direct SQL on the real SQLite file the way someone with write access to the database would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from ledger.core import codec
from ledger.core import events as ev
from ledger.store import EMPTY_CHAIN, chain_next, open_store, topic_for
from replay.synthetic import synthetic_session

IBLEDGER = [sys.executable, "-m", "ledger.cli"]


@pytest.fixture
def env(tmp_path: Path) -> dict:
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    a = list(synthetic_session(5, 20))
    b = list(synthetic_session(6, 20))
    with open_store(url) as st:
        st.append(a)
        st.append(b)
    key = tmp_path / "keys" / "anchor.key"
    return {"db": db, "url": url, "a": a, "b": b, "key": key, "file": tmp_path / "anchors.jsonl"}


def run(e: dict, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*IBLEDGER, *args, "--store", e["url"], "--key-file", str(e["key"])],
                       capture_output=True, text=True, timeout=60)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    return subprocess.CompletedProcess(r.args, r.returncode, " ".join(r.stdout.split()), " ".join(r.stderr.split()))


def plain_verify(e: dict) -> int:
    return subprocess.run([*IBLEDGER, "verify", "--store", e["url"]], capture_output=True, timeout=60).returncode


def _rechain(db: Path, sid: str) -> None:
    """What an attacker with database access does after editing rows: recompute the head row."""
    from ledger.store import originator_id_for

    oid = originator_id_for(sid)
    with sqlite3.connect(db) as c:
        rows = c.execute("SELECT originator_version, state FROM ibledger_events WHERE originator_id=? "
                         "ORDER BY originator_version", (oid.hex,)).fetchall()
        chain = EMPTY_CHAIN
        for _seq, state in rows:
            chain = chain_next(chain, bytes(state))
        c.execute("UPDATE ibledger_sessions SET last_seq=?, events=?, chain=? WHERE originator_id=?",
                  (rows[-1][0], len(rows), chain, str(oid)))


def test_anchor_creates_a_private_key_and_verifies_clean(env: dict) -> None:
    r = run(env, "anchor", "--file", str(env["file"]))
    assert r.returncode == 0 and "anchored 2 sessions" in r.stdout
    assert stat.S_IMODE(env["key"].stat().st_mode) == 0o600
    key_text = env["key"].read_text().strip()
    assert key_text not in env["file"].read_text()  # the key is never in the anchor file
    lines = [json.loads(x) for x in env["file"].read_text().splitlines()]
    assert {x["session_id"] for x in lines} == {env["a"][0].session_id, env["b"][0].session_id}
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 0 and "anchors: 2 sessions checked" in r.stdout


def test_edit_and_rechain_is_detected(env: dict) -> None:
    assert run(env, "anchor", "--file", str(env["file"])).returncode == 0
    sid = env["a"][0].session_id
    forged = msgspec.structs.replace(env["a"][4], payload=ev.OrderStatus(order_id=1, status="Cancelled"))
    from ledger.store import originator_id_for

    with sqlite3.connect(env["db"]) as c:
        c.execute("UPDATE ibledger_events SET state=?, topic=? WHERE originator_id=? AND originator_version=5",
                  (codec.to_msgpack(forged), topic_for(forged), originator_id_for(sid).hex))
    _rechain(env["db"], sid)
    assert plain_verify(env) == 0  # the keyless chain cannot see it
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 1 and f"session {sid}" in r.stdout and "differ from the anchor" in r.stdout


def test_deleting_a_whole_session_is_detected(env: dict) -> None:
    assert run(env, "anchor", "--file", str(env["file"])).returncode == 0
    sid = env["b"][0].session_id
    from ledger.store import originator_id_for

    oid = originator_id_for(sid)
    with sqlite3.connect(env["db"]) as c:
        c.execute("DELETE FROM ibledger_events WHERE originator_id=?", (oid.hex,))
        c.execute("DELETE FROM ibledger_sessions WHERE originator_id=?", (str(oid),))
        # session b was appended last: deleting it leaves no position hole either
    assert plain_verify(env) == 0
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 1 and f"session {sid}" in r.stdout and "missing from the store (deleted)" in r.stdout


def test_deleting_the_last_row_and_rechaining_is_detected(env: dict) -> None:
    assert run(env, "anchor", "--file", str(env["file"])).returncode == 0
    sid = env["a"][0].session_id
    from ledger.store import originator_id_for

    with sqlite3.connect(env["db"]) as c:
        c.execute("DELETE FROM ibledger_events WHERE originator_id=? AND originator_version=?",
                  (originator_id_for(sid).hex, len(env["a"])))
    _rechain(env["db"], sid)
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 1 and "(truncated)" in r.stdout


def test_a_forged_anchor_line_is_refused(env: dict) -> None:
    assert run(env, "anchor", "--file", str(env["file"])).returncode == 0
    lines = env["file"].read_text().splitlines()
    doc = json.loads(lines[0])
    doc["last_seq"] = 3  # pretend the session was anchored short
    env["file"].write_text(json.dumps(doc) + "\n" + "\n".join(lines[1:]) + "\n")
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 1 and "signature does not match" in r.stdout


def test_events_after_the_last_anchor_are_not_covered(env: dict) -> None:
    """Documented limit: only what was anchored is protected; appending after an anchor is normal."""
    assert run(env, "anchor", "--file", str(env["file"])).returncode == 0
    a = env["a"]
    with open_store(env["url"]) as st:
        st.append([ev.envelope(a[0].session_id, len(a) + 1, ev.OrderStatus(order_id=1, status="Filled"),
                               recv_ns=a[-1].recv_ns + 1)])
    assert run(env, "verify", "--anchor", str(env["file"])).returncode == 0


def test_key_problems_are_clear_errors(env: dict) -> None:
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 2 and "does not exist" in r.stderr and not env["key"].exists()
    assert run(env, "anchor", "--file", str(env["file"])).returncode == 0
    os.chmod(env["key"], 0o644)
    r = run(env, "verify", "--anchor", str(env["file"]))
    assert r.returncode == 2 and "readable by others" in r.stderr and "chmod 600" in r.stderr
    before = env["file"].read_bytes()
    r = run(env, "anchor", "--file", str(env["file"]))
    assert r.returncode == 2 and env["file"].read_bytes() == before


def test_a_damaged_store_is_not_anchored(env: dict) -> None:
    with sqlite3.connect(env["db"]) as c:
        c.execute("DELETE FROM ibledger_events WHERE rowid=3")
    r = run(env, "anchor", "--file", str(env["file"]))
    assert r.returncode == 1 and "nothing anchored" in r.stderr and not env["file"].exists()
