"""The writer process: same contract as the writer thread, commits in a child interpreter.

Real parts: a real child process, a real SQLite file, the real client library against the simulator.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.core.session import derived_id
from ledger.ib.library import IB, LimitOrder, Stock
from ledger.live.recorder import Recorder
from ledger.store import SeqConflict, StoreFileLost, open_store
from ledger.store.writer import WriterError
from ledger.store.writer_process import ProcessWriter
from replay.tws.simulator import Simulator
from tests.support.recording import stored, wait_for


def envs(sid: str, n: int, start: int = 1) -> list[ev.Envelope]:
    return [ev.envelope(sid, seq, ev.OrderStatus(order_id=seq, status="Submitted", remaining=1.0, perm_id=seq,
                                                 client_id=3), recv_ns=1_700_000_000_000_000_000 + seq,
                        mono_ns=seq) for seq in range(start, start + n)]


def test_everything_put_is_committed_in_order_and_acknowledged(sqlite_url: str) -> None:
    sid = derived_id("pw", 1)
    seen: list[tuple[list[int], int]] = []
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store, max_batch=7, on_commit=lambda b, ns: seen.append(([e.seq for e in b], ns))).start()
        batch = envs(sid, 500)
        for env in batch:
            assert w.put(env, timeout=5)
        assert w.wait_committed(500, timeout=60)
        assert w.close() is True
        assert (w.committed_seq, w.committed, w.lost, w.error) == (500, 500, 0, None)
        assert [s for b, _ in seen for s in b] == list(range(1, 501))
        assert w.batches == len(seen)
        assert [ns for _, ns in seen] == sorted(ns for _, ns in seen)
        assert w.position == store.max_position()
        assert [e for e in store.read_session(sid)] == batch
    assert not w.put(envs(sid, 1, start=501)[0])  # closed: refused, never silently dropped


def test_a_seq_conflict_stops_the_writer_and_counts_every_event_as_lost(sqlite_url: str) -> None:
    sid = derived_id("pw", 2)
    errors: list[BaseException] = []
    with open_store(sqlite_url) as store:
        store.append(envs(sid, 3))  # another writer owns seqs 1..3
        w = ProcessWriter(store, on_error=errors.append).start()
        for env in envs(sid, 5):  # starts again at 1: a conflict
            w.put(env, timeout=5)
        assert not w.wait_committed(5, timeout=30)
        assert w.close(timeout=5) is False
        assert w.dead and w.committed == 0 and w.lost == 5
        assert errors and isinstance(errors[0], SeqConflict) and w.fatal is errors[0]  # the type crosses over
        assert (errors[0].expected, errors[0].got) == (4, 1)
        assert store.last_seq(sid) == 3


def test_a_store_the_child_cannot_open_fails_loudly(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_store(url) as store:
        store.url = f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}"  # the child opens this one
        with pytest.raises(Exception, match="does not exist"):
            ProcessWriter(store).start()


@pytest.mark.ibclient
def test_recorder_with_the_writer_process_records_a_live_order(sqlite_url: str) -> None:
    with Simulator() as sim:
        ib = IB()
        rec = Recorder.attach(ib, sqlite_url, writer="process")
        try:
            ib.connect("127.0.0.1", sim.port, clientId=3, timeout=5)
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 100, 100.0, orderRef="fill_simple"))
            assert wait_for(ib, lambda: trade.orderStatus.status == "Filled", timeout=10)
            ib.sleep(0.05)
            rec.flush(timeout=30)
            assert rec.committed_seq == rec.last_seq
        finally:
            ib.disconnect()
            rec.close()
    got = stored(sqlite_url, rec.session_id)
    assert [e.seq for e in got] == list(range(1, len(got) + 1))
    assert got[0].kind == "session_started" and got[-1].kind == "session_ended"
    kinds = [e.kind for e in got if e.kind in ("place_order", "exec_details", "commission_report")]
    assert kinds == ["place_order", "exec_details", "commission_report"]


@pytest.mark.parametrize("ring", [True, False], ids=["ring", "pipe"])
def test_both_channels_commit_everything_in_order(sqlite_url: str, ring: bool) -> None:
    sid = derived_id("pw", 10 + ring)
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store, ring=ring, ring_bytes=4096).start()  # a small ring: it wraps many times
        batch = envs(sid, 2000)
        for env in batch:
            assert w.put(env, timeout=10)
        assert w.close() is True and (w.committed_seq, w.lost) == (2000, 0)
        assert list(store.read_session(sid)) == batch


def test_a_killed_child_is_a_loud_fault_and_every_unacknowledged_event_is_counted(sqlite_url: str) -> None:
    sid = derived_id("pw", 20)
    errors: list[BaseException] = []
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store, on_error=errors.append).start()
        for env in envs(sid, 10):
            assert w.put(env, timeout=5)
        assert w.wait_committed(10, timeout=30)
        w._proc.kill()
        w._proc.wait(10)
        deadline = time.monotonic() + 10
        while not w.dead and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.dead and errors and "writer process died" in str(errors[-1])
        assert not w.put(envs(sid, 1, start=11)[0])  # refused, so the recorder counts it
        assert w.close(timeout=1) is True  # nothing was in flight: all 10 sent were acknowledged
        assert (w.committed_seq, w.lost) == (10, 0)


def test_events_in_flight_when_the_child_dies_are_counted_as_lost(sqlite_url: str) -> None:
    sid = derived_id("pw", 21)
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store, on_error=lambda exc: None).start()
        os.kill(w._proc.pid, signal.SIGSTOP)  # frozen: what is put now is never acknowledged
        try:
            for env in envs(sid, 25):
                assert w.put(env, timeout=5)
        finally:
            w._proc.kill()
        assert w.close(timeout=1) is False
        assert w.lost == 25 and w.committed_seq == 0 and w.dead


def test_ctrl_c_in_the_terminal_does_not_stop_the_child(sqlite_url: str) -> None:
    sid = derived_id("pw", 22)
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store).start()
        os.kill(w._proc.pid, signal.SIGINT)  # the terminal sends it to the whole process group
        os.kill(w._proc.pid, signal.SIGTERM)
        time.sleep(0.2)
        for env in envs(sid, 20):
            assert w.put(env, timeout=5)
        assert w.close() is True and w.committed_seq == 20


def test_a_deleted_store_file_reaches_the_parent_as_store_file_lost(tmp_path) -> None:
    db = tmp_path / "ledger.db"
    sid = derived_id("pw", 23)
    errors: list[BaseException] = []
    with open_store(f"sqlite:///{db}") as store:
        w = ProcessWriter(store, on_error=errors.append).start()
        assert w.put(envs(sid, 1)[0], timeout=5) and w.wait_committed(1, 30)
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{db}{suffix}")
        for env in envs(sid, 5, start=2):
            w.put(env, timeout=5)
        assert not w.wait_committed(6, timeout=30)
        assert isinstance(w.fatal, StoreFileLost) and isinstance(errors[0], StoreFileLost)
        assert "was deleted" in str(w.fatal)
        assert w.close(timeout=1) is False and w.lost == 5


def test_an_orphaned_child_takes_nothing_more_and_exits(tmp_path) -> None:
    """The recorder's process is killed (-9) without closing: the store stops changing with it (what was
    not acknowledged is lost, as with the thread writer) and the child exits on its own."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    sid = derived_id("pw", 24)
    script = (
        "import os, sys, time\n"
        "from ledger.store import open_store\n"
        "from ledger.store.writer_process import ProcessWriter\n"
        "from tests.store.test_writer_process import envs\n"
        f"store = open_store({url!r})\n"
        "w = ProcessWriter(store).start()\n"
        "os.kill(w._proc.pid, 19)\n"  # SIGSTOP: nothing is acknowledged before the parent dies
        f"for env in envs({sid!r}, 300):\n"
        "    assert w.put(env, timeout=5)\n"
        "print(w._proc.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        child = int(parent.stdout.readline())
    finally:
        parent.kill()
        parent.wait(10)
    os.kill(child, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists() and \
            "zombie" not in Path(f"/proc/{child}/status").read_text().lower():
        time.sleep(0.05)
    assert not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    with open_store(url) as store:
        got = list(store.read_session(sid))
    assert got == []  # nothing was acknowledged, nothing is written after the recorder died


@pytest.mark.postgres
def test_the_writer_process_commits_to_postgresql(pg_schema_url: str) -> None:
    sid = derived_id("pw", 30)
    with open_store(pg_schema_url) as store:
        w = ProcessWriter(store).start()
        batch = envs(sid, 300)
        for env in batch:
            assert w.put(env, timeout=5)
        assert w.close() is True and (w.committed_seq, w.lost) == (300, 0)
        assert list(store.read_session(sid)) == batch
        assert w.position == store.max_position()


def test_a_child_that_dies_while_starting_fails_at_once(sqlite_url: str, monkeypatch) -> None:
    with open_store(sqlite_url) as store:
        monkeypatch.setattr(sys, "executable", shutil.which("false"))  # an interpreter that exits at once
        t0 = time.monotonic()
        with pytest.raises(WriterError, match=r"exited while starting \(exit code 1\)"):
            ProcessWriter(store, start_timeout=60).start()
        assert time.monotonic() - t0 < 10  # told at once, not after the start timeout


def test_auto_picks_the_process_for_our_backends_and_the_thread_otherwise(sqlite_url: str) -> None:
    from ledger.store.sqlite import SQLiteEventStore
    from ledger.store.writer import Writer
    from ledger.store.writer_process import make_writer, reopenable

    class Wrapped(SQLiteEventStore):
        pass

    with open_store(sqlite_url) as store:
        assert reopenable(store)
        store.__class__ = Wrapped  # state a URL may not carry: never reopened behind the user's back
        assert not reopenable(store)
        w = make_writer("auto", store)
        assert isinstance(w, Writer)
        with pytest.raises(ValueError, match="writer must be"):
            make_writer("fork", store)
        store.__class__ = SQLiteEventStore


def test_the_trace_names_when_each_frame_was_taken_and_committed(sqlite_url: str, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``IBLEDGER_WRITER_TRACE`` set, the child writes its timings at exit: frames taken in order (all of
    them), commits covering every seq once, in order, on the parent's monotonic clock; unset, nothing."""
    import msgspec

    from ledger.store.writer_process import TRACE_ENV

    trace = tmp_path / "writer.trace"
    sid = derived_id("pw-trace", 1)
    monkeypatch.setenv(TRACE_ENV, str(trace))
    before = time.monotonic_ns()
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store, max_batch=7).start()
        monkeypatch.delenv(TRACE_ENV)
        for i, env in enumerate(envs(sid, 200)):
            assert w.put(env, timeout=5)
            if i % 50 == 49:
                time.sleep(0.1)  # let the child fall asleep: the next put wakes it
        assert w.wait_committed(200, timeout=60) and w.close() is True
    after = time.monotonic_ns()
    recs = msgspec.msgpack.decode(trace.read_bytes())
    pops = [r for r in recs if r[0] == "pop"]
    commits = [r for r in recs if r[0] == "commit"]
    sleeps = [r for r in recs if r[0] == "sleep"]
    assert sum(r[2] for r in pops) == 200
    assert [s for r in commits for s in range(r[3], r[4] + 1)] == list(range(1, 201))
    assert all(before <= r[1] <= r[2] <= after for r in commits + sleeps)
    assert any(r[3] for r in sleeps)  # woken by the signal at least once
    written = trace.read_bytes()
    with open_store(sqlite_url) as store:  # the variable unset: the next child records nothing
        w = ProcessWriter(store).start()
        assert w.put(envs(derived_id("pw-trace", 2), 1)[0], timeout=5) and w.close() is True
    assert trace.read_bytes() == written


def test_a_backlog_is_committed_in_one_transaction(sqlite_url: str, tmp_path: Path) -> None:
    """While the store is locked the child cannot commit; everything that piles up meanwhile goes into the
    next commit, one transaction (one fsync), not one per ``max_batch`` (the thread writer's GIL bound)."""
    import sqlite3

    sid = derived_id("pw-backlog", 1)
    seen: list[list[int]] = []
    with open_store(sqlite_url) as store:
        w = ProcessWriter(store, max_batch=7, on_commit=lambda b, ns: seen.append([e.seq for e in b])).start()
        blocker = sqlite3.connect(str(tmp_path / "ledger.db"), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the child's append waits for it
        try:
            for env in envs(sid, 500):
                assert w.put(env, timeout=5)
            time.sleep(0.3)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert w.wait_committed(500, timeout=60) and w.close() is True
    assert [s for b in seen for s in b] == list(range(1, 501))
    assert len(seen) <= 3 and max(len(b) for b in seen) >= 400
