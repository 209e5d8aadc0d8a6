"""Keeps the DuckDB audit read model up to date from the event store, exactly once.

Model (eventsourcing's projection + tracking idea, as a batched catch-up loop, since the stock SQLite
recorder has no ``subscribe()``):

* Events are read from ``store.read_all(after=position)`` in global order and applied in batches. For
  each batch, every row it produces **and** the new tracking position are written in ONE DuckDB
  transaction. A crash anywhere before the commit leaves the previous position and none of the rows; the
  next run re-reads the same events. Nothing is ever committed per event.
* Order rows are derived state: they come from the one fold (:class:`ledger.core.fold.LedgerFold`), the same
  code the ledger, replay and tests use. The fold is a *compact* one (``keep`` finished orders stay in
  memory, older ones are retired to its archive and re-inflated when a late event names them; no status
  timeline, which no table shows), so memory stays flat however long the store. The projector rewrites,
  per batch, only the orders the batch touched (found from the events' ids, the transitions and the
  anomalies); an order retiring hands its final state over first (``on_retire``), so its rows are written
  from memory, and a re-inflated one is rewritten when it changes. A rebuild writes each order once: when it
  retires (in that batch's transaction), or at the end if it is still in memory.
* Per-order marks (``MARK_COLUMNS``: kept from the order's events, not fold state) are held for orders in
  memory only; a re-inflated order's are read back from its stored row.
* So that a new process can continue incrementally, a checkpoint of the fold (msgspec bytes from
  :meth:`LedgerFold.checkpoint`, no pickle: the orders in memory, the shared tables and the archive's index;
  tagged with a hash of the fold's source code) is written with the archive into the fold files beside the
  DuckDB file (:mod:`projections.foldfiles`), which the ``audit_fold`` row names in the same transaction as
  the rows at its position. It is written when the tail since the last checkpoint exceeds
  ``checkpoint_every`` events (and after a build). On start, the checkpoint is loaded and the events between
  it and the tracking position are re-folded from the store (the fold is deterministic, so this reproduces
  the state) without writing anything. A fold whose code changed (hash differs) makes the projection
  rebuild; fold files that are missing or not the committed ones make it re-fold everything instead.
* A store that no longer holds the event at the tracking position (replaced, or another store's
  DuckDB file) makes the projection rebuild from scratch; so does a schema version change.
* ``rebuild()`` builds into a temporary file beside the target and renames it over the old one when
  complete, so readers never see a half-built projection and a crash during a rebuild loses nothing.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from ledger.core import events as ev
from ledger.core import fold as orders_mod
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold import LedgerFold, OrderView
from ledger.store import EventStore
from projections import schema
from projections.columns import Batch, constant_or_array, first, register_keys, sql_str
from projections.foldfiles import FoldFiles, remove_fold_files

MAX_ORDER_ID = ev.MANUAL_EXEC_ORDER_ID
PROJECTION = "audit"
DEFAULT_BATCH = 20_000
# A rebuild's batches: a transaction that appends at least one DuckDB row group (122,880 rows) to a table
# writes it straight into the database file, compressed once, instead of through the WAL and again at the
# checkpoint on close. Measured at 200k events: the same rows' inserts + close 2.0 -> 1.2 s CPU, the whole
# rebuild ~6 % less CPU, for ~110 MB more peak memory (the batch's envelopes and rows) at 200k events and
# ~380 MB more at 1M (832 against 453 MB): over the 500 MB target, so a rebuild keeps the ordinary batch.
REBUILD_BATCH = DEFAULT_BATCH
DEFAULT_CHECKPOINT_EVERY = 100_000
DEFAULT_KEEP = 1000  # finished orders kept in memory (the compact fold's window)
FLUSH_EVERY = 100_000  # events between DuckDB checkpoints in a long catch-up (bounds DuckDB's memory)

_json = msgspec.json.Encoder()
_I64 = pa.int64()
_STR = pa.string()


class ProjectionError(Exception):
    """The projection cannot be opened or updated; the message says why and what to do."""


def fold_version() -> str:
    """Identity of the fold's code: a checkpoint made by other code is never resumed."""
    h = hashlib.sha256()
    h.update(f"schema:{schema.SCHEMA_VERSION}".encode())
    for mod in (orders_mod, sm, ev):
        path = getattr(mod, "__file__", None)
        if not path:
            continue
        files = [Path(path)]
        if Path(path).name == "__init__.py":  # a package (the fold): every module in it is its code
            files = sorted(Path(path).parent.glob("*.py"))
        for f in files:
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


@functools.cache
def _ddl_hash() -> str:
    """Identity of the table and view definitions (``schema.create_sql``)."""
    return hashlib.sha256("\n".join(schema.create_sql()).encode()).hexdigest()[:16]


def fingerprint(position: int, env: Envelope) -> str:
    return f"{position}:{env.session_id}:{env.seq}:{env.kind}:{env.recv_ns}"


# --- row layouts (column name, kind); see projections.columns ------------------------------------

EVENT_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("kind", "s"), ("recv_ns", "i"),
              ("ts", "t:recv_ns"), ("mono_ns", "i"), ("source", "s"), ("v", "i"), ("correlation_id", "s"),
              ("causation_id", "s"), ("payload", "s")]
ORDER_EVENT_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("recv_ns", "i"), ("ts", "t:recv_ns"),
                    ("order_key", "s"), ("kind", "s"), ("status", "s"), ("code", "i"), ("exec_id", "s"),
                    ("shares", "f"), ("price", "f"), ("decision", "s"), ("reason", "s"), ("text", "s"),
                    ("state_before", "s"), ("state_after", "s"), ("live_before", "b"), ("live_after", "b")]
TRANSITION_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("ord", "i"), ("order_key", "s"),
                   ("from_state", "s"), ("to_state", "s"), ("from_overlay", "s"), ("overlay", "s"),
                   ("broker_status", "s"), ("cause", "s"), ("critical", "s"), ("live_after", "b"),
                   ("recv_ns", "i"), ("ts", "t:recv_ns")]
ANOMALY_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("ord", "i"), ("order_key", "s"),
                ("kind", "s"), ("from_status", "s"), ("to_status", "s"), ("reason", "s"), ("recv_ns", "i"),
                ("ts", "t:recv_ns")]
GOVERNOR_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("recv_ns", "i"), ("ts", "t:recv_ns"),
                 ("decision", "s"), ("reason", "s"), ("message", "s"), ("action", "s"), ("order_id", "i"),
                 ("client_id", "i"), ("perm_id", "i"), ("symbol", "s"), ("trading_state", "s"),
                 ("details", "s"), ("order_key", "s"), ("correlation_id", "s"), ("causation_id", "s")]
