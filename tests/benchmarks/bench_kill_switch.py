"""How long a cancel waits behind a burst of placements: the client's own throttle vs the governed hook.

    python tests/benchmarks/bench_kill_switch.py [--orders 100] [--runs 5]

Against the in-process simulator over a real socket: ``--orders`` limit orders are placed in one burst
(ib_insync / ib_async send 45 requests a second and queue the rest), then the first order is cancelled at
once. Timed: from the cancel call until the simulator has received the CANCEL_ORDER (median of
``--runs``), for

* ``baseline``: a recording-only ``Recorder.attach`` (the cancel joins the client's queue);
* ``governed``: ``Recorder.attach(..., governor=...)`` (the cancel goes out ahead of the queue);

and governed/baseline as a ratio. The governed run also drops the placements still queued only when a
kill switch runs; a single cancel leaves them queued, so both runs send the same placements.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.core.governor_config import parse_config  # noqa: E402
from ledger.ib.library import IB, LimitOrder, Stock  # noqa: E402
from ledger.live.recorder import Recorder  # noqa: E402
from replay.tws.simulator import Simulator  # noqa: E402

NO_LIMITS = parse_config("[limits]\nmax_open_orders = 0\nmax_orders_per_sec = 0\nmax_orders_per_min = 0\n")


def one(url: str, n: int, governed: bool, client_id: int) -> float:
    with Simulator() as sim:
        ib = IB()
        rec = Recorder.attach(ib, url, governor=NO_LIMITS if governed else None)
        try:
            ib.connect("127.0.0.1", sim.port, clientId=client_id, timeout=10)
            c = Stock("AAPL", "SMART", "USD")
            c.conId = 265598
            trades = [ib.placeOrder(c, LimitOrder("BUY", 1, 50.0 + i / 100)) for i in range(n)]
            t0 = time.perf_counter()
            ib.cancelOrder(trades[0].order)
            while not any(d == "in" and f and f[0] == "4" for d, _c, f in list(sim.wire_log)):
                ib.sleep(0.001)
            return time.perf_counter() - t0
        finally:
            ib.disconnect()
            rec.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    base, gov = [], []
    with tempfile.TemporaryDirectory() as d:
        for r in range(a.runs):
            base.append(one(f"sqlite:///{d}/b{r}.db", a.orders, False, 1))
            gov.append(one(f"sqlite:///{d}/g{r}.db", a.orders, True, 2))
    b, g = statistics.median(base), statistics.median(gov)
    print(f"baseline  {b * 1000:9.1f} ms from cancelOrder to the broker, after {a.orders} placements (throttled)")
    print(f"governed  {g * 1000:9.1f} ms (the cancel goes ahead of the client's queue)")
    print(f"ratio governed/baseline {g / b:.3f}")


if __name__ == "__main__":
    main()
