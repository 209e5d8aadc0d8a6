"""The writer process: same contract as the writer thread, commits in a child interpreter.

Real parts: a real child process, a real SQLite file, the real client library against the simulator.
"""

from __future__ import annotations

import pytest

from ledger.core import events as ev
from ledger.core.session import derived_id
from ledger.ib.library import IB, LimitOrder, Stock
from ledger.live.recorder import Recorder
from ledger.store import open_store
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
        assert all(len(b) <= 7 for b, _ in seen) and w.batches == len(seen)
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
        assert errors and "SeqConflict" in str(errors[0])
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