ORDER_COLS = [("key", "s"), ("session_id", "s"), ("perm_id", "i"), ("order_id", "i"), ("client_id", "i"),
              ("account", "s"), ("symbol", "s"), ("sec_type", "s"), ("con_id", "i"), ("action", "s"),
              ("total_qty", "f"), ("order_type", "s"), ("lmt_price", "F"), ("aux_price", "F"), ("tif", "s"),
              ("order_ref", "s"), ("broker_status", "s"), ("why_held", "s"), ("state", "s"), ("overlay", "s"),
              ("filled", "f"), ("remaining", "f"), ("avg_fill_price", "f"), ("commission", "f"),
              ("status_filled", "f"), ("status_remaining", "f"), ("status_avg_fill_price", "f"),
              ("fill_pending", "b"), ("is_live", "b"), ("is_done", "b"), ("placed", "b"), ("unconfirmed", "b"),
              ("manual", "b"), ("anomaly_count", "i"), ("fill_count", "i"), ("late_fill_count", "i"),
              ("error_count", "i"), ("first_seen", "t:first_seen_ns"), ("last_update", "t:last_update_ns"),
              ("first_seen_ns", "i"), ("last_update_ns", "i"), ("acked_ns", "i"), ("first_fill_ns", "i"),
              ("placed_ns", "i"), ("last_exec_position", "i"), ("last_live_position", "i"),
              ("first_failure_position", "i"), ("live_error_position", "i")]
FAILURE_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("recv_ns", "i"), ("ts", "t:recv_ns"),
                ("order_key", "s"), ("report", "s"), ("is_error", "b"), ("code", "i"), ("status", "s"),
                ("state_before", "s"), ("live_before", "b")]
CONNECTION_COLS = [("position", "i"), ("session_id", "s"), ("seq", "i"), ("recv_ns", "i"), ("ts", "t:recv_ns"),
                   ("kind", "s"), ("code", "i"), ("ok", "s"), ("unknown", "s")]
_FAILURE_CODES = frozenset(schema.FAILURE_CODES)
_FAILURE_STATUSES = frozenset(schema.FAILURE_STATUSES)
_STATUS_TYPES = (ev.OrderStatus, ev.OpenOrder, ev.CompletedOrder)
FILL_COLS = [("order_key", "s"), ("exec_id", "s"), ("exec_prefix", "s"), ("revision", "s"),
             ("is_correction", "b"), ("superseded", "b"), ("late", "b"), ("shares", "f"), ("price", "f"),
             ("side", "s"), ("account", "s"), ("exec_time", "s"), ("commission", "F"), ("currency", "s"),
             ("realized_pnl", "F"), ("session_id", "s"), ("seq", "i"), ("recv_ns", "i"),
             ("order_first_seen_ns", "i"), ("replaces_exec_id", "s"), ("replaced_shares", "F"),
             ("replaced_price", "F"), ("ts", "t:recv_ns")]
SESSION_COLS = [("session_id", "s"), ("events", "i"), ("first_seq", "i"), ("last_seq", "i"), ("missing", "i"),
                ("first_ns", "i"), ("last_ns", "i"), ("started", "t:first_ns"), ("last_event", "t:last_ns"),
                ("has_start", "b"), ("has_end", "b"), ("crashed", "b"), ("end_reason", "s"), ("library", "s"),
                ("library_version", "s"), ("client_id", "i"), ("account", "s"), ("mode", "s"),
                ("disconnects", "i"), ("link_losses", "i"), ("reconciles", "i"), ("reconciles_unknown", "i")]


class _Sess:
    __slots__ = ("session_id", "events", "first_seq", "last_seq", "first_ns", "last_ns", "has_start", "has_end",
                 "end_reason", "library", "library_version", "client_id", "account", "mode", "disconnects",
                 "link_losses", "reconciles", "reconciles_unknown")

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.events = 0
        self.first_seq = 0
        self.last_seq = 0
        self.first_ns = 0
        self.last_ns = 0
        self.has_start = False
        self.has_end = False
        self.end_reason: str | None = None
        self.library: str | None = None
        self.library_version: str | None = None
        self.client_id = 0
        self.account: str | None = None
        self.mode: str | None = None
        self.disconnects = 0
        self.link_losses = 0
        self.reconciles = 0
        self.reconciles_unknown = 0

    def row(self) -> tuple[Any, ...]:
        missing = (self.last_seq - self.first_seq + 1 - self.events) if self.events else 0
        return (self.session_id, self.events, self.first_seq, self.last_seq, missing, self.first_ns,
                self.last_ns, self.has_start, self.has_end, not self.has_end, self.end_reason, self.library,
                self.library_version, self.client_id, self.account, self.mode, self.disconnects,
                self.link_losses, self.reconciles, self.reconciles_unknown)


_SESSION_ROW_NAMES = [n for n, k in SESSION_COLS if not k.startswith("t:")]


