"""Every row of the performance table in one command: prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_all.py [--events 100000] [--reps 3] [--rss-events 0]
                                                   [--catchup 1000] [--rate 5000] [--pg URL | --no-pg]
                                                   [--only replay,rss,fold,build,catchup,import,recorder,pg]

One synthetic session of ``--events`` events (``replay.synthetic``) is written as a session file and
imported into a SQLite store. Each row is measured ``--reps`` times (medians printed), each beside its
floor measured in the same run, as a ratio. Measurements that report memory run in a fresh process
(peak RSS = ``VmHWM``).

rows (target in brackets):

* replay       -- ``Replayer`` over the file and over the store, beside typed decode alone [>= 300k ev/s];
* rss          -- replay peak RSS at ``--events`` and at each ``--rss-events`` size (a real run, e.g.
                  ``--rss-events 10000000``), beside decode-only [<= 500 MB at 10M, flat];
* fold         -- the NautilusTrader anchor (anchor.py): one stream of ``--anchor-orders`` orders as raw IB
                  callbacks, ibledger's adapter + envelope + ``LedgerFold.apply`` beside NautilusTrader's own
                  order objects (``.venv-nautilus``, a subprocess; skipped with a line saying so when absent)
                  [>= 1.5x]; then ``LedgerFold.apply`` alone beside bench_fold's per-order floor (find the order,
                  record the observation, set three fields) over the same envelopes;
* build        -- ``projections.projector.rebuild`` (time, peak RSS) beside read+decode+fold and beside
                  Arrow -> DuckDB of the same rows [<= 10 s and <= 500 MB at 1M events];
* catchup      -- audit catch-up of ``--catchup`` new events: warm (long-lived projector) and cold (new
                  process), beside a catch-up with nothing new, warm and in a new process [<= 100 ms];
* import       -- ``ibledger import FILE`` peak RSS beside decode-only streaming [flat];
* recorder     -- commit p99 at ``--rate`` callbacks/s through ``Recorder.attach`` (bench_recorder.py, real
                  client and simulator), beside a bare sqlite3 single-row commit p99 and the disk's fsync
                  p99, with where the p99 comes from (bench_recorder.py --trace: receipt hook, commit in
                  flight or wake-up, backlog, own commit) [<= 2 ms];
* pg           -- PostgreSQL append at 100/commit and 1/commit beside raw psycopg on the same table
                  layout (one INSERT ... SELECT unnest per commit) [>= 0.7x].
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import anchor  # noqa: E402
import bench_fold  # noqa: E402
import bench_replay  # noqa: E402
import bench_store  # noqa: E402

ROWS = ("replay", "rss", "fold", "build", "catchup", "import", "recorder", "pg")
med = statistics.median


def run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def line(name: str, value: str, floor: str, ratio: float | None, target: str, ok: bool | None) -> None:
    r = f"{ratio:6.2f}x" if ratio is not None else "     - "
    v = "" if ok is None else ("MET" if ok else "MISSED")
    print(f"  {name:34s} {value:>22s} | floor {floor:>26s} | {r} | {target} {v}", flush=True)


# --- workers (each in its own process) ------------------------------------------------------------------


def worker(kind: str, *a: str) -> None:
    if kind == "replay":
        bench_replay.worker(*a)
        return
    import gc

    rss = bench_replay.rss_mb
    t0 = time.perf_counter()
    out: dict = {}
    if kind == "build":
        from ledger.store import open_store
        from projections.projector import rebuild

        with open_store(a[0]) as store:
            out["events"] = rebuild(store, a[1])
    elif kind == "floorbuild":
        from ledger.core.fold import LedgerFold
        from ledger.store import open_store

        gc.disable()
        with open_store(a[0]) as store:
            fold = LedgerFold()
            apply = fold.apply
            n = 0
            for _pos, env in store.read_all():
                apply(env)
                n += 1
        out["events"] = n
    elif kind == "arrow":
        import duckdb

        src = duckdb.connect(a[0], read_only=True)
        names = [t for (t,) in src.execute("SHOW TABLES").fetchall()]
        tables = {t: src.execute(f"SELECT * FROM {t}").to_arrow_table() for t in names}
        src.close()
        t0 = time.perf_counter()
        dst = duckdb.connect(a[1])
        dst.execute("SET threads = 1")
        n = 0
        for name, tbl in tables.items():
            dst.register("src", tbl)
            dst.execute(f"CREATE TABLE {name} AS SELECT * FROM src")
            dst.unregister("src")
            n += tbl.num_rows
        dst.close()
        out["rows"] = n
    elif kind == "catchup":
        from ledger.store import open_store
        from projections.projector import update

        with open_store(a[0]) as store:
            t1 = time.perf_counter()
            out["events"] = update(store, a[1])[0]
            out["update_s"] = time.perf_counter() - t1
    elif kind == "import":
        from ledger.cli import app

        try:
            app(["import", a[0], "--store", a[1]], standalone_mode=False)
        except SystemExit as exc:  # typer exits 0 on success
            if exc.code:
                raise
    else:
        raise SystemExit(f"unknown worker {kind}")
    out["wall"] = time.perf_counter() - t0
    out["rss"] = rss()
    print(json.dumps(out))


# --- rows ---------------------------------------------------------------------------------------------


def row_replay(path: Path, url: str, sid: str, reps: int) -> dict[str, dict]:
    modes = ("file-decode", "file-replay", "store-decode", "store-replay")
    res: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(reps):
        for m in modes:
            res[m].append(run_worker("replay", m, str(path), url, sid))
    return {m: {"eps": med(r["events"] / r["wall"] for r in rs), "rss": med(r["rss"] for r in rs),
                "events": rs[0]["events"]} for m, rs in res.items()}


def print_replay(m: dict[str, dict]) -> None:
    print("\n[replay] `ibledger replay`, events/s (median)")
    for src in ("file", "store"):
        r, d = m[f"{src}-replay"]["eps"], m[f"{src}-decode"]["eps"]
        line(f"replay from {src}", f"{r:,.0f} ev/s", f"decode {d:,.0f} ev/s", r / d, ">= 300k ev/s", r >= 300_000)


def print_rss(m: dict[str, dict], extra: list[tuple[int, dict, dict]]) -> None:
    print("\n[rss] replay peak RSS (real runs, VmHWM)")
    rows = [(m["file-replay"]["events"], m["file-replay"], m["file-decode"])] + [(n, r, d) for n, r, d in extra]
    for n, r, d in rows:
        ok = r["rss"] <= 500 if n >= 9_900_000 else None  # (a 10M request generates ~9.98M events)
        line(f"replay peak RSS, {n:,} events", f"{r['rss']:,.0f} MB", f"decode only {d['rss']:,.0f} MB",
             r["rss"] / d["rss"], "<= 500 MB at 10M", ok)


def row_anchor(n_orders: int, reps: int) -> None:
    print(f"\n[fold] incl. adapter translation, NautilusTrader anchor stream, callbacks/s (median of {reps})")
    m = anchor.measure(7, n_orders, reps)
    L, N = m["L"], m["N"]
    name = f"adapter + fold, {L['callbacks']:,} callbacks"
    if N is None:
        line(name, f"{L['rate']:,.0f} cb/s", "NautilusTrader: skipped", None, ">= 1.5x", None)
        print("  " + anchor.missing_line())
    else:
        line(name, f"{L['rate']:,.0f} cb/s", f"Nautilus {N['rate']:,.0f} cb/s", m["ratio"], ">= 1.5x",
             m["ratio"] >= anchor.TARGET)
    line("  of which the adapter alone", f"{L['translate']:,.0f} cb/s", "", None, "", None)
    line("  of which the fold alone", f"{L['fold_only']:,.0f} cb/s",
         f"Nautilus {N['rate']:,.0f} cb/s" if N else "-", L["fold_only"] / N["rate"] if N else None, "", None)


def row_fold(n_events: int, reps: int) -> None:
    import gc

    from ledger.core.fold import LedgerFold
    from replay.strategies import generate_stream

    envs = generate_stream(1, n_events)
    gc.collect()
    gc.freeze()
    base, fold, compact = [], [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        bench_fold.floor(envs)
        base.append(len(envs) / (time.perf_counter() - t0))
        for out, kw in ((fold, {}), (compact, {"compact": True, "timeline": False, "keep": 1000})):
            gc.disable()
            f = LedgerFold(**kw)
            apply = f.apply
            t0 = time.perf_counter()
            for env in envs:
                apply(env)
            out.append(len(envs) / (time.perf_counter() - t0))
            f.close()
            del f
            gc.enable()
    gc.unfreeze()
    print("\n[fold] the fold alone, events/s (median)")
    line(f"LedgerFold.apply, {len(envs):,} events", f"{med(fold):,.0f} ev/s", f"per-order floor {med(base):,.0f} ev/s",
         med(fold) / med(base), "anchor: see the row above", None)
    line("compact fold (as replay runs it)", f"{med(compact):,.0f} ev/s", f"per-order floor {med(base):,.0f} ev/s",
         med(compact) / med(base), "finished orders retired to disk", None)


def row_build(url: str, work: Path, reps: int) -> Path:
    builds, floors, arrows = [], [], []
    keep = work / "audit.duckdb"
    for i in range(reps):
        out = work / f"build{i}.duckdb"
        builds.append(run_worker("build", url, str(out)))
        floors.append(run_worker("floorbuild", url))
        arrows.append(run_worker("arrow", str(out), str(work / f"arrow{i}.duckdb")))
        if i == 0:
            shutil.copy(out, keep)
            for d in work.glob(out.name + ".fold-*"):  # the projection's fold files go with it (same token)
                shutil.copytree(d, work / (keep.name + d.name[len(out.name):]))
        out.unlink(missing_ok=True)
        for d in work.glob(out.name + ".fold-*"):
            shutil.rmtree(d)
        (work / f"arrow{i}.duckdb").unlink(missing_ok=True)
    n = builds[0]["events"]
    b, f, ar = med(r["wall"] for r in builds), med(r["wall"] for r in floors), med(r["wall"] for r in arrows)
    rss, frss = med(r["rss"] for r in builds), med(r["rss"] for r in floors)
    scale = 1e6 / n
    print(f"\n[build] DuckDB projection rebuild from {n:,} events (median; 1M estimate = linear)")
    line("build time", f"{b:.2f} s ({n / b:,.0f} ev/s)", f"read+decode+fold {f:.2f} s", b / f,
         f"<= 10 s at 1M (est. {b * scale:.1f} s)", b * scale <= 10)
    line("build time vs its two floors", f"{b:.2f} s", f"fold + Arrow->DuckDB {f + ar:.2f} s", b / (f + ar),
         f"Arrow->DuckDB of the {arrows[0]['rows']:,} rows: {ar:.2f} s", None)
    line("build peak RSS", f"{rss:,.0f} MB", f"read+decode+fold {frss:,.0f} MB", rss / frss, "<= 500 MB at 1M",
         rss <= 500 if n >= 1_000_000 else None)
    return keep


def row_catchup(url: str, duck: Path, n_new: int, reps: int) -> None:
    from ledger.store import open_store
    from projections import projector as pj
    from replay.synthetic import synthetic_session

    orders = max(1, int(n_new / bench_replay.EVENTS_PER_ORDER))
    batches = []
    for i in range(2 * reps):
        envs = list(synthetic_session(900_000 + i, orders))
        batches.append(envs[:n_new])
    warm, cold, empty = [], [], []
    with open_store(url) as store:
        with pj.AuditProjection(store, duck) as proj:
            t0 = time.perf_counter()
            proj.load()
            load_ms = (time.perf_counter() - t0) * 1000
            for b in batches[:reps]:
                store.append(b)
                t0 = time.perf_counter()
                proj.catch_up()
                warm.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                proj.catch_up()
                empty.append((time.perf_counter() - t0) * 1000)
            proj.checkpoint()
        for b in batches[reps:]:
            store.append(b)
            cold.append(run_worker("catchup", url, str(duck)))
    # the cold floor: a new process that opens and closes the projection with nothing new (DuckDB's own costs)
    cold_empty = [run_worker("catchup", url, str(duck)) for _ in range(reps)]
    cold_ms = med(r["update_s"] for r in cold) * 1000
    cold_empty_ms = med(r["update_s"] for r in cold_empty) * 1000
    print(f"\n[catchup] audit catch-up of {n_new:,} new events (median)")
    line("warm (long-lived projector)", f"{med(warm):.1f} ms", f"nothing new {med(empty):.1f} ms",
         med(warm) / max(med(empty), 1e-3), "<= 100 ms", med(warm) <= 100)
    line("cold (new process: open+load+catch up)", f"{cold_ms:.1f} ms", f"nothing new {med(empty):.1f} ms",
         cold_ms / max(med(empty), 1e-3), "<= 100 ms", cold_ms <= 100)
    line("cold vs a cold open with nothing new", f"{cold_ms:.1f} ms", f"open+close {cold_empty_ms:.1f} ms",
         cold_ms / max(cold_empty_ms, 1e-3), "(DuckDB connect, first reads, close)", None)
    print(f"    (fold checkpoint load in the warm process: {load_ms:.0f} ms; cold process wall incl. imports: "
          f"{med(r['wall'] for r in cold) * 1000:.0f} ms)")


_EXPORT = """
import json, sys, time
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
from bench_replay import rss_mb
from ledger.cli import app
t0 = time.perf_counter()
try:
    app(["export", sys.argv[3], "--out", sys.argv[4], "--store", sys.argv[5]], standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps({"wall": time.perf_counter() - t0, "rss": rss_mb()}))
