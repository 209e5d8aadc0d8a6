"""Cost of recording market data: the recorder's tick hook on the client's own ``priceSizeTick``.

    python tests/benchmarks/bench_ticks.py [--ticks 200000] [--runs 5]

Prints ticks/s (median of ``--runs``) for the same stream of price ticks delivered to:

* ``baseline``: the library's wrapper alone (an ``IB`` without a recorder);
* ``recorded``: the same wrapper with a governed ``Recorder.attach`` (sampling, a few observations kept);

and recorded/baseline as a ratio. No socket: the ticks are handed to ``wrapper.priceSizeTick`` as the
decoder would, so what is timed is the per-tick work, not the network. The sampler keeps at most one
observation per second, so nearly every tick costs only the hook and the sampling decision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.ib.library import IB, Stock  # noqa: E402
from ledger.live.recorder import Recorder  # noqa: E402


def _ib() -> tuple[IB, int]:
    ib = IB()
    c = Stock("AAPL", "SMART", "USD")
    c.conId = 265598
    req_id = 1
    ib.wrapper.startTicker(req_id, c, "mktData")
    return ib, req_id


def run(ib: IB, req_id: int, n: int) -> float:
    tick = ib.wrapper.priceSizeTick
    t0 = time.perf_counter()
    for i in range(n):
        tick(req_id, 4, 100.0 + (i % 50) * 0.01, 100)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    base, rec_rates = [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.runs):
            ib, req = _ib()
            base.append(run(ib, req, a.ticks))
            ib, req = _ib()
            rec = Recorder.attach(ib, f"sqlite:///{d}/b{r}.db", governor="default")
            rec_rates.append(run(ib, req, a.ticks))
            kept = rec.prices.kept
            rec.close()
    b, rr = statistics.median(base), statistics.median(rec_rates)
    print(f"baseline  {b:12,.0f} ticks/s (library wrapper alone)")
    print(f"recorded  {rr:12,.0f} ticks/s (governed recorder; {kept} observation(s) kept of {a.ticks})")
    print(f"ratio recorded/baseline {rr / b:.2f}")


if __name__ == "__main__":
    main()