class AuditProjection:
    """The audit read model of one store in one DuckDB file (one writer at a time)."""

    def __init__(self, store: EventStore, path: str | Path, *, batch_events: int = DEFAULT_BATCH,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY, payloads: bool | None = None,
                 keep: int = DEFAULT_KEEP, files_for: str | Path | None = None) -> None:
        """``keep``: finished orders the fold keeps in memory; ``files_for``: the DuckDB file the fold files
        are named after (``rebuild`` builds a temporary file that will be renamed to it)."""
        self.store = store
        # the per-event JSON payload column (65 % of an events ingest): off unless asked for; an existing
        # projection keeps the choice it was built with unless ``payloads`` says otherwise (then rebuilds)
        self._payloads_arg = payloads
        self.payloads = bool(payloads)
        self._defer_orders = False  # set by rebuild(): orders and fills are written once (retired, or at the end)
        self.path = Path(path)
        self.keep = keep
        self._files_base = Path(files_for) if files_for is not None else self.path
        self._files: FoldFiles | None = None
        self._ck_slot = -1  # the checkpoint slot the committed audit_fold row names (-1: none)
        self._ck_files = ""  # ... and the fold files' token
        self._ck_next = (-1, "")  # (slot, token) of the checkpoint written in the transaction under way
        self._gc_files = files_for is None  # remove fold files no committed row names (not while rebuilding)
        self.batch_events = batch_events
        self.checkpoint_every = checkpoint_every
        self.notes: list[str] = []  # what happened that the user should know (rebuilds and why)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._fold: LedgerFold | None = None
        self._sessions: dict[str, _Sess] = {}
        # per order in memory: MARK_COLUMNS (persisted as orders columns; read back when it is re-inflated)
        self._marks: dict[str, list[int]] = {}
        self._rows: _Rows | None = None  # the batch being folded (the fold's retire / revive hooks add to it)
        self._pending: dict[str, None] = {}  # rebuild: orders in memory changed since their rows were written
        self._revived: set[str] = set()  # rebuild: orders with stored rows re-inflated (rewritten when changed)
        self._hook_error: BaseException | None = None
        self._unflushed = 0  # events written since DuckDB last wrote its tables into the file
        self._n_anomalies = 0
        self.position = 0
        self.events = 0
        self.checkpoint_position = 0
        self._fingerprint = ""
        # test hook: called inside the transaction after the rows and before the commit
        self._before_commit: Callable[[int], None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def open(self) -> AuditProjection:
        if not self.path.parent.exists():
            raise ProjectionError(f"cannot create {self.path}: directory {self.path.parent} does not exist")
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise ProjectionError(f"cannot open {self.path}: {exc}") from None
        # Checkpoints (compressing and writing table data) run when the WAL passes this size; the
        # default (16 MB) makes a bulk build checkpoint on most commits: ~40 % of the build time.
        # The WAL is just as durable; close() checkpoints.
        self._con.execute("SET checkpoint_threshold = '1GB'")
        # The writer's statements are many and small: on a 2-vCPU machine DuckDB's worker-thread
        # hand-offs cost more than they bring (measured: -20 % write time with one thread).
        self._con.execute("SET threads = 1")
        self._con.execute(schema.session_sql())  # UTC, and the internal tables' schema on the search path
        reason = self._prepare()
        if reason:
            self.notes.append(f"rebuilding {self.path.name}: {reason}")
            self._reset()
        return self

    def close(self) -> None:
        self._drop_fold()
        if self._con is not None:
            self._con.close()
            self._con = None

    def _drop_fold(self) -> None:
        """Forget the in-memory fold (closing its archive files); the next use reloads it."""
        if self._fold is not None:
            self._fold.close()
            self._fold = None
        self._rows = None
        self._hook_error = None

    def __enter__(self) -> AuditProjection:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise ProjectionError("projection is not open")
        return self._con

    def _prepare(self) -> str:
        """Create tables if needed; return why the existing content cannot be continued ("" if it can)."""
        con = self.con
        try:
            meta = dict(con.execute("SELECT key, value FROM audit_meta").fetchall())
        except duckdb.CatalogException:
            meta = {}
        if meta.get("ddl") != _ddl_hash():
            # The statements are catalog writes (about 50 ms together on an open): run only when the
            # definitions changed since they last ran on this file (or it is new or of another layout).
            for sql in schema.create_sql():
                con.execute(sql)
            meta = dict(con.execute("SELECT key, value FROM audit_meta").fetchall())
            if meta:
                con.execute("DELETE FROM audit_meta WHERE key = 'ddl'")
                con.execute("INSERT INTO audit_meta VALUES ('ddl', ?)", [_ddl_hash()])
        if not meta:  # a new file (or one from an older layout): start from empty tables
            self._reset()
            return ""
        if meta.get("schema_version") != str(schema.SCHEMA_VERSION):
            return f"schema version {meta.get('schema_version')} -> {schema.SCHEMA_VERSION}"
        if meta.get("store") != schema.store_identity(self.store.url):
            return f"it was built from {meta.get('store_url')}, not {self.store.url}"
        built_with = meta.get("payloads") == "1"
        if self._payloads_arg is not None and self._payloads_arg != built_with:
            return "payload column " + ("requested" if self._payloads_arg else "no longer requested")
        self.payloads = built_with
        row = first(con.execute("SELECT position, events, fingerprint FROM audit_tracking WHERE projection=?",
                          [PROJECTION]))
        if row is None:
            return "no tracking row"
        self.position, self.events, self._fingerprint = int(row[0]), int(row[1]), row[2]
        ck = first(con.execute("SELECT position, fold_version FROM audit_fold"))
        self.checkpoint_position = int(ck[0]) if ck else 0
        if self.position and ck is not None and ck[1] != fold_version():
            return "the order fold's code changed since it was built"
        if self.position:
            got = list(self.store.read_all(after=self.position - 1, limit=1))
            if not got or got[0][0] != self.position or fingerprint(*got[0]) != self._fingerprint:
                return "the store no longer holds the events it was built from (replaced store?)"
        for r in con.execute(f"SELECT {', '.join(_SESSION_ROW_NAMES)} FROM sessions").fetchall():
            self._sessions[r[0]] = _session_from_row(r)
        return ""

    def _write_meta(self) -> None:
        self.con.executemany("INSERT INTO audit_meta VALUES (?, ?)", [
            ["schema_version", str(schema.SCHEMA_VERSION)],
            ["store_url", self.store.url],  # already redacted by the store: never a password
            ["store", schema.store_identity(self.store.url)],
            ["projection", PROJECTION],
            ["payloads", "1" if self.payloads else "0"],
            ["ddl", _ddl_hash()],
        ])

    def _reset(self) -> None:
        con = self.con
        for name in schema.TABLES:
            con.execute(f"DROP TABLE IF EXISTS {name}")
        for sql in schema.create_sql():
            con.execute(sql)
        # one transaction: a few hundred catalog writes, each its own commit otherwise (0.37 s -> 0.17 s)
        con.execute(f"BEGIN TRANSACTION;\n{schema.comments_sql()};\nCOMMIT")
        self._write_meta()
        con.execute("INSERT INTO audit_tracking VALUES (?, 0, 0, '')", [PROJECTION])
        self.position = self.events = self.checkpoint_position = 0
        self._fingerprint = ""
        self._sessions = {}
        self._drop_fold()  # the next use starts a new fold, in new fold files
        self._ck_slot, self._ck_files = -1, ""
        self._marks = {}
        self._n_anomalies = 0

    # --- the fold ----------------------------------------------------------------------------------

    def load(self) -> None:
        """Load the fold now (checkpoint + re-fold of the tail) instead of at the first new event."""
        self._ensure_fold()

    def _ensure_fold(self) -> LedgerFold:
        if self._fold is not None:
            return self._fold
        fold: LedgerFold | None = None
        start = 0
        row = first(self.con.execute(
            "SELECT position, fold_version, files, slot, log_len, state_len, state_crc FROM audit_fold"))
        if row is not None and row[1] == fold_version() and row[0] <= self.position:
            files = FoldFiles(self._files_base, row[2])
            try:
                blob = files.read(row[3], row[5], row[6])
                arch = files.archive(row[4])
                try:
                    with _no_gc():
                        fold = LedgerFold.from_checkpoint(blob, arch, keep=self.keep, timeline=False)
                except BaseException:
                    arch.close()
                    raise
            except (OSError, ValueError) as exc:  # re-fold everything the rows reflect instead
                self.notes.append(f"fold checkpoint not usable ({exc}): re-folding {self.position:,} events")
            else:
                start = int(row[0])
                self._files = files
                self._ck_slot, self._ck_files = int(row[3]), row[2]
        if fold is None:
            self._files = FoldFiles.create(self._files_base)
            fold = LedgerFold(timeline=False, keep=self.keep, archive=self._files.archive(0))
        self._fold = fold
        if start < self.position:
            # deterministic re-fold of the tail the rows already reflect; nothing is written. The marks
            # are not re-derived: orders retiring now carry none (read back from their rows if they return),
            # and those in memory afterwards get theirs from their rows.
            fold.on_retire = _forget_marks
            with _no_gc():
                apply = fold.apply
                for _pos, env in self.store.read_all(after=start, limit=self.position - start):
                    apply(env)
            self._marks = self._stored_marks(list(fold.orders.values()))
        else:  # the checkpoint carried the marks of the orders in memory
            self._marks = {key: core.ext for key, core in fold._resident.items() if core.ext}
        self._n_anomalies = len(fold.anomalies)
        self._pending, self._revived = {}, set()
        fold.on_retire = self._retiring
        fold.on_revive = self._reviving
        return fold

    def _stored_marks(self, views: list[OrderView]) -> dict[str, list[int]]:
        """The stored marks of these orders (those with any), from their rows."""
        if not views or not self.position:
            return {}
        con = self.con
        nonzero = " OR ".join(c + " <> 0" for c in MARK_COLUMNS)
        lo = min(v.first_seen_ns for v in views)  # the rows' first_seen_ns: old row groups are skipped
        if len(views) == 1:
            got = con.execute(f"SELECT key, {', '.join(MARK_COLUMNS)} FROM orders WHERE first_seen_ns = ? "
                              f"AND key = ? AND ({nonzero})", [lo, views[0].key]).fetchall()
        else:
            keys = register_keys(con, [v.key for v in views])
            try:
                got = con.execute(f"SELECT key, {', '.join(MARK_COLUMNS)} FROM orders WHERE first_seen_ns >= {lo} "
                                  f"AND key IN (SELECT k FROM {keys}) AND ({nonzero})").fetchall()
            finally:
                con.unregister(keys)
        return {r[0]: list(r[1:]) for r in got}

    # --- the fold's hooks: an order leaves memory / comes back -------------------------------------

    def _retiring(self, core: Any) -> None:
        """The fold retires this order now: if its rows are due, they are made from this, its final state."""
        rows = self._rows
        if rows is None:  # (the re-fold of a tail on load: nothing is written)
            return
        v = core.view
        key = v.key
        core.ext = self._marks.get(key) or _ZERO_MARKS  # the marks go into the archive with the order
        rows.gone.append(key)
        if key in rows.dirty or key in self._pending:
            rows.built[key] = self._rows_of(v)
        elif self._defer_orders:
            self._revived.discard(key)  # unchanged since it came back: its stored rows stand

    def _reviving(self, core: Any) -> None:
        """The fold re-inflates this order: its marks come back with it (or, if it retired during the re-fold
        of a tail, from its stored row). Runs inside the fold's ``apply``, which records a handler's exception
        as an anomaly: an error here is kept and raised after the batch instead."""
        v = core.view
        key = v.key
        if self._defer_orders:
            self._revived.add(key)
        if key in self._marks:  # it left memory in this batch: its marks are still here
            return
        m = core.ext
        if m is not None:
            if any(m):
                self._marks[key] = m
            return
        try:
            self._marks.update(self._stored_marks([v]))
        except BaseException as exc:
            self._hook_error = exc

    def _checkpoint(self) -> None:
        """Write the fold's checkpoint into the slot the committed row does not name, and the row naming it
        (inside the caller's transaction: it counts only if that commits)."""
        fold, files = self._fold, self._files
        assert fold is not None and files is not None
        marks = self._marks
        for key, core in fold._resident.items():  # the marks of the orders in memory go with them
            core.ext = marks.get(key)
        slot = 1 if self._ck_slot == 0 and self._ck_files == files.token else 0
        with _no_gc():
            blob = fold.checkpoint()  # (syncs the archive's log and Bloom filter)
        crc = files.write(slot, blob)
        log_len = fold._arch._pos  # type: ignore[union-attr]  # the synced log's length
        con = self.con
        con.execute("DELETE FROM audit_fold")
        con.execute("INSERT INTO audit_fold VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [self.position, fold_version(), files.token, slot, log_len, len(blob), crc])
        self.checkpoint_position = self.position
        self._ck_next = (slot, files.token)

    def _checkpoint_committed(self) -> None:
        slot, token = self._ck_next
        changed = token != self._ck_files
        self._ck_slot, self._ck_files = slot, token
        if changed and self._gc_files and self._files is not None:
            self._files.remove_others()  # fold files of an earlier row (or of a crashed run) are garbage now

    # --- catching up -------------------------------------------------------------------------------

    def pending(self) -> int:
        """How many store events are not in the projection yet."""
        return max(self.store.max_position() - self.position, 0)

    def catch_up(self, limit: int | None = None, progress: Callable[[int], None] | None = None, *,
                 checkpoint_at_end: bool = False) -> int:
        """Apply every new store event (at most ``limit``) in batches; return how many were applied.

        Each batch is one DuckDB transaction (rows + tracking position [+ fold checkpoint]). On any
        failure the transaction is rolled back and the in-memory fold dropped (it is ahead of what was
        committed); the next call reloads it from the checkpoint and the store. ``checkpoint_at_end``: the
        last batch also writes a fold checkpoint (a process about to exit leaves no tail to re-fold).
        """
        pending = self.pending()
        if pending == 0:
            return 0
        fold = self._ensure_fold()
        done = 0
        it = self.store.read_all(after=self.position, limit=limit)
        since_ckpt = self.position - self.checkpoint_position
        target = self.position + (pending if limit is None else min(pending, limit))
        try:
            with _no_gc():
                while True:
                    batch = _take(it, self.batch_events)
                    if not batch:
                        break
                    rows = self._fold_batch(fold, batch)
                    since_ckpt += len(batch)
                    if since_ckpt >= self.checkpoint_every or (checkpoint_at_end and batch[-1][0] >= target):
                        rows.checkpoint = True
                        since_ckpt = 0
                    self._write(rows)
                    self._written(fold, rows)
                    self._unflushed += len(batch)
                    if self._unflushed >= FLUSH_EVERY:
                        # DuckDB keeps rows written since its last checkpoint in memory (the WAL threshold
                        # is high, see open()): write them into the file now and then, so memory stays flat
                        self.con.execute("CHECKPOINT")
                        self._unflushed = 0
                    done += len(batch)
                    if progress is not None:
                        progress(done)
        except BaseException:
            self._drop_fold()
            try:
                self.con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            self._reload_sessions()
            raise
        return done

    def _reload_sessions(self) -> None:
        self._sessions = {}
        for r in self.con.execute(f"SELECT {', '.join(_SESSION_ROW_NAMES)} FROM sessions").fetchall():
            self._sessions[r[0]] = _session_from_row(r)

    def _fold_batch(self, fold: LedgerFold, batch: list[tuple[int, Envelope]]) -> _Rows:
        rows = self._rows = _Rows()
        encode = _json.encode
        # Columns where it can: the events table's columns are built straight from the batch (one pass per
        # column, no per-event tuple) and converted to Arrow once; the other tables record, per row, the
        # index of the event it came from and pick the event's position, session, seq, time and kind from
        # those columns. The session counters are per batch (min/max over the batch's columns); only the
        # kinds that change a session's other fields are looked at one by one, in order (lookups read its
        # client id).
        envs = [env for _, env in batch]
        payloads = [env.payload for env in envs]
        sids = [env.session_id for env in envs]
        seqs = [env.seq for env in envs]
        nss = [env.recv_ns for env in envs]
        poss = [pos for pos, _ in batch]
        kinds = [p.__struct_config__.tag for p in payloads]  # type: ignore[attr-defined]
        if self.payloads:
            payload_col: Any = [encode(p).decode() for p in payloads]
        else:  # the payloads stay in the store (``ibledger export`` / ``read_all`` give them on demand)
            payload_col = pa.nulls(len(envs), type=_STR)
        corrs = [env.correlation_id for env in envs]
        causes = [env.causation_id for env in envs]
        rows.events.cols = [poss, constant_or_array(sids, _STR), seqs, kinds, nss, [env.mono_ns for env in envs],
                            constant_or_array([env.source for env in envs], _STR),
                            constant_or_array([env.v for env in envs], _I64), corrs, causes, payload_col]
        sessions = self._sessions
        touched = rows.sessions
        _session_counts(sessions, touched, sids, seqs, nss)
        oe: list[tuple[Any, ...]] = []
        oe_at: list[int] = []
        tr: list[tuple[Any, ...]] = []
        tr_at: list[int] = []
        an: list[tuple[Any, ...]] = []
        an_at: list[int] = []
        gv: list[tuple[Any, ...]] = []
        gv_at: list[int] = []
        dirty = rows.dirty
        apply = fold.apply
        order_of_exec = fold.order_of_exec
        anomalies = fold.anomalies
        n_anom = self._n_anomalies
        live_states = sm.LIVE_STATES
        merged = sm.MERGED
        find = _FIND
        by_perm = fold.order_by_perm
        order_for = fold.order_for
        detail = _DETAIL
        marks = self._marks
        fr = rows.failures.rows
        cn = rows.connections.rows
        connection_types = _CONNECTION_TYPES
        t_exec, t_place, t_error, t_decision = ev.ExecDetails, ev.PlaceOrder, ev.Error, ev.GovernorDecision
        status_types = _STATUS_TYPES
        for i, (pos, env) in enumerate(batch):
            p = payloads[i]
            tp = type(p)
            if tp in connection_types:
                sid = sids[i]
                _session_kind(sessions[sid], p, tp)
                kind = p.__struct_config__.tag  # type: ignore[attr-defined]
                if tp is ev.ReconcileEnded:
                    cn.append((pos, sid, env.seq, env.recv_ns, kind, 0, "true" if p.ok else "false",
                               encode(p.unknown).decode()))
                elif tp is not t_error:
                    cn.append((pos, sid, env.seq, env.recv_ns, kind, 0, None, None))
                elif p.code in _CONNECTION_CODES:
                    cn.append((pos, sid, env.seq, env.recv_ns, kind, p.code, None, None))
            # the fold, with the order the event is about looked up before and after
            how = find.get(tp)
            if how is None:
                trs = apply(env)
                after = None
            else:
                sid = sids[i]
                new_exec = tp is t_exec and order_of_exec(p.exec_id) is None
                trs = apply(env)
                if how == _BY_IDS or how == _BY_PERM:
                    pid = p.perm_id
                    after = by_perm(pid) if pid > 0 else None
                    if after is None and how == _BY_IDS:
                        oid = p.order_id
                        if oid != 0 and oid != MAX_ORDER_ID:
                            after = order_for(p.client_id or sessions[sid].client_id, oid, sid)
                elif how == _BY_DECISION:
                    oid = p.order_id
                    after = (order_for(p.client_id or sessions[sid].client_id, oid, sid)
                             if oid > 0 and oid != MAX_ORDER_ID else None)
                elif how == _BY_EXEC:
                    after = order_of_exec(p.exec_id)
                elif how == _BY_ORDER:
                    oid = p.order_id
                    after = (order_for(p.client_id or sessions[sid].client_id, oid, sid)
                             if oid != 0 and oid != MAX_ORDER_ID else None)
                else:  # _BY_REQ
                    rid = p.req_id
                    after = order_for(sessions[sid].client_id, rid, sid) if rid > 0 else None
                if after is not None:
                    key = after.key
                    dirty[key] = None
                    # Every change of an order's ledger state is a transition, so its state before this
                    # event is the first transition's from_state, or else its (unchanged) state now.
                    state_before = after.state
                    for t in trs:
                        if t.key == key:
                            state_before = t.from_state
                            break
                    live_before = state_before in live_states
                    if tp is t_exec:
                        if new_exec:
                            _mark(marks, key)[1] = pos
                    elif tp is t_place:
                        m = _mark(marks, key)
                        if not m[0]:
                            m[0] = env.recv_ns
                    elif tp is t_error:
                        if p.code in _FAILURE_CODES:
                            fr.append((pos, sid, env.seq, env.recv_ns, key, f"error {p.code}", True, p.code, None,
                                       state_before, live_before))
                            m = _mark(marks, key)
                            if not m[3]:
                                m[3] = pos
                            if live_before:
                                m[4] = pos
                    elif tp in status_types and p.status in _FAILURE_STATUSES:
                        fr.append((pos, sid, env.seq, env.recv_ns, key, f"status {p.status}", False, 0, p.status,
                                   state_before, live_before))
                        m = _mark(marks, key)
                        if not m[3]:
                            m[3] = pos
                    oe_at.append(i)
                    oe.append(detail[tp](p, key, state_before, after.state, live_before, after.is_live))
                if tp is t_decision:
                    gv_at.append(i)
                    gv.append((p.decision, p.reason, p.message, p.action, p.order_id,
                               p.client_id or sessions[sid].client_id, p.perm_id, p.symbol, p.trading_state,
                               encode(p.details).decode(), after.key if after is not None else None))
            if trs:
                for o, t in enumerate(trs):
                    tkey = t.key
                    dirty[tkey] = None
                    to_state = t.to_state
                    if to_state in live_states and t.from_state not in live_states:
                        _mark(marks, tkey)[2] = pos
                    elif to_state == merged:
                        gone = marks.pop(tkey, None)
                        if gone is not None and after is not None:  # the event resolved to the keeper
                            m = _mark(marks, after.key)
                            for j in (0, 3):  # earliest (non-zero)
                                m[j] = min(x for x in (m[j], gone[j]) if x) if (m[j] or gone[j]) else 0
                            for j in (1, 2, 4):  # latest
                                m[j] = max(m[j], gone[j])
                    tr_at.append(i)
                    tr.append((o, tkey, t.from_state, to_state, t.from_overlay, t.overlay, t.broker_status, t.cause,
                               t.critical, to_state in live_states, t.recv_ns))
            if len(anomalies) > n_anom:
                for a_i in range(n_anom, len(anomalies)):
                    a = anomalies[a_i]
                    if a.key:
                        dirty[a.key] = None
                    an_at.append(i)
                    an.append((a.session_id, a.seq, a_i - n_anom, a.key, a.kind, a.from_status, a.to_status,
                               a.reason, a.recv_ns))
                n_anom = len(anomalies)
        # position, session_id, seq, recv_ns, kind (and ids) of the rows' events, picked from the events'
        # columns by index (plain lists: Arrow's ``take`` would import pyarrow.compute, ~100 ms of a new
        # process's first catch-up)
        if oe:
            c = list(zip(*oe, strict=True))
            rows.order_events.cols = [_pick(poss, oe_at), _pick(sids, oe_at), _pick(seqs, oe_at),
                                      _pick(nss, oe_at), c[0], _pick(kinds, oe_at), *c[1:]]
        if tr:
            c = list(zip(*tr, strict=True))
            rows.transitions.cols = [_pick(poss, tr_at), _pick(sids, tr_at), _pick(seqs, tr_at), *c]
        if an:
            c = list(zip(*an, strict=True))
            rows.anomalies.cols = [_pick(poss, an_at), *c]
        if gv:
            c = list(zip(*gv, strict=True))
            rows.governor.cols = [_pick(poss, gv_at), _pick(sids, gv_at), _pick(seqs, gv_at), _pick(nss, gv_at),
                                  *c, _pick(corrs, gv_at), _pick(causes, gv_at)]
        self._n_anomalies = n_anom
        self._order_rows(fold, rows)
        rows.sessions_batch.rows = [sessions[sid].row() for sid in touched]
        rows.last = batch[-1]
        rows.count = len(batch)
        return rows

    def _order_rows(self, fold: LedgerFold, rows: _Rows) -> None:
        """The batch's orders and fills rows, and (``rows.dirty``) the orders whose stored rows they replace.

        An order touched by the batch is written from its state now if it is in memory, from the state it
        retired with (``_retiring``) if it left memory in the batch, or from the archive if it retired in the
        very event that touched it; an order merged away (or dropped) gets no row. In a rebuild, orders still
        in memory wait (``_pending``) until they retire or the build ends, and only the stored rows of
        re-inflated orders are replaced. ``rows.lower`` bounds the replaced rows' first_seen_ns (it only ever
        decreases, on a merge) so the deletes skip old row groups by their zone maps.
        """
        if self._hook_error is not None:
            exc, self._hook_error = self._hook_error, None
            raise exc
        orders = fold.orders
        merged = fold.merged
        built = rows.built
        out: dict[str, tuple[tuple[Any, ...], list[tuple[Any, ...]]] | None] = {}
        if self._defer_orders:
            keys = self._pending
            keys.update(rows.dirty)
            waiting: dict[str, None] = {}
            for key in keys:
                if key in orders:
                    waiting[key] = None
                else:
                    out[key] = built.get(key) or (None if key in merged else self._archived_rows(fold, key))
            self._pending = waiting
            revived = self._revived
            replaced = [k for k in out if k in revived]
            revived.difference_update(replaced)
            rows.dirty = dict.fromkeys(replaced)
        else:
            for key in rows.dirty:
                v = orders.get(key)
                if v is not None:
                    out[key] = self._rows_of(v)
                else:
                    out[key] = built.get(key) or (None if key in merged else self._archived_rows(fold, key))
        lower: int | None = None
        orow = rows.orders.rows
        frow = rows.fills.rows
        for key, r in out.items():
            if r is None:
                if key in rows.dirty:
                    lower = -1  # merged away: its stored first_seen_ns is not known any more, no bound
                continue
            orow.append(r[0])
            frow.extend(r[1])
            if key in rows.dirty and lower != -1:
                fs = r[0][_FIRST_SEEN]
                if lower is None or fs < lower:
                    lower = fs
        rows.lower = -1 if lower is None else lower

    def _rows_of(self, v: OrderView) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        """One order's orders row and fills rows, from its view and its marks."""
        key = v.key
        since = v.first_seen_ns
        fills = v.fills
        replaced = _replaced(fills) if any(f.correction for f in fills) else {}
        frows = []
        for f in fills:
            r = replaced.get(f.exec_id)
            frows.append((key, f.exec_id, f.family, f.revision, f.correction, f.superseded, f.late, f.shares,
                          f.price, f.side, f.account, f.time, f.commission, f.currency, f.realized_pnl,
                          f.session_id, f.seq, f.recv_ns, since, r.exec_id if r is not None else None,
                          r.shares if r is not None else None, r.price if r is not None else None))
        return _order_row(v) + tuple(self._marks.get(key) or _NO_MARKS), frows

    def _archived_rows(self, fold: LedgerFold, key: str) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]] | None:
        """Rows of an order that retired in the event that touched it (a decoded copy; None: no such order)."""
        v = fold.order(key)
        return None if v is None else self._rows_of(v)

    def _written(self, fold: LedgerFold, rows: _Rows) -> None:
        """After a batch committed: forget the marks of orders that left memory (their rows hold them) and the
        anomalies the fold collected (their rows are written; the fold never reads them back)."""
        self._rows = None
        if rows.gone:
            orders = fold.orders
            marks = self._marks
            for key in rows.gone:
                if key not in orders:
                    marks.pop(key, None)
        if fold.anomalies:
            fold.anomalies.clear()
            self._n_anomalies = 0

    def write_orders(self) -> None:
        """Write the rows of the orders whose rows wait (after a rebuild, which writes each order once)."""
        fold = self._ensure_fold()
        rows = _Rows()
        orders = fold.orders
        replaced = []
        for key in self._pending:
            v = orders.get(key)
            r = self._rows_of(v) if v is not None else None if key in fold.merged else self._archived_rows(fold, key)
            if key in self._revived:
                replaced.append(key)
            if r is not None:
                rows.orders.rows.append(r[0])
                rows.fills.rows.extend(r[1])
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            if replaced:
                keys = register_keys(con, replaced)
                try:
                    con.execute(f"DELETE FROM orders WHERE key IN (SELECT k FROM {keys})")
                    con.execute(f"DELETE FROM fills WHERE order_key IN (SELECT k FROM {keys})")
                finally:
                    con.unregister(keys)
            rows.orders.flush(con)
            rows.fills.flush(con)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._pending, self._revived = {}, set()
        self._defer_orders = False

    def _write(self, rows: _Rows) -> None:
        """One transaction: every row of the batch, the tracking position, maybe a fold checkpoint.

        All statements go to DuckDB in one ``execute`` (each statement costs a few ms of fixed overhead
        through the Python client; sent together they cost much less).
        """
        con = self.con
        last_pos, last_env = rows.last
        position = last_pos
        events = self.events + rows.count
        fp = fingerprint(last_pos, last_env)
        views: list[str] = []
        stmts = ["BEGIN TRANSACTION"]
        try:
            for b in (rows.events, rows.order_events, rows.transitions, rows.anomalies, rows.governor,
                      rows.failures, rows.connections):
                prepared = b.register(con)
                if prepared is not None:
                    views.append(prepared[0])
                    stmts.append(prepared[1])
            if rows.dirty:
                keys = register_keys(con, list(rows.dirty))
                views.append(keys)
                # ``lower`` bounds the stored rows' first_seen_ns: DuckDB skips older row groups by zone map
                stmts.append(f"DELETE FROM orders WHERE first_seen_ns >= {rows.lower} "
                             f"AND key IN (SELECT k FROM {keys})")
                stmts.append(f"DELETE FROM fills WHERE order_first_seen_ns >= {rows.lower} "
                             f"AND order_key IN (SELECT k FROM {keys})")
            if rows.sessions:
                keys = register_keys(con, list(rows.sessions))
                views.append(keys)
                stmts.append(f"DELETE FROM sessions WHERE session_id IN (SELECT k FROM {keys})")
            for b in (rows.orders, rows.fills, rows.sessions_batch):
                prepared = b.register(con)
                if prepared is not None:
                    views.append(prepared[0])
                    stmts.append(prepared[1])
            stmts.append(f"UPDATE audit_tracking SET position = {int(position)}, events = {int(events)}, "
                         f"fingerprint = {sql_str(fp)} WHERE projection = {sql_str(PROJECTION)}")
            con.execute(";\n".join(stmts))
        finally:
            for v in views:
                con.unregister(v)
        old = (self.position, self.events, self._fingerprint, self.checkpoint_position)
        self.position, self.events, self._fingerprint = position, events, fp
        try:
            if rows.checkpoint:
                self._checkpoint()
            if self._before_commit is not None:
                self._before_commit(position)
            con.execute("COMMIT")
        except BaseException:
            self.position, self.events, self._fingerprint, self.checkpoint_position = old
            raise
        if rows.checkpoint:
            self._checkpoint_committed()

    def checkpoint(self) -> None:
        """Write a fold checkpoint at the current position (after a build, or on a clean exit)."""
        if self._fold is None or self.checkpoint_position == self.position:
            return
        con = self.con
        con.execute("BEGIN TRANSACTION")
        try:
            self._checkpoint()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            self._drop_fold()  # (its archive was synced past the committed checkpoint: reload it)
            raise
        self._checkpoint_committed()


