"""The handoff to the writer on a real SQLite store: gapless seqs, bounded waiting, losses counted, never silent."""

from __future__ import annotations

import time

import pytest

from ledger.core import events as ev
from ledger.live.handoff import Handoff
from ledger.store import open_store

SID = "0b9c2f4e-1d2a-4c3b-9e8f-7a6b5c4d3e2f"


@pytest.fixture
def store(sqlite_url):
    with open_store(sqlite_url) as s:
        yield s


def _handoff(store, lost: list, **kw) -> Handoff:
    # the thread writer: one not started yet takes exactly queue_size events and never drains, which is how
    # these tests make a full queue (the process writer takes nothing before its child runs)
    kw.setdefault("writer", "thread")
    return Handoff(store, SID, on_error=lambda exc: None, on_lost=lambda kind, burst: lost.append((kind, burst)), **kw)


def _put(h: Handoff, payload: ev.Event, reserve: bool = False) -> ev.Envelope | None:
    return h.put(payload, "live", None, None, time.time_ns(), time.monotonic_ns(), reserve)


def test_envelopes_are_numbered_gaplessly_and_committed_in_order(store):
    lost: list = []
    h = _handoff(store, lost)
    h.start()
    envs = [_put(h, ev.Error(req_id=-1, code=2104, message=f"n{i}")) for i in range(25)]
    assert [e.seq for e in envs] == list(range(1, 26)) and h.seq == 25
    assert h.wait_committed(h.seq, 5.0) and h.committed_seq == 25
    assert h.close(5.0) and lost == []
    assert [e.seq for e in store.read_session(SID)] == list(range(1, 26))


def test_a_full_queue_waits_within_its_budget_then_counts_losses_without_consuming_seqs(store):
    lost: list = []
    h = _handoff(store, lost, queue_size=3, full_block_s=0.05, max_block_s=0.08)  # writer not started: it never drains
    assert [_put(h, ev.Error(req_id=-1, code=2104, message="x")).seq for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
    t0 = time.monotonic()
    assert _put(h, ev.Error(req_id=-1, code=2104, message="lost 1")) is None
    assert _put(h, ev.Error(req_id=-1, code=2104, message="lost 2")) is None
    assert _put(h, ev.Error(req_id=-1, code=2104, message="lost 3")) is None  # budget spent: no wait
    waited = time.monotonic() - t0
    assert 0.07 <= waited < 0.5 and 0.07 <= h.blocked_s <= waited
    assert lost == [("error", True), ("error", False), ("error", False)]  # the burst is announced once
    assert (h.seq, h.losses.total, h.losses.by_kind, h.losses.unreported) == (3, 3, {"error": 3}, 3)
    assert _put(h, ev.RecorderFault(message="told", lost=3), reserve=True).seq == 4  # type: ignore[union-attr]
    h.start()
    assert h.wait_committed(4, 5.0) and h.has_room()
    h.end_burst()
    assert (h.blocked_s, h.losses.burst) == (0.0, False)
    assert h.close(5.0)
    assert [e.seq for e in store.read_session(SID)] == [1, 2, 3, 4]


def test_once_stopped_events_are_counted_but_never_queued_nor_reported(store):
    lost: list = []
    h = _handoff(store, lost)
    h.start()
    h.stopped = "another writer appended to the session"
    assert _put(h, ev.Error(req_id=-1, code=2104, message="after the stop")) is None
    assert (h.seq, h.losses.total, h.losses.unreported, lost) == (0, 1, 0, [])
    assert h.close(5.0)


def test_the_process_writer_takes_the_same_handoff(store):
    h = _handoff(store, [], writer="process")
    h.start()
    assert [_put(h, ev.Error(req_id=-1, code=2104, message=str(i))).seq for i in range(5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
    assert h.wait_committed(5, 10.0)
    assert h.close(10.0)
    assert [e.seq for e in store.read_session(SID)] == [1, 2, 3, 4, 5]


def test_the_recorders_default_writer_is_a_child_process_for_our_stores(store):
    """A recorder's handoff without ``writer=`` commits in a child process for our own stores (no GIL
    hand-off on the commit path, no process-wide setting), and what it queues is committed."""
    from ledger.store.writer_process import ProcessWriter

    h = Handoff(store, SID, on_error=lambda exc: None, on_lost=lambda kind, burst: None)
    assert isinstance(h.writer, ProcessWriter)
    h.start()
    assert _put(h, ev.Error(req_id=-1, code=2104, message="x")).seq == 1  # type: ignore[union-attr]
    assert h.wait_committed(1, 10.0) and h.close(5.0)
    assert [e.seq for e in store.read_session(SID)] == [1]
