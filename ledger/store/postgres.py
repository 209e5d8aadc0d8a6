"""PostgreSQL backend: several recorders / hosts writing one ledger.

Keeps the eventsourcing library's datastore (``PostgresDatastore``: psycopg 3 pool, type adapters) and its
events table (``PostgresApplicationRecorder.create_table``: ``bigserial`` notification id), and owns the
few statements it runs on them: an append is one call of the ``ibledger_append`` SQL function created
next to the tables (one round trip). The function takes ``LOCK TABLE ... IN EXCLUSIVE MODE`` first
(bounded by ``lock_timeout``, default 5 s, never "forever"; a timeout is a loud :class:`StoreError`), so
writers are serialized and position order equals commit order; it then checks that the session heads
are the ones the batch was planned on (seq check and hash chain, in Python), inserts and moves the heads.
A racing writer on the same session gets :class:`SeqConflict`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

import psycopg
from eventsourcing.persistence import OperationalError, PersistenceError
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

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
    StoreURL,
    plan_heads,
    redact_url,
)


class PostgresEventStore(EventStore):
    def __init__(self, parsed: StoreURL, *, create: bool = True) -> None:
        super().__init__(parsed.redacted)
        self._create = create
        self._password = parsed.password
        self.schema = parsed.params.get("schema") or "public"
        lock_timeout = _whole_seconds(parsed.params.get("lock_timeout", "5"))
        try:
            self.datastore = PostgresDatastore(
                dbname=parsed.dbname,
                host=parsed.host,
                port=parsed.port,
                user=parsed.user,
                password=parsed.password,
                connect_timeout=float(parsed.params.get("connect_timeout", "5")),
                pool_size=2,
                max_overflow=6,
                lock_timeout=lock_timeout,  # SET LOCAL lock_timeout = '<n>s'
                schema=self.schema,
                pool_open_timeout=float(parsed.params.get("connect_timeout", "5")),
                originator_id_type="uuid",
            )
            self.recorder = PostgresApplicationRecorder(self.datastore, events_table_name=EVENTS_TABLE)
            self._create_tables(parsed)
        except NoStore:
            self._close_quietly()
            raise
        except (PersistenceError, psycopg.Error) as exc:
            self._close_quietly()
            raise StoreError(f"cannot open {self.url}: {self._diagnose(parsed, exc)}") from None
        s, t = Identifier(self.schema), Identifier(EVENTS_TABLE)
        self._lock_timeout = f"{lock_timeout}s"
        self._known_heads: dict[str, SessionHead | None] = {}  # as this store last wrote or read them
        self._sql_append = SQL(
            "SELECT {0}.ibledger_append(%s, %s::uuid[], %s::bigint[], %s::text[], %s::bytea[], %s::uuid[], "
            "%s::bigint[], %s::bytea[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
            "%s::boolean[], %s::boolean[], %s::bytea[])"
        ).format(s)
        self._t_sessions = SQL("{0}.{1}").format(s, Identifier(SESSIONS_TABLE))
        self._sql_page_session = SQL(
            "SELECT notification_id, originator_version, state FROM {0}.{1} "
            "WHERE originator_id=%s AND originator_version>=%s AND originator_version<%s "
            "ORDER BY originator_version"
        ).format(s, t)
        self._sql_next_seq = SQL(
            "SELECT MIN(originator_version) FROM {0}.{1} WHERE originator_id=%s AND originator_version>=%s"
        ).format(s, t)
        self._sql_page_all = SQL(
            "SELECT notification_id, state FROM {0}.{1} WHERE notification_id>%s ORDER BY notification_id LIMIT %s"
        ).format(s, t)
        self._sql_page_raw = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {0}.{1} "
            "WHERE notification_id>%s ORDER BY notification_id LIMIT %s"
        ).format(s, t)
        self._sql_max = SQL("SELECT MAX(notification_id) FROM {0}.{1}").format(s, t)
        self._sql_heads_in = SQL("SELECT " + HEAD_COLS + " FROM {0} WHERE originator_id = ANY(%s)").format(
            self._t_sessions
        )
        self._sql_head = SQL("SELECT " + HEAD_COLS + " FROM {0} WHERE originator_id = %s").format(self._t_sessions)

    def _diagnose(self, parsed: StoreURL, exc: BaseException) -> str:
        """Name the cause of a failed open: the pool only says "initialization incomplete after N sec"
        whatever happened, so one direct connection attempt asks the server (or the network) why."""
        text = self._clean(exc)
        if "pool initialization incomplete" not in text and "couldn't get a connection" not in text:
            return text
        timeout = max(1, round(float(parsed.params.get("connect_timeout", "5"))))
        try:
            psycopg.connect(
                dbname=parsed.dbname, host=parsed.host, port=parsed.port, user=parsed.user,
                password=parsed.password or None, connect_timeout=timeout,
            ).close()
        except psycopg.Error as probe:
            return connect_failure(self._clean(probe), parsed, timeout)
        return f"{text} (a direct connection works now: the server may be overloaded or at max_connections)"

    def _clean(self, exc: BaseException) -> str:
        msg = str(exc).strip()
        if self._password:
            msg = msg.replace(self._password, "***")
        return redact_url(msg)  # a driver message may quote a connection string: the one redaction rule

    def _create_tables(self, parsed: StoreURL) -> None:
        """Create schema, library tables/types/function and our side tables, once.

        Several recorders may open one new ledger at the same moment, and PostgreSQL DDL races (``CREATE
        OR REPLACE FUNCTION`` -> "tuple concurrently updated", ``CREATE SCHEMA IF NOT EXISTS`` -> unique
        violation): a store that already has its tables skips DDL; otherwise the DDL runs under a
        session-level advisory lock held on a dedicated connection.
        """
        if not self._tables_exist():
            if not self._create:
                raise NoStore(
                    f"no ibledger store at {self.url} (schema {self.schema} has no ibledger tables): check the "
                    f"database and ?schema=; stores are created by writers (`ibledger import`, `ibledger record`)"
                )
            with psycopg.connect(
                dbname=parsed.dbname,
                host=parsed.host,
                port=parsed.port,
                user=parsed.user,
                password=parsed.password or None,
                autocommit=True,
                connect_timeout=max(1, round(float(parsed.params.get("connect_timeout", "5")))),
            ) as lock_conn:
                lock_conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"ibledger-ddl:{self.schema}",))
                try:
                    if not self._tables_exist():
                        with self.datastore.transaction(commit=True) as curs:
                            curs.execute(SQL("CREATE SCHEMA IF NOT EXISTS {0}").format(Identifier(self.schema)))
                        self.recorder.create_table()
                        self._create_side_tables()
                        with self.datastore.transaction(commit=True) as curs:
                            curs.execute(_append_function(self.schema))
                finally:
                    lock_conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"ibledger-ddl:{self.schema}",))
        self.datastore.register_type_adapters()
        with self.datastore.transaction(commit=False) as curs:
            meta = SQL("{0}.{1}").format(Identifier(self.schema), Identifier(META_TABLE))
            curs.execute(SQL("SELECT value FROM {0} WHERE key='format'").format(meta))
            fmt = int(curs.fetchone()["value"])  # type: ignore[index]
        if fmt > STORE_FORMAT:
            raise StoreError(
                f"{self.url} has store format {fmt}, this ibledger reads up to {STORE_FORMAT}: upgrade ibledger"
            )

    def _tables_exist(self) -> bool:
        names = [f'"{self.schema}".{t}' for t in (EVENTS_TABLE, SESSIONS_TABLE, META_TABLE)]
        names.append(f'"{self.schema}".{self.recorder.stored_event_type_name}')
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                "AND to_regclass(%s) IS NOT NULL"
                " AND to_regtype(%s) IS NOT NULL AND to_regproc(%s) IS NOT NULL AS ok",
                [*names, f'"{self.schema}".ibledger_append'],
            )
            return bool(curs.fetchone()["ok"])  # type: ignore[index]

    def _create_side_tables(self) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {0} ("
                    "originator_id uuid PRIMARY KEY, session_id text NOT NULL UNIQUE, "
                    "last_seq bigint NOT NULL, events bigint NOT NULL, "
                    "first_ns bigint NOT NULL, last_ns bigint NOT NULL, "
                    "has_start boolean NOT NULL, has_end boolean NOT NULL, chain bytea NOT NULL)"
                ).format(SQL("{0}.{1}").format(Identifier(self.schema), Identifier(SESSIONS_TABLE)))
            )
            meta = SQL("{0}.{1}").format(Identifier(self.schema), Identifier(META_TABLE))
            curs.execute(SQL("CREATE TABLE IF NOT EXISTS {0} (key text PRIMARY KEY, value text NOT NULL)").format(meta))
            curs.execute(
                SQL("INSERT INTO {0} VALUES ('format', %s) ON CONFLICT DO NOTHING").format(meta),
                (str(STORE_FORMAT),),
            )

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self.datastore.get_connection() as conn:
                yield conn
        except StoreError:
            raise
        except OperationalError as exc:
            raise StoreError(f"{self.url}: database unavailable or busy ({self._clean(exc)})") from None
        except PersistenceError as exc:
            raise StoreError(f"{self.url}: {self._clean(exc)}") from None

    # -- append

    def _append_batches(self, batches: Iterator[Batch]) -> int:
        """Each batch is ONE call of ``ibledger_append`` (see :data:`_APPEND_FN`): one round trip that
        takes the table lock, checks the session heads the batch was planned on, inserts the events in
        order and moves the heads. The heads are planned (seq check, hash chain) against the heads this
        store last wrote or read; when another writer moved them, the function refuses (``IBL01``) and the
        batch is planned again on fresh heads, so a racing writer on the same session still gets
        :class:`SeqConflict` and nothing is written. A stream (import) runs all its calls in one
        transaction."""
        it = iter(batches)
        first = next(it, None)
        if first is None:
            return 0
        second = next(it, None)
        try:
            with self._conn() as conn:
                if second is None:
                    return self._append_one(conn, first, retry=True)
                with conn.transaction():
                    last = self._append_one(conn, first, retry=False)
                    for batch in chain((second,), it):
                        last = self._append_one(conn, batch, retry=False)
                    return last
        except psycopg.errors.LockNotAvailable:
            raise StoreError(
                f"{self.url}: another writer held the events table lock longer than lock_timeout; nothing written"
            ) from None
        except SeqConflict:
            raise
        except psycopg.Error as exc:
            self._known_heads.clear()
            raise StoreError(f"{self.url}: append failed ({self._clean(exc)})") from None

    def _append_one(self, conn: psycopg.Connection[Any], batch: Batch, *, retry: bool) -> int:
        known = self._known_heads
        oids = list(batch.parts)
        fresh = not retry or any(o not in known for o in oids)
        while True:
            if fresh:
                with conn.cursor(row_factory=tuple_row) as curs:
                    curs.execute(self._sql_heads_in, ([batch.parts[o].originator_id for o in oids],))
                    got = {str(r[0]): _head_t(r) for r in curs.fetchall()}
                for o in oids:
                    known[o] = got.get(o)
            prev = {o: known.get(o) for o in oids}
            try:
                inserts, updates = plan_heads(batch, {o: h for o, h in prev.items() if h is not None})
            except SeqConflict:
                if fresh:
                    raise
                fresh = True  # planned on heads another writer may have moved: ask the database
                continue
            try:
                with conn.cursor(row_factory=tuple_row) as curs:
                    curs.execute(self._sql_append, _append_params(batch, prev, inserts + updates, self._lock_timeout))
                    last = curs.fetchone()[0]  # type: ignore[index]
            except psycopg.Error as exc:
                for o in oids:
                    known.pop(o, None)
                if exc.sqlstate == _STALE and not fresh:
                    fresh = True  # another writer moved a head since we last saw it: plan again
                    continue
                part = batch.parts[oids[0]]
                if exc.sqlstate == _STALE:  # moved between our read and the lock: a racing writer
                    raise SeqConflict(part.session_id, -1, part.first_seq,
                                      detail="another writer appended to the session meanwhile") from None
                if isinstance(exc, psycopg.errors.UniqueViolation):
                    raise SeqConflict(part.session_id, -1, part.first_seq,
                                      detail=f"integrity error: {self._clean(exc)}") from None
                raise
            for h in inserts + updates:
                known[h.originator_id] = h
            return int(last)

    # -- reads

    def _head(self, originator_id: str) -> SessionHead | None:
        with self._conn() as conn, conn.cursor() as curs:
            curs.execute(self._sql_head, (uuid.UUID(originator_id),))
            row = curs.fetchone()
        return _head(row) if row is not None else None

    def session_heads(self) -> list[SessionHead]:
        self._check_open()
        with self._conn() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT " + HEAD_COLS + " FROM {0} ORDER BY first_ns, session_id").format(self._t_sessions)
            )
            return [_head(r) for r in curs.fetchall()]

    def _find_prefix(self, prefix: str) -> list[str]:
        with self._conn() as conn, conn.cursor() as curs:
            curs.execute(
                SQL("SELECT session_id FROM {0} WHERE substr(session_id, 1, %s)=%s LIMIT 50").format(self._t_sessions),
                (len(prefix), prefix),
            )
            return [r["session_id"] for r in curs.fetchall()]

    def _session_page(self, oid: uuid.UUID, from_seq: int, n: int) -> list[tuple[int, int, bytes]]:
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._sql_page_session, (oid, from_seq, from_seq + n))
            return curs.fetchall()

    def _next_seq(self, oid: uuid.UUID, from_seq: int) -> int | None:
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._sql_next_seq, (oid, from_seq))
            return curs.fetchone()[0]  # type: ignore[index]

    def _session_count(self, oid: uuid.UUID) -> int:
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(
                SQL("SELECT COUNT(*) FROM {0}.{1} WHERE originator_id=%s AND originator_version>=1").format(
                    Identifier(self.schema), Identifier(EVENTS_TABLE)
                ),
                (oid,),
            )
            return curs.fetchone()[0]  # type: ignore[index]

    def integrity_problems(self) -> tuple[list[str], str]:
        """B-tree checks of the events table's indexes with ``amcheck`` when the extension is installed;
        otherwise only what verify compares itself (table scan vs index reads vs head rows)."""
        self._check_open()
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute("SELECT 1 FROM pg_extension WHERE extname='amcheck'")
            if curs.fetchone() is None:
                return [], "PostgreSQL: amcheck not installed; table scan vs index reads vs head rows compared"
            curs.execute(
                "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = to_regclass(%s)",
                (f'"{self.schema}".{EVENTS_TABLE}',),
            )
            problems = []
            for (name,) in curs.fetchall():
                try:
                    curs.execute("SELECT bt_index_check(%s::regclass, true)", (name,))
                except psycopg.Error as exc:
                    problems.append(f"index {name}: {self._clean(exc)}")
                    conn.rollback()
            return problems, "PostgreSQL amcheck bt_index_check"

    def _all_page(self, after: int, n: int) -> list[tuple[int, bytes]]:
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._sql_page_all, (after, n))
            return curs.fetchall()

    def _raw_page(self, after: int, n: int) -> list[RawRow]:
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._sql_page_raw, (after, n))
            return [RawRow(r[0], str(r[1]), r[2], r[3], bytes(r[4])) for r in curs.fetchall()]

    def max_position(self) -> int:
        self._check_open()
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._sql_max)
            return curs.fetchone()[0] or 0  # type: ignore[index]

    def _close_quietly(self) -> None:
        ds = getattr(self, "datastore", None)
        if ds is not None:
            try:
                ds.close()
            except Exception:
                pass

    def _close(self) -> None:
        self.datastore.close()


def connect_failure(message: str, parsed: StoreURL, timeout: float) -> str:
    """A psycopg connection error as what went wrong and how to fix it (never the password)."""
    where = f"{parsed.host}:{parsed.port}"
    low = message.lower()
    first = message.strip().splitlines()[-1] if message.strip() else message
    if "connection refused" in low:
        return f"connection refused by {where}: is PostgreSQL running and listening there? (check host and port)"
    if "role" in low and "does not exist" in low:
        return f"unknown role {parsed.user!r} on {where}: create it or put the right user in the URL"
    if f'database "{parsed.dbname.lower()}" does not exist' in low or ("database" in low and "does not exist" in low):
        return f"unknown database {parsed.dbname!r} on {where}: create it (createdb {parsed.dbname}) or fix the URL"
    if "password authentication failed" in low or "no password supplied" in low:
        return f"authentication failed for user {parsed.user!r} on {where}: check the password (PGPASSWORD)"
    if "timeout expired" in low or "timed out" in low:
        return f"timeout: {where} did not answer within {timeout:g} s (host down, firewall, or wrong port)"
    if "could not translate host name" in low or "name or service not known" in low:
        return f"unknown host {parsed.host!r}: check the host name in the URL"
    return f"cannot connect to {where}: {first}"


_STALE = "IBL01"  # SQLSTATE raised by ibledger_append when a session head is not the one planned on

# One append = one statement: the EXCLUSIVE table lock (bounded by lock_timeout) serializes writers so
# that notification ids are issued in commit order -- a reader tailing read_all never passes a gap that
# a slower transaction fills later -- then the heads are checked and moved and the events inserted in
# batch order (ORDER BY the arrays' ordinality: the bigserial is drawn row by row in that order).
_APPEND_FN = """
CREATE OR REPLACE FUNCTION {schema}.ibledger_append(
    p_lock_timeout text, e_oid uuid[], e_ver bigint[], e_topic text[], e_state bytea[],
    h_oid uuid[], h_prev bigint[], h_prev_chain bytea[], h_sid text[], h_last bigint[], h_events bigint[],
    h_first_ns bigint[], h_last_ns bigint[], h_start boolean[], h_end boolean[], h_chain bytea[])
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
    last_id bigint;