class _Rows:
    __slots__ = ("events", "order_events", "transitions", "anomalies", "governor", "orders", "fills",
                 "failures", "connections", "sessions_batch", "dirty", "sessions", "lower", "last", "count",
                 "checkpoint", "built", "gone")

    def __init__(self) -> None:
        self.events = Batch("events", EVENT_COLS)
        self.order_events = Batch("order_events", ORDER_EVENT_COLS)
        self.transitions = Batch("transitions", TRANSITION_COLS)
        self.anomalies = Batch("anomalies", ANOMALY_COLS)
        self.governor = Batch("governor_decisions", GOVERNOR_COLS)
        self.orders = Batch("orders", ORDER_COLS)
        self.fills = Batch("fills", FILL_COLS)
        self.failures = Batch("failure_reports", FAILURE_COLS)
        self.connections = Batch("connection_events", CONNECTION_COLS)
        self.sessions_batch = Batch("sessions", SESSION_COLS)
        self.dirty: dict[str, None] = {}
        self.sessions: dict[str, None] = {}
        self.lower = -1
        self.last: tuple[int, Envelope]
        self.count = 0
        self.checkpoint = False
        self.built: dict[str, tuple[tuple[Any, ...], list[tuple[Any, ...]]]] = {}  # rows made as orders retired
        self.gone: list[str] = []  # orders retired during the batch


