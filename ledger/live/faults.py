"""What went wrong while recording, and what must still be told: the recorder's fault book.

A fault is sticky: the first one is kept (``first``), ``healthy`` stays False, and ``flush()`` /
``close()`` re-raise it. Every fault is also *told*: a ``RecorderFault`` event (the governor blocks new
orders from it on) waits in ``inbox`` until the recorder can record it -- on the IB loop, or with the
next event when no loop runs -- and lost events are told once the store takes events again, with their
exact count. A session stopped for good (another writer on its seqs, the store file gone) is told once,
to the ``on_fatal`` listeners, and never again.

This module decides *what* to tell and keeps the book; the recorder records the events (it owns the
recording path and the lock), so nothing here can block the IB loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from ledger.live.errors import RecorderError
from ledger.live.handoff import Handoff
from ledger.store import SeqConflict

log = logging.getLogger("ledger.live.recorder")

__all__ = ["Faults"]


class Faults:
    """The faults of one recording session (see the module docstring)."""

    def __init__(self, session_id: str, handoff: Handoff) -> None:
        self.session_id = session_id
        self._handoff = handoff
        self.first: BaseException | None = None  # the first fault: sticky, re-raised by flush / close
        self.inbox: deque[tuple[str, int]] = deque()  # (message, lost) to record as RecorderFault
        self.on_fatal: list[Callable[[str], None]] = []  # told once, on the IB loop when there is one
        self.internal_errors = 0  # callbacks that could not be converted or recorded
        self._lost_logged_at = 0.0

    def set(self, exc: BaseException, *, report: bool = True) -> None:
        """A fault: kept if it is the first, logged, and (``report``) queued to be told as an event."""
        if self.first is None:
            self.first = exc
        log.error("RECORDER FAULT (session %s): %s — new orders are blocked", self.session_id, exc)
        if report:
            self.inbox.append((f"{type(exc).__name__}: {exc}", 0))

    def lost(self, kind: str, burst_started: bool) -> None:
        """An event could not be queued (the handoff counted it): a fault, loudly, at most once a second."""
        if burst_started:
            # tell the engine now (through the reserve), not when the queue has room again
            self.inbox.append(("queue full or writer stopped: events are being LOST", 0))
        now = time.monotonic()
        if self.first is None or now - self._lost_logged_at > 1.0:
            self._lost_logged_at = now
            losses = self._handoff.losses
            self.set(
                RecorderError(f"recorder LOST events: queue full or writer stopped ({losses.total} lost so "
                              f"far, latest a {kind}; by kind: {losses.by_kind})"),
                report=False,
            )

    def store_failed(self, exc: BaseException) -> bool:
        """The writer could not append (writer thread: never take the recorder's lock here). True when
        this is the first fault, to be told on the IB loop."""
        if self.first is not None:
            return False
        self.first = exc
        log.error("RECORDER FAULT (session %s): store append failed: %s: %s — new orders are blocked; "
                  "retrying", self.session_id, type(exc).__name__, exc)
        self.inbox.append((f"store append failed: {type(exc).__name__}: {exc}", 0))
        return True

    def stop(self, exc: BaseException, loop: asyncio.AbstractEventLoop | None) -> str:
        """The session cannot go on (another writer owns its seqs, or the store file is gone): stopped
        for good with one fault, one log line, the listeners told once. Returns why."""
        if isinstance(exc, SeqConflict):
            why = (f"another writer appended to session {self.session_id} (expected seq {exc.expected}, got "
                   f"{exc.got}): two recorders must not share a session id; this recorder stopped")
        else:
            why = f"{exc}; this recorder stopped"
        self._handoff.stopped = why
        self.first = RecorderError(why)
        self.first.__cause__ = exc
        log.error("RECORDER STOPPED (session %s): %s — new orders are blocked", self.session_id, why)
        for fn in list(self.on_fatal):
            try:
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(fn, why)
                else:
                    fn(why)
            except Exception:  # noqa: BLE001 - a listener never breaks the stop
                log.exception("on_fatal listener failed")
        return why

    def internal(self, where: str, exc: BaseException, args: tuple = ()) -> None:
        """A callback could not be converted or recorded: what we have of it is queued to be told."""
        self.internal_errors += 1
        log.exception("recorder could not record %s (the library still handles it)", where)
        try:
            text = repr(args)[:4000]
        except Exception:  # noqa: BLE001
            text = "<unrepresentable>"
        self.set(RecorderError(f"could not record {where}: {type(exc).__name__}: {exc}"), report=False)
        self.inbox.append((f"unrecorded callback {where}: {exc}; args: {text}", 0))

    def to_tell(self) -> bool:
        """Something waits to be told (a fault, or losses not yet reported)."""
        return bool(self.inbox) or self._handoff.losses.unreported > 0

    def next_report(self, force: bool) -> tuple[str, int] | None:
        """The next ``RecorderFault`` to record as (message, lost), or None for now. Lost events are told
        once the queue has room again (or at close, ``force``); telling them ends the loss burst."""
        if self.inbox:
            return self.inbox.popleft()
        h = self._handoff
        if h.losses.unreported and (force or h.has_room()):
            h.end_burst()  # the store keeps up again: a new burst gets a new budget
            return f"events lost while the queue was full (by kind so far: {h.losses.by_kind})", 0
        return None
