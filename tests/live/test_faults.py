"""The fault book over a real handoff and SQLite store: sticky first fault, each fault told once, losses
told with their exact count once the store takes events again, a stop told once to every listener."""

from __future__ import annotations

import time

import pytest

from ledger.core import events as ev
from ledger.live.errors import RecorderError
from ledger.live.faults import Faults
from ledger.live.handoff import Handoff
from ledger.store import SeqConflict, open_store

SID = "7d1e2f3a-4b5c-4d6e-8f9a-0b1c2d3e4f5a"


@pytest.fixture
def store(sqlite_url):
    with open_store(sqlite_url) as s:
        yield s


def _book(store, **kw) -> tuple[Faults, Handoff]:
    # the thread writer: a writer not started yet takes exactly queue_size events and never drains, which
    # is how these tests make a full queue (the process writer takes nothing before its child runs)
    kw.setdefault("writer", "thread")
    box: list[Faults] = []
    h = Handoff(store, SID, on_error=lambda exc: None, on_lost=lambda kind, burst: box[0].lost(kind, burst), **kw)
    box.append(Faults(SID, h))
    return box[0], h


def _put(h: Handoff, n: int) -> list:
    return [h.put(ev.Error(req_id=-1, code=2104, message=str(i)), "live", None, None, time.time_ns(), 1)
            for i in range(n)]


def test_the_first_fault_sticks_and_each_is_told_once(store):
    f, h = _book(store)
    first = RecorderError("disk full")
    f.set(first)
    f.set(RecorderError("later"))
    assert f.first is first
    assert f.next_report(False) == ("RecorderError: disk full", 0)
    assert f.next_report(False) == ("RecorderError: later", 0)
    assert f.next_report(False) is None and not f.to_tell()
    h.close(1.0)


def test_losses_are_announced_at_once_and_counted_exactly_when_the_store_keeps_up(store):
    f, h = _book(store, queue_size=2, full_block_s=0.01, max_block_s=0.02)  # writer not started yet: full
    assert None not in _put(h, 2)
    assert _put(h, 3) == [None, None, None]
    assert f.next_report(False) == ("queue full or writer stopped: events are being LOST", 0)  # once per burst
    assert isinstance(f.first, RecorderError) and "LOST events" in str(f.first)
    assert f.to_tell() and f.next_report(False) is None  # lost, but no room to tell the count yet
    h.start()
    assert h.wait_committed(2, 5.0)
    message, _ = f.next_report(False)  # type: ignore[misc]
    assert message.startswith("events lost while the queue was full") and "'error': 3" in message
    assert h.losses.unreported == 3 and not h.losses.burst and h.blocked_s == 0.0  # the count goes in the event
    h.close(5.0)


def test_a_stop_is_told_once_to_every_listener_and_stops_the_handoff(store):
    f, h = _book(store)
    told: list[str] = []
    f.on_fatal.extend([told.append, lambda why: 1 / 0, told.append])  # a failing listener breaks nothing
    why = f.stop(SeqConflict(SID, 5, 4), loop=None)
    assert "another writer appended to session" in why and h.stopped == why and told == [why, why]
    assert isinstance(f.first, RecorderError) and isinstance(f.first.__cause__, SeqConflict)
    h.close(1.0)


def test_a_store_failure_is_first_told_once_and_an_unrecordable_callback_keeps_its_arguments(store):
    f, h = _book(store)
    assert f.store_failed(OSError("database is down")) is True
    assert f.store_failed(OSError("still down")) is False
    try:
        raise ValueError("bad field")
    except ValueError as exc:
        f.internal("orderStatus", exc, (7, "Submitted"))
    assert f.internal_errors == 1 and str(f.first) == "database is down"
    assert [m for m, _ in f.inbox] == [
        "store append failed: OSError: database is down",
        "unrecorded callback orderStatus: bad field; args: (7, 'Submitted')",
    ]
    h.close(1.0)