# per order, kept from its events: placed_ns, last_exec_position, last_live_position,
# first_failure_position, live_error_position (see schema.py)
MARK_COLUMNS = ("placed_ns", "last_exec_position", "last_live_position", "first_failure_position",
                "live_error_position")
_NO_MARKS = (0, 0, 0, 0, 0)
_FIRST_SEEN = next(i for i, (name, _) in enumerate(c for c in ORDER_COLS if not c[1].startswith("t:"))
                   if name == "first_seen_ns")
_CONNECTION_TYPES = frozenset({ev.SessionStarted, ev.SessionEnded, ev.Connected, ev.Disconnected,
                               ev.ReconcileStarted, ev.ReconcileEnded, ev.Error})
_CONNECTION_CODES = frozenset(schema.CONNECTION_CODES)


_ZERO_MARKS = [0, 0, 0, 0, 0]  # (never changed: a mark is set on a list of the order's own, see _mark)


def _forget_marks(core: Any) -> None:
    """The retire hook while a tail is re-folded: the order's marks are not known here (its row has them)."""
    core.ext = None


def _pick(values: list[Any], at: list[int]) -> list[Any]:
    """``values`` at the indexes ``at``, in that order."""
    return list(map(values.__getitem__, at))


def _mark(marks: dict[str, list[int]], key: str) -> list[int]:
    m = marks.get(key)
    if m is None:
        m = marks[key] = [0, 0, 0, 0, 0]
    return m


