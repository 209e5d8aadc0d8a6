"""``ibledger demo``: a short, deterministic paper session against the built-in simulator.

The real client library connects over a real socket to the in-process TWS simulator (free port), a
recorder writes every callback, intent and governor decision into the store (a new session each run),
and safe placement (:mod:`ledger.live.placement`) drives these steps, each picking its simulator scenario by
``orderRef`` (``replay/tws/scenarios/*.toml``):

1. a normal fill                              ``fill_simple``          → FILLED
2. a fill in two partial executions           ``partial_fills``        → FILLED (30 + 70)
3. an order that stays PreSubmitted           ``stuck_presubmitted``   → LIVE after the wait, *not failed*
4. a partial fill, then our cancel            ``partial_then_cancel``  → PARTIALLY_FILLED, then CANCELLED (40 filled)
5. a governor block (over max_qty)            (never sent)             → BLOCKED MAX_QTY
6. the connection drops mid-fill              ``drop_mid_fill``        → reconnect + reconciliation: FILLED, the
                                                                          ledger's filled equals the broker's
7. a broker rejection trips the circuit breaker (``max_rejections = 1``, ``emergency_cancel = true``):
   ``reject_201`` → REJECTED, the governor HALTs and decides EMERGENCY_CANCEL for the live order of
   step 3, which is cancelled with the decision as its cause
8. a new order while HALTED                   (never sent)             → BLOCKED HALTED

Then the session is read back from the store and its orders, anomalies and governor decisions printed.
Each step's expectation is checked; :func:`run_demo` returns a :class:`DemoReport` (``ok`` False if any
expectation failed). ``export_dir`` writes the session as a session file (``demo_session.jsonl``) so the
fixtures can be regenerated.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.table import Table

from ledger.cli.simulated import start_simulator
from ledger.core.events import GovernorDecision
from ledger.core.governor_config import BreakerConfig, GovernorConfig, LimitsConfig, dump_config
from ledger.live.monitor import MonitorResult, build_result

FIXTURE_NAME = "demo_session.jsonl"

# The demo's governor: default limits, and a rejection breaker that trips at once and cancels.
DEMO_GOVERNOR = GovernorConfig(
    limits=LimitsConfig(max_qty=1000.0, max_notional=1_000_000.0, max_open_orders=20, max_orders_per_sec=5,
                        max_orders_per_min=60),
    breakers=BreakerConfig(max_rejections=1, emergency_cancel=True),
)


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


async def _session_steps(sess: Any, out: Console, timeout: float) -> list[DemoStep]:
    sim = sess.simulator
    steps: list[DemoStep] = []

    def step(n: int, title: str, expected: str, r: MonitorResult | None, ok: bool, detail: str = "") -> None:
        verdict = r.verdict if r is not None else "-"
        steps.append(DemoStep(n=n, title=title, expected=expected, verdict=verdict, ok=ok,
                              detail=detail or (r.message if r else ""), result=r))
        mark = "[green]✓[/]" if ok else "[bold red]✗[/]"
        out.print(f" {mark} {n}. {title}: [bold]{verdict}[/] — {detail or (r.message if r else '')}", highlight=False)

    # 1. normal fill
    r = await sess.place(_stock("AAPL"), _limit("BUY", 100, 100.0, "fill_simple"), timeout=timeout)
    step(1, "BUY 100 AAPL, normal fill", "FILLED", r, r.verdict == "FILLED" and r.filled == 100 and r.commission > 0)

    # 2. two partial fills
    r = await sess.place(_stock("MSFT"), _limit("BUY", 100, 100.5, "partial_fills"), timeout=timeout)
    ok = r.verdict == "FILLED" and len(r.fills) == 2 and r.filled == 100
    step(2, "BUY 100 MSFT, partial fills 30 + 70", "FILLED", r, ok,
         f"{' + '.join(f'{f.shares:g} @ {f.price:g}' for f in r.fills)} → {r.filled:g} @ {r.avg_fill_price:g}")

    # 3. stays PreSubmitted: LIVE, not failed
    r = await sess.place(_stock("IBM"), _limit("BUY", 50, 150.0, "stuck_presubmitted"), timeout=0.5)
    stuck = sess.fold.orders.get(r.order_key)
    step(3, "BUY 50 IBM, stays PreSubmitted (0.5 s wait)", "LIVE", r,
         r.verdict == "LIVE" and r.is_live and r.timed_out and r.broker_status == "PreSubmitted")

    # 4. partial fill, then cancel
    r = await sess.place(_stock("TSLA"), _limit("SELL", 100, 75.0, "partial_then_cancel"), timeout=0.4)
    partial = r
    view = sess.fold.orders.get(r.order_key)
    c = await sess.cancel(view, timeout=timeout) if view is not None else None
    ok = partial.verdict == "PARTIALLY_FILLED" and c is not None and c.verdict == "CANCELLED" and c.filled == 40
    step(4, "SELL 100 TSLA, 40 fill, then we cancel", "PARTIALLY_FILLED → CANCELLED", c, ok,
         f"{partial.verdict} {partial.filled:g}/100 while live, then "
         f"{c.verdict if c else '?'} with {c.filled if c else 0:g} filled")

    # 5. governor block
    placed_before = len(sim.broker.all_orders())
    r = await sess.place(_stock("AAPL"), _limit("BUY", 5000, 100.0), timeout=timeout)
    sent = len(sim.broker.all_orders()) != placed_before
    reason = r.decisions[0].reason if r.decisions else ""
    ok = r.verdict == "BLOCKED" and reason == "MAX_QTY" and not sent
    step(5, "BUY 5000 AAPL, over max_qty 1000", "BLOCKED", r, ok,
         f"{reason}: {r.decisions[0].message if r.decisions else ''}; nothing sent")

    # 6. dropped connection mid-fill, reconnect, reconciliation
    connects = sess.recorder.connects
    r = await sess.place(_stock("NVDA"), _limit("BUY", 100, 90.0, "drop_mid_fill"), timeout=max(timeout, 8.0))
    truth = sim.broker.by_perm_id(r.perm_id) if r.perm_id else None
    broker_filled = float(truth.filled) if truth is not None else -1.0
    reconnected = sess.recorder.connects > connects
    ok = r.verdict == "FILLED" and reconnected and r.filled == broker_filled == 100
    step(6, "BUY 100 NVDA, connection drops mid-fill", "FILLED after reconnect", r, ok,
         f"dropped after 50, reconnected ({sess.recorder.connects - connects}x), reconciled: ledger filled "
         f"{r.filled:g} = broker {broker_filled:g}, commission {r.commission:g}")

    # 7. rejection → breaker → HALTED + EMERGENCY_CANCEL of the live IBM order
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
    step(7, "BUY 10 GME rejected → circuit breaker", "REJECTED, HALTED, EMERGENCY_CANCEL", r, ok,
         f"{r.verdict}; governor {sess.engine.trading_state}; EMERGENCY_CANCEL of IBM "
         f"({emerg[0][0] if emerg else 'none'}) → {cancelled.verdict if cancelled else '?'}")

    # 8. nothing new while halted
    r = await sess.place(_stock("AAPL"), _limit("BUY", 10, 100.0, "fill_simple"), timeout=timeout)
    reason = r.decisions[0].reason if r.decisions else ""
    step(8, "BUY 10 AAPL while HALTED", "BLOCKED", r, r.verdict == "BLOCKED" and reason == "HALTED",
         f"{reason}: {r.decisions[0].message if r.decisions else ''}")
    return steps


def _short_ref(ref: str, session_id: str) -> str:
    """``<session>#<seq>`` of the same session as ``#<seq>``."""
    return ref[len(session_id):] if ref.startswith(session_id + "#") else ref


