"""Recorder benchmark: callback → committed latency and event-loop stalls under a callback burst.

    .venv/bin/python tests/benchmarks/bench_recorder.py [--rate 5000] [--seconds 3] [--reps 3]
                                                         [--chunk-ms 2] [--store sqlite|pg|URL]

The simulator (its own process, as TWS is) sends raw wire messages to a real ib_insync / ib_async client
on an asyncio loop in the main thread: ``rate`` callbacks per second (70 % orderStatus, 15 % execDetails,
15 % commissionReport), round-robin over ``--orders`` working orders (the libraries log ``repr(trade)``
on every status and fill, so piling thousands of messages on one order measures the library, not the
recorder), in chunks every ``chunk_ms``. Per repetition, in one run,
on the same machine and the same loop:

* **baseline** — the client without a recorder;
* **recorder** — the same client with ``Recorder.attach`` (store on disk, SQLite synchronous=FULL by
  default, or PostgreSQL).

Measured: *commit latency* = writer commit time − the callback's receipt stamp (``mono_ns``), per event;
*loop lag* = how late a 1 ms ticker task wakes up (max and p99), in both runs; the stall caused by
recording is the recorder's max lag minus the baseline's. Medians over the repetitions are printed.
Targets: commit p99 <= 5 ms, stall <= 2 ms. The disk's bare fsync latency is printed alongside: with
``synchronous=FULL`` every commit waits for one; ``--store sqlite-normal`` (WAL, ``synchronous=NORMAL``)
keeps the kill -9 guarantee (not the power-loss one) without it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ledger.ib.library import IB, LIBRARY_NAME, LimitOrder, Stock  # noqa: E402
from ledger.live.recorder import Recorder  # noqa: E402
from ledger.store.writer_process import TRACE_ENV  # noqa: E402
from replay.tws import protocol as P  # noqa: E402
from replay.tws.simulator import Simulator  # noqa: E402

CLIENT_ID = 41


gc_pauses: list[float] = []
_gc_t0 = [0.0]


def _gc_timer(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_t0[0] = time.perf_counter()
    else:
        gc_pauses.append(time.perf_counter() - _gc_t0[0])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


def drive(sim: Simulator, orders: list[tuple[int, int, P.ContractSpec]], rate: int, seconds: float,
          chunk_ms: float, exec_base: int) -> tuple[int, int]:
    """Send ``rate`` messages/s for ``seconds`` in chunks, round-robin over ``orders`` (one loop hop per
    chunk). Returns (messages sent, next exec number)."""
    per_chunk = max(1, round(rate * chunk_ms / 1000))
    period = per_chunk / rate
    n_exec = exec_base
    i = 0
    sent = 0
    filled: dict[int, float] = {}
    t_next = time.perf_counter()
    t_end = t_next + seconds
    while time.perf_counter() < t_end:
        chunk: list[list] = []
        for _ in range(per_chunk):
            order_id, perm_id, contract = orders[i % len(orders)]
            m = i % 20
            i += 1
            if m < 14:
                # mostly repeats of the current status (TWS repeats statuses; the library swallows them
                # cheaply, the recorder keeps every one); a changed one after each fill
                f = filled.get(order_id, 0.0)
                chunk.append(P.order_status(order_id, "Submitted", f, 1e6 - f, 100.0 if f else 0.0, perm_id, 0,
                                            100.0 if f else 0.0, CLIENT_ID, "", 0.0))
            elif m < 17:
                n_exec += 1
                filled[order_id] = filled.get(order_id, 0.0) + 1.0
                exec_id = f"0000e0d5.{n_exec:08x}.01.01"
                chunk.append(P.execution(-1, order_id, contract, exec_id, "20240102 09:30:01 US/Eastern",
                                         "DU1234567", "ISLAND", "BOT", 1.0, 100.0, perm_id, CLIENT_ID,
                                         filled[order_id], 100.0, "bench", server_version=176))
            else:
                chunk.append(P.commission_report(f"0000e0d5.{n_exec:08x}.01.01", 0.01, "USD"))

        def send(chunk: list[list] = chunk) -> None:
            for fields in chunk:
                sim.inject_message(fields, CLIENT_ID)  # already on the simulator's loop: direct

        sim._call(send)
        sent += len(chunk)
        t_next += period
        delay = t_next - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return sent, n_exec + 1


def serve() -> None:
    """The simulator process: prints its port, then runs bursts on request (one JSON line each)."""
    import json

    with Simulator() as sim:
        print(json.dumps({"port": sim.port}), flush=True)
        for line in sys.stdin:
            req = json.loads(line)
            orders = []
            for order_id in req["order_ids"]:
                o = sim.broker.find(CLIENT_ID, order_id)
                orders.append((order_id, o.perm_id, o.contract))
            sent, exec_next = drive(sim, orders, req["rate"], req["seconds"], req["chunk_ms"], req["exec_base"])
            print(json.dumps({"sent": sent, "exec_next": exec_next}), flush=True)


class SimProcess:
    """The simulator in its own process (as TWS is), so its work does not compete for our GIL."""

    def __init__(self) -> None:
        import json
        import subprocess

        self._json = json
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.port = json.loads(self.proc.stdout.readline())["port"]

    def burst(self, **req) -> dict:
        self.proc.stdin.write(self._json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


async def one_run(sim: SimProcess, store_url: str | None, args: argparse.Namespace, exec_base: int) -> dict:
    ib = IB()
    options = {} if args.writer == "default" else {"writer": args.writer}
    trace_file = None
    burst: list[tuple[int, int, int]] = []
    if store_url and args.trace:
        trace_file = Path(tempfile.mkdtemp(prefix="bench_trace_")) / "writer.trace"
        os.environ[TRACE_ENV] = str(trace_file)
    try:
        rec = Recorder.attach(ib, store_url, max_batch=args.max_batch, **options) if store_url else None
    finally:
        os.environ.pop(TRACE_ENV, None)
    latencies: list[int] = []
    window: list[tuple[int, int, int]] = []  # (seq, receipt mono_ns, commit ns) of the burst's events
    puts: dict[int, tuple[int, int, bool]] = {}  # seq -> (put entered, put returned, this put woke the child)
    if rec is not None:
        def on_commit(batch, commit_ns: int) -> None:
            latencies.extend(commit_ns - e.mono_ns for e in batch if e.mono_ns)
            if trace_file is not None:
                window.extend((e.seq, e.mono_ns, commit_ns) for e in batch if e.mono_ns)

        rec.on_commit(on_commit)
        if trace_file is not None:
            w = rec.writer
            put = w.put

            def traced_put(env, timeout: float = 0.0, *, reserve: bool = False) -> bool:
                t0, woken = time.monotonic_ns(), getattr(w, "_woken", 0)
                ok = put(env, timeout, reserve=reserve)
                puts[env.seq] = (t0, time.monotonic_ns(), getattr(w, "_woken", 0) != woken)
                return ok

            w.put = traced_put
    await ib.connectAsync("127.0.0.1", sim.port, clientId=CLIENT_ID, timeout=5)
    # CPU time of the loop thread per decoded message (library + recorder hook): robust to other load
    cpu: list[int] = []
    decoder = ib.client.decoder
    interpret = decoder.interpret

    def timed_interpret(fields, _t=time.thread_time_ns) -> None:
        t0 = _t()
        interpret(fields)
        cpu.append(_t() - t0)

    decoder.interpret = timed_interpret
    contract = Stock("AAPL", "SMART", "USD")
    trades = [ib.placeOrder(contract, LimitOrder("BUY", 1e6, 100.0, orderRef="bench")) for _ in range(args.orders)]
    while any(t.orderStatus.status not in ("Submitted", "PreSubmitted") for t in trades):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    if rec is not None:
        await rec.flush_async()
        latencies.clear()
        window.clear()

    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        tick = 0.001
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t0 = loop.time()
            await asyncio.sleep(tick)
            lags.append(loop.time() - t0 - tick)

    gc.collect()  # each run starts from a collected heap (earlier runs' garbage would lengthen its pauses)
    tick_task = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.1)
    lags.clear()
    cpu.clear()
    gc_pauses.clear()
    t0 = time.perf_counter()
    reply = await asyncio.get_running_loop().run_in_executor(
        None, lambda: sim.burst(order_ids=[t.order.orderId for t in trades], rate=args.rate, seconds=args.seconds,
                                chunk_ms=args.chunk_ms, exec_base=exec_base))
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.3)
    stop.set()
    await tick_task
    burst_cpu = list(cpu)
    pauses = list(gc_pauses)
    result = {
        "gc_max_ms": max(pauses) * 1e3 if pauses else 0.0,
        "cpu_p50_us": pct(burst_cpu, 50) / 1e3,
        "cpu_p99_us": pct(burst_cpu, 99) / 1e3,
        "cpu_mean_us": statistics.fmean(burst_cpu) / 1e3 if burst_cpu else float("nan"),
        "sent": reply["sent"],
        "rate": reply["sent"] / elapsed,
        "lag_max_ms": max(lags) * 1e3 if lags else float("nan"),
        "lag_p99_ms": pct(lags, 99) * 1e3,
        "exec_next": reply["exec_next"],
    }
    if rec is not None:
        await rec.flush_async(10)
        burst = list(window)  # the burst's events only (what ``latencies`` holds), not the cancels below
        result.update(
            p50_ms=pct(latencies, 50) / 1e6,
            p99_ms=pct(latencies, 99) / 1e6,
            max_ms=max(latencies) / 1e6 if latencies else float("nan"),
            committed=len(latencies),
            batches=rec.writer.batches,
            writer_class=type(rec.writer).__name__,
            lost=rec.lost,
        )
    for t in trades:
        ib.cancelOrder(t.order)
    await asyncio.sleep(0.2)
    ib.disconnect()
    if rec is not None:
        rec.close()
    if trace_file is not None and trace_file.exists():
        result["trace"] = breakdown(burst, puts, msgspec.msgpack.decode(trace_file.read_bytes()))
        shutil.rmtree(trace_file.parent, ignore_errors=True)
    return result


def breakdown(window: list[tuple[int, int, int]], puts: dict, trace: list[list]) -> dict:
    """Split each burst event's commit latency (commit - receipt) into its consecutive parts:

    * ``hook``: receipt stamp -> ``put`` returned (the recorder's hook, encoding, the ring copy; and any
      time the loop thread was off the CPU meanwhile);
    * ``ring``: ``put`` returned -> the child took the frame (the child was committing an earlier batch --
      "in flight" -- or asleep and being woken: the signal's delivery and the child's scheduling);
    * ``queue``: taken -> its own commit started (decoding, earlier batches taken at the same time);
    * ``commit``: its own ``append`` (the SQLite transaction and its fsync with synchronous=FULL).
    """
    pops: list[tuple[int, int]] = []  # (cumulative frames taken, at)
    taken = 0
    commits: dict[int, tuple[int, int]] = {}
    sleeps = []
    for rec in trace:
        if rec[0] == "pop":
            taken += rec[2]
            pops.append((taken, rec[1]))
        elif rec[0] == "commit":
            for seq in range(rec[3], rec[4] + 1):
                commits[seq] = (rec[1], rec[2])
        elif rec[0] == "sleep":
            sleeps.append(rec)
    import bisect

    ends = [p[0] for p in pops]
    starts = [s[1] for s in sleeps]
    rows = []
    for seq, recv, _ack in window:
        i = bisect.bisect_left(ends, seq)  # the k-th frame taken is seq k (every put is one frame, in order)
        if seq not in puts or seq not in commits or i >= len(pops):
            continue
        put_in, put_out, woke = puts[seq]
        popped = pops[i][1]
        c0, c1 = commits[seq]
        # was the child asleep when this frame arrived? (a sleep that began before the put and ended after)
        j = bisect.bisect_right(starts, put_out) - 1
        asleep = j >= 0 and sleeps[j][2] >= put_out
        rows.append({"total": c1 - recv, "hook": put_out - recv, "ring": popped - put_out, "queue": c0 - popped,
                     "commit": c1 - c0, "woke": woke, "asleep": asleep})
    if not rows:
        return {}
    n = len(rows)
    p99 = pct([r["total"] for r in rows], 99)
    top = [r for r in rows if r["total"] >= p99]
    parts = ("hook", "ring", "queue", "commit")
    own = sorted({(c0, c1) for c0, c1 in commits.values()})
    return {
        "events": n,
        "p50": {k: pct([r[k] for r in rows], 50) / 1e6 for k in ("total", *parts)},
        "p99": {k: pct([r[k] for r in rows], 99) / 1e6 for k in ("total", *parts)},
        "top_mean": {k: statistics.fmean(r[k] for r in top) / 1e6 for k in ("total", *parts)},
        "top_n": len(top),
        "top_woke": sum(r["woke"] for r in top),
        "top_asleep": sum(r["asleep"] for r in top),
        "top_ring_asleep": statistics.fmean([r["ring"] for r in top if r["asleep"]] or [0]) / 1e6,
        "top_ring_busy": statistics.fmean([r["ring"] for r in top if not r["asleep"]] or [0]) / 1e6,
        "all_woke": sum(r["woke"] for r in rows),
        "commit_p50": pct([c1 - c0 for c0, c1 in own], 50) / 1e6,
        "commit_p99": pct([c1 - c0 for c0, c1 in own], 99) / 1e6,
        "sleeps": len(sleeps),
        "sleeps_signalled": sum(1 for s in sleeps if s[3]),
    }


def print_breakdown(label: str, t: dict) -> None:
    if not t:
        return
    parts = ("total", "hook", "ring", "queue", "commit")
    print(f"  {label} breakdown of {t['events']} events (ms):  " + "  ".join(f"{k}" for k in parts))
    for row in ("p50", "p99", "top_mean"):
        name = {"p50": "p50", "p99": "p99", "top_mean": f"mean of the slowest 1% ({t['top_n']})"}[row]
        print(f"    {name:28s} " + "  ".join(f"{t[row][k]:6.2f}" for k in parts))
    print(f"    own commits: p50 {t['commit_p50']:.2f} ms, p99 {t['commit_p99']:.2f} ms; child slept {t['sleeps']} "
          f"times, {t['sleeps_signalled']} woken by the signal; puts that sent the wake: {t['all_woke']} "
          f"of {t['events']} (slowest 1%: {t['top_woke']} of {t['top_n']})")
    print(f"    slowest 1%: {t['top_asleep']} of {t['top_n']} arrived while the child slept (ring wait mean "
          f"{t['top_ring_asleep']:.2f} ms), the others while it was committing (ring wait mean "
          f"{t['top_ring_busy']:.2f} ms)")


def fsync_probe(directory: str, n: int = 200) -> tuple[float, float]:
    import os

    path = os.path.join(directory, "fsync_probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    times = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t0 = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t0) * 1e3)
    finally:
        os.close(fd)
        os.unlink(path)
    return pct(times, 50), pct(times, 99)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--chunk-ms", type=float, default=2.0)
    ap.add_argument("--orders", type=int, default=500, help="working orders the burst is spread over")
    ap.add_argument("--store", default="sqlite",
                    help="sqlite (synchronous=FULL) | sqlite-normal (WAL, synchronous=NORMAL) | pg | a store URL")
    ap.add_argument("--max-batch", type=int, default=100, help="writer: most events per commit")
    ap.add_argument("--writer", default="default", choices=("default", "auto", "thread", "process"),
                    help="Recorder.attach(writer=...): default (attach's own default), or force one")
    ap.add_argument("--switch-ms", type=float, default=0.0,
                    help="sys.setswitchinterval in ms for this process (0: Python's default, 5 ms; "
                    "`ibledger record` uses 0.5)")
    ap.add_argument("--trace", action="store_true",
                    help="split the commit latency into its parts (the writer process records its timings)")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.switch_ms:
        sys.setswitchinterval(args.switch_ms / 1000)
    if args.serve:
        serve()
        return
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("ib_insync").setLevel(logging.CRITICAL)
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)

    tmp = tempfile.mkdtemp(prefix="bench_recorder_")
    if args.store == "sqlite":
        def url_for(i: int) -> str:
            return f"sqlite:///{tmp}/ledger{i}.db"
    elif args.store == "sqlite-normal":
        def url_for(i: int) -> str:
            return f"sqlite:///{tmp}/ledger{i}.db?synchronous=NORMAL"
    elif args.store == "pg":
        base = "postgresql://postgres@127.0.0.1:5432/ibledger_test"

        def url_for(i: int) -> str:
            return f"{base}?schema=bench_{uuid.uuid4().hex[:10]}"
    else:
        def url_for(i: int) -> str:
            return args.store

    gc.callbacks.append(_gc_timer)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    base_runs: list[dict] = []
    rec_runs: list[dict] = []
    exec_base = 0
    sim = SimProcess()
    try:
        for rep in range(args.reps):
            for with_rec in (False, True):
                r = loop.run_until_complete(one_run(sim, url_for(rep) if with_rec else None, args, exec_base))
                exec_base = r["exec_next"]
                (rec_runs if with_rec else base_runs).append(r)
                label = "recorder" if with_rec else "baseline"
                extra = (f" commit p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms max {r['max_ms']:.2f} ms,"
                         f" {r['committed']} events in {r['batches']} commits, lost {r['lost']}"
                         if with_rec else "")
                print(f"rep {rep + 1} {label:8}: {r['rate']:.0f} callbacks/s, loop lag max {r['lag_max_ms']:.2f} ms"
                      f" p99 {r['lag_p99_ms']:.2f} ms (longest GC pause {r['gc_max_ms']:.1f} ms);"
                      f" loop CPU per callback mean {r['cpu_mean_us']:.1f} us"
                      f" p99 {r['cpu_p99_us']:.1f} us;{extra}", flush=True)
                if "trace" in r:
                    print_breakdown(f"rep {rep + 1}", r["trace"])
    finally:
        sim.close()

    fs50, fs99 = fsync_probe(tmp)

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    p50, p99 = med(rec_runs, "p50_ms"), med(rec_runs, "p99_ms")
    lag_b, lag_r = med(base_runs, "lag_max_ms"), med(rec_runs, "lag_max_ms")
    lag99_b, lag99_r = med(base_runs, "lag_p99_ms"), med(rec_runs, "lag_p99_ms")
    stall = lag_r - lag_b
    print()
    print(f"library {LIBRARY_NAME}, store {args.store}, {med(rec_runs, 'rate'):.0f} callbacks/s for {args.seconds:g}s,"
          f" {args.reps} reps (medians), GIL switch interval {sys.getswitchinterval() * 1e3:g} ms,"
          f" max batch {args.max_batch}, writer {args.writer} ({rec_runs[0]['writer_class']})")
    print(f"commit latency      p50 {p50:.2f} ms   p99 {p99:.2f} ms   (target p99 <= 5 ms: "
          f"{'met' if p99 <= 5 else 'MISSED'})")
    print(f"  disk: a bare write+fsync on this file system takes p50 {fs50:.2f} ms, p99 {fs99:.2f} ms "
          f"(one per commit with synchronous=FULL)")
    print(f"loop lag max        baseline {lag_b:.2f} ms   recorder {lag_r:.2f} ms   ratio {lag_r / lag_b:.2f}x")
    print(f"loop lag p99        baseline {lag99_b:.2f} ms   recorder {lag99_r:.2f} ms   ratio {lag99_r / lag99_b:.2f}x")
    print(f"stall from recording (max lag recorder - baseline) {stall:.2f} ms (target <= 2 ms: "
          f"{'met' if stall <= 2 else 'MISSED'})")
    traces = [r["trace"] for r in rec_runs if r.get("trace")]
    if traces:
        def tm(key: str) -> float:
            return statistics.median(t["top_mean"][key] for t in traces)

        print(f"where the p99 comes from (slowest 1% of events, mean, median over reps): total {tm('total'):.2f} ms ="
              f" hook {tm('hook'):.2f} + ring {tm('ring'):.2f} (commit in flight: "
              f"{sum(t['top_n'] - t['top_asleep'] for t in traces)} of {sum(t['top_n'] for t in traces)} events;"
              f" child asleep: {sum(t['top_asleep'] for t in traces)}) + queue {tm('queue'):.2f}"
              f" + own commit {tm('commit'):.2f} ms; own commits p50"
              f" {statistics.median(t['commit_p50'] for t in traces):.2f} ms p99"
              f" {statistics.median(t['commit_p99'] for t in traces):.2f} ms")
    cpu_b, cpu_r = med(base_runs, "cpu_mean_us"), med(rec_runs, "cpu_mean_us")
    cpu99_b, cpu99_r = med(base_runs, "cpu_p99_us"), med(rec_runs, "cpu_p99_us")
    extra = cpu_r - cpu_b
    per_chunk = max(1, round(args.rate * args.chunk_ms / 1000))
    print(f"loop CPU per callback  mean baseline {cpu_b:.1f} us  recorder {cpu_r:.1f} us (+{extra:.1f} us, "
          f"{cpu_r / cpu_b:.2f}x);  p99 {cpu99_b:.1f} us / {cpu99_r:.1f} us")
    print(f"  → recording adds {extra * per_chunk / 1e3:.2f} ms of loop time per {per_chunk}-message chunk, "
          f"{extra * args.rate / 1e4:.1f} % of one core at {args.rate}/s; the rest of any stall is waiting "
          f"for the CPU / GIL")


if __name__ == "__main__":
    main()
