"""The event store: an append-only, gapless-per-session log of :class:`~ledger.core.events.Envelope`s.

Built on the ``eventsourcing`` library's recorders, tables and transactions (not its Application /
Aggregate layers, which cost 4-5x on bulk paths). Each envelope becomes one library ``StoredEvent``:

* ``originator_id``      = the session's UUID (the session id itself when it is a canonical UUID string,
                           else ``derived_id("session", session_id)``),
* ``originator_version`` = ``seq`` (gapless, starting at 1),
* ``topic``              = ``f"ibledger:{kind}:v{v}"``,
* ``state``              = ``codec.to_msgpack(envelope)``;

and the library's notification id is the event's global *position* (``read_all``).

Invariants kept by every backend, inside the one transaction that inserts the batch:

* a batch is all or nothing;
* per session, the first seq is 1 and each next one is the last stored + 1; anything else (a gap, a
  duplicate, a second writer racing on the same session) raises :class:`SeqConflict` and writes nothing;
* a side table (``ibledger_sessions``, one row per session) is updated in the same transaction: last
  seq, event count, first/last receive time, start/end seen, and a hash chain head
  ``sha256(prev_head + state)`` over the session's stored bytes, which :mod:`ledger.store.verify` recomputes to
  detect tampering (altered, removed or inserted rows);
* writers are serialized (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: the library's ``LOCK TABLE ... IN
  EXCLUSIVE MODE``), so position order equals commit order and a reader tailing ``read_all(after=...)``
  never skips an event committed later with a lower position.

URLs::

    sqlite:///relative/path.db            sqlite:////absolute/path.db
        ?synchronous=FULL|NORMAL          (default FULL: every acknowledged append survives power loss;
                                           NORMAL in WAL mode may lose the last commits on power loss,
                                           never on a process crash / kill -9)
        ?lock_timeout=SECONDS             (default 5: how long a writer waits for another writer)
    postgresql://user[:password]@host[:port]/dbname
        ?schema=NAME                      (default public; created if missing)
        ?lock_timeout=SECONDS             (default 5; the library's POSTGRES_LOCK_TIMEOUT, 0 = forever)
        ?connect_timeout=SECONDS          (default 5)

``store.url`` and every error message carry the URL with the password replaced by ``***``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import msgspec
from msgspec import Struct

from ledger.core import codec
from ledger.core.events import Envelope, SchemaError, SessionEnded, SessionStarted
from ledger.core.session import MAX_SESSION_ID, SessionInfo, derived_id, session_id_problem

__all__ = [
    "EventStore",
    "Batch",
    "GapError",
    "MAX_SESSION_ID",
    "SessionGap",
    "session_id_problem",
    "NoStore",
    "RawRow",
    "SeqConflict",
    "SessionHead",
    "StoreFileLost",
    "StoreError",
    "StoreURL",
    "StoreURLError",
    "UndecodableEvent",
    "originator_id_for",
    "parse_url",
    "redact_url",
    "topic_for",
]

log = logging.getLogger("ledger.store")

# Bumped when the on-disk layout changes; a store written by a newer ibledger is refused.
STORE_FORMAT = 1

EVENTS_TABLE = "ibledger_events"
SESSIONS_TABLE = "ibledger_sessions"
# Columns of SESSIONS_TABLE in SessionHead order (both backends read and write them in this order).
HEAD_COLS = "originator_id, session_id, last_seq, events, first_ns, last_ns, has_start, has_end, chain"
META_TABLE = "ibledger_meta"

PAGE_SIZE = 1000  # rows per query when streaming reads

NS_MAX = 2**63 - 1  # both backends store times as signed 64-bit integers

EMPTY_CHAIN = b"\x00" * 32


# --- errors -------------------------------------------------------------------------------------


class StoreError(Exception):
    """Anything the store refuses or cannot do. Messages never contain credentials."""


class NoStore(StoreError):
    """A read on a location that holds no ibledger store (missing file, foreign database)."""


class StoreFileLost(StoreError):
    """The store's file was deleted or replaced under an open store: appending would write into a file
    nobody will ever read again (or into someone else's), so every append is refused from then on."""


class StoreURLError(StoreError, ValueError):
    """A store URL that cannot be used; the message says how to write a correct one."""


class SeqConflict(StoreError):
    """An append whose seq is not the next one of its session (gap, duplicate or a racing writer)."""

    def __init__(self, session_id: str, expected: int, got: int, detail: str = "") -> None:
        self.session_id = session_id
        self.expected = expected
        self.got = got
        what = "duplicate" if got < expected else "gap"
        msg = f"session {session_id}: expected seq {expected}, got {got} ({what}); nothing of the batch written"
        if detail:
            msg += f" [{detail}]"
        super().__init__(msg)

    def __reduce__(self) -> Any:  # picklable across processes
        return (type(self), (self.session_id, self.expected, self.got))


class UndecodableEvent(StoreError, SchemaError):
    """A stored row that this ibledger cannot decode (corrupt bytes, unknown kind, newer schema)."""

    def __init__(self, position: int, reason: str, session_id: str | None = None, seq: int | None = None):
        self.position = position
        self.reason = reason
        self.session_id = session_id
        self.seq = seq
        where = f"position {position}"
        if session_id is not None:
            where += f" (session {session_id} seq {seq})"
        super().__init__(f"undecodable event at {where}: {reason}")

    def __reduce__(self) -> Any:
        return (type(self), (self.position, self.reason, self.session_id, self.seq))


class SessionGap(Struct, frozen=True):
    """Seqs ``first..last`` of a session are missing from what a read returned."""

    session_id: str
    first: int
    last: int
    tail: bool = False  # the head row records events past the last one readable

    def describe(self) -> str:
        seqs = f"seq {self.first}" if self.first == self.last else f"seqs {self.first}..{self.last}"
        n = self.last - self.first + 1
        where = " (after the last readable event; the head row records them)" if self.tail else ""
        return f"session {self.session_id}: {seqs} missing ({n} event{'s' if n != 1 else ''}){where}"


GapListener = Callable[[SessionGap], None]


class GapError(StoreError):
    """A read found a hole in a session's seqs: it would otherwise return less than the store holds."""

    def __init__(self, gap: SessionGap) -> None:
        self.gap = gap
        super().__init__(
            f"{gap.describe()}; the store is damaged or rows were removed. Run `ibledger verify` to see "
            f"every problem"
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.gap,))