"""


def row_import(path: Path, work: Path, reps: int, decode_rss: float) -> None:
    """``ibledger import`` and ``ibledger export`` of the same session, each in a fresh process (peak RSS =
    VmHWM), beside decode-only streaming of the file: both stream, so both stay near that floor whatever
    the session's length; the exported file must hold every event."""
    from ledger.store.sessionfile import read_header

    header = read_header(path)
    rs, xs = [], []
    for i in range(reps):
        db = work / f"import{i}.db"
        rs.append(run_worker("import", str(path), f"sqlite:///{db}"))
        out = work / f"export{i}.jsonl"
        res = subprocess.run([sys.executable, "-c", _EXPORT, str(HERE.parents[1]), str(HERE), header.session_id,
                              str(out), f"sqlite:///{db}"], check=True, capture_output=True, text=True)
        xs.append(json.loads(res.stdout.strip().splitlines()[-1]))
        if read_header(out).events != header.events:
            raise SystemExit(f"export wrote {read_header(out).events} events, the session has {header.events}")
        out.unlink()
        for f in work.glob(f"import{i}.db*"):
            f.unlink()
    n = header.events
    print(f"\n[import] `ibledger import` and `ibledger export` of {n:,} events (median of {reps})")
    for name, runs in (("import", rs), ("export", xs)):
        rss, wall = med(r["rss"] for r in runs), med(r["wall"] for r in runs)
        line(f"{name} peak RSS", f"{rss:,.0f} MB", f"decode only {decode_rss:,.0f} MB", rss / decode_rss,
             "flat (streamed, all-or-nothing)", None)
        line(f"{name} time", f"{wall:.2f} s", "", None, f"{n / wall:,.0f} ev/s", None)


