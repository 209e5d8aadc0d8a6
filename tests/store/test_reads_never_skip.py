"""Reads never return less than the store holds: holes and damaged indexes fail loudly, exit 1.

The corrupted-index case damages a real SQLite file at a real page of the session index (found through
``dbstat``), the way a bad sector or a torn write would.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.store import GapError, SessionGap, open_store
from ledger.store.verify import verify
from replay.synthetic import synthetic_session

IBLEDGER = [sys.executable, "-m", "ledger.cli"]
INDEX = "sqlite_autoindex_ibledger_events_1"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*IBLEDGER, *args], capture_output=True, text=True, timeout=120)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    # messages are wrapped to the terminal width: compare them as one line
    return subprocess.CompletedProcess(r.args, r.returncode, " ".join(r.stdout.split()), " ".join(r.stderr.split()))


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[str, Path, str, int]:
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    envs = list(synthetic_session(11, 300))
    with open_store(url) as st:
        st.append(envs)
    return url, db, envs[0].session_id, len(envs)


def _table_rows(db: Path) -> int:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT COUNT(*) FROM ibledger_events NOT INDEXED").fetchone()[0]


def _damage_index_page(db: Path) -> int:
    """Overwrite the cell count of a leaf page in the middle of the session index; return its page number."""
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        leaves = [r[0] for r in c.execute(
            "SELECT pageno FROM dbstat WHERE name=? AND pagetype='leaf' ORDER BY pageno", (INDEX,))]
    assert len(leaves) > 10
    page = leaves[len(leaves) // 2]
    with db.open("r+b") as f:
        f.seek((page - 1) * page_size)
        assert f.read(1) == b"\x0a"  # a b-tree index leaf page
        f.seek((page - 1) * page_size + 3)
        f.write((1).to_bytes(2, "big"))  # "this page holds one entry"
    return page


def test_corrupted_index_page_fails_every_read_and_verify(recorded) -> None:
    url, db, sid, n = recorded
    _damage_index_page(db)
    assert _table_rows(db) == n  # the rows are all there; only the index lies
    with open_store(url, create=False) as st:
        with pytest.raises(GapError) as info:
            list(st.read_session(sid))
        assert info.value.gap.session_id == sid and info.value.gap.first > 1
        report = verify(st)
    assert not report.ok
    assert report.integrity and report.unreadable and report.unreadable[0].stored == n

    r = run("orders", "--session", sid[:8], "--store", url)
    assert r.returncode == 1 and f"session {sid}" in r.stderr and "missing" in r.stderr
    r = run("replay", f"store:{sid[:8]}", "--store", url)
    assert r.returncode == 1 and f"session {sid}" in r.stderr and "missing" in r.stderr
    out = db.parent / "out.jsonl"
    r = run("export", sid[:8], "--out", str(out), "--store", url)
    assert r.returncode == 1 and "missing" in r.stderr and not out.exists()
    r = run("verify", "--store", url)
    assert r.returncode == 1 and "INTEGRITY" in r.stdout and "UNREADABLE" in r.stdout
    r = run("orders", "--session", sid[:8], "--store", url, "--allow-gaps", "--json")
    assert r.returncode == 0 and "INCOMPLETE" in r.stderr and '"incomplete"' in r.stdout
    assert _table_rows(db) == n  # reads changed nothing


def test_deleted_rows_fail_full_reads_fold_and_projection(recorded) -> None:
    url, db, sid, n = recorded
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM ibledger_events WHERE originator_version IN (40, 41, 42)")
    with open_store(url, create=False) as st:
        with pytest.raises(GapError, match=r"seqs 40\.\.42 missing \(3 events\)"):
            list(st.read_all())
        with pytest.raises(GapError, match=r"seqs 40\.\.42 missing"):
            list(st.read_session(sid))
        gaps: list[SessionGap] = []
        assert len(list(st.read_all(allow_gaps=True, on_gap=gaps.append))) == n - 3
        assert gaps == [SessionGap(sid, 40, 42)]
    r = run("orders", "--store", url)
    assert r.returncode == 1 and f"session {sid}: seqs 40..42 missing" in r.stderr
    r = run("audit", "live", "--store", url, "--duckdb", str(db.parent / "p.duckdb"))
    assert r.returncode != 0 and "seqs 40..42 missing" in r.stderr
    r = run("orders", "--store", url, "--allow-gaps")
    assert r.returncode == 0 and "INCOMPLETE" in r.stderr
    out = db.parent / "gappy.jsonl"
    r = run("export", sid[:8], "--out", str(out), "--store", url, "--allow-gaps")
    assert r.returncode == 0 and "INCOMPLETE" in r.stdout + r.stderr
    header, *lines = out.read_bytes().splitlines()
    assert json.loads(header)["events"] == len(lines) == n - 3  # streamed: the header counts what was written
    r = run("replay", sid[:8], "--store", url)
    assert r.returncode == 1 and "seqs 40..42 missing" in r.stderr
    r = run("replay", sid[:8], "--store", url, "--allow-gaps", "--json")
    assert r.returncode == 0 and "INCOMPLETE replay" in r.stderr and "seqs 40..42 missing" in r.stderr
    assert _table_rows(db) == n - 3


def test_deleted_last_rows_are_a_missing_tail(recorded) -> None:
    url, db, sid, n = recorded
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM ibledger_events WHERE originator_version > ?", (n - 2,))
    with open_store(url, create=False) as st:
        with pytest.raises(GapError) as info:
            list(st.read_session(sid))
        assert info.value.gap == SessionGap(sid, n - 1, n, tail=True)
        with pytest.raises(GapError, match="after the last readable event"):
            list(st.read_all())
    r = run("export", sid[:8], "--out", str(db.parent / "x.jsonl"), "--store", url)
    assert r.returncode == 1 and f"seqs {n - 1}..{n} missing" in r.stderr


def test_position_holes_are_reported_by_verify(recorded) -> None:
    url, db, _sid, _n = recorded
    with sqlite3.connect(db) as c:
        c.execute("DELETE FROM ibledger_events WHERE rowid = 10")
    with open_store(url, create=False) as st:
        report = verify(st)
    assert [(h.after, h.next) for h in report.position_holes] == [(9, 11)]
    assert not report.ok


def test_clean_store_reads_and_verifies(recorded) -> None:
    url, _db, sid, n = recorded
    with open_store(url, create=False) as st:
        assert [e.seq for e in st.read_session(sid)] == list(range(1, n + 1))
        assert len(list(st.read_all())) == n
        report = verify(st)
    assert report.ok and not report.integrity and not report.unreadable and not report.position_holes
    assert "integrity_check" in report.integrity_checked


def test_postgres_verify_runs_amcheck_when_installed(pg_database_url: str) -> None:
    """PostgreSQL's own index check (amcheck), in a database of this test's own so others see no change."""
    import uuid

    import psycopg

    server = pg_database_url.rsplit("/", 1)[0]
    db = "ibledger_amcheck_test"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname=%s", (db,)).fetchone():
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                c.execute(f'CREATE DATABASE "{db}"')
    with psycopg.connect(f"{server}/{db}", autocommit=True) as c:
        try:
            c.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        except psycopg.Error as exc:
            pytest.skip(f"amcheck not available: {exc}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{server}/{db}?schema={schema}"
    try:
        envs = list(synthetic_session(12, 30))
        with open_store(url) as st:
            st.append(envs)
            report = verify(st)
        assert report.ok and "amcheck" in report.integrity_checked and not report.integrity
        assert report.unreadable == []
    finally:
        with psycopg.connect(f"{server}/{db}", autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