def _replaced(fills: list[Any]) -> dict[str, Any]:
    """For each correction, the fill it replaced: the next lower revision of its family."""
    by_family: dict[str, list[Any]] = {}
    for f in fills:
        by_family.setdefault(f.family, []).append(f)
    out: dict[str, Any] = {}
    for fam in by_family.values():
        if len(fam) < 2:
            continue
        fam = sorted(fam, key=lambda f: (int(f.revision) if f.revision.isdigit() else -1, f.revision))
        for prev, f in zip(fam, fam[1:], strict=False):
            if f.correction:
                out[f.exec_id] = prev
    return out


# How the order an event is about is found (public fold API only), after the fold has applied it:
# by perm id, then by (client id, order id) in its session (the session's client id when the event has
# none); an order id of 0 or IB's manual-order id names no order.
_BY_IDS, _BY_PERM, _BY_ORDER, _BY_EXEC, _BY_REQ, _BY_DECISION = range(6)
_FIND: dict[type, int] = {
    ev.OrderStatus: _BY_IDS,
    ev.OpenOrder: _BY_IDS,
    ev.CompletedOrder: _BY_PERM,  # (completed orders come back with order id 0)
    ev.ExecDetails: _BY_IDS,
    ev.CommissionReport: _BY_EXEC,  # the order the fold attributed the execution to
    ev.Error: _BY_REQ,  # the error's reqId is the order id; no client id of its own
    ev.PlaceOrder: _BY_ORDER,
    ev.ModifyOrder: _BY_ORDER,
    ev.CancelOrder: _BY_IDS,
    ev.GovernorDecision: _BY_DECISION,  # only positive order ids
}


