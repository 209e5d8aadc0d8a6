"""What ``kill -9`` of a recording process can lose: nothing that was acknowledged.

A subprocess attaches a recorder to a real IB client and drives a fast burst of raw callbacks through
the client's own wrapper methods (orderStatus, execDetails, commissionReport, error), printing every
seq the store acknowledged. The test SIGKILLs it at a seeded random moment, then checks that every
acknowledged event is in the store, the store opens cleanly, the session is gapless and it is listed
as crashed (no ``session_ended``).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from ledger.store import open_store

pytestmark = pytest.mark.ibclient

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import logging, os, sys
    logging.disable(logging.CRITICAL)  # the library complains about orders it does not know: expected
    from ledger.ib.library import IB, Stock, ib as lib
    from ledger.live.recorder import Recorder

    url, sid = sys.argv[1], sys.argv[2]
    ib = IB()
    rec = Recorder.attach(ib, url, session_id=sid, queue_size=50_000)
    rec.on_commit(lambda batch, ns: os.write(1, b"%d\\n" % batch[-1].seq))
    w = ib.wrapper
    contract = Stock("AAPL", "SMART", "USD", conId=265598)
    os.write(1, b"READY\\n")
    i = 0
    while True:
        i += 1
        w.orderStatus(i, "Submitted", 0.0, 100.0, 0.0, 5000 + i, 0, 0.0, 1, "", 0.0)
        ex = lib.Execution(execId=f"0000e0d5.{i:08x}.01.01", orderId=i, permId=5000 + i, clientId=1,
                           shares=100.0, price=100.0, cumQty=100.0, avgPrice=100.0, side="BOT",
                           acctNumber="DU1234567")
        w.execDetails(-1, contract, ex)
        w.commissionReport(lib.CommissionReport(execId=ex.execId, commission=1.0, currency="USD"))
        if i % 7 == 0:
            w.error(i, 399, "Order Message: warning", "")
        if i % 200 == 0:
            rec.flush(5.0)  # pace the burst a little so kills land mid-stream, not only mid-queue
    """
)


def _run_and_kill(tmp_path: Path, url: str, seed: int) -> tuple[str, int, list[int]]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    sid = f"crash-{seed}-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, str(script), url, sid], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(ROOT))
    acked: list[int] = []
    ready = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if line == b"READY":
                ready.set()
            elif line:
                acked.append(int(line))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        assert ready.wait(20), proc.stderr.read().decode() if proc.poll() is not None else "child not ready"
        time.sleep(random.Random(seed).uniform(0.05, 0.6))
        assert proc.poll() is None, proc.stderr.read().decode()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    t.join(5)
    assert proc.returncode == -signal.SIGKILL
    return sid, max(acked) if acked else 0, acked


@pytest.mark.parametrize("seed", [11, 23, 57])
def test_kill_9_loses_nothing_acknowledged_sqlite(tmp_path, seed):
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    sid, last_acked, acked = _run_and_kill(tmp_path, url, seed)
    _check(url, sid, last_acked, acked)


def test_kill_9_loses_nothing_acknowledged_postgresql(tmp_path, pg_schema_url):
    sid, last_acked, acked = _run_and_kill(tmp_path, pg_schema_url, 5)
    _check(pg_schema_url, sid, last_acked, acked)


def _check(url: str, sid: str, last_acked: int, acked: list[int]) -> None:
    assert last_acked > 10, "the child acknowledged (almost) nothing before the kill"
    assert acked == sorted(acked)  # acknowledgements only move forward
    with open_store(url) as store:  # opens cleanly after the kill
        envs = list(store.read_session(sid))  # every row decodes
        seqs = [e.seq for e in envs]
        assert seqs == list(range(1, len(seqs) + 1))  # gapless
        assert len(seqs) >= last_acked  # everything acknowledged is there (possibly a little more)
        assert envs[0].kind == "session_started"
        assert all(e.kind != "session_ended" for e in envs)
        (info,) = [s for s in store.sessions() if s.session_id == sid]
        assert info.crashed and info.has_start and not info.has_end and info.last_seq == len(seqs)
        # and the store keeps working: a new session can be recorded next to the crashed one
        from ledger.ib.library import IB
        from ledger.live.recorder import Recorder

        rec = Recorder.attach(IB(), store)
        rec.close()
        assert not [s for s in store.sessions() if s.session_id == rec.session_id][0].crashed
    kinds = {e.kind for e in envs}
    assert {"order_status", "exec_details", "commission_report"} <= kinds


RECORD_CHILD = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=logging.WARNING)
    from ledger.live.recording import run_recording

    port, url = int(sys.argv[1]), sys.argv[2]
    result = run_recording("127.0.0.1", port, 31, url, "DU1234567", mode="simulation",
                           on_ready=lambda rec: print("SESSION", rec.session_id, flush=True),
                           on_state=lambda s, d: print("STATE", s, flush=True))
    print("RESULT", result.reason, result.events, result.committed_seq, result.ok, flush=True)
    """
)


def test_run_recording_stops_cleanly_on_sigterm(tmp_path):
    """``ibledger record``'s loop: connected to the simulator, SIGTERM → disconnect, session_ended, exit 0."""
    from replay.tws.simulator import Simulator

    url = f"sqlite:///{tmp_path / 'rec.db'}"
    script = tmp_path / "record_child.py"
    script.write_text(RECORD_CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with Simulator() as sim:
        proc = subprocess.Popen([sys.executable, str(script), str(sim.port), url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, cwd=str(ROOT), text=True)
        lines: list[str] = []
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 20
            for line in proc.stdout:
                lines.append(line.strip())
                if line.startswith("STATE connected") or time.monotonic() > deadline:
                    break
            assert "STATE connected" in lines, (lines, proc.stderr.read() if proc.poll() is not None else "")
            time.sleep(0.2)  # let the connect reconciliation finish
            sim.inject_manual_order("MSFT", "BUY", 7, 300.0)  # something happens while recording
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines += out.splitlines()
    assert proc.returncode == 0, err
    sid = next(line.split()[1] for line in lines if line.startswith("SESSION"))
    result = next(line.split()[1:] for line in lines if line.startswith("RESULT"))
    assert result[0] == "SIGTERM" and result[1] == result[2] and result[3] == "True"
    with open_store(url) as store:
        envs = list(store.read_session(sid))
        (info,) = store.sessions()
    assert not info.crashed
    kinds = [e.kind for e in envs]
    assert kinds[:3] == ["session_started", "connected", "reconcile_started"]
    assert kinds[-2:] == ["disconnected", "session_ended"]
    assert envs[-1].payload.reason == "SIGTERM"
    assert envs[0].payload.account == "DU1234567" and envs[0].payload.mode == "simulation"
    # a manual TWS order fills meanwhile: its order messages go to clientId 0, the position update to us
    assert any(e.kind == "position" and e.payload.symbol == "MSFT" and e.payload.position == 7 for e in envs)
