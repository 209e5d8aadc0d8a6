"""The audit projection on a compact fold: its tables do not depend on the window, a new process resumes from
the checkpoint in the fold files, and a crash between writing those files and the DuckDB commit loses nothing.

Real SQLite stores and DuckDB files. A window of zero or one finished order makes nearly every late event
(commission, correction, re-delivered execution, merge) re-inflate its order from the archive, and nearly
every order retire during a batch; the tables must still be the pinned ones (taken with a full fold).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from ledger.store import open_store
from projections import projector
from projections.projector import AuditProjection, rebuild, update
from tests.projections.test_projection_pinned import PINNED, _load, digests
from tests.projections.test_projections import assert_equal_to_fold, dump
from tests.support.audit_streams import generate

ROOT = Path(__file__).resolve().parents[2]


def fold_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.iterdir() if p.name.startswith(path.name + ".fold-"))


@pytest.fixture(scope="module")
def pinned_store(tmp_path_factory) -> tuple[str, Path, dict]:
    """The pinned projection's store, and every table built with a window larger than the stream (a fold
    that never retires anything: what the projection was before it was compact)."""
    d = tmp_path_factory.mktemp("compact")
    url = f"sqlite:///{d / 'ledger.db'}"
    with open_store(url) as store:
        _load(store)
        rebuild(store, d / "full.duckdb", payloads=True, keep=10**9)
    return url, d, dump(d / "full.duckdb")


@pytest.mark.parametrize("keep", [0, 1])
def test_tiny_window_gives_the_pinned_tables(pinned_store, keep: int) -> None:
    url, d, full = pinned_store
    rebuilt, incr = d / f"rebuilt{keep}.duckdb", d / f"incr{keep}.duckdb"
    with open_store(url) as store:
        rebuild(store, rebuilt, payloads=True, keep=keep, batch_events=97)
        with AuditProjection(store, incr, batch_events=97, checkpoint_every=300, payloads=True, keep=keep) as proj:
            proj.catch_up()
            fold = proj._fold
            assert fold is not None and fold._arch is not None and fold._arch.count > 150  # retired, for real
            assert len(fold.orders) < 60  # only open orders stay (the streams end with crashed sessions)
    for path in (rebuilt, incr):
        assert digests(path) == PINNED
        assert dump(path) == full  # every column, the ones added after the pins too
        assert len(fold_dirs(path)) == 1  # only the committed checkpoint's fold files are left


def test_cold_catch_up_in_a_new_process_equals_one_rebuild(sqlite_url: str, tmp_path: Path) -> None:
    first = generate(n_sessions=3, orders_per_session=40, seed=21, crashed_last=False)
    more = generate(n_sessions=2, orders_per_session=40, seed=22, session_prefix="later")
    path = tmp_path / "audit.duckdb"
    with open_store(sqlite_url) as store:
        store.append(first.envelopes)
        with AuditProjection(store, path, batch_events=50, checkpoint_every=120, keep=1) as proj:
            proj.catch_up()
            assert 0 < proj.checkpoint_position < proj.position  # a tail to re-fold on the next start
        store.append(more.envelopes)
    child = textwrap.dedent(f"""
        from ledger.store import open_store
        from projections.projector import AuditProjection
        with open_store({sqlite_url!r}) as store:
            with AuditProjection(store, {str(path)!r}, batch_events=64, checkpoint_every=100, keep=1) as proj:
                start = proj.checkpoint_position
                n = proj.catch_up()
                print(start, n, proj.notes)
    """)
    env = {**os.environ, "PYTHONHASHSEED": "4242", "PYTHONPATH": str(ROOT)}  # other string hashes
    out = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env=env, check=True, capture_output=True,
                         text=True)
    start, n, notes = out.stdout.split(maxsplit=2)
    assert int(start) > 0 and int(n) == len(more.envelopes) and notes.strip() == "[]"
    with open_store(sqlite_url) as store:
        assert_equal_to_fold(path, first.envelopes + more.envelopes)
        rebuild(store, tmp_path / "rebuilt.duckdb")
        assert update(store, path, keep=1) == (0, [])
        assert dump(path) == dump(tmp_path / "rebuilt.duckdb")
        assert len(fold_dirs(path)) == 1
        old = fold_dirs(path)
        rebuild(store, path, keep=1)  # replaces the projection and its fold files at once
        assert len(fold_dirs(path)) == 1 and fold_dirs(path) != old
        store.append(generate(n_sessions=1, orders_per_session=10, seed=28, session_prefix="last").envelopes)
        n, notes = update(store, path, keep=1)
        assert n > 0 and notes == []  # the rebuilt projection's checkpoint was used


def _after_checkpoint(proj: AuditProjection, after: int, action) -> None:
    """Call ``action`` in the first transaction past position ``after`` that also writes a fold checkpoint:
    the fold files are written and synced, the DuckDB commit has not happened."""
    def hook(position: int) -> None:
        if position > after and proj.checkpoint_position == position:
            action()
    proj._before_commit = hook


def test_failure_after_the_fold_files_before_the_commit(sqlite_url: str, tmp_path: Path) -> None:
    stream = generate(n_sessions=3, orders_per_session=40, seed=23)
    path = tmp_path / "audit.duckdb"
    with open_store(sqlite_url) as store:
        store.append(stream.envelopes)
        with AuditProjection(store, path, batch_events=40, checkpoint_every=100, keep=0) as proj:
            def boom() -> None:
                raise RuntimeError("injected failure between the fold files and the commit")

            _after_checkpoint(proj, 200, boom)
            with pytest.raises(RuntimeError, match="injected"):
                proj.catch_up()
            committed = proj.position
            assert 200 <= committed < len(stream.envelopes)
            proj._before_commit = None  # the same object carries on from the committed checkpoint
            assert proj.catch_up() == len(stream.envelopes) - committed
        assert_equal_to_fold(path, stream.envelopes)
        rebuild(store, tmp_path / "rebuilt.duckdb")
    assert dump(path) == dump(tmp_path / "rebuilt.duckdb")


def test_killed_after_the_fold_files_before_the_commit(sqlite_url: str, tmp_path: Path) -> None:
    """A real crash (``os._exit``: no rollback, no close) at the worst moment for the fold files: the next
    checkpoint slot, the log and the Bloom filter are synced, the row naming them is not committed."""
    stream = generate(n_sessions=3, orders_per_session=40, seed=24)
    path = tmp_path / "audit.duckdb"
    with open_store(sqlite_url) as store:
        store.append(stream.envelopes)
    child = textwrap.dedent(f"""
        import os
        from ledger.store import open_store
        from projections.projector import AuditProjection
        from tests.projections.test_projection_compact import _after_checkpoint
        with open_store({sqlite_url!r}) as store:
            with AuditProjection(store, {str(path)!r}, batch_events=40, checkpoint_every=100, keep=0) as proj:
                _after_checkpoint(proj, 300, lambda: os._exit(9))
                proj.catch_up()
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 9
    [files] = fold_dirs(path)
    log_size = (files / "log").stat().st_size
    with open_store(sqlite_url) as store:
        with AuditProjection(store, path, keep=0) as proj:
            assert 300 <= proj.position < len(stream.envelopes)
            proj.load()
            assert proj.notes == []  # the committed checkpoint was used, not a re-fold of everything
            assert (files / "log").stat().st_size < log_size  # the uncommitted records were cut off
            proj.catch_up()
        assert_equal_to_fold(path, stream.envelopes)
        rebuild(store, tmp_path / "rebuilt.duckdb")
    assert dump(path) == dump(tmp_path / "rebuilt.duckdb")


