"""Streamed appends (imports) are all-or-nothing; stale session heads are re-planned, never trusted.

Run on a real SQLite file and a real PostgreSQL schema, like the store contract.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.core.events import Envelope, OrderStatus, SessionEnded, SessionStarted, envelope
from ledger.core.session import derived_id
from ledger.store import SeqConflict, open_store
from ledger.store.verify import verify


def session(sid: str, n: int, start: int = 1) -> Iterator[Envelope]:
    for seq in range(start, start + n):
        if seq == 1:
            p = SessionStarted(library="ib_insync", library_version="0.9.86", client_id=3)
        else:
            p = OrderStatus(order_id=seq, status="Submitted", remaining=1.0, perm_id=10_000 + seq, client_id=3)
        yield envelope(sid, seq, p, recv_ns=1_700_000_000_000_000_000 + seq, mono_ns=seq)


class Boom(Exception):
    pass


def failing_after(envs: Iterator[Envelope], n: int) -> Iterator[Envelope]:
    for i, env in enumerate(envs):
        if i == n:
            raise Boom("bad line")
        yield env


def test_stream_appends_everything_in_order(store_url: str) -> None:
    sid = derived_id("stream", 1)
    with open_store(store_url) as st:
        st.append(list(session(derived_id("stream", 0), 5)))
        before = st.max_position()
        count, last = st.append_stream(session(sid, 2_345), chunk=500)
        assert count == 2_345 and last == before + 2_345 == st.max_position()
        assert [e.seq for e in st.read_session(sid)] == list(range(1, 2_346))
        assert [p for p, _ in st.read_all(after=before)] == list(range(before + 1, last + 1))
        assert verify(st).ok
        assert st.append_stream(iter(())) == (0, last)


@pytest.mark.parametrize("where", ["first chunk", "later chunk"])
def test_stream_failing_anywhere_writes_nothing(store_url: str, where: str) -> None:
    sid = derived_id("stream", where)
    n = 300 if where == "first chunk" else 1_700
    with open_store(store_url) as st:
        st.append(list(session(derived_id("stream", "other"), 3)))
        before = st.max_position()
        with pytest.raises(Boom):
            st.append_stream(failing_after(session(sid, 2_000), n), chunk=500)
        assert st.last_seq(sid) == 0 and st.max_position() == before
        # a seq gap in a later chunk: a conflict, nothing written either
        bad = list(session(sid, 1_200)) + list(session(sid, 10, start=1_202))
        with pytest.raises(SeqConflict):
            st.append_stream(iter(bad), chunk=500)
        assert st.last_seq(sid) == 0 and st.max_position() == before
        # and the store is still writable and consistent afterwards
        assert st.append_stream(session(sid, 20), chunk=7)[0] == 20
        assert verify(st).ok


def test_two_writers_on_one_session_replan_on_stale_heads(store_url: str) -> None:
    sid = derived_id("stale", 1)
    with open_store(store_url) as a, open_store(store_url) as b:
        a.append(list(session(sid, 3)))
        b.append(list(session(sid, 3, start=4)))  # b reads the heads a wrote
        a.append(list(session(sid, 3, start=7)))  # a's own idea of the head (seq 3) is stale
        with pytest.raises(SeqConflict):
            b.append(list(session(sid, 1, start=7)))  # b's (seq 6) is stale too, and 7 is taken
        b.append(list(session(sid, 1, start=10)))
        end = envelope(sid, 11, SessionEnded(reason="done"), recv_ns=1_800_000_000_000_000_000, mono_ns=11)
        a.append([end])
        assert [e.seq for e in a.read_session(sid)] == list(range(1, 12))
        assert verify(a).ok


def test_import_of_a_file_bad_near_its_end_imports_nothing(tmp_path, store_url: str) -> None:
    """The CLI streams the file: the bad line is found after several chunks were already written."""
    import subprocess
    import sys

    from ledger.store.sessionfile import write_session

    sid = derived_id("import", "late-bad")
    path = tmp_path / "big.jsonl"
    write_session(path, session(sid, 12_000), sid, 12_000)
    lines = path.read_bytes().splitlines()
    lines[-2] = lines[-2].replace(b'"seq":11999', b'"seq":12999')
    path.write_bytes(b"\n".join(lines) + b"\n")
    cmd = [sys.executable, "-m", "ledger.cli", "import", str(path), "--store", store_url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert f"{path}:12000:" in r.stderr and "Nothing was imported" in r.stderr and "Traceback" not in r.stderr
    with open_store(store_url) as st:
        assert st.max_position() == 0 and st.last_seq(sid) == 0