def _gap(gap: SessionGap, allow: bool, on_gap: GapListener | None) -> None:
    if not allow:
        raise GapError(gap)
    log.warning("reading with --allow-gaps: %s", gap.describe())
    if on_gap is not None:
        on_gap(gap)


# --- value objects ------------------------------------------------------------------------------


class RawRow(Struct, frozen=True):
    """One stored row as the library holds it (for verification and low-level tools)."""

    position: int
    originator_id: str  # canonical UUID string
    seq: int
    topic: str
    state: bytes


class SessionHead(Struct, frozen=True, kw_only=True):
    """The side-table row kept per session in the append transaction."""

    originator_id: str
    session_id: str
    last_seq: int
    events: int
    first_ns: int
    last_ns: int
    has_start: bool
    has_end: bool
    chain: bytes

    def info(self) -> SessionInfo:
        return SessionInfo(
            session_id=self.session_id,
            events=self.events,
            first_seq=1 if self.events else 0,
            last_seq=self.last_seq,
            started_ns=self.first_ns,
            last_ns=self.last_ns,
            has_start=self.has_start,
            has_end=self.has_end,
        )


class StoreURL(Struct, frozen=True, kw_only=True):
    scheme: str  # "sqlite" | "postgresql"
    path: str = ""  # sqlite file path
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    params: dict[str, str] = {}
    redacted: str = ""


# --- URL parsing --------------------------------------------------------------------------------

_EXAMPLES = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user@host:5432/dbname"
_SQLITE_PARAMS = {"synchronous", "lock_timeout"}
_PG_PARAMS = {"schema", "lock_timeout", "connect_timeout"}


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")
_PW_PARAM = re.compile(r"(?i)(\bpassword\s*=\s*)('[^']*'|[^\s&;#]*)")


