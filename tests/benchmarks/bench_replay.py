"""Replay benchmark: prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_replay.py [--events 1000000] [--reps 3] [--dir DIR] [--ten-million]

One synthetic recording session of about ``--events`` events (``replay.synthetic``: realistic lifecycles,
governor decisions recorded as live) is written as a session file and imported into a SQLite store. Then,
for each repetition and each mode, a fresh subprocess streams it and reports wall time, CPU time and peak
RSS (``VmHWM``):

* ``file-decode``  -- baseline: ``iter_session`` only (read + JSON decode + validate);
* ``file-fold``    -- decode + ``LedgerFold.apply`` (the fold alone);
* ``file-replay``  -- decode + ``Replayer`` (fold + governor + every pre-check re-run + divergence
  bookkeeping + digest): what ``ibledger replay FILE`` does;
* ``file-replay-gc`` -- the same with the cyclic GC's young-generation threshold raised (as the CLI does);
* ``store-decode`` -- baseline: ``store.read_session`` only (SQLite pages + msgpack decode);
* ``store-replay`` -- ``store.read_session`` + ``Replayer``.

Medians are printed, with replay/decode ratios from the same run, the pre-check latency (p50/p99) and
the RSS growth per million events (sampled during the replay), extrapolated to 10M events
(``--ten-million`` generates and measures a 10M-event session instead of extrapolating: ~15 minutes).
Targets: >= 300k events/s; peak RSS for a 10M-event session <= 500 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

EVENTS_PER_ORDER = 6.82  # measured mean of the synthetic mix
SEED = 20240603
MODES = ("file-decode", "file-fold", "file-replay", "file-replay-gc", "store-decode", "store-replay")


def rss_mb() -> float:
    """Peak RSS of this process image. ``VmHWM`` (Linux) is reset by exec; ``ru_maxrss`` is not (a worker
    would report its parent's peak), so it is only the fallback."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- worker (one measurement, in its own process) ---------------------------------------------------------


def worker(mode: str, path: str, url: str, sid: str) -> None:
    from ledger.core.fold import LedgerFold
    from ledger.store import open_store
    from ledger.store.sessionfile import iter_session
    from replay.replayer import Replayer

    samples: list[tuple[int, float]] = []
    if mode == "file-replay-gc":
        gc.set_threshold(100_000, 50, 100)
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    if mode.startswith("file"):
        stream = iter_session(path)
        store = None
    else:
        store = open_store(url)
        stream = store.read_session(sid)
    if mode.endswith("decode"):
        for _ in stream:
            n += 1
            if n % 100_000 == 0:
                samples.append((n, rss_mb()))
    elif mode == "file-fold":
        fold = LedgerFold()
        apply = fold.apply
        for env in stream:
            apply(env)
            n += 1
            if n % 100_000 == 0:
                samples.append((n, rss_mb()))
    else:
        res = Replayer(progress=lambda k: samples.append((k, rss_mb())), progress_every=100_000).run(stream)
        n = res.events
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if store is not None:
        store.close()
    print(json.dumps({"mode": mode, "events": n, "wall": wall, "cpu": cpu, "rss": rss_mb(), "samples": samples}))


def precheck_latency(path: str) -> tuple[float, float, int]:
    """p50 / p99 (µs) of Engine.pre_check on every intent of the session, on the state before it."""
    from ledger.core import events as ev
    from ledger.core.engine import Engine
    from ledger.store.sessionfile import iter_session

    intents = (ev.PlaceOrder, ev.ModifyOrder, ev.CancelOrder)
    engine = Engine()
    lat: list[int] = []
    clock = time.perf_counter_ns
    for env in iter_session(path):
        if type(env.payload) in intents:
            t = clock()
            engine.pre_check(env.payload, env.recv_ns)  # type: ignore[arg-type]
            lat.append(clock() - t)
        engine.process(env)
        if len(lat) >= 50_000:
            break
    lat.sort()
    return lat[len(lat) // 2] / 1000, lat[int(len(lat) * 0.99)] / 1000, len(lat)


# --- driver -------------------------------------------------------------------------------------------------


def generate(path: Path, events: int) -> tuple[str, int, float]:
    from replay.synthetic import synthetic_session, write_session_stream

    n_orders = max(10, int(events / EVENTS_PER_ORDER))
    t = time.perf_counter()
    n = write_session_stream(path, synthetic_session(SEED, n_orders))
    from ledger.store.sessionfile import read_header

    return read_header(path).session_id, n, time.perf_counter() - t


def import_store(path: Path, url: str) -> float:
    from ledger.store import open_store
    from ledger.store.sessionfile import iter_session

    t = time.perf_counter()
    with open_store(url) as store:
        batch = []
        for env in iter_session(path):
            batch.append(env)
            if len(batch) == 10_000:
                store.append(batch)
                batch = []
        if batch:
            store.append(batch)
    return time.perf_counter() - t


def run_mode(mode: str, path: Path, url: str, sid: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", mode, str(path), url, sid],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def slope_mb_per_m(samples: list[list[float]]) -> float:
    """RSS growth per million events over the second half of the run (after warm-up)."""
    pts = [(n, r) for n, r in samples if n >= samples[-1][0] / 2] if samples else []
    if len(pts) < 2:
        return 0.0
    (n0, r0), (n1, r1) = pts[0], pts[-1]
    return (r1 - r0) / ((n1 - n0) / 1e6) if n1 > n0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None, help="keep the generated session and store here")
    ap.add_argument("--ten-million", action="store_true", help="also measure a real 10M-event session")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--worker", nargs=4, metavar=("MODE", "PATH", "URL", "SID"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-")) if args.dir is None else args.dir
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        path = tmp / f"synthetic-{args.events}.jsonl"
        url = f"sqlite:///{tmp / f'ledger-{args.events}.db'}"
        if path.exists():
            from ledger.store.sessionfile import read_header

            h = read_header(path)
            sid, n, gen_s = h.session_id, h.events, 0.0
        else:
            sid, n, gen_s = generate(path, args.events)
        db = tmp / f"ledger-{args.events}.db"
        imp_s = import_store(path, url) if not db.exists() else 0.0
        print(
            f"session: {n} events ({path.stat().st_size / 1e6:.0f} MB file), generated in {gen_s:.1f} s, "
            f"imported into SQLite in {imp_s:.1f} s; cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}"
        )
        modes = [m for m in args.modes.split(",") if m]
        results: dict[str, list[dict]] = {m: [] for m in modes}
        for rep in range(args.reps):
            for m in modes:
                results[m].append(run_mode(m, path, url, sid))
            print(f"  rep {rep + 1}/{args.reps} done (load {os.getloadavg()[0]:.2f})", flush=True)
        med: dict[str, dict[str, float]] = {}
        print(f"\n{'mode':16s} {'events/s':>10s} {'(cpu)':>10s} {'peak RSS MB':>12s} {'RSS/1M ev':>10s}")
        for m, rs in results.items():
            eps = statistics.median(r["events"] / r["wall"] for r in rs)
            ceps = statistics.median(r["events"] / r["cpu"] for r in rs)
            rss = statistics.median(r["rss"] for r in rs)
            slope = statistics.median(slope_mb_per_m(r["samples"]) for r in rs)
            med[m] = {"eps": eps, "ceps": ceps, "rss": rss, "slope": slope}
            print(f"{m:16s} {eps:10.0f} {ceps:10.0f} {rss:12.0f} {slope:10.0f}")

        def ratio(a: str, b: str) -> str:
            if a in med and b in med:
                return f"{med[a]['eps'] / med[b]['eps']:.2f}x (cpu {med[a]['ceps'] / med[b]['ceps']:.2f}x)"
            return "-"

        print(f"\nreplay/decode, file : {ratio('file-replay', 'file-decode')}")
        print(f"replay/decode, store: {ratio('store-replay', 'store-decode')}")
        print(f"replay/fold-only    : {ratio('file-replay', 'file-fold')}  (governor + re-checks + bookkeeping)")
        print(f"replay gc-tuned/default: {ratio('file-replay-gc', 'file-replay')}")
        p50, p99, k = precheck_latency(str(path))
        print(f"pre_check latency over {k} intents: p50 {p50:.1f} us, p99 {p99:.1f} us (target p99 <= 100 us)")

        best = max((med[m]["eps"] for m in ("file-replay", "file-replay-gc", "store-replay") if m in med), default=0)
        verdict = "met" if best >= 300_000 else "MISSED"
        print(f"\nthroughput target >= 300k events/s: {verdict} (best replay median {best:,.0f} events/s)")
        if "file-replay" in med:
            r1 = med["file-replay"]["rss"]
            slope = med["file-replay"]["slope"]
            est10 = r1 + slope * (10_000_000 - n) / 1e6
            verdict = "met" if est10 <= 500 else "MISSED"
            print(
                f"peak RSS, {n} events: {r1:.0f} MB; growth {slope:.0f} MB per 1M events -> 10M estimate "
                f"{est10:.0f} MB: target <= 500 MB {verdict}"
            )
            dec = med.get("file-decode")
            if dec:
                print(
                    f"  (decode-only streaming: {dec['rss']:.0f} MB peak, {dec['slope']:.0f} MB per 1M events: "
                    "the stream itself is flat; growth is the fold's per-order state)"
                )
        if args.ten_million:
            big = tmp / "synthetic-10M.jsonl"
            if not big.exists():
                _, n10, g10 = generate(big, 10_000_000)
                print(f"\n10M session: {n10} events generated in {g10:.0f} s")
            r = run_mode("file-replay", big, url, sid)
            print(
                f"10M replay: {r['events']} events, {r['events'] / r['wall']:.0f} events/s, "
                f"peak RSS {r['rss']:.0f} MB (target <= 500 MB: {'met' if r['rss'] <= 500 else 'MISSED'})"
            )
    finally:
        if args.dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
