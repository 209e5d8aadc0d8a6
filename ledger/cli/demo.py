"""``ibledger demo``: a short, deterministic paper session against the built-in simulator.

The real client library connects over a real socket to the in-process TWS simulator, a recorder writes
every callback, intent and governor decision into the store (a new session each run), and safe placement
(:mod:`ledger.live.placement`) drives the steps. First a strategy against the simulated market (a fixed
price path, :data:`DEMO_MARKET_SEED`):

1. the market                 a few one-minute bars of AAPL history and a streaming quote → PRICES (the
                              quote's ticks are recorded as ``price_observed``)
2. a market order             BUY 10 AAPL at market, priced by the governor from the recorded quote →
                              FILLED at the touch (the ask)
3. a bracket                  parent (marketable limit) → FILLED at once; the market runs, second by second,
                              until the take-profit → FILLED; the stop (same OCA group) → CANCELLED

then the quirks, each picking its simulator scenario by ``orderRef`` (``replay/tws/scenarios/*.toml``):

4. a normal fill                              ``fill_simple``          → FILLED
5. a fill in two partial executions           ``partial_fills``        → FILLED (30 + 70)
6. an order that stays PreSubmitted           ``stuck_presubmitted``   → LIVE after the wait, *not failed*
7. a partial fill, then our cancel            ``partial_then_cancel``  → PARTIALLY_FILLED, then CANCELLED (40 filled)
8. a governor block (over max_qty)            (never sent)             → BLOCKED MAX_QTY
9. the connection drops mid-fill              ``drop_mid_fill``        → reconnect + reconciliation: FILLED, the
                                                                          ledger's filled equals the broker's
10. a broker rejection trips the circuit breaker (``max_rejections = 1``, ``emergency_cancel = true``):
    ``reject_201`` → REJECTED, the governor HALTs and decides EMERGENCY_CANCEL for the live order of
    step 6, which is cancelled with the decision as its cause
11. a new order while HALTED                  (never sent)             → BLOCKED HALTED

Between steps the simulated market clock moves one second, at a quiet point only (:class:`_Market`), and
the recording takes its stamps from that clock (:meth:`replay.tws.simulator.Simulator.recording_clock`):
the governor's rate windows see the steps a second apart, and with ``seed`` two runs record the same
bytes. Then the session is read back from the store and its bars, orders, anomalies and governor decisions
printed. Each step's expectation is checked; :func:`run_demo` returns a :class:`DemoReport` (``ok`` False if
any expectation failed). ``export_dir`` writes the session as a session file (``demo_session.jsonl``) so
the fixtures can be regenerated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from ledger.cli.render import DecisionLine
from ledger.core.events import GovernorDecision
from ledger.core.governor_config import BreakerConfig, GovernorConfig, LimitsConfig, dump_config
from ledger.live.monitor import MonitorResult, build_result

FIXTURE_NAME = "demo_session.jsonl"

#: the demo's market: the same price path every run (ids still differ per run unless a seed is given); its
#: AAPL path reaches the take-profit within seconds and never the stop first (checked by tests/cli/test_demo.py)
DEMO_MARKET_SEED = 110
DEMO_BARS = 5  # one-minute bars of history shown
DEMO_QTY = 10.0
TAKE_PROFIT = 0.03  # above the ask at the bracket's entry
STOP_LOSS = 0.30  # below it
MAX_BRACKET_SECONDS = 600  # of simulated market, at most, for the take-profit to fill

# The demo's governor: default limits, and a rejection breaker that trips at once and cancels.
DEMO_GOVERNOR = GovernorConfig(
    limits=LimitsConfig(max_qty=1000.0, max_notional=1_000_000.0, max_open_orders=20, max_orders_per_sec=5,
                        max_orders_per_min=60),
    breakers=BreakerConfig(max_rejections=1, emergency_cancel=True),
)


class DemoError(Exception):
    """The demo cannot run as asked (e.g. its seeded session is already in the store); nothing was recorded."""


class DemoStep(msgspec.Struct, kw_only=True):
    n: int
    title: str
    expected: str
    verdict: str
    ok: bool
    detail: str
    result: MonitorResult | None = None


class DemoReport(msgspec.Struct, kw_only=True):
    session_id: str
    store: str
    steps: list[DemoStep]
    duration_s: float
    events: int
    ok: bool
    fixture: str = ""


def _stock(symbol: str) -> Any:
    from ledger.ib.library import Stock

    return Stock(symbol, "SMART", "USD")


def _limit(action: str, qty: float, price: float, ref: str = "") -> Any:
    from ledger.ib.library import LimitOrder

    return LimitOrder(action, qty, price, orderRef=ref, tif="DAY")


class _Market:
    """The demo's hand on the simulated market clock: it moves only at quiet points.

    Quiet = no scenario step pending in the simulator, the client connected and reconciled, and a round
    trip (a contract-details request, which the recorder does not record) answered, so every message the
    simulator sent before it has been read and recorded. Then the clock moves, the new second's ticks and
    fills are read the same way, and the recording's stamps are synchronised to the new simulated instant
    (:class:`replay.tws.stamps.SimStamps`): the session's bytes depend on the seeds, never on the machine.
    """

    def __init__(self, sess: Any, stamps: Any, contract: Any, timeout: float) -> None:
        self.sess = sess
        self.sim = sess.simulator
        self.stamps = stamps
        self.contract = contract
        self.timeout = timeout
        self.seconds = 0

    async def quiet(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while not self.sim.idle() and loop.time() < deadline:
            await asyncio.sleep(0.005)
        await self.sess.ready(self.timeout)
        await asyncio.wait_for(self.sess.ib.reqContractDetailsAsync(self.contract), self.timeout)

    async def advance(self, seconds: int = 1) -> None:
        """``seconds`` of market, one at a time, each read and recorded before the next."""
        for _ in range(seconds):
            await self.quiet()
            self.sim.advance(1)
            self.seconds += 1
            await self.quiet()
            self.stamps.sync()


async def _strategy_steps(sess: Any, timeout: float, market: _Market, step: Callable[..., None]) -> list[Any]:
    """A strategy against the simulated market: prices, a market order, a bracket. Returns the bars."""
    from ledger.ib.library import MarketOrder

    ib = sess.ib
    aapl = market.contract
    await asyncio.wait_for(ib.qualifyContractsAsync(aapl), timeout)

    # 1. the market: a few bars of history and a streaming quote (its ticks become price_observed events)
    bars = await asyncio.wait_for(
        ib.reqHistoricalDataAsync(aapl, "", f"{DEMO_BARS * 60} S", "1 min", "TRADES", False), timeout
    )
    ticker = ib.reqMktData(aapl)
    await market.advance(1)
    observed = sess.engine.governor.market_price(aapl.conId, "AAPL", "STK")
    closes = " ".join(f"{b.close:g}" for b in bars)
    ok = len(bars) >= 3 and ticker.bid > 0 and ticker.ask > ticker.bid and observed is not None
    step(1, f"AAPL: {len(bars)} one-minute bars and a live quote", "PRICES", None, ok,
         f"closes {closes}; bid {ticker.bid:g} / ask {ticker.ask:g}; the ledger recorded {observed} (price_observed)",
         verdict="PRICES")

    # 2. a market order fills at the touch (the ask), priced by the governor from the recorded quote
    await market.advance(1)
    touch = ticker.ask
    r = await sess.place(aapl, MarketOrder("BUY", DEMO_QTY), timeout=timeout)
    ok = r.verdict == "FILLED" and r.filled == DEMO_QTY and r.avg_fill_price == touch
    step(2, f"BUY {DEMO_QTY:g} AAPL at market", "FILLED at the ask", r, ok,
         f"{r.filled:g} @ {r.avg_fill_price:g} (the ask was {touch:g}), commission {r.commission:g}")

    # 3. a bracket: the parent fills at once, the market runs until the take-profit fills, OCA cancels the stop
    await market.advance(1)
    ask = ticker.ask
    parent, tp, sl = ib.bracketOrder("BUY", DEMO_QTY, round(ask + 0.05, 2), round(ask + TAKE_PROFIT, 2),
                                     round(ask - STOP_LOSS, 2))
    tp.ocaGroup = sl.ocaGroup = f"demo-bracket-{parent.orderId}"
    tasks = [asyncio.ensure_future(sess.place(aapl, o, timeout=max(timeout, 30.0))) for o in (parent, tp, sl)]
    cid = sess.client_id

    def seen(o: Any) -> bool:
        v = sess.fold.order_for(cid, int(o.orderId))
        return v is not None and bool(v.broker_status)

    def done(o: Any) -> bool:
        v = sess.fold.order_for(cid, int(o.orderId))
        return v is not None and v.is_done

    # the market moves only once the broker has answered all three (orders and clock never interleave)
    await sess.until(lambda: all(seen(o) for o in (parent, tp, sl)), timeout)
    for _ in range(MAX_BRACKET_SECONDS):
        if done(parent) and done(tp) and done(sl):
            break
        await market.advance(1)
    rp, rtp, rsl = await asyncio.gather(*tasks)
    ib.cancelMktData(aapl)
    ok = (rp.verdict, rtp.verdict, rsl.verdict) == ("FILLED", "FILLED", "CANCELLED")
    step(3, f"bracket BUY {DEMO_QTY:g} AAPL: take-profit {tp.lmtPrice:g}, stop {sl.auxPrice:g}",
         "parent + take-profit FILLED, stop CANCELLED (OCA)", rtp, ok,
         f"parent {rp.verdict} @ {rp.avg_fill_price:g}; {market.seconds} s of market later the take-profit "
         f"{rtp.verdict} @ {rtp.avg_fill_price:g}; the stop {rsl.verdict} by its OCA group",
         verdict=f"{rp.verdict}/{rtp.verdict}/{rsl.verdict}")
    return list(bars)


async def _session_steps(sess: Any, out: Console, timeout: float, market: _Market) -> tuple[list[DemoStep], list]:
    sim = sess.simulator
    steps: list[DemoStep] = []

    def step(n: int, title: str, expected: str, r: MonitorResult | None, ok: bool, detail: str = "",
             verdict: str = "") -> None:
        verdict = verdict or (r.verdict if r is not None else "-")
        steps.append(DemoStep(n=n, title=title, expected=expected, verdict=verdict, ok=ok,
                              detail=detail or (r.message if r else ""), result=r))
        mark = "[green]✓[/]" if ok else "[bold red]✗[/]"
        out.print(f" {mark} {n:2d}. {title}: [bold]{verdict}[/] — {detail or (r.message if r else '')}",
                  highlight=False)

    bars = await _strategy_steps(sess, timeout, market, step)

    # 4. normal fill
    await market.advance(1)
    r = await sess.place(_stock("AAPL"), _limit("BUY", 100, 100.0, "fill_simple"), timeout=timeout)
    step(4, "BUY 100 AAPL, normal fill", "FILLED", r, r.verdict == "FILLED" and r.filled == 100 and r.commission > 0)

    # 5. two partial fills
    await market.advance(1)
    r = await sess.place(_stock("MSFT"), _limit("BUY", 100, 100.5, "partial_fills"), timeout=timeout)
    ok = r.verdict == "FILLED" and len(r.fills) == 2 and r.filled == 100
    step(5, "BUY 100 MSFT, partial fills 30 + 70", "FILLED", r, ok,
         f"{' + '.join(f'{f.shares:g} @ {f.price:g}' for f in r.fills)} → {r.filled:g} @ {r.avg_fill_price:g}")

    # 6. stays PreSubmitted: LIVE, not failed
    await market.advance(1)
    r = await sess.place(_stock("IBM"), _limit("BUY", 50, 150.0, "stuck_presubmitted"), timeout=0.5)
    stuck = sess.fold.orders.get(r.order_key)
    step(6, "BUY 50 IBM, stays PreSubmitted (0.5 s wait)", "LIVE", r,
         r.verdict == "LIVE" and r.is_live and r.timed_out and r.broker_status == "PreSubmitted")

    # 7. partial fill, then cancel (once the partial fill is in: the recording does not race the scenario)
    await market.advance(1)
    r = await sess.place(_stock("TSLA"), _limit("SELL", 100, 75.0, "partial_then_cancel"), timeout=0.4)
    view = sess.fold.orders.get(r.order_key)
    await sess.until(lambda: view is not None and view.filled >= 40, timeout)
    await market.quiet()
    partial = build_result(view, sess.fold) if view is not None else r
    c = await sess.cancel(view, timeout=timeout) if view is not None else None
    ok = partial.verdict == "PARTIALLY_FILLED" and c is not None and c.verdict == "CANCELLED" and c.filled == 40
    step(7, "SELL 100 TSLA, 40 fill, then we cancel", "PARTIALLY_FILLED → CANCELLED", c, ok,
         f"{partial.verdict} {partial.filled:g}/100 while live, then "
         f"{c.verdict if c else '?'} with {c.filled if c else 0:g} filled")

    # 8. governor block
    await market.advance(1)
    placed_before = len(sim.broker.all_orders())
    r = await sess.place(_stock("AAPL"), _limit("BUY", 5000, 100.0), timeout=timeout)
    sent = len(sim.broker.all_orders()) != placed_before
    reason = r.decisions[0].reason if r.decisions else ""
    ok = r.verdict == "BLOCKED" and reason == "MAX_QTY" and not sent
    step(8, "BUY 5000 AAPL, over max_qty 1000", "BLOCKED", r, ok,
         f"{reason}: {r.decisions[0].message if r.decisions else ''}; nothing sent")

    # 9. dropped connection mid-fill, reconnect, reconciliation
    await market.advance(1)
    connects = sess.recorder.connects
    r = await sess.place(_stock("NVDA"), _limit("BUY", 100, 90.0, "drop_mid_fill"), timeout=max(timeout, 8.0))
    truth = sim.broker.by_perm_id(r.perm_id) if r.perm_id else None
    broker_filled = float(truth.filled) if truth is not None else -1.0
    reconnected = sess.recorder.connects > connects
    ok = r.verdict == "FILLED" and reconnected and r.filled == broker_filled == 100
    step(9, "BUY 100 NVDA, connection drops mid-fill", "FILLED after reconnect", r, ok,
         f"dropped after 50, reconnected ({sess.recorder.connects - connects}x), reconciled: ledger filled "
         f"{r.filled:g} = broker {broker_filled:g}, commission {r.commission:g}")

    # 10. rejection → breaker → HALTED + EMERGENCY_CANCEL of the live IBM order
    await market.advance(1)
    n_emerg = len(sess.emergency_cancels)
    r = await sess.place(_stock("GME"), _limit("BUY", 10, 20.0, "reject_201"), timeout=timeout)
    halted = sess.engine.trading_state == "HALTED"
    cancelled = None
    if stuck is not None:
        await sess.until(lambda: stuck.is_done, timeout)
        cancelled = build_result(stuck, sess.fold)
    emerg = sess.emergency_cancels[n_emerg:]
    ok = (r.verdict == "REJECTED" and halted and cancelled is not None and cancelled.verdict == "CANCELLED"
          and any(d.perm_id == stuck.perm_id for _, d in emerg))
    step(10, "BUY 10 GME rejected → circuit breaker", "REJECTED, HALTED, EMERGENCY_CANCEL", r, ok,
         f"{r.verdict}; governor {sess.engine.trading_state}; EMERGENCY_CANCEL of IBM "
         f"({emerg[0][0] if emerg else 'none'}) → {cancelled.verdict if cancelled else '?'}")

    # 11. nothing new while halted
    await market.advance(1)
    r = await sess.place(_stock("AAPL"), _limit("BUY", 10, 100.0, "fill_simple"), timeout=timeout)
    reason = r.decisions[0].reason if r.decisions else ""
    step(11, "BUY 10 AAPL while HALTED", "BLOCKED", r, r.verdict == "BLOCKED" and reason == "HALTED",
         f"{reason}: {r.decisions[0].message if r.decisions else ''}")
    await market.quiet()
    return steps, bars


def _short_ref(ref: str, session_id: str) -> str:
    """``<session>#<seq>`` of the same session as ``#<seq>``."""
    return ref[len(session_id):] if ref.startswith(session_id + "#") else ref


