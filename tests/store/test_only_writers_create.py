"""Only writers create stores: a reader on a wrong path refuses, nothing is created or altered."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.store import NoStore, open_store
from ledger.store.sessionfile import write_session
from tests.support.samples import sample_payloads

IBLEDGER = [sys.executable, "-m", "ledger.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IBLEDGER, *args], capture_output=True, text=True, timeout=60, env=env)


def _no_traceback(r: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in r.stderr + r.stdout


@pytest.mark.parametrize("cmd", [["sessions"], ["orders"], ["verify"], ["export", "x", "--out", "o.jsonl"]])
def test_read_commands_refuse_a_missing_store_and_create_nothing(tmp_path: Path, cmd: list[str]) -> None:
    db = tmp_path / "typo.db"
    r = run(*cmd, "--store", f"sqlite:///{db}")
    assert r.returncode == 2, r.stderr
    assert "no ibledger store" in r.stderr and "does not exist" in r.stderr
    _no_traceback(r)
    assert not db.exists()
    assert not (tmp_path / "o.jsonl").exists()


def test_library_reader_refuses_but_writer_creates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(NoStore, match="does not exist"):
        open_store(url, create=False)
    assert not (tmp_path / "new.db").exists()
    with open_store(url) as st:  # a writer
        assert st.max_position() == 0
    with open_store(url, create=False) as st:  # now there is a store to read
        assert st.sessions() == []


def test_empty_store_option_is_an_error(tmp_path: Path) -> None:
    r = subprocess.run([*IBLEDGER, "sessions", "--store", ""], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2 and "--store is empty" in r.stderr
    _no_traceback(r)
    assert list(tmp_path.iterdir()) == []  # the default ./ibledger.db was not created


def test_empty_env_store_is_an_error(tmp_path: Path) -> None:
    import os

    env = dict(os.environ, IBLEDGER_STORE="  ")
    r = subprocess.run([*IBLEDGER, "verify"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert r.returncode == 2 and "IBLEDGER_STORE is set but empty" in r.stderr
    assert list(tmp_path.iterdir()) == []


def _foreign_db(path: Path) -> None:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        c.execute("INSERT INTO customers VALUES (1, 'ada')")


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as c:
        return {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_foreign_sqlite_database_is_refused_unless_init(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    _foreign_db(db)
    envs = [ev.envelope("s1", i, p, recv_ns=1_000 + i) for i, p in enumerate(sample_payloads(), start=1)]
    f = tmp_path / "s1.jsonl"
    write_session(f, envs, "s1", len(envs))
    url = f"sqlite:///{db}"
    for cmd in (["verify"], ["sessions"], ["import", str(f)]):
        r = run(*cmd, "--store", url)
        assert r.returncode == 2, (cmd, r.stderr)
        assert "customers" in r.stderr and "no ibledger format marker" in r.stderr
        _no_traceback(r)
        assert _tables(db) == {"customers"}
    r = run("import", str(f), "--store", url, "--init")
    assert r.returncode == 0, r.stderr
    assert {"customers", "ibledger_meta", "ibledger_events"} <= _tables(db)
    with open_store(url, create=False) as st:
        assert st.last_seq("s1") == len(envs)


def test_a_file_that_is_not_sqlite_is_named(tmp_path: Path) -> None:
    f = tmp_path / "notes.db"
    f.write_text("this is not a database\n" * 100)
    r = run("sessions", "--store", f"sqlite:///{f}")
    assert r.returncode == 2 and "not a SQLite database" in r.stderr
    _no_traceback(r)
    assert f.read_text() == "this is not a database\n" * 100


def test_postgres_reader_refuses_a_schema_without_store(pg_schema_url: str) -> None:
    import psycopg

    r = run("verify", "--store", pg_schema_url)
    assert r.returncode == 2 and "no ibledger store" in r.stderr
    _no_traceback(r)
    schema = pg_schema_url.rsplit("schema=", 1)[1]
    base = pg_schema_url.split("?", 1)[0]
    with psycopg.connect(base) as c:
        row = c.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name=%s", (schema,)).fetchone()
    assert row is None  # nothing created
