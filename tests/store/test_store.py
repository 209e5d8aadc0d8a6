"""Store contract: one suite, run on a real SQLite file and a real PostgreSQL schema."""

from __future__ import annotations

import multiprocessing as mp
import uuid

import msgspec
import pytest
from eventsourcing.persistence import StoredEvent

import ledger.store.base as store_mod
from ledger.core import codec
from ledger.core.events import (
    KINDS,
    PAYLOAD_TYPES,
    CancelOrder,
    CommissionReport,
    CompletedOrder,
    Connected,
    CurrentTime,
    Disconnected,
    Error,
    Event,
    ExecDetails,
    ExecDetailsEnd,
    GlobalCancel,
    GovernorDecision,
    ManagedAccounts,
    ModifyOrder,
    NextValidId,
    OpenOrder,
    OrderStatus,
    PlaceOrder,
    Position,
    ReconcileEnded,
    ReconcileStarted,
    RecorderFault,
    SchemaError,
    SessionEnded,
    SessionStarted,
    envelope,
)
from ledger.core.session import derived_id
from ledger.store import (
    EventStore,
    SeqConflict,
    StoreError,
    StoreURLError,
    UndecodableEvent,
    open_store,
    parse_url,
    redact_url,
)
from ledger.store.verify import verify

# --- samples ----------------------------------------------------------------------------------

CONTRACT = {"symbol": "AAPL", "secType": "STK", "conId": 265598, "exchange": "SMART", "currency": "USD"}
ORDER = {
    "orderId": 7,
    "action": "BUY",
    "totalQuantity": 100.0,
    "lmtPrice": 187.25,
    "orderRef": "ref-1",
    "algoParams": [],
    "nested": {"a": [1, 2.5, None, True]},
}


def sample_payloads() -> list[Event]:
    """One instance of every event kind, with non-default values where it matters."""
    samples: list[Event] = [
        SessionStarted(
            library="ib_insync",
            library_version="0.9.86",
            client_id=3,
            host="127.0.0.1",
            port=7497,
            account="DU123",
            server_version=176,
            config_hash="abc",
            ibledger_version="0.1.0",
        ),
        Connected(host="127.0.0.1", port=7497, client_id=3, server_version=176, connection_time="20240101 09:30:00"),
        NextValidId(order_id=7),
        ManagedAccounts(accounts="DU123,DU456"),
        CurrentTime(time=1_700_000_000),
        PlaceOrder(
            order_id=7,
            client_id=3,
            account="DU123",
            symbol="AAPL",
            sec_type="STK",
            con_id=265598,
            action="BUY",
            total_qty=100.0,
            order_type="LMT",
            lmt_price=187.25,
            tif="DAY",
            order_ref="ref-1",
            contract=CONTRACT,
            order=ORDER,
        ),
        ModifyOrder(order_id=7, total_qty=50.0, lmt_price=187.5, order_type="LMT", contract=CONTRACT),
        OrderStatus(order_id=7, status="Submitted", remaining=100.0, perm_id=99, client_id=3),
        OpenOrder(
            order_id=7,
            perm_id=99,
            status="Submitted",
            contract=CONTRACT,
            order=ORDER,
            order_state={"status": "Submitted", "commission": 1.7976931348623157e308},
        ),
        CompletedOrder(order_id=0, perm_id=99, status="Filled", contract=CONTRACT),
        ExecDetails(
            exec_id="0001f4e8.65a1b2c3.01.01",
            order_id=7,
            perm_id=99,
            shares=40.0,
            price=187.2,
            cum_qty=40.0,
            avg_price=187.2,
            contract=CONTRACT,
            execution={"execId": "0001f4e8.65a1b2c3.01.01"},
        ),
        ExecDetailsEnd(req_id=5),
        CommissionReport(exec_id="0001f4e8.65a1b2c3.01.01", commission=1.0, currency="USD", realized_pnl=None),
        Error(req_id=7, code=202, message="Order Canceled - reason: ünïcødé ✓", advanced_order_reject_json="{}"),
        Position(account="DU123", con_id=265598, symbol="AAPL", position=40.0, avg_cost=187.2, contract=CONTRACT),
        CancelOrder(order_id=7, perm_id=99, reason="user"),
        GlobalCancel(reason="kill switch"),
        GovernorDecision(
            decision="BLOCK",
            reason="MAX_NOTIONAL",
            action="place",
            order_id=8,
            symbol="AAPL",
            trading_state="HALTED",
            details={"limit": 10_000.0, "notional": 18_725.0, "why": "x"},
        ),
        ReconcileStarted(reason="reconnect"),
        ReconcileEnded(ok=False, unknown=["executions"], open_orders=1),
        RecorderFault(message="store slow", lost=0),
        Disconnected(reason="peer reset"),
    ]
    have = {type(p) for p in samples}
    # kinds whose defaults are all we need
    samples += [t() for t in PAYLOAD_TYPES if t not in have and t is not SessionEnded]  # type: ignore[call-arg]
    samples.append(SessionEnded(reason="normal", events=len(samples) + 1))
    return samples