def decisions_table(rows: list[tuple[int, GovernorDecision, str]], title: str = "Governor decisions") -> Table:
    t = Table(title=title, title_justify="left")
    for col in ("seq", "decision", "reason", "action", "order", "state", "message", "caused by"):
        t.add_column(col)
    for seq, d, cause in rows:
        style = {"BLOCK": "red", "EMERGENCY_CANCEL": "bold red", "STATE_CHANGE": "yellow"}.get(d.decision, "")
        t.add_row(str(seq), f"[{style}]{d.decision}[/]" if style else d.decision, d.reason, d.action,
                  str(d.order_id or "-"), d.trading_state, d.message, cause or "-")
    return t


def run_demo(
    store: Any,
    *,
    console: Console | None = None,
    export_dir: str | Path | None = None,
    timeout: float = 5.0,
) -> DemoReport:
    """Run the demo into ``store`` (an open EventStore); print as it goes; return the report."""
    return asyncio.run(run_demo_async(store, console=console, export_dir=export_dir, timeout=timeout))


async def run_demo_async(
    store: Any,
    *,
    console: Console | None = None,
    export_dir: str | Path | None = None,
    timeout: float = 5.0,
) -> DemoReport:
    from ledger.cli.render import anomalies_table, orders_table
    from ledger.core.fold import fold
    from ledger.ib.settings import resolve
    from ledger.live.placement import open_session

    out = console or Console()
    t0 = time.monotonic()
    settings = resolve(simulate=True, env={})
    async with open_session(settings, store, governor=DEMO_GOVERNOR, reconnect_delay=0.1, linger=0.2,
                            start_simulator=start_simulator) as sess:
        out.print(
            f"[bold]ibledger demo[/]: simulator on 127.0.0.1:{sess.simulator.port}, {sess.settings.describe()}, "
            f"session {sess.session_id}, store {store.url}", highlight=False,
        )
        steps = await _session_steps(sess, out, timeout)
        sid = sess.session_id
    duration = time.monotonic() - t0

    envs = list(store.read_session(sid))
    ledger = fold(envs)
    out.print(orders_table(ledger.orders.values(), title=f"Orders (session {sid[:8]}, read back from the store)"))
    if ledger.anomalies:
        out.print(anomalies_table(ledger.anomalies))
    else:
        out.print("Anomalies: none")
    rows = [(e.seq, e.payload, _short_ref(e.causation_id or "", sid)) for e in envs
            if isinstance(e.payload, GovernorDecision)]
    out.print(decisions_table(rows))
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
