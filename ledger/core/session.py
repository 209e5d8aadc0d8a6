"""Session identity and the summary the store keeps of each recording session."""

from __future__ import annotations

import uuid

from msgspec import Struct

# Namespace for derived ids (uuid5): the same inputs always give the same id, on any machine.
IBLEDGER_NS = uuid.UUID("6f1d3c2e-9a47-5b0e-8c1d-2f4a6b8c0d1e")


def derived_id(*parts: object) -> str:
    """A deterministic id from its parts (never uuid4: replays must reproduce ids)."""
    return str(uuid.uuid5(IBLEDGER_NS, "\x1f".join(str(p) for p in parts)))


class SessionInfo(Struct, frozen=True, kw_only=True):
    session_id: str
    events: int
    first_seq: int
    last_seq: int
    started_ns: int
    last_ns: int
    has_start: bool
    has_end: bool

    @property
    def crashed(self) -> bool:
        """A session without an end event: the recorder died (or is still running)."""
        return not self.has_end


# Limits every writer enforces (a session id ends up in every message, table and file name; the times are
# stored as signed 64-bit integers by both backends).
MAX_SESSION_ID = 200


def session_id_problem(session_id: object) -> str | None:
    """Why ``session_id`` cannot name a session (None: it can). Checked by every writer and input."""
    if not isinstance(session_id, str):
        return f"session id must be a string, got {type(session_id).__name__}"
    if not session_id.strip():
        return "session id is empty"
    if len(session_id) > MAX_SESSION_ID:
        return f"session id is {len(session_id)} characters long; the limit is {MAX_SESSION_ID}"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in session_id):
        return "session id contains control characters (newline, tab, ...)"
    return None