def make_session(
    session_id: str,
    payloads,
    *,
    start_seq: int = 1,
    t0: int = 1_700_000_000_000_000_000,
    source: str = "live",
):
    return [
        envelope(
            session_id,
            start_seq + i,
            p,
            recv_ns=t0 + i * 1000,
            mono_ns=i,
            source=source,  # type: ignore[arg-type]
            correlation_id=f"c{i}" if i % 3 == 0 else None,
            causation_id=f"k{i}" if i % 4 == 0 else None,
        )
        for i, p in enumerate(payloads)
    ]


def statuses(session_id: str, n: int, start_seq: int = 1, t0: int = 1_000, tag: str = ""):
    return [
        envelope(
            session_id,
            start_seq + i,
            OrderStatus(order_id=start_seq + i, status="Submitted", why_held=tag),
            recv_ns=t0 + i,
        )
        for i in range(n)
    ]


SID_A = derived_id("test-session", "A")
SID_B = derived_id("test-session", "B")


# --- contract ---------------------------------------------------------------------------------


def test_roundtrip_every_kind(store: EventStore):
    payloads = sample_payloads()
    assert {type(p) for p in payloads} == set(PAYLOAD_TYPES) and len(KINDS) == len(PAYLOAD_TYPES)
    envs = make_session(SID_A, payloads)
    last = store.append(envs)
    assert last == store.max_position() > 0
    assert list(store.read_session(SID_A)) == envs
    assert [e for _, e in store.read_all()] == envs
    assert list(store.read_session(SID_A, from_seq=5)) == envs[4:]
    assert store.last_seq(SID_A) == len(envs)
    assert store.last_seq(SID_B) == 0
    # bytes are what the codec writes (lossless, including unicode and nested raw mappings)
    assert [codec.to_msgpack(e) for _, e in store.read_all()] == [codec.to_msgpack(e) for e in envs]


def test_non_uuid_session_ids(store: EventStore):
    ids = ["rec-2024-01-02", "11111111-2222-3333-4444-555555555555", "11111111222233334444555555555555"]
    for sid in ids:
        store.append(statuses(sid, 3))
    for sid in ids:
        assert [e.seq for e in store.read_session(sid)] == [1, 2, 3]
        assert {e.session_id for e in store.read_session(sid)} == {sid}
    assert sorted(s.session_id for s in store.sessions()) == sorted(ids)


def test_session_ids_with_quoting_characters_round_trip_exactly(store: EventStore):
    """Array literals are built by hand for PostgreSQL: quotes, backslashes, braces, commas, spaces and
    non-ASCII in a session id (and every byte value in the state) must come back unchanged."""
    ids = ['a"b', "back\\slash\\", "{brace},comma", " spaced  out ", "NULL", "ünï-cødé ✓", '\\"{,}\\']
    for sid in ids:
        store.append(statuses(sid, 2))
        store.append(statuses(sid, 1, start_seq=3))
    heads = {s.session_id: s for s in store.sessions()}
    for sid in ids:
        assert [(e.session_id, e.seq) for e in store.read_session(sid)] == [(sid, 1), (sid, 2), (sid, 3)]
        assert heads[sid].last_seq == 3 and heads[sid].events == 3
    report = verify(store)  # the hash chains the heads carry are the ones recomputed from the rows
    assert report.ok, report


def test_append_returns_position_of_last_event(store: EventStore):
    p1 = store.append(statuses(SID_A, 3))
    p2 = store.append(statuses(SID_B, 2))
    p3 = store.append(statuses(SID_A, 1, start_seq=4))
    assert p1 < p2 < p3 == store.max_position()
    positions = [p for p, _ in store.read_all()]
    assert positions == sorted(positions) and len(positions) == 6
    assert positions[2] == p1 and positions[4] == p2


