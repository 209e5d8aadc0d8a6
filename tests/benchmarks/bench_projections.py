"""Benchmark the DuckDB audit projection. A script that prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_projections.py [--events 1000000] [--orders 1000000] [--keep DIR]

Figures (medians where repeated), each next to a baseline measured in the same run:

1. build the projection from N stored events (SQLite store), vs the baselines "read + decode the store"
   and "read + decode + fold" (what any consumer of the fold pays before writing a row);
2. incremental catch-up of 1,000 new events: warm (a long-lived projector, as in a monitor process) and
   cold (a new process: open, load the fold checkpoint, re-fold the tail, catch up), vs an empty catch-up;
3. each named query over a projection scaled to ~1M orders (the built projection replicated with
   distinct keys), executed into a temp table (DuckDB's own time) and fetched into Python (CLI time),
   vs ``SELECT count(*) FROM orders``.

Targets: build <= 10 s, catch-up <= 100 ms, each named query <= 200 ms.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from ledger.core.fold import LedgerFold  # noqa: E402
from ledger.store import open_store  # noqa: E402
from projections import projector as pj  # noqa: E402
from projections.queries import QUERIES, connect_read_only  # noqa: E402
from tests.support.audit_streams import REALISTIC, SCENARIOS, generate  # noqa: E402

TARGET_BUILD_S = 10.0
TARGET_CATCHUP_MS = 100.0
TARGET_QUERY_MS = 200.0


def t() -> float:
    return time.perf_counter()


def verdict(ok: bool) -> str:
    return "OK " if ok else "MISS"


def fill_store(url: str, n_events: int, seed: int = 1) -> tuple[int, int]:
    """Append ~n_events of realistic sessions; return (events, orders)."""
    per_session = 40 * len(SCENARIOS)  # ~ 6.6 events per order
    events = orders = 0
    s = 0
    with open_store(url) as store:
        while events < n_events:
            st = generate(n_sessions=1, orders_per_session=per_session, seed=seed + s, crashed_last=s % 7 == 6,
                          t0=1_764_072_000_000_000_000 + s * 3_600_000_000_000, session_prefix=f"b{s:05d}",
                          weights=REALISTIC)
            envs = st.envelopes[: n_events - events]
            for i in range(0, len(envs), 20_000):
                store.append(envs[i : i + 20_000])
            events += len(envs)
            orders += len(st.orders)
            s += 1
    return events, orders


def bench_build(url: str, work: Path) -> tuple[float, Path]:
    with open_store(url) as store:
        gc.disable()
        t0 = t()
        n = sum(1 for _ in store.read_all())
        read_s = t() - t0
        t0 = t()
        fold = LedgerFold()
        for _pos, env in store.read_all():
            fold.apply(env)
        fold_s = t() - t0
        del fold
        gc.enable()
        gc.collect()
        path = work / "audit.duckdb"
        t0 = t()
        pj.rebuild(store, path)
        build_s = t() - t0
    print(f"\n[1] build from {n:,} events (SQLite store)")
    print(f"    baseline read+decode store      {read_s:8.2f} s   ({n / read_s:,.0f} ev/s)")
    print(f"    baseline read+decode+fold       {fold_s:8.2f} s   ({n / fold_s:,.0f} ev/s)")
    print(f"    projection build (rebuild)      {build_s:8.2f} s   ({n / build_s:,.0f} ev/s)   "
          f"{verdict(build_s <= TARGET_BUILD_S)} target <= {TARGET_BUILD_S:.0f} s")
    print(f"    projection cost above the fold  {build_s - fold_s:8.2f} s")
    print(f"    DuckDB file size                {path.stat().st_size / 1e6:8.1f} MB")
    return build_s, path


def bench_catch_up(url: str, path: Path, reps: int = 7) -> None:
    # new sessions, after everything already stored (time-ordered, as a live recorder appends them)
    extra = generate(n_sessions=reps * 2 + 2, orders_per_session=150, seed=100_000, session_prefix="late",
                     weights=REALISTIC, t0=1_764_072_000_000_000_000 + 10**6 * 1_000_000_000)
    envs = extra.envelopes
    batches = [envs[i : i + 1000] for i in range(0, len(envs), 1000)]
    warm: list[float] = []
    cold: list[float] = []
    empty: list[float] = []
    with open_store(url) as store:
        with pj.AuditProjection(store, path) as proj:
            t0 = t()
            proj.load()  # the fold checkpoint, once per process
            load_ms = (t() - t0) * 1000
            for b in batches[:reps]:
                store.append(b)
                t0 = t()
                n = proj.catch_up()
                warm.append((t() - t0) * 1000)
                assert n == len(b)
                t0 = t()
                proj.catch_up()
                empty.append((t() - t0) * 1000)
            proj.checkpoint()
        for b in batches[reps : reps + 3]:
            store.append(b)
            t0 = t()
            n, _ = pj.update(store, path)
            cold.append((t() - t0) * 1000)
    med = statistics.median
    print("\n[2] incremental catch-up of 1,000 new events")
    print(f"    baseline catch-up with nothing new {med(empty):8.1f} ms")
    print(f"    loading the fold checkpoint (once per process) {load_ms:8.1f} ms")
    print(f"    warm (long-lived projector)        {med(warm):8.1f} ms  (min {min(warm):.1f}, max {max(warm):.1f})  "
          f"{verdict(med(warm) <= TARGET_CATCHUP_MS)} target <= {TARGET_CATCHUP_MS:.0f} ms")
    print(f"    cold (new process: open, load fold checkpoint, re-fold tail, catch up)"
          f" {med(cold):8.1f} ms  {verdict(med(cold) <= TARGET_CATCHUP_MS)}")


def scale(path: Path, target_orders: int, work: Path) -> Path:
    """A copy of the projection replicated k times with distinct keys/positions: ~target_orders orders."""
    big = work / "scaled.duckdb"
    shutil.copy(path, big)
    con = duckdb.connect(str(big))
    n_orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    k = max(1, -(-target_orders // n_orders))
    maxpos = con.execute("SELECT max(position) FROM events").fetchone()[0]
    key_cols = {"orders": ["key"], "order_events": ["order_key"], "transitions": ["order_key"],
                "fills": ["order_key", "exec_id", "exec_prefix"], "anomalies": ["order_key"],
                "governor_decisions": ["order_key"], "failure_reports": ["order_key"]}
    for table in ("events", "orders", "order_events", "transitions", "fills", "anomalies",
                  "governor_decisions", "sessions", "failure_reports", "connection_events"):
        cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        for i in range(1, k):
            exprs = []
            for c in cols:
                if c in key_cols.get(table, []):
                    exprs.append(f"CASE WHEN {c} IS NULL OR {c} = '' THEN {c} ELSE {c} || '#{i}' END")
                elif c == "session_id":
                    exprs.append(f"session_id || '#{i}'")
                elif c in ("position", "last_exec_position", "last_live_position"):
                    exprs.append(f"CASE WHEN {c} = 0 THEN 0 ELSE {c} + {i * maxpos} END")
                elif c == "perm_id":
                    exprs.append(f"CASE WHEN perm_id = 0 THEN 0 ELSE perm_id + {i * 100_000_000} END")
                elif c == "order_id" and table in ("orders", "governor_decisions"):
                    exprs.append(f"order_id + {i * 10_000_000}")
                else:
                    exprs.append(c)
            con.execute(f"INSERT INTO {table} SELECT {', '.join(exprs)} FROM {table} "
                        f"WHERE NOT contains(CAST({'session_id' if 'session_id' in cols else 'key'} AS VARCHAR), '#')")
    con.execute("CHECKPOINT")
    con.close()
    return big


def bench_queries(path: Path, target_orders: int, work: Path, reps: int = 5) -> None:
    t0 = t()
    big = scale(path, target_orders, work)
    scale_s = t() - t0
    con = connect_read_only(big)
    n_orders = con.execute("SELECT count(*) FROM orders").fetchone()[0]
    n_events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    n_oe = con.execute("SELECT count(*) FROM order_events").fetchone()[0]
    print(f"\n[3] named queries over {n_orders:,} orders ({n_events:,} events, {n_oe:,} order events; "
          f"scaled in {scale_s:.1f} s)")

    def timed(sql: str, fetch: bool) -> float:
        runs = []
        for _ in range(reps):
            t1 = t()
            if fetch:
                con.execute(sql).fetchall()
            else:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _r AS {sql}")
            runs.append((t() - t1) * 1000)
        return statistics.median(runs)

    for label, sql in (("SELECT count(*) FROM orders", "SELECT count(*) FROM orders"),
                       ("scan all order rows (sum)", "SELECT sum(filled), max(key) FROM orders"),
                       ("scan order_events (errors)", "SELECT count(*) FROM order_events WHERE kind = 'error'")):
        print(f"    baseline {label:34s} {timed(sql, True):8.1f} ms")
    print(f"    {'query':28s} {'rows':>9s} {'execute':>10s} {'+fetch':>10s}")
    for q in QUERIES:
        rows = con.execute(f"SELECT count(*) FROM ({q.sql})").fetchone()[0]
        ex = timed(q.sql, False)
        fe = timed(q.sql, True)
        print(f"    {q.name:28s} {rows:9,d} {ex:8.1f} ms {fe:8.1f} ms  {verdict(ex <= TARGET_QUERY_MS)}")
    con.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--orders", type=int, default=1_000_000)
    ap.add_argument("--keep", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="ibl-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{work / 'ledger.db'}?synchronous=NORMAL"
    try:
        if not (work / "ledger.db").exists():
            t0 = t()
            n, orders = fill_store(url, args.events)
            print(f"store: {n:,} events, {orders:,} orders generated and appended in {t() - t0:.1f} s")
        _build_s, path = bench_build(url, work)
        bench_catch_up(url, path)
        bench_queries(path, args.orders, work)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