def redact_url(url: str) -> str:
    """The URL with every password replaced by ``***`` (safe for logs, errors and ``store.url``).

    The one place ibledger hides passwords; it works on the raw text rather than on ``urlsplit``, which
    gives up (or splits in the wrong place) on exactly the URLs a user mistypes: a raw ``@``, ``/`` or
    ``?`` inside the password, a URL written without ``//`` (``postgresql:user:pw@host/db``), a
    ``?password=`` query parameter, or a libpq keyword string (``host=h password=pw``). Everything
    between the first ``:`` of the user info and the *last* ``@`` is treated as the password, so an
    ambiguous URL is over-redacted, never under-redacted.
    """
    if not isinstance(url, str):
        return "<store URL>"
    text = _PW_PARAM.sub(lambda m: m.group(1) + "***", url)
    m = _SCHEME.match(text)
    if m is None:
        return text
    head, rest = text[: m.end()], text[m.end() :]
    if m.group(1).lower().startswith("sqlite"):
        return text  # a file path: no user info to hide
    at = rest.rfind("@")
    if at < 0:
        return text
    userinfo = rest[:at]
    colon = userinfo.find(":")
    if colon < 0:
        return text
    return f"{head}{userinfo[:colon]}:***{rest[at:]}"


def parse_url(url: str) -> StoreURL:
    if not isinstance(url, str) or not url.strip():
        raise StoreURLError(f"empty store URL: {_EXAMPLES}")
    url = url.strip()
    safe = redact_url(url)
    if "://" not in url:
        raise StoreURLError(f"store URL {safe!r} has no scheme: {_EXAMPLES}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        # the parser's reason may quote a piece of the password ("port could not be cast ... 'pw'")
        reason = str(exc) if safe == url else "the user info or port cannot be parsed"
        raise StoreURLError(f"malformed store URL {safe!r} ({reason}): {_EXAMPLES}") from None
    scheme = parts.scheme.lower()
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    if scheme in ("sqlite", "sqlite3"):
        if parts.netloc:
            raise StoreURLError(
                f"SQLite store URL {safe!r} has a host part ({parts.netloc!r}): a SQLite URL has three "
                f"slashes before a relative path (sqlite:///data/ledger.db) and four before an absolute "
                f"one (sqlite:////var/lib/ibledger/ledger.db)"
            )
        path = unquote(parts.path)
        if path.startswith("/"):
            path = path[1:]
        if not path:
            raise StoreURLError(f"SQLite store URL {safe!r} has no file path: {_EXAMPLES}")
        if path == ":memory:" or "mode=memory" in url:
            raise StoreURLError(
                f"in-memory SQLite ({safe!r}) is not supported (it breaks with concurrent readers): "
                f"use a file, e.g. sqlite:////tmp/ledger.db"
            )
        _check_params(params, _SQLITE_PARAMS, safe)
        sync = params.get("synchronous", "FULL").upper()
        if sync not in ("FULL", "NORMAL", "EXTRA"):
            raise StoreURLError(f"store URL {safe!r}: synchronous must be FULL, EXTRA or NORMAL, got {sync!r}")
        params["synchronous"] = sync
        _number_param(params, "lock_timeout", safe)
        return StoreURL(scheme="sqlite", path=path, params=params, redacted=safe)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        dbname = unquote(parts.path.lstrip("/"))
        if not parts.hostname:
            raise StoreURLError(f"PostgreSQL store URL {safe!r} has no host: {_EXAMPLES}")
        if not dbname or "/" in dbname:
            raise StoreURLError(
                f"PostgreSQL store URL {safe!r} needs exactly one database name after the host, "
                f"e.g. postgresql://postgres@127.0.0.1:5432/ibledger"
            )
        _check_params(params, _PG_PARAMS, safe)
        _number_param(params, "lock_timeout", safe)
        _number_param(params, "connect_timeout", safe)
        schema = params.get("schema", "")
        if schema and not (schema.replace("_", "a").isalnum() and not schema[0].isdigit() and len(schema) < 64):
            raise StoreURLError(
                f"store URL {safe!r}: schema must be a plain identifier (letters, digits, _), got {schema!r}"
            )
        return StoreURL(
            scheme="postgresql",
            host=parts.hostname,
            port=port or 5432,
            user=unquote(parts.username or "") or os.environ.get("PGUSER", "") or "postgres",
            password=unquote(parts.password or ""),
            dbname=dbname,
            params=params,
            redacted=_canonical_pg(
                parts.hostname,
                port or 5432,
                unquote(parts.username or ""),
                bool(parts.password),
                dbname,
                parts.query,
            ),
        )
    raise StoreURLError(f"unknown store URL scheme {parts.scheme!r} in {safe!r}: {_EXAMPLES}")


def _canonical_pg(host: str, port: int, user: str, has_pw: bool, db: str, query: str) -> str:
    userinfo = quote(user, safe="") + (":***" if has_pw else "")
    at = f"{userinfo}@" if userinfo else ""
    return f"postgresql://{at}{host}:{port}/{quote(db, safe='')}" + (f"?{query}" if query else "")


def _check_params(params: dict[str, str], allowed: set[str], safe: str) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise StoreURLError(
            f"store URL {safe!r}: unknown parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _number_param(params: dict[str, str], name: str, safe: str) -> None:
    if name in params:
        try:
            value = float(params[name])
            if value < 0:
                raise ValueError
        except ValueError:
            raise StoreURLError(
                f"store URL {safe!r}: {name} must be a number of seconds >= 0, got {params[name]!r}"
            ) from None


# --- identity and encoding ----------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def originator_id_for(session_id: str) -> uuid.UUID:
    """The library originator id of a session: the session id itself if it is a canonical UUID."""
    try:
        u = uuid.UUID(session_id)
    except (ValueError, AttributeError, TypeError):
        return uuid.UUID(derived_id("session", session_id))
    if str(u) == session_id:
        return u
    return uuid.UUID(derived_id("session", session_id))


def topic_for(env: Envelope) -> str:
    return f"ibledger:{env.kind}:v{env.v}"


def decode_row(position: int, state: bytes, session_id: str | None = None, seq: int | None = None) -> Envelope:
    try:
        return codec.from_msgpack(state)
    except (SchemaError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise UndecodableEvent(position, str(exc), session_id, seq) from None


def chain_next(prev: bytes, state: bytes) -> bytes:
    """One link of a session's hash chain: ``sha256(prev + state)``, starting from 32 zero bytes."""
    return hashlib.sha256(prev + state).digest()


class SessionPart(Struct):
    """The events of one session inside a batch (already checked to be contiguous)."""

    session_id: str
    originator_id: uuid.UUID
    oid: str  # str(originator_id): the side table's key
    first_seq: int
    last_seq: int
    first_ns: int
    last_ns: int
    has_start: bool
    has_end: bool
    states: list[bytes]
    bad: tuple[int, int] | None = None  # first (expected, got) discontinuity inside the batch


class Batch(Struct):
    """An encoded batch: ``rows`` in append order as the library's table takes them, ``parts`` per session."""

    rows: list[tuple[str, int, str, bytes]]  # (originator_id.hex, seq, topic, state)
    parts: dict[str, SessionPart]


_TOPICS: dict[tuple[type, int], str] = {}


def prepare(envs: Sequence[Envelope]) -> Batch:
    """Encode and check a batch outside the transaction (keeps the write lock short).

    Seqs are checked by :func:`plan_heads` under the write lock: first whether a session's first seq in
    the batch follows the stored last seq, then that its seqs are contiguous within the batch.
    """
    rows: list[tuple[str, int, str, bytes]] = []
    parts: dict[str, SessionPart] = {}
    by_sid: dict[str, tuple[SessionPart, str]] = {}
    enc = codec.to_msgpack
    topics = _TOPICS
    for env in envs:
        if not isinstance(env, Envelope):
            raise StoreError(f"append takes Envelopes, got {type(env).__name__}")
        sid = env.session_id
        seq = env.seq
        if type(seq) is not int or not 1 <= seq <= NS_MAX:
            raise StoreError(f"append: session {sid:.200}: seq must be an int in 1..{NS_MAX}, got {seq!r:.40}")
        if not (0 <= env.recv_ns <= NS_MAX and -NS_MAX <= env.mono_ns <= NS_MAX):
            raise StoreError(
                f"append: session {sid:.200} seq {seq}: recv_ns / mono_ns must fit a signed 64-bit integer "
                f"(0..{NS_MAX} ns), got {env.recv_ns!r:.40} / {env.mono_ns!r:.40}; nothing of the batch written"
            )
        state = enc(env)
        ptype = type(env.payload)
        topic = topics.get((ptype, env.v))
        if topic is None:
            topic = topics[(ptype, env.v)] = f"ibledger:{env.kind}:v{env.v}"
        got = by_sid.get(sid)
        if got is None:
            problem = session_id_problem(sid)
            if problem is not None:
                raise StoreError(f"append: {problem}; nothing of the batch written")
            u = originator_id_for(sid)
            oid = str(u)
            if oid in parts:
                raise StoreError(f"session ids {parts[oid].session_id!r} and {sid!r} map to one originator id {oid}")
            part = parts[oid] = SessionPart(sid, u, oid, seq, seq, env.recv_ns, env.recv_ns, False, False, [state])
            got = by_sid[sid] = (part, u.hex)
        else:
            part = got[0]
            if seq != part.last_seq + 1 and part.bad is None:
                part.bad = (part.last_seq + 1, seq)  # raised by plan_heads, after the stored seq is checked
            part.last_seq = seq
            part.last_ns = env.recv_ns
            part.states.append(state)
        if ptype is SessionStarted:
            part.has_start = True
        elif ptype is SessionEnded:
            part.has_end = True
        rows.append((got[1], seq, topic, state))
    return Batch(rows, parts)


def plan_heads(batch: Batch, heads: dict[str, SessionHead]) -> tuple[list[SessionHead], list[SessionHead]]:
    """Check gapless seqs against the stored heads; return (new heads to insert, heads to update).

    Must run inside the writing transaction, after the write lock is held, so that the heads read are
    the ones the insert will follow.
    """
    inserts: list[SessionHead] = []
    updates: list[SessionHead] = []
    sha = hashlib.sha256
    for oid, part in batch.parts.items():
        h = heads.get(oid)
        if h is not None and h.session_id != part.session_id:
            raise StoreError(
                f"session ids {h.session_id!r} and {part.session_id!r} map to the same originator id {oid}"
            )
        expected = h.last_seq + 1 if h is not None else 1
        if part.first_seq != expected:
            raise SeqConflict(part.session_id, expected, part.first_seq)
        if part.bad is not None:
            raise SeqConflict(part.session_id, *part.bad)
        chain = h.chain if h is not None else EMPTY_CHAIN
        for state in part.states:
            chain = sha(chain + state).digest()
        new = SessionHead(
            originator_id=oid,
            session_id=part.session_id,
            last_seq=part.last_seq,
            events=(h.events if h is not None else 0) + len(part.states),
            first_ns=h.first_ns if h is not None else part.first_ns,
            last_ns=part.last_ns,
            has_start=part.has_start or (h is not None and h.has_start),
            has_end=part.has_end or (h is not None and h.has_end),
            chain=chain,
        )
        (updates if h is not None else inserts).append(new)
    return inserts, updates


# --- the store ----------------------------------------------------------------------------------


class EventStore(ABC):
    """Backend-independent API. Thread-safe: each call takes its own pooled connection."""

    url: str
    recorder: Any  # the eventsourcing ApplicationRecorder (tests and tools may use it directly)

    def __init__(self, url: str) -> None:
        self.url = url
        self._closed = False

    # writing

    def append(self, envs: Sequence[Envelope]) -> int:
        """Append a batch atomically; return the position of its last event.

        Raises :class:`SeqConflict` (nothing written) if a seq is not the next of its session.
        """
        self._check_open()
        if not envs:
            return self.max_position()
        batch = prepare(envs)
        return self._append_batches(iter((batch,)))

    def append_stream(self, envs: Iterable[Envelope], chunk: int = 5_000) -> tuple[int, int]:
        """Append a stream of envelopes in ONE transaction; return (events appended, last position).

        The stream is encoded and checked ``chunk`` envelopes at a time, so memory stays flat in its
        length (a 1M-event import), and it is still all-or-nothing: an exception from the stream itself
        (a bad line of a session file), a :class:`SeqConflict` or a failed write rolls everything back.
        The write lock is held for the whole stream: meant for imports, not for live recording.
        """
        self._check_open()
        count = 0

        def batches() -> Iterator[Batch]:
            nonlocal count
            buf: list[Envelope] = []
            for env in envs:
                buf.append(env)
                if len(buf) >= chunk:
                    count += len(buf)
                    yield prepare(buf)
                    buf = []
            if buf:
                count += len(buf)
                yield prepare(buf)

        last = self._append_batches(batches())
        return count, (last if count else self.max_position())

    @abstractmethod
    def _append_batches(self, batches: Iterator[Batch]) -> int:
        """Write every batch in one transaction (heads checked under the write lock before each insert);
        return the position of the last event written."""

    # reading

    def last_seq(self, session_id: str) -> int:
        self._check_open()
        head = self._head(str(originator_id_for(session_id)))
        return head.last_seq if head is not None else 0

    def read_session(
        self, session_id: str, from_seq: int = 1, *, allow_gaps: bool = False, on_gap: GapListener | None = None
    ) -> Iterator[Envelope]:
        """The session's envelopes in seq order, from ``from_seq``, fetched in pages.

        Never silently less than the store holds: the seqs are checked as they stream, and at the end
        against the last seq the session's head row recorded. A hole (rows deleted, or hidden by a
        damaged index) raises :class:`GapError` naming the missing seqs; ``allow_gaps=True`` reads on
        past it instead, logging a warning and calling ``on_gap(gap)`` so the caller can flag its output.
        """
        self._check_open()
        oid = originator_id_for(session_id)
        head = self._head(str(oid))
        nxt = max(int(from_seq), 1)
        expected = nxt
        while True:
            # Pages are seq windows [nxt, nxt + PAGE_SIZE): a bounded index range whatever the planner
            # believes about the table (a fresh, un-analyzed PostgreSQL table otherwise gets a bitmap
            # scan of the whole rest of the session plus a sort, per page).
            n = PAGE_SIZE
            rows = self._session_page(oid, nxt, n)
            for position, seq, state in rows:
                if seq != expected:
                    _gap(SessionGap(session_id, expected, seq - 1), allow_gaps, on_gap)
                expected = seq + 1
                yield decode_row(position, state, session_id, seq)
            if len(rows) == n:
                nxt += n
                continue
            # A short window is the end of the session, unless the store is damaged (a hole): go on after it.
            later = self._next_seq(oid, nxt + n)
            if later is None:
                break
            nxt = later
        if head is not None and expected <= head.last_seq:
            _gap(SessionGap(session_id, expected, head.last_seq, tail=True), allow_gaps, on_gap)

    def read_all(
        self,
        after: int = 0,
        limit: int | None = None,
        *,
        allow_gaps: bool = False,
        on_gap: GapListener | None = None,
    ) -> Iterator[tuple[int, Envelope]]:
        """``(position, envelope)`` in global order, positions > ``after``, at most ``limit``.

        Seqs are checked per session as they stream (positions follow commit order, so each session's
        seqs arrive in order): a session whose first event read is not seq 1 (when reading from the
        start) or whose next event skips a seq raises :class:`GapError`; a full read from the start also
        checks every session's last seq against its head row. ``allow_gaps`` as for :meth:`read_session`.
        """
        self._check_open()
        full = after <= 0 and limit is None
        heads = {h.session_id: h.last_seq for h in self.session_heads()} if full else {}
        last: dict[str, int] = {}
        remaining = limit
        pos = int(after)
        while remaining is None or remaining > 0:
            n = PAGE_SIZE if remaining is None else min(PAGE_SIZE, remaining)
            rows = self._all_page(pos, n)
            for position, state in rows:
                env = decode_row(position, state)
                sid = env.session_id
                prev = last.get(sid)
                if prev is None:
                    if after <= 0 and env.seq != 1:
                        _gap(SessionGap(sid, 1, env.seq - 1), allow_gaps, on_gap)
                elif env.seq != prev + 1:
                    _gap(SessionGap(sid, prev + 1, env.seq - 1), allow_gaps, on_gap)
                last[sid] = env.seq
                yield position, env
            if len(rows) < n:
                break
            pos = rows[-1][0]
            if remaining is not None:
                remaining -= len(rows)
        for sid, head_last in heads.items():
            got = last.get(sid, 0)
            if got < head_last:
                _gap(SessionGap(sid, got + 1, head_last, tail=True), allow_gaps, on_gap)

    def raw_rows(self, after: int = 0) -> Iterator[RawRow]:
        """Every stored row, undecoded, in global order (for verification)."""
        self._check_open()
        pos = int(after)
        while True:
            rows = self._raw_page(pos, PAGE_SIZE)
            yield from rows
            if len(rows) < PAGE_SIZE:
                return
            pos = rows[-1].position

    @abstractmethod
    def max_position(self) -> int: ...

    def integrity_problems(self) -> tuple[list[str], str]:
        """The backend's own consistency check of its files / indexes: (problems, what was checked)."""
        return [], "no backend integrity check"

    def readable_count(self, session_id: str) -> int:
        """How many events of the session the per-session read path (the session index) reaches."""
        self._check_open()
        return self._session_count(originator_id_for(session_id))

    @abstractmethod
    def _session_count(self, oid: uuid.UUID) -> int: ...

    def sessions(self) -> list[SessionInfo]:
        """Every session, ordered by the receive time of its first event."""
        self._check_open()
        return [h.info() for h in self.session_heads()]

    @abstractmethod
    def session_heads(self) -> list[SessionHead]:
        """The per-session side-table rows, ordered by first event time."""

    def find_session(self, prefix: str) -> str:
        self._check_open()
        prefix = (prefix or "").strip()
        if not prefix:
            raise StoreError("find_session: give a session id or a prefix of one")
        if len(prefix) > MAX_SESSION_ID:
            raise StoreError(
                f"session id {prefix[:40]!r}... is {len(prefix)} characters long; session ids are at most "
                f"{MAX_SESSION_ID}: `ibledger sessions` lists them"
            )
        matches = self._find_prefix(prefix)
        if not matches:
            raise StoreError(f"no session id starts with {prefix!r} in {self.url}")
        if prefix in matches:
            return prefix
        if len(matches) > 1:
            shown = ", ".join(sorted(matches)[:5]) + (" ..." if len(matches) > 5 else "")
            raise StoreError(
                f"session prefix {prefix!r} is ambiguous ({len(matches)} sessions: {shown}): give more characters"
            )
        return matches[0]

    @abstractmethod
    def _head(self, originator_id: str) -> SessionHead | None: ...

    @abstractmethod
    def _session_page(self, oid: uuid.UUID, from_seq: int, n: int) -> list[tuple[int, int, bytes]]: ...

    @abstractmethod
    def _next_seq(self, oid: uuid.UUID, from_seq: int) -> int | None:
        """The smallest stored seq >= ``from_seq`` of the session, or None."""

    @abstractmethod
    def _all_page(self, after: int, n: int) -> list[tuple[int, bytes]]: ...

    @abstractmethod
    def _raw_page(self, after: int, n: int) -> list[RawRow]: ...

    @abstractmethod
    def _find_prefix(self, prefix: str) -> list[str]: ...

    # lifecycle

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"store {self.url} is closed")

    @abstractmethod
    def _close(self) -> None: ...

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"