def test_batch_with_gap_writes_nothing(store: EventStore):
    store.append(statuses(SID_A, 2))
    before = store.max_position()
    ok_b = statuses(SID_B, 3)
    bad_a = statuses(SID_A, 3, start_seq=3)
    bad_a = bad_a[:1] + bad_a[2:]  # 3, 5: gap
    with pytest.raises(SeqConflict) as ei:
        store.append(ok_b + bad_a)
    assert (ei.value.session_id, ei.value.expected, ei.value.got) == (SID_A, 4, 5)
    assert SID_A in str(ei.value) and "expected seq 4, got 5" in str(ei.value)
    assert store.max_position() == before
    assert store.last_seq(SID_B) == 0 and list(store.read_session(SID_B)) == []
    assert [s.session_id for s in store.sessions()] == [SID_A]
    # the store is still usable and the same session continues from where it was
    store.append(statuses(SID_A, 1, start_seq=3))
    assert store.last_seq(SID_A) == 3


def test_seq_conflicts(store: EventStore):
    with pytest.raises(SeqConflict) as ei:
        store.append(statuses(SID_A, 1, start_seq=2))  # first seq must be 1
    assert (ei.value.expected, ei.value.got) == (1, 2)
    store.append(statuses(SID_A, 3))
    with pytest.raises(SeqConflict) as ei:
        store.append(statuses(SID_A, 1, start_seq=3))  # duplicate (a 2nd writer)
    assert (ei.value.expected, ei.value.got) == (4, 3) and "duplicate" in str(ei.value)
    with pytest.raises(SeqConflict) as ei:
        store.append(statuses(SID_A, 1, start_seq=6))  # gap
    assert (ei.value.expected, ei.value.got) == (4, 6) and "gap" in str(ei.value)
    dup_in_batch = statuses(SID_A, 1, start_seq=4) * 2
    with pytest.raises(SeqConflict) as ei:
        store.append(dup_in_batch)
    assert (ei.value.expected, ei.value.got) == (5, 4)
    gap_late = statuses(SID_A, 2, start_seq=6) + statuses(SID_A, 1, start_seq=9)
    with pytest.raises(SeqConflict) as ei:  # the stored seq is what the first event must follow
        store.append(gap_late)
    assert (ei.value.expected, ei.value.got) == (4, 6)
    assert store.last_seq(SID_A) == 3
    with pytest.raises(StoreError):
        store.append([envelope(SID_A, 0, GlobalCancel(), recv_ns=1)])
    with pytest.raises(StoreError):
        store.append(["not an envelope"])  # type: ignore[list-item]
    assert store.append([]) == store.max_position()


def test_read_all_order_after_limit_and_paging(store: EventStore, monkeypatch):
    monkeypatch.setattr(store_mod, "PAGE_SIZE", 7)
    sessions = [derived_id("s", i) for i in range(3)]
    expected = []
    for round_ in range(5):
        batch = [e for i, sid in enumerate(sessions) for e in statuses(sid, i + 1, start_seq=1 + round_ * (i + 1))]
        store.append(batch)
        expected += batch
    got = list(store.read_all())
    assert [e for _, e in got] == expected
    positions = [p for p, _ in got]
    assert positions == sorted(set(positions))
    mid = positions[10]
    assert [p for p, _ in store.read_all(after=mid)] == positions[11:]
    assert [p for p, _ in store.read_all(after=mid, limit=9)] == positions[11:20]
    assert list(store.read_all(after=positions[-1])) == []
    assert list(store.read_all(limit=0)) == []
    for i, sid in enumerate(sessions):
        assert [e.seq for e in store.read_session(sid)] == list(range(1, 5 * (i + 1) + 1))
        assert [e.seq for e in store.read_session(sid, from_seq=8)] == list(range(8, 5 * (i + 1) + 1))