def test_missing_fold_files_mean_a_full_re_fold_with_a_note(sqlite_url: str, tmp_path: Path) -> None:
    first = generate(n_sessions=2, orders_per_session=30, seed=25, crashed_last=False)
    more = generate(n_sessions=1, orders_per_session=30, seed=26, session_prefix="later")
    path = tmp_path / "audit.duckdb"
    with open_store(sqlite_url) as store:
        store.append(first.envelopes)
        rebuild(store, path, keep=1)
        for d in fold_dirs(path):  # e.g. the DuckDB file alone was copied elsewhere
            for f in d.iterdir():
                f.unlink()
            d.rmdir()
        store.append(more.envelopes)
        n, notes = update(store, path, keep=1)
        assert n == len(more.envelopes)
        assert len(notes) == 1 and "fold checkpoint not usable" in notes[0] and "missing" in notes[0]
        assert_equal_to_fold(path, first.envelopes + more.envelopes)


def test_a_projection_of_the_previous_layout_is_rebuilt(sqlite_url: str, tmp_path: Path) -> None:
    stream = generate(n_sessions=1, orders_per_session=20, seed=27, crashed_last=False)
    path = tmp_path / "audit.duckdb"
    with open_store(sqlite_url) as store:
        store.append(stream.envelopes)
        update(store, path)
        con = duckdb.connect(str(path))  # as schema 4 left it: the whole fold in one BLOB
        con.execute("UPDATE ibledger_internal.audit_meta SET value = '4' WHERE key = 'schema_version'")
        con.execute("DROP TABLE ibledger_internal.audit_fold")
        con.execute("CREATE TABLE ibledger_internal.audit_fold (position BIGINT NOT NULL, "
                    "fold_version VARCHAR NOT NULL, state BLOB NOT NULL)")
        con.execute("INSERT INTO ibledger_internal.audit_fold VALUES (1, 'x', 'garbage'::BLOB)")
        con.close()
        n, notes = update(store, path)
        assert n == len(stream.envelopes)
        assert notes == [f"rebuilding {path.name}: schema version 4 -> {projector.schema.SCHEMA_VERSION}"]
        assert_equal_to_fold(path, stream.envelopes)
