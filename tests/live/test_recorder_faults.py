"""Recorder faults are loud and bounded, against the simulator over a real socket and real SQLite files.

A store file deleted or replaced mid-session, a full disk (a real, small tmpfs), a second writer on the
same session, and a paper `record` on a login that includes a live account.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.ib.library import IB
from ledger.live.recorder import Recorder, RecorderError
from ledger.store import StoreError, open_store
from replay.tws.simulator import Simulator
from tests.support.disk import small_tmpfs
from tests.support.recording import buy_filled, wait_for

pytestmark = pytest.mark.ibclient


def _status_burst(ib: IB, n: int, start: int = 0) -> None:
    """Callbacks through the real wrapper method, as the socket reader delivers them."""
    for i in range(start, start + n):
        ib.wrapper.orderStatus(1, "Submitted", float(i), 100.0, 0.0, 77, 0, 0.0, 1, "", 0.0)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_store_file_deleted_or_replaced_stops_the_session(sim, tmp_path: Path, how: str, caplog) -> None:
    db = tmp_path / "ledger.db"
    ib = IB()
    rec = Recorder.attach(ib, f"sqlite:///{db}")
    caplog.set_level(logging.ERROR, logger="ledger")
    try:
        ib.connect("127.0.0.1", sim.port, clientId=21, timeout=5)
        buy_filled(ib, 10, timeout=10)
        rec.flush(timeout=10)
        committed = rec.committed_seq
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{db}{suffix}")
        if how == "replaced":
            db.write_bytes(b"")  # a new, different file at the same path
        buy_filled(ib, 10, timeout=10)  # more callbacks from the wire
        assert wait_for(ib, lambda: bool(rec.stopped), 10)
    finally:
        ib.disconnect()
    assert f"was {how}" in rec.stopped and not rec.healthy
    assert rec.committed_seq == committed  # nothing "acknowledged" into the lost file
    with pytest.raises(RecorderError, match=f"was {how}"):
        rec.close()
    assert rec.lost > 0 and rec.lost >= rec.last_seq - committed
    stops = [r for r in caplog.records if "RECORDER STOPPED" in r.getMessage()]
    assert len(stops) == 1


def _fill_disk(mnt: Path) -> Path:
    filler = mnt / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


def test_disk_full_fails_fast_counts_losses_and_reports_them_when_writable(sim, tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt", "1m") as mnt:
        url = f"sqlite:///{mnt / 'ledger.db'}"
        ib = IB()
        rec = Recorder.attach(ib, url, queue_size=50, full_block_s=1.0, max_block_s=0.5)
        try:
            ib.connect("127.0.0.1", sim.port, clientId=22, timeout=5)
            rec.flush(timeout=10)
            filler = _fill_disk(mnt)
            t0 = time.monotonic()
            _status_burst(ib, 400)  # the store cannot take them: disk full
            blocked = time.monotonic() - t0
            assert wait_for(ib, lambda: not rec.healthy, 10)
            assert blocked < 0.5 + 1.5, blocked  # bounded in total, not ~1 s per event
            assert rec.lost > 0
            lost_while_full = rec.lost
            filler.unlink()  # space again: the writer's retry goes through
            assert wait_for(ib, lambda: rec.writer.committed_seq == rec.writer.enqueued_seq, 20)
            _status_burst(ib, 1, start=1000)  # the next callback carries the loss report
            with contextlib.suppress(StoreError):
                rec.flush(timeout=10)
            with open_store(url, create=False) as st:
                faults = [e.payload for e in st.read_session(rec.session_id) if e.kind == "recorder_fault"]
            assert sum(f.lost for f in faults) == lost_while_full  # written once the store took events again
        finally:
            ib.disconnect()
            with pytest.raises(StoreError, match="disk is full"):  # the fault is sticky
                rec.close()
        with open_store(url, create=False) as st:
            envs = list(st.read_session(rec.session_id))
        assert [e.seq for e in envs] == list(range(1, len(envs) + 1))
        statuses = [e for e in envs if e.kind == "order_status" and e.payload.perm_id == 77]
        assert len(statuses) + rec.lost_by_kind.get("order_status", 0) == 401
        assert sum(e.payload.lost for e in envs if e.kind == "recorder_fault") == rec.lost
        assert envs[-1].kind == "session_ended"


def test_losing_a_seq_conflict_stops_the_session_with_one_fault(sim, sqlite_url: str, caplog) -> None:
    ib = IB()
    rec = Recorder.attach(ib, sqlite_url)
    caplog.set_level(logging.ERROR, logger="ledger")
    try:
        ib.connect("127.0.0.1", sim.port, clientId=23, timeout=5)
        rec.flush(timeout=10)
        ours = rec.committed_seq
        with open_store(sqlite_url) as other:  # a second writer takes the session's next seqs
            other.append([ev.envelope(rec.session_id, ours + i, ev.OrderStatus(order_id=9, status="Submitted"),
                                      recv_ns=1 + i) for i in (1, 2)])
        stopped_at: list[str] = []
        rec.on_fatal.append(stopped_at.append)
        _status_burst(ib, 2000)
        assert wait_for(ib, lambda: bool(rec.stopped) and bool(stopped_at), 10)
        _status_burst(ib, 2000, start=5000)  # after the stop: counted, not retried, not reported again
    finally:
        ib.disconnect()
    assert "another writer appended to session" in rec.stopped and stopped_at == [rec.stopped]
    with pytest.raises(RecorderError, match="two recorders must not share a session id"):
        rec.close()
    stops = [r for r in caplog.records if "RECORDER STOPPED" in r.getMessage()]
    assert len(stops) == 1
    ours_errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("ledger")]
    assert len(ours_errors) < 10  # not thousands
    with open_store(sqlite_url) as st:
        envs = list(st.read_session(rec.session_id))
    assert len(envs) == ours + 2 and [e.seq for e in envs] == list(range(1, ours + 3))
    assert not [e for e in envs if e.kind == "recorder_fault"]
    assert rec.lost >= 4000


def test_record_refuses_a_mixed_paper_and_live_login(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rec.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IBKR_", "IBLEDGER_"))}
    with Simulator(accounts=("DU1234567", "U7654321")) as s:
        r = subprocess.run(
            [sys.executable, "-m", "ledger.cli", "record", "--store", url, "--host", "127.0.0.1",
             "--port", str(s.port), "--client-id", "24", "--account", "DU1234567"],
            capture_output=True, text=True, timeout=60, env=env,
        )
    out = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 2, out
    assert "live account(s) U7654321" in out and "Traceback" not in out
    with open_store(url, create=False) as st:
        (info,) = st.sessions()
    assert not info.crashed  # stopped cleanly, with its end event