def test_sessions_and_crash_detection(store: EventStore):
    done = make_session(
        SID_B,
        [SessionStarted(library="x", library_version="1"), NextValidId(order_id=1), SessionEnded()],
        t0=2_000,
    )
    crashed = make_session(SID_A, [SessionStarted(library="x", library_version="1"), NextValidId(order_id=1)], t0=1_000)
    headless = statuses("no-start", 2, t0=3_000)
    store.append(done[:1])
    store.append(crashed + headless)
    store.append(done[1:])
    infos = store.sessions()
    assert [s.session_id for s in infos] == [SID_A, SID_B, "no-start"]  # by first event time
    a, b, c = infos
    assert (a.has_start, a.has_end, a.crashed, a.events, a.first_seq, a.last_seq) == (
        True,
        False,
        True,
        2,
        1,
        2,
    )
    assert (b.has_start, b.has_end, b.crashed, b.events, b.last_seq) == (True, True, False, 3, 3)
    assert (b.started_ns, b.last_ns) == (2_000, 2_000 + 2 * 1000)
    assert (c.has_start, c.has_end) == (False, False)
    assert verify(store).crashed == [SID_A, "no-start"]


def test_find_session(store: EventStore):
    for sid in ("abc-111", "abc-222", "abd-333"):
        store.append(statuses(sid, 1))
    assert store.find_session("abc-1") == "abc-111"
    assert store.find_session("abd") == "abd-333"
    assert store.find_session("abc-222") == "abc-222"
    with pytest.raises(StoreError, match="ambiguous"):
        store.find_session("abc")
    with pytest.raises(StoreError, match="no session"):
        store.find_session("zzz")
    with pytest.raises(StoreError, match="no session"):
        store.find_session("ab%")  # no LIKE wildcards
    with pytest.raises(StoreError):
        store.find_session("")


def test_undecodable_row_is_a_schema_error(store: EventStore):
    store.append(statuses(SID_A, 2))
    # written around the store's API, through the library's own recorder: bytes no ibledger can read
    store.recorder.insert_events(
        [StoredEvent(uuid.UUID(derived_id("garbage")), 1, "ibledger:bogus:v1", b"\xc1\xc1not msgpack")]
    )
    unknown_kind = msgspec.msgpack.encode(
        {
            "session_id": "x",
            "seq": 1,
            "recv_ns": 0,
            "mono_ns": 0,
            "source": "live",
            "payload": {"kind": "from_the_future"},
        }
    )
    store.recorder.insert_events([StoredEvent(uuid.UUID(derived_id("future")), 1, "ibledger:x:v1", unknown_kind)])
    pos_bad = store.max_position()
    with pytest.raises(UndecodableEvent) as ei:
        list(store.read_all())
    assert isinstance(ei.value, SchemaError) and isinstance(ei.value, StoreError)
    assert ei.value.position == pos_bad - 1 and f"position {pos_bad - 1}" in str(ei.value)
    assert [e.seq for _, e in store.read_all(limit=2)] == [1, 2]  # rows before it still read
    with pytest.raises(UndecodableEvent, match="from_the_future"):
        list(store.read_all(after=pos_bad - 1))
    report = verify(store)
    assert [u.position for u in report.undecodable] == [pos_bad - 1, pos_bad]
    assert not report.ok and report.events == 4


def test_verify_clean_and_tampered(store: EventStore, monkeypatch):
    envs = make_session(SID_A, sample_payloads())
    store.append(envs[:5])
    store.append(envs[5:])
    store.append(statuses(SID_B, 4))
    report = verify(store)
    assert report.ok, report
    assert (report.sessions_checked, report.events, report.crashed) == (2, len(envs) + 4, [SID_B])
    assert report.max_position == store.max_position()

    # alter one stored event (still valid msgpack, same seq): only the hash chain can tell
    positions = [p for p, e in store.read_all() if e.session_id == SID_A]
    forged = msgspec.structs.replace(envs[7], payload=OrderStatus(order_id=7, status="Cancelled"))
    _execute(store, "UPDATE ibledger_events SET state={p} WHERE {pos}={p}", codec.to_msgpack(forged), positions[7])
    report = verify(store)
    assert [t.session_id for t in report.tampered] == [SID_A] and "chain" in report.tampered[0].reason
    # remove one: a gap (and a count mismatch against the head)
    _execute(store, "DELETE FROM ibledger_events WHERE {pos}={p}", positions[3])
    report = verify(store)
    assert [(g.session_id, g.after_seq, g.next_seq) for g in report.gaps] == [(SID_A, 3, 5)]
    assert not report.ok
    # a read never silently skips the hole; with allow_gaps it reads on past it (pages are seq windows)
    monkeypatch.setattr(store_mod, "PAGE_SIZE", 2)
    with pytest.raises(store_mod.GapError, match=f"session {SID_A}: seq 4 missing"):
        list(store.read_session(SID_A))
    gaps: list = []
    got = [e.seq for e in store.read_session(SID_A, allow_gaps=True, on_gap=gaps.append)]
    assert got == [1, 2, 3] + list(range(5, len(envs) + 1))
    assert gaps == [store_mod.SessionGap(SID_A, 4, 4)]


