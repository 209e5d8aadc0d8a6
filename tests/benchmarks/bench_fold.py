"""Fold throughput on a generated, seeded 1M-event stream, beside a bare-loop baseline in the same run.

    python tests/benchmarks/bench_fold.py [--events 1000000] [--runs 5] [--seed 1]

Prints events/s (median of ``--runs``, wall clock and CPU time) for:

* ``baseline``: a loop that only touches ``env.payload`` per event;
* ``floor``: the least any per-order fold does (find the order in a dict, append the observation, set
  three attributes) — what this interpreter and machine allow before any ledger logic;
* ``fold``: ``LedgerFold().apply`` over the same envelopes, from an empty fold each run;

and the fold/baseline and fold/floor ratios; then the NautilusTrader anchor (``anchor.py``, ``--anchor-orders``;
0 skips it): the same fold including the adapter's translation of raw IB callbacks, beside NautilusTrader's own
order objects over the same stream (target >= 1.5x). The input stream (``replay.strategies.generate_stream``) is
built once and frozen out of the garbage collector's sight (``gc.freeze``), so what is timed is the fold and the
objects it creates, not the GC walking a million input envelopes. Target: ≥ 300k events/s.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import anchor  # noqa: E402

from ledger.core.fold import LedgerFold  # noqa: E402
from replay.strategies import generate_stream  # noqa: E402

TARGET = 300_000


def baseline(envs: list) -> None:
    for env in envs:
        env.payload  # noqa: B018


class _Row:
    __slots__ = ("obs", "state", "n", "ns")

    def __init__(self) -> None:
        self.obs: list = []
        self.state = ""
        self.n = 0
        self.ns = 0


def floor(envs: list) -> dict:
    """The least any per-order fold does: find the order, record the observation, set three fields."""
    rows: dict = {}
    for env in envs:
        p = env.payload
        k = getattr(p, "perm_id", 0) or getattr(p, "order_id", 0)
        row = rows.get(k)
        if row is None:
            row = rows[k] = _Row()
        row.obs.append((env.recv_ns, env.seq))
        row.state = "x"
        row.n += 1
        row.ns = env.recv_ns
    return rows


def run_fold(envs: list) -> LedgerFold:
    f = LedgerFold()
    apply = f.apply
    for env in envs:
        apply(env)
    return f


def timed(fn, envs: list, runs: int) -> tuple[float, float, object]:
    walls, cpus = [], []
    result = None
    for _ in range(runs):
        result = None
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        result = fn(envs)
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    n = len(envs)
    return n / statistics.median(walls), n / statistics.median(cpus), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--anchor-orders", type=int, default=20_000, help="orders of the anchor stream (0: skip it)")
    args = ap.parse_args()

    t = time.perf_counter()
    envs = generate_stream(args.seed, args.events)
    gen_s = time.perf_counter() - t
    kinds = Counter(e.kind for e in envs)
    print(f"stream: {len(envs):,} envelopes (seed {args.seed}) generated in {gen_s:.1f} s")
    print("  mix: " + ", ".join(f"{k} {v / len(envs):.0%}" for k, v in kinds.most_common(6)))
    gc.collect()
    gc.freeze()

    base_wall, base_cpu, _ = timed(baseline, envs, args.runs)
    floor_wall, floor_cpu, _ = timed(floor, envs, args.runs)
    fold_wall, fold_cpu, f = timed(run_fold, envs, args.runs)
    assert isinstance(f, LedgerFold)
    states = Counter(o.state for o in f.orders.values())
    anomalies = Counter(a.kind for a in f.anomalies)

    print(f"baseline (touch env.payload): {base_wall:>12,.0f} events/s wall   {base_cpu:>12,.0f} events/s cpu")
    print(f"floor (lookup+append+3 sets): {floor_wall:>12,.0f} events/s wall   {floor_cpu:>12,.0f} events/s cpu")
    print(f"fold (LedgerFold.apply):      {fold_wall:>12,.0f} events/s wall   {fold_cpu:>12,.0f} events/s cpu")
    print(f"ratio fold/baseline:          {fold_wall / base_wall:>12.3f} (wall)   {fold_cpu / base_cpu:>12.3f} (cpu)")
    print(f"ratio fold/floor:             {fold_wall / floor_wall:>12.3f} (wall)   {fold_cpu / floor_cpu:>12.3f} (cpu)")
    verdict = "meets" if fold_wall >= TARGET else "MISSES"
    print(f"target {TARGET:,} events/s: {verdict} (median of {args.runs} runs, wall clock)")
    print(f"orders: {len(f.orders):,}  " + ", ".join(f"{k} {v:,}" for k, v in states.most_common()))
    print(f"anomalies: {len(f.anomalies):,}  " + ", ".join(f"{k} {v:,}" for k, v in anomalies.most_common()))
    if args.anchor_orders:
        del f, envs
        gc.unfreeze()
        gc.collect()
        anchor_runs = max(args.runs, 3)
        anchor.report(anchor.measure(7, args.anchor_orders, anchor_runs), anchor_runs)


if __name__ == "__main__":
    main()
