"""Cost of gap-checked reads: prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_checked_reads.py [--orders 5000] [--sessions 4] [--reps 5]

In one run, on one SQLite file: ``read_all`` and ``read_session`` (which check seq continuity as they
stream and against each session's head row) against a baseline that pages the same rows with the same
queries and decodes them with the same codec, but checks nothing. Medians over the repetitions, with the
ratio checked/baseline. Target: >= 0.9x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.store import PAGE_SIZE, decode_row, open_store  # noqa: E402
from replay.synthetic import synthetic_session  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=5000)
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{d}/bench.db"
        envs = [e for seed in range(args.sessions) for e in synthetic_session(seed, args.orders)]
        with open_store(url) as st:
            for i in range(0, len(envs), 1000):
                st.append(envs[i : i + 1000])
            n = len(envs)

            def unchecked():  # the same paging and decoding as read_all, as a generator, checking nothing
                pos = 0
                while True:
                    rows = st._all_page(pos, PAGE_SIZE)
                    for p, s in rows:
                        yield p, decode_row(p, s)
                    if len(rows) < PAGE_SIZE:
                        return
                    pos = rows[-1][0]

            def baseline() -> int:
                return sum(1 for _ in unchecked())

            def read_all() -> int:
                return sum(1 for _ in st.read_all())

            def read_session() -> int:
                return sum(sum(1 for _ in st.read_session(h.session_id)) for h in st.session_heads())

            times: dict[str, list[float]] = {"baseline": [], "read_all": [], "read_session": []}
            for _ in range(args.reps):  # interleaved, so machine load hits every variant alike
                for name, fn in (("baseline", baseline), ("read_all", read_all), ("read_session", read_session)):
                    t = time.perf_counter()
                    assert fn() == n
                    times[name].append(time.perf_counter() - t)
    base = statistics.median(times["baseline"])
    print(f"{n} events in {args.sessions} sessions, {args.reps} reps, medians")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:<13} {n / med:>12,.0f} events/s   {base / med:.2f}x baseline")


if __name__ == "__main__":
    main()