def recorded_decisions(envs: list[Any], session_id: str) -> list[DecisionLine]:
    """The session's governor decisions as rows of the one decisions table (recorded, nothing replayed)."""
    return [DecisionLine(seq=e.seq, decision=e.payload, cause=_short_ref(e.causation_id or "", session_id))
            for e in envs if isinstance(e.payload, GovernorDecision)]


def run_demo(
    store: Any,
    *,
    console: Console | None = None,
    export_dir: str | Path | None = None,
    timeout: float = 5.0,
    seed: int | None = None,
) -> DemoReport:
    """Run the demo into ``store`` (an open EventStore); print as it goes; return the report.

    ``seed``: the same session, byte for byte, every run (session id, permIds, execIds and port from it);
    by default each run is a new session with its own ids, so runs into one store never collide.
    """
    return asyncio.run(run_demo_async(store, console=console, export_dir=export_dir, timeout=timeout, seed=seed))


def bars_table(bars: list[Any], title: str = "AAPL, one-minute bars (simulated market)") -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("time", "open", "high", "low", "close", "volume"):
        t.add_column(col, justify="left" if col == "time" else "right")
    for b in bars:
        when = b.date.strftime("%Y-%m-%d %H:%M %Z") if hasattr(b.date, "strftime") else str(b.date)
        t.add_row(when, f"{b.open:g}", f"{b.high:g}", f"{b.low:g}", f"{b.close:g}", f"{b.volume:g}")
    return t


