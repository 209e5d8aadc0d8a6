"""Placement benchmark: prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_placement.py [--calls 20000] [--reps 5] [--orders 100]

1. Governor pre-check latency (``Engine.pre_check`` on a place intent, the ledger warmed with filled,
   cancelled and open orders) against a baseline in the same run: an empty Python function called the
   same way. p50 / p99 per call, medians over the repetitions. Target: p99 <= 100 µs.
2. Kill switch against the simulator with ``--orders`` working orders: from calling ``cancel_all()`` to
   the moment the simulator *received* the cancel request (reqGlobalCancel: one message covering every
   order), and to every order confirmed cancelled in the ledger. For comparison, the same number of
   individual cancels through the governor protocol (pre-check, two recorded events and one
   CANCEL_ORDER each), to the moment the simulator received the last one. Target: <= 50 ms.
   Times are taken with ``time.perf_counter`` in one process (the simulator runs in a thread).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.core import events as ev  # noqa: E402
from ledger.core.engine import Engine  # noqa: E402
from ledger.core.events import envelope  # noqa: E402
from ledger.core.governor_config import GovernorConfig, LimitsConfig  # noqa: E402

SID = "bench-session"


def warm_engine(n_orders: int = 120) -> Engine:
    """An engine whose ledger holds ``n_orders`` orders: 2/3 filled or cancelled, 1/3 working."""
    eng = Engine()
    seq = 0
    ns = 1_700_000_000_000_000_000

    def feed(p: ev.Event) -> None:
        nonlocal seq, ns
        seq += 1
        ns += 1_000_000
        eng.process(envelope(SID, seq, p, recv_ns=ns))

    feed(ev.SessionStarted(library="bench", library_version="0", client_id=1, account="DU1"))
    feed(ev.Connected(host="127.0.0.1", port=1, client_id=1))
    for i in range(1, n_orders + 1):
        oid, perm = i, 1_000_000 + i
        sym = f"S{i % 20}"
        feed(ev.PlaceOrder(order_id=oid, client_id=1, symbol=sym, action="BUY", total_qty=10, order_type="LMT",
                           lmt_price=10.0))
        feed(ev.OrderStatus(order_id=oid, status="Submitted", remaining=10, perm_id=perm, client_id=1))
        if i % 3 == 0:
            continue
        if i % 3 == 1:
            feed(ev.ExecDetails(exec_id=f"e{i}.01", order_id=oid, perm_id=perm, client_id=1, side="BOT", shares=10,
                                price=10.0, symbol=sym))
            feed(ev.CommissionReport(exec_id=f"e{i}.01", commission=1.0))
            feed(ev.OrderStatus(order_id=oid, status="Filled", filled=10, perm_id=perm, client_id=1))
        else:
            feed(ev.OrderStatus(order_id=oid, status="Cancelled", remaining=10, perm_id=perm, client_id=1))
    return eng


def percentiles(samples: list[int]) -> tuple[float, float]:
    s = sorted(samples)
    return s[len(s) // 2] / 1000.0, s[min(len(s) - 1, int(len(s) * 0.99))] / 1000.0  # µs


def bench_precheck(calls: int, reps: int) -> None:
    eng = warm_engine()
    intent = ev.PlaceOrder(order_id=99_999, client_id=1, symbol="AAPL", action="BUY", total_qty=100,
                           order_type="LMT", lmt_price=187.25, tif="DAY")
    decision = eng.pre_check(intent, 1_800_000_000_000_000_000)
    assert decision.decision == "ALLOW", decision

    def empty(intent: object, now_ns: int) -> None:
        return None

    pc = time.perf_counter_ns
    rows = {"pre_check": [], "baseline": []}
    for _ in range(reps):
        for name, fn in (("pre_check", eng.pre_check), ("baseline", empty)):
            samples = []
            now = 1_800_000_000_000_000_000
            for _ in range(calls):
                t = pc()
                fn(intent, now)
                samples.append(pc() - t)
            rows[name].append(percentiles(samples))
    print(f"governor pre-check ({calls} calls x {reps} reps, ledger with 120 orders, 40 working):")
    for name, results in rows.items():
        p50 = statistics.median(r[0] for r in results)
        p99 = statistics.median(r[1] for r in results)
        print(f"  {name:<10} p50 {p50:7.2f} µs   p99 {p99:7.2f} µs")
    p99 = statistics.median(r[1] for r in rows["pre_check"])
    verdict = "met" if p99 <= 100 else "MISSED"
    print(f"  target p99 <= 100 µs: {verdict} ({p99:.1f} µs)")


async def one_cancel_round(n: int, mode: str, store_url: str) -> tuple[float, float]:
    """mode: "global" (cancel-all with n working orders), "individual" (n cancels through the governor
    protocol) or "burst" (cancel-all right after placing n orders: the client's request throttle is busy)."""
    from ledger.cli.simulated import start_simulator
    from ledger.ib.library import LimitOrder, Stock
    from ledger.ib.settings import resolve
    from ledger.live.placement import open_session

    gov = GovernorConfig(limits=LimitsConfig(max_qty=0, max_notional=0, max_open_orders=0, max_orders_per_sec=0,
                                             max_orders_per_min=0))
    settings = resolve(simulate=True, env={})
    from ledger.store import open_store

    with open_store(store_url) as store:
        async with open_session(settings, store, governor=gov, reconnect=False, linger=0.0,
                                start_simulator=start_simulator) as sess:
            sim = sess.simulator
            received: list[float] = []
            original = sim._dispatch

            def dispatch(conn, req):  # note when each cancel request arrives at the simulator
                if type(req).__name__ in ("GlobalCancel", "CancelOrder"):
                    received.append(time.perf_counter())
                return original(conn, req)

            sim._dispatch = dispatch
            for i in range(n):
                await sess.place(Stock(f"S{i}", "SMART", "USD"), LimitOrder("BUY", 1, 10.0), timeout=0)
            views = [v for v in sess.fold.open_orders()]
            individual = mode == "individual"
            if mode != "burst":
                await sess.until(lambda: all(v.state == "Working" for v in views), 10)
            t0 = time.perf_counter()
            if individual:
                for v in views:
                    sess._send_cancel(v)
                await sess.until(lambda: len(received) >= n, 10)
                await sess.until(lambda: all(v.is_done for v in views), 10)
            else:
                report = await sess.cancel_all(10)
                assert report.confirmed and len(report.orders) == n, report.message
            t_done = time.perf_counter()
            await sess.until(lambda: len(received) >= (n if individual else 1), 10)
            last = received[-1] if received else float("nan")
            return (last - t0) * 1000, (t_done - t0) * 1000


def bench_cancel(n: int, reps: int) -> None:
    import logging

    from ledger.ib.library import LIBRARY_NAME

    logging.getLogger(LIBRARY_NAME).setLevel(logging.CRITICAL)
    from ledger.ib.library import IB

    client = IB().client
    throttle = f"{client.MaxRequests} requests per {client.RequestsInterval:g} s"
    labels = {
        "global": "cancel-all (reqGlobalCancel)",
        "individual": f"{n} individual cancels",
        "burst": f"cancel-all right after {n} places",
    }
    with tempfile.TemporaryDirectory() as d:
        for mode in ("global", "individual", "burst"):
            sent, done = [], []
            for r in range(reps):
                url = f"sqlite:///{Path(d) / f'cancel-{mode}-{r}.db'}"
                a, b = asyncio.run(one_cancel_round(n, mode, url))
                sent.append(a)
                done.append(b)
            s, c = statistics.median(sent), statistics.median(done)
            print(f"  {labels[mode]:<34} last cancel received by the simulator {s:8.2f} ms   "
                  f"all {n} confirmed cancelled in the ledger {c:8.2f} ms")
            if mode == "global":
                print(f"  target <= 50 ms to the last cancel request: {'met' if s <= 50 else 'MISSED'} ({s:.2f} ms)")
            elif s > 50:
                print(f"    limited by the client library's request throttle ({throttle}, FIFO): "
                      + ("each cancel is one request" if mode == "individual"
                         else "the global cancel waits behind the queued placements"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--orders", type=int, default=100)
    args = ap.parse_args()
    from ledger.ib.library import LIBRARY_NAME, LIBRARY_VERSION

    print(f"ibledger placement benchmark ({LIBRARY_NAME} {LIBRARY_VERSION}, Python {sys.version.split()[0]}), "
          f"medians over {args.reps} reps")
    bench_precheck(args.calls, args.reps)
    print(f"kill switch with {args.orders} working orders against the simulator:")
    bench_cancel(args.orders, args.reps)


if __name__ == "__main__":
    main()