def bench_replay_events(path: Path) -> int:
    from ledger.store.sessionfile import read_header

    return read_header(path).events


def row_recorder(rate: int, reps: int, work: Path) -> None:
    """Commit latency through ``Recorder.attach`` with its default writer and with the writer thread, on
    the disk (SQLite ``synchronous=FULL``: one fsync per commit) and, to show the design's own share without
    the disk, on tmpfs; beside the floors measured in the same run: a bare sqlite3 one-row commit on the
    same disk and the disk's bare write+fsync."""
    raw99 = []
    for rep in range(reps):
        db = work / f"raw{rep}.db"
        raw = bench_store.RawSQLite(str(db))
        envs = bench_store.make_envs(str(uuid.uuid4()), 500)
        _, lat = bench_store.run_batches(raw.append, envs, 1)
        raw.close()
        raw99.append(bench_store.pct(lat, 0.99))
        for f in work.glob(f"raw{rep}.db*"):
            f.unlink()
    shm = Path("/dev/shm")
    print(f"\n[recorder] commit latency at {rate} callbacks/s through Recorder.attach (median of {reps})")
    runs = [("default", "sqlite"), ("thread", "sqlite")]
    if shm.is_dir():
        runs += [("default", "tmpfs"), ("thread", "tmpfs")]
    for writer, where in runs:
        store = "sqlite"
        if where == "tmpfs":
            tmp = Path(tempfile.mkdtemp(prefix="bench-rec-", dir=shm))
            store = f"sqlite:///{tmp / 'ledger.db'}"
        cmd = [sys.executable, str(HERE / "bench_recorder.py"), "--rate", str(rate), "--seconds", "2",
               "--reps", str(reps), "--writer", writer, "--store", store]
        if writer == "default":
            cmd.append("--trace")  # the writer process's timings: where the p99 comes from
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
        finally:
            if where == "tmpfs":
                shutil.rmtree(tmp, ignore_errors=True)
        text = out.stdout
        m = re.search(r"commit latency\s+p50 ([\d.]+) ms\s+p99 ([\d.]+) ms", text)
        d = re.search(r"takes p50 ([\d.]+) ms, p99 ([\d.]+) ms", text)
        c = re.search(r"loop CPU per callback\s+mean baseline ([\d.]+) us\s+recorder ([\d.]+) us", text)
        k = re.search(r"writer \S+ \((\w+)\)", text)
        lag = re.search(r"loop lag p99\s+baseline ([\d.]+) ms\s+recorder ([\d.]+) ms", text)
        if not m:
            print(f"  bench_recorder.py --writer {writer} failed: {out.stderr.strip().splitlines()[-1:]}")
            continue
        p99 = float(m.group(2))
        label = f"p99 {writer} ({k.group(1) if k else '?'}), {'disk' if where == 'sqlite' else 'tmpfs'}"
        floor = f"bare sqlite3 p99 {med(raw99):.2f} ms" if where == "sqlite" else "no fsync"
        line(label, f"{p99:.2f} ms", floor, p99 / med(raw99) if where == "sqlite" else None, "<= 2 ms", p99 <= 2)
        extra = f"; loop CPU per callback {c.group(2)} us (no recorder {c.group(1)} us)" if c else ""
        disk = f"; disk write+fsync p50 {float(d.group(1)):.2f} ms, p99 {float(d.group(2)):.2f} ms" if d else ""
        lags = (f"; IB loop lag p99 without a recorder {float(lag.group(1)):.2f} ms (a callback stamped just before "
                f"such a stall waits as long: the machine's own floor), with it {float(lag.group(2)):.2f} ms"
                if lag else "")
        print(f"    (commit p50 {float(m.group(1)):.2f} ms{disk}{extra}{lags})")
        where_from = re.search(r"^where the p99 comes from.*$", text, re.M)
        if where_from:
            print(f"    ({where_from.group(0)})")