BEGIN
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE;
    FOR i IN 1 .. coalesce(array_length(h_oid, 1), 0) LOOP
        IF h_prev[i] = 0 THEN
            INSERT INTO {schema}.{sessions} ({head_cols}) VALUES (h_oid[i], h_sid[i], h_last[i], h_events[i],
                h_first_ns[i], h_last_ns[i], h_start[i], h_end[i], h_chain[i]);
        ELSE
            UPDATE {schema}.{sessions} SET last_seq = h_last[i], events = h_events[i], last_ns = h_last_ns[i],
                has_start = h_start[i], has_end = h_end[i], chain = h_chain[i]
             WHERE originator_id = h_oid[i] AND last_seq = h_prev[i] AND chain = h_prev_chain[i];
            IF NOT FOUND THEN
                RAISE EXCEPTION 'session head % moved', h_oid[i] USING ERRCODE = 'IBL01';
            END IF;
        END IF;
    END LOOP;
    WITH ins AS (
        INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state)
        SELECT o, v, t, s FROM unnest(e_oid, e_ver, e_topic, e_state) WITH ORDINALITY AS u(o, v, t, s, n)
        ORDER BY n
        RETURNING notification_id)
    SELECT max(notification_id) INTO last_id FROM ins;
    RETURN last_id;
