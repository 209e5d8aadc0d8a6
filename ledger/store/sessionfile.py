"""Session files: the portable, versioned JSON-lines form of one recording session.

Format (version 1), UTF-8, one JSON object per line:

* line 1, the header::

    {"format": "ibledger-session", "version": 1, "session_id": "...", "events": N,
     "ibledger_version": "0.1.0"}

* lines 2..N+1: one event envelope each (``ledger.core.events.Envelope`` as JSON: ``session_id``, ``seq``,
  ``recv_ns``, ``mono_ns``, ``source``, ``v``, optional ``correlation_id`` / ``causation_id``, and
  ``payload`` whose ``kind`` field names the event type).

Rules a reader enforces: every envelope belongs to the header's session, ``seq`` runs 1, 2, 3, ...
without gaps, the count matches the header, and every payload decodes under this ibledger's schema
(an older schema is upcast, a newer one refused). The same files live under ``fixtures/`` and drive
the tests, the replayer and the simulator's wire replay.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec

from ledger.core.codec import from_json, to_json
from ledger.core.events import Envelope, SchemaError
from ledger.core.session import session_id_problem
from ledger.version import __version__

FORMAT = "ibledger-session"
VERSION = 1
MAX_LINE_BYTES = 16 * 1024 * 1024  # one envelope is a few hundred bytes; a longer line is not one
MAX_HEADER_BYTES = 64 * 1024


class SessionFileError(ValueError):
    """A session file that cannot be read: carries ``path:line`` and what is wrong."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line}: {problem}")


class Header(msgspec.Struct, frozen=True, kw_only=True):
    format: str
    version: int
    session_id: str
    events: int
    ibledger_version: str = ""


_NS_MAX = 2**63 - 1  # both store backends keep times as signed 64-bit integers
_header_decoder = msgspec.json.Decoder(Header)
_header_encoder = msgspec.json.Encoder()


def write_session(path: str | Path, events: Iterable[Envelope], session_id: str, count: int | None) -> int:
    """Stream ``events`` into a session file, atomically (temp file, fsync, rename): a crash or an error
    never leaves a half-written file, and memory stays flat in the session's length.

    ``count``: the events expected (the header's count; a different number written is an error and
    nothing is kept), or None when it is only known at the end (an export that skips holes): the header
    line is then written padded to a fixed width and rewritten in place once the stream has ended.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    written = 0
    try:
        with tmp.open("wb") as out:
            head = _header_line(session_id, count if count is not None else 0)
            if count is None:
                head = head[:-1].ljust(_HEADER_WIDTH) + b"\n"  # JSON allows the trailing blanks
            out.write(head)
            for env in events:
                out.write(to_json(env) + b"\n")
                written += 1
            if count is None:
                final = _header_line(session_id, written)[:-1].ljust(_HEADER_WIDTH) + b"\n"
                if len(final) != len(head):
                    raise ValueError(f"session {session_id}: header does not fit its reserved line")
                out.seek(0)
                out.write(final)
            out.flush()
            os.fsync(out.fileno())
        if count is not None and written != count:
            raise ValueError(f"session {session_id}: expected {count} events, wrote {written}")
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


_HEADER_WIDTH = 1024  # the reserved header line (a session id is at most MAX_SESSION_ID characters)


def _header_line(session_id: str, count: int) -> bytes:
    header = Header(format=FORMAT, version=VERSION, session_id=session_id, events=count,
                    ibledger_version=__version__)
    return _header_encoder.encode(header) + b"\n"


def _open(path: Path):
    """Open a session file for reading; refuse what could hang or exhaust memory (a device, a FIFO)."""
    try:
        if path.exists() and not path.is_file():
            raise SessionFileError(path, 0, "not a regular file (a device, FIFO or directory): give a session file")
        return path.open("rb")
    except OSError as exc:
        raise SessionFileError(path, 0, f"cannot open: {exc.strerror or exc}") from exc


def _line(path: Path, lineno: int, raw: bytes, limit: int) -> bytes:
    if len(raw) > limit:
        raise SessionFileError(path, lineno, f"line longer than {limit} bytes: not a session file line")
    return raw


def read_header(path: str | Path) -> Header:
    path = Path(path)
    with _open(path) as f:
        first = _line(path, 1, f.readline(MAX_HEADER_BYTES + 1), MAX_HEADER_BYTES)
    return _parse_header(path, first)


def _parse_header(path: Path, line: bytes) -> Header:
    if not line.strip():
        raise SessionFileError(path, 1, "empty file: expected an ibledger-session header line")
    try:
        header = _header_decoder.decode(line)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise SessionFileError(path, 1, f"bad header ({exc}); is this an ibledger session file?") from exc
    if header.format != FORMAT:
        raise SessionFileError(path, 1, f"format is {header.format!r}, expected {FORMAT!r}")
    if header.version > VERSION:
        raise SessionFileError(
            path, 1, f"session file version {header.version} is newer than this ibledger reads ({VERSION})"
        )
    problem = session_id_problem(header.session_id)
    if problem is not None:
        raise SessionFileError(path, 1, f"header: {problem}")
    return header


def iter_session(path: str | Path) -> Iterator[Envelope]:
    """Stream and validate a session file; raises SessionFileError at the first bad line.

    Streaming keeps memory flat in the session's length; callers that must not act on a partly bad
    file (import) collect first or validate with :func:`validate` before writing anything.
    """
    path = Path(path)
    f = _open(path)
    with f:
        header = _parse_header(path, _line(path, 1, f.readline(MAX_HEADER_BYTES + 1), MAX_HEADER_BYTES))
        expected = 1
        lineno = 1
        for raw in iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""):
            lineno += 1
            _line(path, lineno, raw, MAX_LINE_BYTES)
            if not raw.strip():
                raise SessionFileError(path, lineno, "blank line inside a session file")
            try:
                env = from_json(raw)
            except msgspec.DecodeError as exc:
                raise SessionFileError(path, lineno, f"not valid JSON: {exc}") from exc
            except SchemaError as exc:
                raise SessionFileError(path, lineno, str(exc)) from exc
            if env.session_id != header.session_id:
                raise SessionFileError(
                    path, lineno, f"event belongs to session {env.session_id!r}, header says {header.session_id!r}"
                )
            if env.seq != expected:
                raise SessionFileError(path, lineno, f"seq {env.seq}, expected {expected} (gap or reordering)")
            if not (0 <= env.recv_ns <= _NS_MAX and -_NS_MAX <= env.mono_ns <= _NS_MAX):
                raise SessionFileError(
                    path, lineno, f"recv_ns / mono_ns out of range (0..{_NS_MAX} ns): {env.recv_ns} / {env.mono_ns}"
                )
            expected += 1
            yield env
        if expected - 1 != header.events:
            raise SessionFileError(
                path, lineno, f"file ends after {expected - 1} events, header promises {header.events} (truncated?)"
            )


def validate(path: str | Path) -> Header:
    """Read the whole file once; raise at the first problem. Nothing is kept in memory."""
    header = read_header(path)
    for _ in iter_session(path):
        pass
    return header