def _execute(store: EventStore, sql: str, *params) -> None:
    """Tamper with the tables directly (backend-specific placeholder and position column)."""
    is_sqlite = type(store).__name__.startswith("SQLite")
    sql = sql.format(p="?" if is_sqlite else "%s", pos="rowid" if is_sqlite else "notification_id")
    if not is_sqlite:
        sql = sql.replace("ibledger_events", f'"{store.schema}".ibledger_events')  # type: ignore[attr-defined]
    with store.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
        c.execute(sql, params)


def test_reopen_after_close(store_url: str):
    s = open_store(store_url)
    s.append(statuses(SID_A, 3))
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        s.append(statuses(SID_A, 1, start_seq=4))
    with pytest.raises(StoreError, match="closed"):
        s.last_seq(SID_A)
    with open_store(store_url) as s2:
        assert s2.last_seq(SID_A) == 3
        s2.append(statuses(SID_A, 1, start_seq=4))
        assert [e.seq for e in s2.read_session(SID_A)] == [1, 2, 3, 4]
        assert verify(s2).ok
    # two stores open on one file/database at once see each other's writes
    with open_store(store_url) as s3, open_store(store_url) as s4:
        s3.append(statuses(SID_B, 1))
        assert s4.last_seq(SID_B) == 1
        with pytest.raises(SeqConflict):
            s4.append(statuses(SID_B, 1))


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("", "empty store URL"),
        ("ledger.db", "no scheme"),
        ("mysql://u@h/db", "unknown store URL scheme 'mysql'"),
        ("sqlite://", "no file path"),
        ("sqlite:///", "no file path"),
        ("sqlite://data/ledger.db", "three slashes"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///x.db?synchronous=OFF", "synchronous must be"),
        ("sqlite:///x.db?journal=delete", "unknown parameter"),
        ("sqlite:///x.db?lock_timeout=soon", "lock_timeout must be"),
        ("postgresql://u@h:5432", "database name"),
        ("postgresql://u@h:5432/a/b", "database name"),
        ("postgresql:///db", "no host"),
        ("postgresql://u@h:99999/db", "malformed"),
        ("postgresql://u@h/db?schema=bad-name", "schema must be"),
    ],
)
def test_url_errors_are_clear(url: str, hint: str):
    with pytest.raises(StoreURLError) as ei:
        open_store(url)
    assert hint in str(ei.value)
    assert isinstance(ei.value, ValueError) and isinstance(ei.value, StoreError)


def test_url_forms(tmp_path):
    assert parse_url("sqlite:///rel/ledger.db").path == "rel/ledger.db"
    assert parse_url("sqlite:////abs/ledger.db").path == "/abs/ledger.db"
    u = parse_url("postgres://bob:s3cr%40t@db.example:6543/ledger?schema=prod&lock_timeout=2")
    assert (u.host, u.port, u.user, u.password, u.dbname, u.params["schema"]) == (
        "db.example",
        6543,
        "bob",
        "s3cr@t",
        "ledger",
        "prod",
    )
    assert "s3cr" not in u.redacted and "***" in u.redacted
    assert redact_url("postgresql://bob:pw@h/db") == "postgresql://bob:***@h/db"
    assert redact_url("postgresql://bob@h/db") == "postgresql://bob@h/db"
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing-dir/ledger.db")


def test_password_never_shown(pg_database_url: str):
    base = pg_database_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2secret@")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with open_store(f"{base}?schema={schema}") as s:  # trust auth: the password is ignored, and hidden
        assert "hunter2secret" not in s.url and "postgres:***@" in s.url
        assert "hunter2secret" not in repr(s)
        s._check_open()
    with pytest.raises(StoreError) as ei:  # nobody listens there
        open_store("postgresql://postgres:hunter2secret@127.0.0.1:1/nodb?connect_timeout=1")
    assert "hunter2secret" not in str(ei.value) and "***" in str(ei.value)
    with pytest.raises(StoreURLError) as ei:
        open_store("postgresql://postgres:hunter2secret@127.0.0.1/db?nope=1")
    assert "hunter2secret" not in str(ei.value)
    import psycopg

    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- concurrency (real OS processes) ----------------------------------------------------------