END
$fn$
"""


def _append_function(schema: str) -> str:
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    return _APPEND_FN.format(schema=q(schema), events=q(EVENTS_TABLE), sessions=q(SESSIONS_TABLE),
                             head_cols=HEAD_COLS)


def _append_params(batch: Batch, prev: dict[str, SessionHead | None], new: list[SessionHead],
                   lock_timeout: str) -> tuple[Any, ...]:
    """The function's arguments as array literals in PostgreSQL's text syntax, cast in the statement.

    Built here because psycopg adapts a Python list by inspecting its elements every time (about 175 us
    for the sixteen arrays of a one-event append, a fifth of its whole time against a local server),
    while a ``str`` goes out as it is (``unknown``, cast by ``%s::type[]``).
    """
    by_hex = {part.originator_id.hex: part.originator_id.hex for part in batch.parts.values()}
    rows = batch.rows
    p = [prev[h.originator_id] for h in new]
    return (
        lock_timeout,
        _lit(by_hex[r[0]] for r in rows),
        _lit(str(r[1]) for r in rows),
        _lit_text(r[2] for r in rows),
        _lit_bytea(r[3] for r in rows),
        _lit(uuid.UUID(h.originator_id).hex for h in new),
        _lit(str(x.last_seq) if x is not None else "0" for x in p),
        _lit_bytea(x.chain if x is not None else b"" for x in p),
        _lit_text(h.session_id for h in new),
        _lit(str(h.last_seq) for h in new),
        _lit(str(h.events) for h in new),
        _lit(str(h.first_ns) for h in new),
        _lit(str(h.last_ns) for h in new),
        _lit("t" if h.has_start else "f" for h in new),
        _lit("t" if h.has_end else "f" for h in new),
        _lit_bytea(h.chain for h in new),
    )


def _lit(items: Iterable[str]) -> str:
    """An array literal of elements that need no quoting (numbers, booleans, hex uuids)."""
    return "{" + ",".join(items) + "}"


def _lit_text(items: Iterable[str]) -> str:
    return "{" + ",".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"' for t in items) + "}"


def _lit_bytea(items: Iterable[bytes]) -> str:
    # each element is bytea's hex input ``\x...``, its backslash escaped inside the quoted array element
    return "{" + ",".join('"\\\\x' + b.hex() + '"' for b in items) + "}"


def _whole_seconds(value: str) -> int:
    """The library writes ``SET LOCAL lock_timeout = '<n>s'``: whole seconds, never 0 (= wait forever)."""
    return max(1, round(float(value)))


def _head_t(row: tuple[Any, ...]) -> SessionHead:
    return SessionHead(
        originator_id=str(row[0]),
        session_id=row[1],
        last_seq=row[2],
        events=row[3],
        first_ns=row[4],
        last_ns=row[5],
        has_start=row[6],
        has_end=row[7],
        chain=bytes(row[8]),
    )


def _head(row: Any) -> SessionHead:
    return SessionHead(
        originator_id=str(row["originator_id"]),
        session_id=row["session_id"],
        last_seq=row["last_seq"],
        events=row["events"],
        first_ns=row["first_ns"],
        last_ns=row["last_ns"],
        has_start=row["has_start"],
        has_end=row["has_end"],
        chain=bytes(row["chain"]),
    )