def row_pg(url: str, n_bulk: int, n_single: int, reps: int) -> None:
    try:
        import psycopg
    except ImportError:
        print("\n[pg] psycopg not installed")
        return
    from ledger.core.session import derived_id
    from ledger.store import open_store

    res: dict[str, list[float]] = {"s100": [], "s1": [], "r100": [], "r1": []}
    for rep in range(reps):
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        try:
            st = open_store(f"{url}?schema={schema}")
        except Exception as exc:  # noqa: BLE001
            print(f"\n[pg] unavailable: {exc}")
            return
        try:
            sid = derived_id("bench-all-pg", rep)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'CREATE TABLE "{schema}".raw (originator_id uuid NOT NULL, originator_version bigint '
                             f'NOT NULL, topic text, state bytea, notification_id bigserial, '
                             f'PRIMARY KEY (originator_id, originator_version))')
                ins = (f'INSERT INTO "{schema}".raw (originator_id, originator_version, topic, state) '
                       f'SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::text[], %s::bytea[])')

                def raw_append(envs, conn=conn, ins=ins):
                    rows = [(uuid.uuid5(uuid.NAMESPACE_URL, e.session_id), e.seq, e.kind,
                             bench_store.codec.to_msgpack(e)) for e in envs]
                    conn.execute(ins, [list(c) for c in zip(*rows, strict=True)], prepare=True)

                for label, app in (("s", st.append), ("r", raw_append)):
                    ev100, _ = bench_store.run_batches(app, bench_store.make_envs(f"{sid}-{label}", n_bulk), 100)
                    ev1, _ = bench_store.run_batches(app, bench_store.make_envs(f"{sid}-{label}1", n_single), 1)
                    res[f"{label}100"].append(ev100)
                    res[f"{label}1"].append(ev1)
        finally:
            st.close()
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"\n[pg] PostgreSQL append, events/s (median of {reps})")
    for k, label in (("100", "100 events/commit"), ("1", "1 event/commit")):
        s, r = med(res[f"s{k}"]), med(res[f"r{k}"])
        line(f"append {label}", f"{s:,.0f} ev/s", f"raw psycopg {r:,.0f} ev/s", s / r, ">= 0.7x", s / r >= 0.7)