def _writer(url: str, session_id: str, n: int, batch: int, barrier) -> int:
    barrier.wait(timeout=30)
    with open_store(url) as s:
        seq = 1
        while seq <= n:
            k = min(batch, n - seq + 1)
            s.append(statuses(session_id, k, start_seq=seq, t0=seq))
            seq += k
    return n


def _racer(url: str, session_id: str, tag: str, barrier) -> str:
    with open_store(url) as s:
        barrier.wait(timeout=30)
        try:
            for start in range(1, 60, 5):
                s.append(statuses(session_id, 5, start_seq=start, tag=tag))
        except SeqConflict as exc:
            return f"conflict:{exc.expected}:{exc.got}"
    return "ok"


def _optimist(url: str, session_id: str, tag: str, target: int, barrier) -> int:
    """Reads last_seq, appends 3 after it, retries on conflict: the pattern a careless 2nd writer uses."""
    conflicts = 0
    with open_store(url) as s:
        barrier.wait(timeout=30)
        while True:
            last = s.last_seq(session_id)
            if last >= target:
                return conflicts
            try:
                s.append(statuses(session_id, 3, start_seq=last + 1, tag=tag))
            except SeqConflict:
                conflicts += 1


def _pool(n: int):
    ctx = mp.get_context("spawn")
    return ctx, ctx.Pool(n)


def test_concurrent_processes_different_sessions(store_url: str):
    # no open_store here: the writers also race to create the tables of the new store
    n_proc, n_events = 4, 100
    ctx = mp.get_context("spawn")
    mgr = ctx.Manager()
    barrier = mgr.Barrier(n_proc)
    sids = [derived_id("proc", i) for i in range(n_proc)]
    with ctx.Pool(n_proc) as pool:
        results = [
            pool.apply_async(_writer, (store_url, sid, n_events, 1 + i * 3, barrier)) for i, sid in enumerate(sids)
        ]
        assert [r.get(timeout=60) for r in results] == [n_events] * n_proc
    mgr.shutdown()
    with open_store(store_url) as s:
        rows = list(s.read_all())
        assert len(rows) == n_proc * n_events
        positions = [p for p, _ in rows]
        assert positions == sorted(set(positions))
        keys = [(e.session_id, e.seq) for _, e in rows]
        assert len(set(keys)) == len(keys)
        for sid in sids:
            assert [e.seq for _, e in rows if e.session_id == sid] == list(range(1, n_events + 1))
            assert s.last_seq(sid) == n_events
        assert verify(s).ok


def test_two_processes_same_session(store_url: str):
    open_store(store_url).close()
    ctx = mp.get_context("spawn")
    mgr = ctx.Manager()
    barrier = mgr.Barrier(2)
    sid = derived_id("contended")
    with ctx.Pool(2) as pool:
        results = [pool.apply_async(_racer, (store_url, sid, tag, barrier)) for tag in ("w1", "w2")]
        outcomes = sorted(r.get(timeout=60) for r in results)
    mgr.shutdown()
    assert outcomes[1] == "ok" and outcomes[0].startswith("conflict:")
    with open_store(store_url) as s:
        envs = list(s.read_session(sid))
        assert [e.seq for e in envs] == list(range(1, 61))
        assert len({e.payload.why_held for e in envs}) == 1  # one writer's events only, never interleaved
        assert verify(s).ok


def test_optimistic_writers_never_interleave(store_url: str):
    open_store(store_url).close()
    ctx = mp.get_context("spawn")
    mgr = ctx.Manager()
    barrier = mgr.Barrier(3)
    sid = derived_id("optimists")
    with ctx.Pool(3) as pool:
        results = [pool.apply_async(_optimist, (store_url, sid, f"w{i}", 90, barrier)) for i in range(3)]
        [r.get(timeout=60) for r in results]
    mgr.shutdown()
    with open_store(store_url) as s:
        envs = list(s.read_session(sid))
        assert [e.seq for e in envs] == list(range(1, len(envs) + 1)) and len(envs) >= 90
        for i in range(0, len(envs), 3):  # each batch of 3 is wholly one writer's
            assert len({e.payload.why_held for e in envs[i : i + 3]}) == 1
        assert verify(s).ok
