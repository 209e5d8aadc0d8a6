"""Where a replay's time goes, stage by stage: prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_replay_stages.py [--events 200000] [--reps 5] [--dir DIR]

One synthetic session (``replay.synthetic``, as bench_replay.py writes it; ``--dir`` reuses one there) is
decoded once into memory, then each repetition runs, over the same envelopes and in this order:

* ``decode``         -- ``iter_session`` over the file (read + JSON decode + validate): the floor;
* ``fold (full)``    -- ``LedgerFold.apply``, every order kept in memory;
* ``fold (compact)`` -- ``LedgerFold.apply`` as a replay runs it (finished orders retired beyond 1,000,
                        no status timeline): full fold + retirement + the archive prefetch;
* ``engine``         -- ``Engine.step``: the compact fold + the governor observing what it acts on;
* ``replay``         -- ``Replayer.run`` over the in-memory envelopes: the engine + every intent
                        pre-checked again + decision matching + the digest;
* ``pre_check``      -- the replay's own ``Engine.pre_check`` calls, timed one by one inside it.

Medians of CPU time (``process_time``: the machine is shared, CPU time moves less than wall time with
the load), as µs per event and events/s, then the increments (what each stage adds over the one before)
and the figure that decides the 300k ev/s target: decode + everything above it must fit in 3.3 µs/event.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_replay  # noqa: E402

TARGET_EPS = 300_000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", type=Path, default=None, help="keep / reuse the generated session here")
    a = ap.parse_args()

    from ledger.core.engine import Engine
    from ledger.core.fold import LedgerFold
    from ledger.store.sessionfile import iter_session, read_header
    from replay.replayer import KEEP_DONE, Replayer

    work = Path(tempfile.mkdtemp(prefix="bench-stages-")) if a.dir is None else a.dir
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"session-{a.events}.jsonl"
    if not path.exists():
        bench_replay.generate(path, a.events)
    envs = list(iter_session(path))
    n = len(envs)
    print(f"session {read_header(path).session_id}: {n:,} events; cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.2f}; medians of {a.reps} reps, CPU time")  # fmt: skip
    gc.collect()
    gc.freeze()  # the decoded envelopes are long-lived: the collector need not walk them
    clock = time.process_time
    stages: dict[str, list[float]] = {k: [] for k in ("decode", "fold (full)", "fold (compact)", "engine", "replay")}
    pre: list[float] = []
    real_pre_check = Engine.pre_check
    for _ in range(a.reps):
        t = clock()
        for _env in iter_session(path):
            pass
        stages["decode"].append(clock() - t)
        for name, kw in (("fold (full)", {}), ("fold (compact)", {"compact": True, "timeline": False})):
            f = LedgerFold(**kw, keep=KEEP_DONE)  # type: ignore[arg-type]
            apply = f.apply
            t = clock()
            for env in envs:
                apply(env)
            stages[name].append(clock() - t)
            f.close()
        eng = Engine(compact=True, timeline=False, keep=KEEP_DONE)
        step = eng.step
        t = clock()
        for env in envs:
            step(env)
        stages["engine"].append(clock() - t)
        eng.fold.close()
        spent = [0]

        def timed(self: Engine, *args: object, _spent: list[int] = spent, ns=time.process_time_ns) -> object:
            t0 = ns()
            d = real_pre_check(self, *args)  # type: ignore[arg-type]
            _spent[0] += ns() - t0
            return d

        Engine.pre_check = timed  # type: ignore[method-assign]
        try:
            t = clock()
            Replayer().run(envs)
            stages["replay"].append(clock() - t)
        finally:
            Engine.pre_check = real_pre_check  # type: ignore[method-assign]
        pre.append(spent[0] / 1e9)
    gc.unfreeze()

    us = {k: statistics.median(v) / n * 1e6 for k, v in stages.items()}
    us_pre = statistics.median(pre) / n * 1e6
    print(f"\n{'stage':18s} {'us/event':>9s} {'events/s':>10s}")
    for k, v in us.items():
        print(f"{k:18s} {v:9.2f} {1e6 / v:10,.0f}")
    print(f"{'  of which pre_check':18s} {us_pre:9.2f}  (inside replay)")
    print("\nincrements (µs per event of the session):")
    print(f"  decode (floor)                   {us['decode']:6.2f}")
    print(f"  fold handlers                    {us['fold (full)']:6.2f}")
    print(f"  retirement + archive prefetch    {us['fold (compact)'] - us['fold (full)']:6.2f}")
    print(f"  governor observe (engine step)   {us['engine'] - us['fold (compact)']:6.2f}")
    print(f"  pre_check re-run                 {us_pre:6.2f}")
    print(f"  replayer bookkeeping + digest    {us['replay'] - us['engine'] - us_pre:6.2f}")
    total = us["decode"] + us["replay"]
    budget = 1e6 / TARGET_EPS
    print(
        f"\ndecode + replay = {total:.2f} µs/event = {1e6 / total:,.0f} ev/s (CPU); the 300k ev/s target allows "
        f"{budget:.2f} µs/event, of which decode alone takes {us['decode']:.2f} "
        f"({'met' if total <= budget else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
