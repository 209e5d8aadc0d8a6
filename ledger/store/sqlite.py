"""SQLite backend: one file, WAL journal, durable commits (``synchronous=FULL`` unless the URL says so).

Keeps the eventsourcing library's ``SQLiteDatastore`` (connection pool, WAL switch) and the table that
``SQLiteApplicationRecorder.create_table`` makes; the pool is subclassed the way the library's own
backends do (implementing its ``_create_connection`` hook), and the few statements the store runs are
its own. The append transaction is opened with ``BEGIN IMMEDIATE`` so the write lock is taken *before*
the session heads are read: the gapless check and the insert then see the same state, and a second
process racing on the same session waits for the lock and then gets :class:`SeqConflict` instead of
interleaving.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from eventsourcing.persistence import InterfaceError, PersistenceError
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)

from ledger.store.base import (
    EVENTS_TABLE,
    HEAD_COLS,
    META_TABLE,
    SESSIONS_TABLE,
    STORE_FORMAT,
    Batch,
    EventStore,
    NoStore,
    RawRow,
    SeqConflict,
    SessionHead,
    StoreError,
    StoreFileLost,
    StoreURL,
    plan_heads,
)

# Rows per multi-row INSERT (4 variables a row, far under SQLITE_MAX_VARIABLE_NUMBER). A batch is inserted
# as full chunks of this size plus one remainder statement, so the writer's batches (max_batch, default 100)
# are one statement each. Kept well under 500 because parsing a VALUES statement costs ~2.5 us/row and a
# cached one grows superlinearly (~20 KB at 100 rows, ~200 KB at 500): the statement cache below holds
# every chunk size (a few MB at most), so appends never re-parse.
_INSERT_CHUNK = 128
_STATEMENT_CACHE = _INSERT_CHUNK + 32  # every chunk size plus the store's other statements


class _Pool(SQLiteConnectionPool):
    """The library's pool; connections made as the library makes them (auto-commit mode, WAL, Row
    factory), plus an explicit durability setting and a real statement cache (the library passes
    ``cached_statements=True``, i.e. a cache of one statement, so every append re-parsed its SQL), sized
    to hold one multi-row INSERT per chunk size (see ``_INSERT_CHUNK``)."""

    synchronous = "FULL"

    def _create_connection(self) -> SQLiteConnection:
        try:
            c = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,
                cached_statements=_STATEMENT_CACHE,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if c.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            c.execute("PRAGMA journal_mode=WAL")
        self.is_journal_mode_wal = True
        c.execute(f"PRAGMA synchronous={self.synchronous}")
        c.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=c, max_age=self.max_age)


class _Datastore(SQLiteDatastore):
    def __init__(self, db_name: str, *, synchronous: str, lock_timeout: float) -> None:
        super().__init__(db_name, lock_timeout=lock_timeout, pool_size=4, max_overflow=8, pool_timeout=30.0)  # type: ignore[arg-type]
        self.pool.close()
        pool = _Pool(db_name=db_name, lock_timeout=lock_timeout, pool_size=4, max_overflow=8, pool_timeout=30.0)  # type: ignore[arg-type]
        pool.synchronous = synchronous
        self.pool = pool


# Tables ibledger itself creates in a SQLite file (the library's events table, our side tables).
_OWN_TABLES = {EVENTS_TABLE, SESSIONS_TABLE, META_TABLE, "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}


def check_sqlite_file(path: Path, url: str, *, create: bool, init: bool) -> None:
    """Refuse what is not (or not yet allowed to become) an ibledger store, before anything is written.

    A reader never creates a file; a writer never adds ibledger's tables to a database that holds other
    tables unless told to (``init``); a file that is not SQLite at all is named as such.
    """
    if not path.exists():
        if create:
            return
        raise NoStore(
            f"no ibledger store at {url}: the file {path} does not exist. Check the path (or --store / "
            f"$IBLEDGER_STORE); stores are created by writers (`ibledger import`, `ibledger record`)"
        )
    if not path.is_file():
        raise NoStore(f"no ibledger store at {url}: {path} is not a regular file")
    try:
        probe = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            names = {r[0] for r in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            probe.close()
    except sqlite3.OperationalError as exc:
        if create and ("locked" in str(exc) or "busy" in str(exc)):
            return  # another process is creating or writing it right now: the open itself will wait
        raise StoreError(f"cannot open {url}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        raise NoStore(
            f"no ibledger store at {url}: {path} is not a SQLite database ({exc}); choose another file"
        ) from None
    if META_TABLE in names:
        return
    if not names:
        if create:
            return
        raise NoStore(
            f"no ibledger store at {url}: {path} is an empty SQLite file. Check the path; stores are "
            f"created by writers (`ibledger import`, `ibledger record`)"
        )
    foreign = sorted(names - _OWN_TABLES)
    if not foreign:
        return  # a store being created by another process right now
    shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
    if not create:
        raise NoStore(
            f"no ibledger store at {url}: {path} is a SQLite database with other tables ({shown}) and no "
            f"ibledger format marker; check the path"
        )
    if not init:
        raise NoStore(
            f"{url}: {path} is a SQLite database with other tables ({shown}) and no ibledger format "
            f"marker; refusing to add ibledger tables to it. Choose another file, or pass --init to add "
            f"them deliberately"
        )


class SQLiteEventStore(EventStore):
    def __init__(self, parsed: StoreURL, *, create: bool = True, init: bool = False) -> None:
        super().__init__(parsed.redacted)
        path = Path(parsed.path)
        if not path.parent.exists():
            raise StoreError(f"cannot open {self.url}: directory {path.parent} does not exist")
        check_sqlite_file(path, self.url, create=create, init=init)
        self.path = path
        self.synchronous = parsed.params.get("synchronous", "FULL")
        lock_timeout = float(parsed.params.get("lock_timeout", "5"))
        try:
            self.datastore = _Datastore(str(path), synchronous=self.synchronous, lock_timeout=lock_timeout)
            self.recorder = SQLiteApplicationRecorder(self.datastore, events_table_name=EVENTS_TABLE)
            self._init_insert()
            self._create_tables_when_free(lock_timeout)
        except (PersistenceError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open {self.url}: {exc}") from None
        self._identity = _file_identity(path)
        t = EVENTS_TABLE
        self._sql_page_session = (
            f"SELECT rowid, originator_version, state FROM {t} "
            f"WHERE originator_id=? AND originator_version>=? AND originator_version<? "
            "ORDER BY originator_version"
        )
        self._sql_next_seq = f"SELECT MIN(originator_version) FROM {t} WHERE originator_id=? AND originator_version>=?"
        self._sql_page_all = f"SELECT rowid, state FROM {t} WHERE rowid>? ORDER BY rowid LIMIT ?"
        self._sql_page_raw = (
            f"SELECT rowid, originator_id, originator_version, topic, state FROM {t} "
            f"WHERE rowid>? ORDER BY rowid LIMIT ?"
        )

    def _init_insert(self) -> None:
        """Our own multi-row INSERT on the library's events table (its columns, named)."""
        probe = sqlite3.connect(":memory:")
        try:
            max_vars = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        finally:
            probe.close()
        self._insert_head = f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state) VALUES "
        self._insert_group = "(?,?,?,?)"
        self._insert_chunk = max(1, min(_INSERT_CHUNK, max_vars // 4))
        self._insert_sql: dict[int, str] = {}

    def _insert_statement(self, n: int) -> str:
        """The multi-row INSERT for ``n`` rows; the same text object each time for the statement cache."""
        sql = self._insert_sql.get(n)
        if sql is None:
            sql = self._insert_sql[n] = self._insert_head + ",".join([self._insert_group] * n)
        return sql

    def _insert_rows(self, c: sqlite3.Cursor, rows: list[tuple[str, int, str, bytes]]) -> int:
        """Insert ``rows`` in order as one statement per chunk; return the rowid of the last one.

        One ``execute`` per chunk instead of ``executemany``, which releases and re-takes the GIL once per
        row (slow against a busy IB loop thread). SQLite inserts a VALUES list in order, each row getting
        max(rowid)+1, so positions stay contiguous and in batch order, as with one row per statement.
        """
        size = self._insert_chunk
        for i in range(0, len(rows), size):
            chunk = rows[i : i + size]
            c.execute(self._insert_statement(len(chunk)), list(chain.from_iterable(chunk)))
        last = c.lastrowid  # sqlite3_last_insert_rowid(), read by execute() after the last chunk
        assert last is not None
        return last

    def _create_tables_when_free(self, lock_timeout: float) -> None:
        """Create the tables, retrying while other processes hold the new file.

        Several processes opening one new file race to switch it to WAL and create the tables; SQLite
        answers a deferred transaction that must upgrade to a writer with an immediate "database is
        locked" (no busy wait), so the retry happens here, bounded by the store's lock timeout.
        """
        deadline = time.monotonic() + max(lock_timeout, 1.0)
        delay = 0.01
        while True:
            try:
                self._create_tables()
                return
            except (PersistenceError, sqlite3.OperationalError) as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)

    def _create_tables(self) -> None:
        self.recorder.create_table()
        with self._write() as c:
            c.execute(
                f"CREATE TABLE IF NOT EXISTS {SESSIONS_TABLE} ("
                "originator_id TEXT PRIMARY KEY, session_id TEXT NOT NULL UNIQUE, "
                "last_seq INTEGER NOT NULL, events INTEGER NOT NULL, "
                "first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, "
                "has_start INTEGER NOT NULL, has_end INTEGER NOT NULL, chain BLOB NOT NULL)"
            )
            c.execute(f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            c.execute(f"INSERT OR IGNORE INTO {META_TABLE} VALUES ('format', ?)", (str(STORE_FORMAT),))
            c.execute(f"SELECT value FROM {META_TABLE} WHERE key='format'")
            fmt = int(c.fetchone()[0])
        if fmt > STORE_FORMAT:
            raise StoreError(
                f"{self.url} has store format {fmt}, this ibledger reads up to {STORE_FORMAT}: upgrade ibledger"
            )

    # -- transactions

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction that holds SQLite's write lock from its first statement."""
        with self.datastore.get_connection(commit=True) as conn:
            cur: SQLiteCursor = conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                cur.sqlite_cursor.close()
                raise StoreError(f"{self.url}: could not get the write lock ({exc})") from None
            cur.sqlite_cursor.row_factory = None
            try:
                yield cur.sqlite_cursor
            except BaseException:
                conn.rollback()
                cur.sqlite_cursor.close()
                raise
            try:
                conn.commit()
            except sqlite3.Error as exc:
                conn.rollback()
                raise StoreError(f"{self.url}: commit failed ({exc})") from None
            finally:
                cur.sqlite_cursor.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Cursor]:
        try:
            with self.datastore.transaction(commit=False) as c:
                c.sqlite_cursor.row_factory = None  # type: ignore[attr-defined]
                yield c.sqlite_cursor  # type: ignore[attr-defined]
        except (PersistenceError, sqlite3.Error) as exc:
            hint = ""
            if "malformed" in str(exc) or "not a database" in str(exc):
                hint = "; the file is damaged: run `ibledger verify` and restore it from a backup"
            raise StoreError(f"{self.url}: read failed ({exc}){hint}") from None

    # -- append

    def check_file(self) -> None:
        """Raise :class:`StoreFileLost` if the file at the store's path is gone or is another file.

        An open SQLite connection keeps writing into a deleted (or renamed-over) file without an error;
        each append checks the path's device and inode first, one ``stat`` per group commit.
        """
        now = _file_identity(self.path)
        if now != self._identity:
            what = "was deleted" if now is None else "was replaced by another file"
            raise StoreFileLost(
                f"{self.url}: the store file {self.path} {what} while the store was open; nothing more is "
                f"written (events committed before went with the old file). Restore the file from a "
                f"backup, or start a new session on a new store"
            )

    def _append_batches(self, batches: Iterator[Batch]) -> int:
        self.check_file()
        # The library's table and INSERT columns, as multi-row statements instead of its per-row loop
        # (which exists to return every rowid): writers are serialized, so the batch's positions are
        # contiguous and the last one is last_insert_rowid() after the last chunk.
        batch: Batch | None = None
        last = 0
        try:
            with self._write() as c:
                for batch in batches:
                    last = self._append_in(c, batch)
                return last
        except sqlite3.IntegrityError as exc:
            # The heads check runs under the write lock, so this is a backstop (e.g. a row written
            # around the store's API): report it as a conflict on the first event of the batch.
            assert batch is not None
            part = next(iter(batch.parts.values()))
            raise SeqConflict(part.session_id, -1, part.first_seq, detail=f"integrity error: {exc}") from None
        except sqlite3.Error as exc:
            raise StoreError(f"{self.url}: append failed ({exc})") from None

    def _append_in(self, c: sqlite3.Cursor, batch: Batch) -> int:
        """One batch inside the open write transaction: heads check, rows, heads update."""
        heads = self._heads_in(c, list(batch.parts))
        inserts, updates = plan_heads(batch, heads)
        last = self._insert_rows(c, batch.rows)
        if inserts:
            c.executemany(
                f"INSERT INTO {SESSIONS_TABLE} ({HEAD_COLS}) VALUES (?,?,?,?,?,?,?,?,?)",
                [_head_params(h) for h in inserts],
            )
        if updates:
            c.executemany(
                f"UPDATE {SESSIONS_TABLE} SET last_seq=?, events=?, last_ns=?, has_start=?, "
                "has_end=?, "
                "chain=? WHERE originator_id=?",
                [
                    (
                        h.last_seq,
                        h.events,
                        h.last_ns,
                        h.has_start,
                        h.has_end,
                        h.chain,
                        h.originator_id,
                    )
                    for h in updates
                ],
            )
        return last

    def _heads_in(self, c: sqlite3.Cursor, oids: list[str]) -> dict[str, SessionHead]:
        out: dict[str, SessionHead] = {}
        if len(oids) == 1:
            c.execute(f"SELECT {HEAD_COLS} FROM {SESSIONS_TABLE} WHERE originator_id=?", oids)
            row = c.fetchone()
            if row is not None:
                out[row[0]] = _head(row)
            return out
        for i in range(0, len(oids), 500):
            chunk = oids[i : i + 500]
            c.execute(
                f"SELECT {HEAD_COLS} FROM {SESSIONS_TABLE} WHERE originator_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in c.fetchall():
                h = _head(row)
                out[h.originator_id] = h
        return out

    # -- reads

    def _head(self, originator_id: str) -> SessionHead | None:
        with self._read() as c:
            c.execute(f"SELECT {HEAD_COLS} FROM {SESSIONS_TABLE} WHERE originator_id=?", (originator_id,))
            row = c.fetchone()
        return _head(row) if row is not None else None

    def session_heads(self) -> list[SessionHead]:
        self._check_open()
        with self._read() as c:
            c.execute(f"SELECT {HEAD_COLS} FROM {SESSIONS_TABLE} ORDER BY first_ns, session_id")
            return [_head(r) for r in c.fetchall()]

    def _find_prefix(self, prefix: str) -> list[str]:
        with self._read() as c:
            c.execute(
                f"SELECT session_id FROM {SESSIONS_TABLE} WHERE substr(session_id, 1, ?)=? LIMIT 50",
                (len(prefix), prefix),
            )
            return [r[0] for r in c.fetchall()]

    def _session_page(self, oid: uuid.UUID, from_seq: int, n: int) -> list[tuple[int, int, bytes]]:
        with self._read() as c:
            c.execute(self._sql_page_session, (oid.hex, from_seq, from_seq + n))
            return c.fetchall()

    def _next_seq(self, oid: uuid.UUID, from_seq: int) -> int | None:
        with self._read() as c:
            c.execute(self._sql_next_seq, (oid.hex, from_seq))
            return c.fetchone()[0]

    def _session_count(self, oid: uuid.UUID) -> int:
        # the same index range the session reads use (a damaged index hides rows here too)
        with self._read() as c:
            c.execute(
                f"SELECT COUNT(*) FROM {EVENTS_TABLE} WHERE originator_id=? AND originator_version>=?",
                (oid.hex, 1),
            )
            return c.fetchone()[0]

    def integrity_problems(self) -> tuple[list[str], str]:
        self._check_open()
        with self._read() as c:
            c.execute("PRAGMA integrity_check(100)")
            lines = [str(r[0]) for r in c.fetchall()]
        return [line for line in lines if line != "ok"], "SQLite PRAGMA integrity_check"

    def _all_page(self, after: int, n: int) -> list[tuple[int, bytes]]:
        with self._read() as c:
            c.execute(self._sql_page_all, (after, n))
            return c.fetchall()

    def _raw_page(self, after: int, n: int) -> list[RawRow]:
        with self._read() as c:
            c.execute(self._sql_page_raw, (after, n))
            return [_raw_row(r) for r in c.fetchall()]

    def max_position(self) -> int:
        self._check_open()
        with self._read() as c:
            c.execute(f"SELECT MAX(rowid) FROM {EVENTS_TABLE}")
            return c.fetchone()[0] or 0

    def _close(self) -> None:
        self.datastore.close()


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _raw_row(r: Any) -> RawRow:
    """A stored row as found, even one written around the store (NULL or non-UUID id, NULL seq/state):
    verify reports such rows instead of crashing on them."""
    try:
        oid = str(uuid.UUID(r[1]))
    except (TypeError, ValueError, AttributeError):
        oid = f"<invalid originator_id {r[1]!r:.60}>"
    seq = r[2] if type(r[2]) is int else -1
    state = bytes(r[4]) if isinstance(r[4], (bytes, bytearray, memoryview)) else b""
    topic = r[3] if isinstance(r[3], str) else ""
    return RawRow(r[0], oid, seq, topic, state)


def _head(row: Any) -> SessionHead:
    return SessionHead(
        originator_id=row[0],
        session_id=row[1],
        last_seq=row[2],
        events=row[3],
        first_ns=row[4],
        last_ns=row[5],
        has_start=bool(row[6]),
        has_end=bool(row[7]),
        chain=bytes(row[8]),
    )


def _head_params(h: SessionHead) -> tuple[Any, ...]:
    return (
        h.originator_id,
        h.session_id,
        h.last_seq,
        h.events,
        h.first_ns,
        h.last_ns,
        h.has_start,
        h.has_end,
        h.chain,
    )