# An order event's row after its order key: (status, code, exec_id, shares, price, decision, reason, text) per
# payload type, then the order's state and liveness before and after (``sb``, ``sa``, ``lb``, ``la``): one
# call builds the whole row (no intermediate tuple to unpack).
def _d_status(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, p.status, 0, None, p.filled, p.avg_fill_price, None, None, p.why_held or None, sb, sa, lb, la)


def _d_open(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, p.status or None, 0, None, p.total_qty, p.lmt_price if p.lmt_price is not None else 0.0,
            None, None, None, sb, sa, lb, la)


def _d_exec(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, None, 0, p.exec_id, p.shares, p.price, None, None, None, sb, sa, lb, la)


def _d_commission(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, None, 0, p.exec_id, 0.0, p.commission if p.commission is not None else 0.0, None, None, None,
            sb, sa, lb, la)


def _d_error(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, None, p.code, None, 0.0, 0.0, None, None, p.message, sb, sa, lb, la)


def _d_decision(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, None, 0, None, 0.0, 0.0, p.decision, p.reason, p.message or None, sb, sa, lb, la)


def _d_cancel(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, None, 0, None, 0.0, 0.0, None, p.reason or None, None, sb, sa, lb, la)


def _d_place(p: Any, key: str, sb: str, sa: str, lb: bool, la: bool) -> tuple[Any, ...]:
    return (key, None, 0, None, p.total_qty, p.lmt_price if p.lmt_price is not None else 0.0, None, None, None,
            sb, sa, lb, la)