# --- driver -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="events of the session (replay, build, import)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rss-events", default="", help="comma-separated extra sizes for real replay RSS runs")
    ap.add_argument("--fold-events", type=int, default=0, help="events for the fold row (default: --events)")
    ap.add_argument("--anchor-orders", type=int, default=20_000, help="orders of the NautilusTrader anchor stream")
    ap.add_argument("--catchup", type=int, default=1000)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--pg", default=os.environ.get("IBLEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--only", default=",".join(ROWS))
    ap.add_argument("--dir", type=Path, default=None, help="work directory to keep (default: a temp dir)")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(*a.worker)
        return
    only = set(a.only.split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-all-")) if a.dir is None else a.dir
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"bench_all: {a.events:,} events, {a.reps} reps; cpus={os.cpu_count()} "
              f"load={os.getloadavg()[0]:.2f}; sqlite {sqlite3.sqlite_version}")
        path = work / f"session-{a.events}.jsonl"
        url = f"sqlite:///{work / 'ledger.db'}"
        sid, n, gen_s = bench_replay.generate(path, a.events)
        imp_s = bench_replay.import_store(path, url)
        print(f"session {sid}: {n:,} events generated in {gen_s:.1f} s, imported in {imp_s:.1f} s")
        rep: dict[str, dict] | None = None
        if only & {"replay", "rss", "import"}:
            rep = row_replay(path, url, sid, a.reps)
        if "replay" in only and rep:
            print_replay(rep)
        if "rss" in only and rep:
            extra = []
            for size in (int(s) for s in a.rss_events.split(",") if s):
                big = work / f"session-{size}.jsonl"
                _, nb, _ = bench_replay.generate(big, size)
                r = run_worker("replay", "file-replay", str(big), url, sid)
                d = run_worker("replay", "file-decode", str(big), url, sid)
                extra.append((nb, r, d))
                big.unlink()
            print_rss(rep, extra)
        if "fold" in only:
            row_anchor(a.anchor_orders, max(a.reps, 3))
            row_fold(a.fold_events or a.events, a.reps)
        duck = None
        if "build" in only or "catchup" in only:
            duck = row_build(url, work, a.reps)
        if "catchup" in only and duck is not None:
            row_catchup(url, duck, a.catchup, a.reps)
        if "import" in only and rep:
            row_import(path, work, a.reps, rep["file-decode"]["rss"])
        if "recorder" in only:
            row_recorder(a.rate, a.reps, work)
        if "pg" in only and not a.no_pg:
            row_pg(a.pg, min(a.events, 10_000), 500, a.reps)
    finally:
        if a.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