async def run_demo_async(
    store: Any,
    *,
    console: Console | None = None,
    export_dir: str | Path | None = None,
    timeout: float = 5.0,
    seed: int | None = None,
) -> DemoReport:
    from ledger.cli.render import anomalies_table, decisions_table, orders_table
    from ledger.cli.simulated import start_simulator
    from ledger.core.fold import fold
    from ledger.core.session import derived_id
    from ledger.ib.library import Stock
    from ledger.ib.settings import resolve
    from ledger.live.placement import open_session

    out = console or Console()
    t0 = time.monotonic()
    settings = resolve(simulate=True, env={})
    session_id = derived_id("demo", str(seed)) if seed is not None else None
    if session_id is not None and store.last_seq(session_id) > 0:
        raise DemoError(f"the demo's session for --seed {seed} ({session_id}) is already in {store.url}: a seed "
                        f"records the same session every time; use another store or another seed (or none)")
    sim = start_simulator(settings.account, None, seed, market_seed=DEMO_MARKET_SEED, port_seed=seed)
    stamps = sim.recording_clock()
    try:
        async with open_session(settings, store, governor=DEMO_GOVERNOR, reconnect_delay=0.1, linger=0.2,
                                start_simulator=lambda *_: sim, session_id=session_id, clock=stamps) as sess:
            out.print(
                f"[bold]ibledger demo[/]: simulator on 127.0.0.1:{sess.simulator.port}, "
                f"{sess.settings.describe()}, session {sess.session_id}, store {store.url}", highlight=False,
            )
            market = _Market(sess, stamps, Stock("AAPL", "SMART", "USD"), timeout)
            steps, bars = await _session_steps(sess, out, timeout, market)
            sid = sess.session_id
    finally:
        sim.stop()  # open_session stops it too; this covers a session that never opened
    duration = time.monotonic() - t0

    envs = list(store.read_session(sid))
    ledger = fold(envs)
    if bars:
        out.print(bars_table(bars))
    out.print(orders_table(ledger.orders.values(), title=f"Orders (session {sid[:8]}, read back from the store)"))
    if ledger.anomalies:
        out.print(anomalies_table(ledger.anomalies))
    else:
        out.print("Anomalies: none")
    out.print(decisions_table(recorded_decisions(envs, sid)))
    fixture = ""
    if export_dir is not None:
        from ledger.store.sessionfile import write_session

        d = Path(export_dir)
        d.mkdir(parents=True, exist_ok=True)
        path = d / FIXTURE_NAME
        write_session(path, envs, sid, len(envs))
        # The replayer uses <name>.governor.toml beside a session file: the demo's limits are not the default.
        path.with_suffix(".governor.toml").write_text(dump_config(DEMO_GOVERNOR))
        fixture = str(path)
        out.print(f"session written to {path} (governor config beside it)", highlight=False)
    ok = all(s.ok for s in steps)
    style = "green" if ok else "bold red"
    out.print(
        f"[{style}]{sum(s.ok for s in steps)}/{len(steps)} steps as expected[/] in {duration:.1f}s; "
        f"{len(envs)} events recorded in session {sid} ({store.url})", highlight=False,
    )
    return DemoReport(session_id=sid, store=store.url, steps=steps, duration_s=round(duration, 3), events=len(envs),
                      ok=ok, fixture=fixture)