_DETAIL: dict[type, Callable[..., tuple[Any, ...]]] = {
    ev.OrderStatus: _d_status,
    ev.OpenOrder: _d_open,
    ev.CompletedOrder: _d_open,
    ev.ExecDetails: _d_exec,
    ev.CommissionReport: _d_commission,
    ev.Error: _d_error,
    ev.GovernorDecision: _d_decision,
    ev.CancelOrder: _d_cancel,
    ev.PlaceOrder: _d_place,
    ev.ModifyOrder: _d_place,
}
assert set(_DETAIL) == set(_FIND)


def _order_row(v: OrderView) -> tuple[Any, ...]:
    return (v.key, v.session_id, v.perm_id, v.order_id, v.client_id, v.account, v.symbol, v.sec_type, v.con_id,
            v.action, v.total_qty, v.order_type, v.lmt_price, v.aux_price, v.tif, v.order_ref, v.broker_status,
            v.why_held, v.state, v.overlay, v.filled, v.remaining, v.avg_fill_price, v.commission,
            v.broker_filled, v.broker_remaining, v.broker_avg_fill_price, v.fill_pending, v.is_live, v.is_done,
            v.placed, v.unconfirmed, v.manual, v.anomaly_count, sum(1 for f in v.fills if not f.superseded),
            v.late_fill, len(v.errors), v.first_seen_ns, v.last_update_ns, v.acked_ns, v.first_fill_ns)


def _session_counts(sessions: dict[str, _Sess], touched: dict[str, None], sids: list[str], seqs: list[int],
                    nss: list[int]) -> None:
    """Count a batch's events into their sessions (created on first sight): events, first/last seq and time."""
    if not sids:
        return
    first_sid = sids[0]
    if sids.count(first_sid) == len(sids):  # the usual batch: one session
        spans = {first_sid: (seqs, nss)}
    else:
        at: dict[str, list[int]] = {}
        for i, sid in enumerate(sids):
            lst = at.get(sid)
            if lst is None:
                lst = at[sid] = []
            lst.append(i)
        spans = {sid: ([seqs[i] for i in lst], [nss[i] for i in lst]) for sid, lst in at.items()}
    for sid, (sq, ns) in spans.items():
        s = sessions.get(sid)
        if s is None:
            s = sessions[sid] = _Sess(sid)
        touched[sid] = None
        lo_seq, hi_seq, lo_ns, hi_ns = min(sq), max(sq), min(ns), max(ns)
        if s.events == 0:
            s.first_seq, s.last_seq, s.first_ns, s.last_ns = lo_seq, hi_seq, lo_ns, hi_ns
        else:
            if lo_seq < s.first_seq:
                s.first_seq = lo_seq
            if hi_seq > s.last_seq:
                s.last_seq = hi_seq
            if lo_ns < s.first_ns:
                s.first_ns = lo_ns
            if hi_ns > s.last_ns:
                s.last_ns = hi_ns
        s.events += len(sq)


def _session_kind(s: _Sess, p: Any, tp: type) -> None:
    """What a connection-kind event changes in its session besides the counters (in event order)."""
    if tp is ev.SessionStarted:
        s.has_start = True
        s.library, s.library_version = p.library, p.library_version
        s.client_id = p.client_id
        s.account = p.account or None
        s.mode = p.mode
    elif tp is ev.SessionEnded:
        s.has_end = True
        s.end_reason = p.reason
    elif tp is ev.Connected:
        s.client_id = p.client_id
    elif tp is ev.Disconnected:
        s.disconnects += 1
    elif tp is ev.Error:
        if p.code == sm.ERR_CONNECTIVITY_LOST:
            s.link_losses += 1
    elif tp is ev.ReconcileEnded:
        s.reconciles += 1
        if not p.ok or p.unknown:
            s.reconciles_unknown += 1


def _session_from_row(r: tuple[Any, ...]) -> _Sess:
    s = _Sess(r[0])
    d = dict(zip(_SESSION_ROW_NAMES, r, strict=True))
    for name in _Sess.__slots__:
        if name in d:
            setattr(s, name, d[name])
    return s


def _take(it: Iterator[tuple[int, Envelope]], n: int) -> list[tuple[int, Envelope]]:
    out = []
    for item in it:
        out.append(item)
        if len(out) >= n:
            break
    return out


@contextmanager
def _no_gc() -> Iterator[None]:
    """Bulk work allocates millions of acyclic objects: the cyclic GC only slows it down (~2x)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# --- entry points ----------------------------------------------------------------------------------


def update(store: EventStore, path: str | Path, *, progress: Callable[[int], None] | None = None,
           batch_events: int = DEFAULT_BATCH, payloads: bool | None = None,
           keep: int = DEFAULT_KEEP) -> tuple[int, list[str]]:
    """Bring the projection at ``path`` up to date; return (events applied, notes)."""
    with AuditProjection(store, path, batch_events=batch_events, payloads=payloads, keep=keep) as proj:
        n = proj.catch_up(progress=progress, checkpoint_at_end=True)
        return n, proj.notes


def rebuild(store: EventStore, path: str | Path, *, progress: Callable[[int], None] | None = None,
            batch_events: int = REBUILD_BATCH, checkpoint: bool = True, payloads: bool = False,
            keep: int = DEFAULT_KEEP) -> int:
    """Build the projection from scratch into a temporary file, then replace ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".rebuild")
    for p in (tmp, Path(str(tmp) + ".wal")):
        if p.exists():
            p.unlink()
    # no intermediate fold checkpoints (one at the end); the fold files get a new directory named after
    # ``path``, so the rename of the DuckDB file below switches both at once
    with AuditProjection(store, tmp, batch_events=batch_events, checkpoint_every=1 << 62,
                         payloads=payloads, keep=keep, files_for=path) as proj:
        proj._defer_orders = True
        n = proj.catch_up(progress=progress)
        proj.write_orders()
        if checkpoint:
            proj.checkpoint()
        token = proj._ck_files or None
    wal = Path(str(path) + ".wal")
    if wal.exists():
        wal.unlink()
    os.replace(tmp, path)
    remove_fold_files(path, keep=token)  # the replaced projection's, and any a crashed rebuild left
    return n
