"""Simulator benchmark: market-data ticks per second to one client, and MKT place → Filled latency.

    .venv/bin/python tests/benchmarks/bench_simulator.py [--symbols 10] [--seconds 600] [--orders 200] [--reps 3]

The simulator runs in its own thread and loop (as ``Simulator.start()`` does), the real client library
(ib_insync, or ib_async with ``IBLEDGER_IB_LIB``) on the main thread's loop, over loopback.

* **ticks/s** — the client subscribes ``--symbols`` instruments; the market clock is advanced
  ``--seconds`` simulated seconds as fast as it goes; counted are the tick messages the client decoded,
  over the wall time until the last one arrived. Baseline in the same run: the same number of
  pre-encoded tick frames written to the same client by the simulator's loop with no market behind
  them (what the socket plus the client's decoder can take). Ratio = simulator / baseline.
* **MKT round trip** — ``--orders`` market orders placed one after the other; time from ``placeOrder``
  to the Filled orderStatus at the client (the client's request throttle is switched off). Baseline: a
  bare asyncio echo over loopback (one 100-byte message there and back) on the same loop.

Medians over ``--reps`` repetitions are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.ib.library import IB, LIBRARY_NAME, MarketOrder, Stock  # noqa: E402
from replay.tws import messages as M  # noqa: E402
from replay.tws.protocol import frame  # noqa: E402
from replay.tws.simulator import Simulator  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "IBM", "AMZN", "NVDA", "TSLA", "GOOGL", "META", "JPM", "XOM", "BAC", "KO", "SPY")
TICK_IDS = {"1", "2", "46"}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _counting(ib: IB) -> list[int]:
    count = [0]
    decoder = ib.client.decoder
    original = decoder.interpret

    def interpret(fields):
        if fields and fields[0] in TICK_IDS:
            count[0] += 1
        return original(fields)

    decoder.interpret = interpret
    return count


def ticks_per_second(sim: Simulator, ib: IB, symbols: int, seconds: int) -> tuple[float, float, int]:
    count = _counting(ib)
    contracts = [Stock(s, "SMART", "USD") for s in SYMBOLS[:symbols]]
    for c in contracts:
        ib.reqMktData(c)
    ib.sleep(0.3)
    count[0] = 0
    started = time.perf_counter()
    pushed = 0
    chunk = 20
    for _ in range(seconds // chunk):
        pushed += sim.advance(chunk)
        ib.sleep(0)
    while count[0] < pushed and time.perf_counter() - started < 120:
        ib.sleep(0.001)
    sim_rate = count[0] / (time.perf_counter() - started)
    for c in contracts:
        ib.cancelMktData(c)
    ib.sleep(0.2)

    # baseline: the same number of pre-encoded tick frames for a live subscription, no market behind them
    ticker = ib.reqMktData(contracts[0])
    ib.sleep(0.2)
    req_id = ib.wrapper.ticker2ReqId["mktData"][ticker]
    frames = [frame(M.tick_price(req_id, 1, 100.0 + i % 7 / 100, 300.0)) for i in range(1000)]
    payload = b"".join(frames)
    total = pushed
    count[0] = 0

    def blast(n: int) -> None:
        for conn in sim._conns:
            if conn.client_id == 91:
                for _ in range(n // len(frames)):
                    conn.writer.write(payload)

    started = time.perf_counter()
    sent = 0
    while sent < total:
        n = min(len(frames) * 20, total - sent)
        n -= n % len(frames) or 0
        if n <= 0:
            break
        sim._call(blast, n)
        sent += n
        ib.sleep(0)
    while count[0] < sent and time.perf_counter() - started < 120:
        ib.sleep(0.001)
    base_rate = count[0] / (time.perf_counter() - started)
    ib.cancelMktData(contracts[0])
    return sim_rate, base_rate, pushed


def mkt_round_trips(ib: IB, orders: int) -> list[float]:
    out = []
    aapl = Stock("AAPL", "SMART", "USD")
    for i in range(orders):
        side = "BUY" if i % 2 == 0 else "SELL"
        started = time.perf_counter()
        trade = ib.placeOrder(aapl, MarketOrder(side, 100))
        while trade.orderStatus.status != "Filled":
            ib.sleep(0)
            if time.perf_counter() - started > 10:
                raise RuntimeError(f"order {trade.order.orderId} never filled: {trade.orderStatus.status}")
        out.append(time.perf_counter() - started)
    return out


def echo_round_trips(ib: IB, n: int) -> list[float]:
    loop = asyncio.get_event_loop()

    async def handle(reader, writer):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()

    async def run() -> list[float]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        msg = b"x" * 100
        out = []
        for _ in range(n):
            t = time.perf_counter()
            writer.write(msg)
            await reader.readexactly(len(msg))
            out.append(time.perf_counter() - t)
        writer.close()
        server.close()
        return out

    return loop.run_until_complete(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--seconds", type=int, default=600, help="simulated seconds of market per repetition")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    rows = []
    for _ in range(args.reps):
        with Simulator(seed=1) as sim:
            ib = IB()
            ib.connect("127.0.0.1", sim.port, clientId=91, timeout=5)
            ib.client.MaxRequests = 0  # the client's own 45 requests/s throttle would dominate the round trips
            try:
                sim_rate, base_rate, pushed = ticks_per_second(sim, ib, args.symbols, args.seconds)
                rt = mkt_round_trips(ib, args.orders)
                echo = echo_round_trips(ib, args.orders)
            finally:
                ib.disconnect()
        rows.append((sim_rate, base_rate, pushed, _pct(rt, 0.5), _pct(rt, 0.99), _pct(echo, 0.5), _pct(echo, 0.99)))
    med = [statistics.median(r[i] for r in rows) for i in range(7)]
    print(f"client: {LIBRARY_NAME}; {args.symbols} symbols, {args.seconds} simulated s, {args.reps} reps (medians)")
    print(
        f"ticks/s to one client: simulator {med[0]:,.0f}  baseline (pre-encoded frames) {med[1]:,.0f}  "
        f"ratio {med[0] / med[1]:.2f}  ({med[2]:,.0f} ticks per rep)"
    )
    print(
        f"MKT place->Filled: p50 {med[3] * 1e3:.2f} ms  p99 {med[4] * 1e3:.2f} ms  |  bare echo p50 "
        f"{med[5] * 1e3:.3f} ms  p99 {med[6] * 1e3:.3f} ms  |  ratio p50 {med[3] / med[5]:.0f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
