"""Check a store end to end: every row decodes, seqs are gapless, sessions ended, hash chains match.

One streaming pass over the raw rows in global order (memory grows with the number of sessions, not
events), then a comparison with the per-session side table that the append transaction maintains
(last seq, event count and the ``sha256(prev + state)`` chain head). A chain or count mismatch means a row
was altered, removed or inserted behind the store's back.

Besides: the backend's own integrity check (SQLite ``PRAGMA integrity_check``; PostgreSQL ``amcheck``
when installed), holes in the global positions (SQLite never leaves any, so a hole there is a deleted
row; PostgreSQL sequences skip numbers on rolled-back transactions, so there they are only noted), and
per session the number of events the session read path reaches (through the session index) against the
table scan and the head row: a damaged index that hides rows from ``read_session`` shows up here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from msgspec import Struct

from ledger.core import codec
from ledger.core.events import SchemaError
from ledger.store.base import EMPTY_CHAIN, EventStore, originator_id_for


class Gap(Struct, frozen=True):
    session_id: str
    after_seq: int  # last seq present before the hole (0: the session does not start at 1)
    next_seq: int  # first seq present after it


class Undecodable(Struct, frozen=True):
    position: int
    session_id: str | None
    seq: int
    reason: str


class Tampered(Struct, frozen=True):
    session_id: str
    reason: str


class PositionHole(Struct, frozen=True):
    after: int  # last position present before the hole
    next: int  # first position present after it


class Unreadable(Struct, frozen=True):
    session_id: str
    stored: int  # rows found by the table scan
    readable: int  # rows the session read path (index) reaches
    head: int  # events the head row records


class VerifyReport(Struct, kw_only=True):
    url: str
    sessions_checked: int = 0
    events: int = 0
    max_position: int = 0
    gaps: list[Gap] = []
    crashed: list[str] = []  # sessions with no session_ended event (crashed, or still recording)
    undecodable: list[Undecodable] = []
    tampered: list[Tampered] = []
    integrity: list[str] = []  # the backend's own check (SQLite PRAGMA integrity_check lines)
    integrity_checked: str = ""
    position_holes: list[PositionHole] = []
    position_holes_are_damage: bool = True  # False on PostgreSQL (sequence numbers skip on rollback)
    unreadable: list[Unreadable] = []  # sessions whose read path reaches fewer events than stored
    anchor_file: str = ""  # set when checked against signed session heads (ledger.store.anchor)
    anchored_sessions: int = 0
    anchor_problems: list[str] = []

    @property
    def ok(self) -> bool:
        """No gaps, no undecodable rows, no tampering, no damage. Crashed sessions are facts, not damage."""
        holes = self.position_holes if self.position_holes_are_damage else []
        return not (
            self.gaps
            or self.undecodable
            or self.tampered
            or self.integrity
            or holes
            or self.unreadable
            or self.anchor_problems
        )


class _Seen(Struct):
    session_id: str | None
    last_seq: int = 0
    events: int = 0
    has_end: bool = False
    chain: bytes = EMPTY_CHAIN
    # once a session has a gap or an out-of-order row, its chain no longer means anything useful
    broken: bool = False
    anchor_seq: int = 0  # the anchored seq whose chain head is recorded below (0: not anchored)
    anchor_chain: bytes | None = None


def verify(store: EventStore, anchors: dict[str, Any] | None = None) -> VerifyReport:
    """``anchors``: the latest signed head per session id (:func:`ledger.store.anchor.read_anchors`), if any."""
    heads = {h.originator_id: h for h in store.session_heads()}
    anchored = {str(originator_id_for(sid)): a for sid, a in (anchors or {}).items()}
    report = VerifyReport(url=store.url, position_holes_are_damage=type(store).__name__ != "PostgresEventStore")
    report.integrity, report.integrity_checked = store.integrity_problems()
    seen: dict[str, _Seen] = {}
    sha = hashlib.sha256
    max_pos = 0
    for row in store.raw_rows():
        if row.position != max_pos + 1 and len(report.position_holes) < 1000:
            report.position_holes.append(PositionHole(max_pos, row.position))
        max_pos = row.position
        report.events += 1
        if row.originator_id.startswith("<"):
            report.tampered.append(Tampered(row.originator_id, f"position {row.position}: row written around the "
                                            "store (its session id is not a UUID)"))
            continue
        s = seen.get(row.originator_id)
        if s is None:
            h = heads.get(row.originator_id)
            s = seen[row.originator_id] = _Seen(h.session_id if h is not None else None)
            a = anchored.get(row.originator_id)
            if a is not None:
                s.anchor_seq = a.last_seq
        s.events += 1
        s.chain = sha(s.chain + row.state).digest()
        if s.anchor_seq and s.events == s.anchor_seq:
            s.anchor_chain = s.chain
        try:
            stored_v, env = codec.from_msgpack_stored(row.state)
        except (SchemaError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            report.undecodable.append(Undecodable(row.position, s.session_id, row.seq, str(exc)))
            _advance(report, s, row.originator_id, row.seq)
            continue
        if s.session_id is None:
            s.session_id = env.session_id
        problems = []
        if env.seq != row.seq:
            problems.append(f"row seq {row.seq} holds an envelope with seq {env.seq}")
        if env.session_id != s.session_id or str(originator_id_for(env.session_id)) != row.originator_id:
            problems.append(f"row of session {s.session_id} holds an envelope of session {env.session_id}")
        if row.topic != f"ibledger:{env.kind}:v{stored_v}":
            problems.append(f"position {row.position}: topic {row.topic!r} does not match kind {env.kind!r}")
        for p in problems:
            report.tampered.append(Tampered(s.session_id or row.originator_id, f"position {row.position}: {p}"))
        if env.kind == "session_ended":
            s.has_end = True
        _advance(report, s, row.originator_id, row.seq)
    report.max_position = max_pos
    report.sessions_checked = len(seen)

    for oid, s in seen.items():
        name = s.session_id or oid
        if not s.has_end:
            report.crashed.append(name)
        h = heads.get(oid)
        if h is None:
            report.tampered.append(
                Tampered(name, "events stored without a session head row (written around the store)")
            )
            continue
        if h.last_seq != s.last_seq or h.events != s.events:
            report.tampered.append(
                Tampered(
                    name,
                    f"head says {h.events} events up to seq {h.last_seq}, found {s.events} up to seq {s.last_seq}",
                )
            )
        elif h.chain != s.chain and not s.broken:
            report.tampered.append(Tampered(name, "hash chain mismatch: a stored event was altered"))
        try:
            readable = store.readable_count(h.session_id)
        except Exception as exc:  # noqa: BLE001 - a damaged file may fail this read: that is the finding
            report.integrity.append(f"session {h.session_id}: its events cannot be read by session ({exc})")
            continue
        if readable != s.events or readable != h.events:
            report.unreadable.append(Unreadable(name, s.events, readable, h.events))
    for oid, h in heads.items():
        if oid not in seen:
            report.tampered.append(Tampered(h.session_id, f"head says {h.events} events, none found"))
    if anchors is not None:
        report.anchored_sessions = len(anchored)
        for oid, a in anchored.items():
            s = seen.get(oid)
            what = f"session {a.session_id} (anchored at seq {a.last_seq}, {a.events} events)"
            if s is None:
                report.anchor_problems.append(f"{what}: missing from the store (deleted)")
            elif s.events < a.last_seq:
                report.anchor_problems.append(f"{what}: the store holds only {s.events} events (truncated)")
            elif s.anchor_chain is None or s.anchor_chain.hex() != a.chain:
                report.anchor_problems.append(
                    f"{what}: events 1..{a.last_seq} differ from the anchor (altered, removed, inserted or "
                    f"re-chained)"
                )
    return report


def _advance(report: VerifyReport, s: _Seen, oid: str, seq: int) -> None:
    if seq != s.last_seq + 1:
        report.gaps.append(Gap(s.session_id or oid, s.last_seq, seq))
        s.broken = True
    s.last_seq = max(s.last_seq, seq)
