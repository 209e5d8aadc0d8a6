"""Safe order placement: governor pre-check → recorded intent → send → event-driven monitor, with the
governor's emergency cancels carried out while the session runs.

A :class:`LiveSession` is one recorded connection (``open_session``): an ``IB`` client, a
:class:`~ledger.live.recorder.Recorder` attached before connecting (so the connection's own synchronization
is recorded and reconciled), an :class:`~ledger.core.engine.Engine` (fold + governor), the paper/live and
account checks of :mod:`ledger.ib.settings`, and a background reconnect (``keep_connected``: every
reconnect is reconciled by the recorder). With ``--simulate`` it also owns the in-process simulator.

Placing follows the engine's protocol (``ledger/core/engine.py``):

1. ``engine.pre_check(intent, now_ns)`` on the state before the intent;
2. the ``place_order`` intent is recorded, then the decision (``causation_id`` = the intent's event id),
   adjacent in the stream (nothing else runs on the loop in between);
3. BLOCK: nothing is sent; the result says BLOCKED with the reason code and the governor's message;
4. ALLOW: the order is sent (``ib.placeOrder``: the recorder's hook records the intent just before the
   request leaves; the decision follows it) and :class:`~ledger.live.monitor.OrderMonitor` follows it until
   it settles or the timeout passes (never "failed" for a live order, never a cancel).

Governor hooks: the engine runs on every recorded event and its decisions arrive through the recorder's
subscription as events of their own. An ``EMERGENCY_CANCEL`` (circuit breaker with
``breakers.emergency_cancel``, or an operator halt with cancel-all) is carried out at once: the cancel
request, whose recorded ``cancel_order`` intent carries ``causation_id`` = the decision's event id,
followed by the cancel's own (always ALLOW) pre-check decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec

from ledger.core import events as ev
from ledger.core.engine import Engine, event_id
from ledger.core.fold import OrderView
from ledger.core.prices import DELAYED_DATA_CODES
from ledger.ib import adapter
from ledger.ib.settings import ConnectError, ConnectionSettings, SettingsError, check_account, connect_client
from ledger.ib.trades import library_order
from ledger.live.monitor import (
    BLOCKED,
    CANCELLED,
    DEFAULT_LINGER,
    FILLED,
    UNKNOWN,
    MonitorResult,
    OrderMonitor,
    Watch,
    build_result,
    decision_info,
)

log = logging.getLogger("ledger.live.placement")

__all__ = ["CancelAllReport", "CancelOutcome", "LiveSession", "QuoteOutcome", "open_session"]


class CancelOutcome(msgspec.Struct, kw_only=True):
    order_key: str
    order_id: int
    perm_id: int
    client_id: int
    symbol: str
    action: str
    total_qty: float
    state_before: str
    state: str
    broker_status: str
    filled: float
    verdict: str  # CANCELLED | FILLED | REJECTED | INACTIVE | UNKNOWN (not confirmed in time)


class QuoteOutcome(msgspec.Struct, kw_only=True):
    price: float | None
    market_data_type: int  # 1 live, 3 delayed, 4 delayed-frozen; 0 = already known, nothing asked
    errors: list[int] = msgspec.field(default_factory=list)
    message: str = ""


class CancelAllReport(msgspec.Struct, kw_only=True):
    requested: bool
    confirmed: bool  # every order known open is now done
    orders: list[CancelOutcome]
    unknown: int
    elapsed_s: float
    message: str


# --- the session ---------------------------------------------------------------------------------


class LiveSession:
    """One recorded connection. Create with :func:`open_session`."""

    def __init__(
        self,
        ib: Any,
        recorder: Any,
        engine: Engine,
        settings: ConnectionSettings,
        *,
        simulator: Any = None,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        self.ib = ib
        self.recorder = recorder
        self.engine = engine
        self.settings = settings
        self.simulator = simulator
        self.linger = linger
        self.loop = asyncio.get_running_loop()
        self.watch = Watch(recorder, self.loop)
        self.emergency_cancels: list[tuple[str, ev.GovernorDecision]] = []  # (decision event id, decision)
        self._global_pending = False
        self._unwatch = self.watch.add(self._governor_hook)

    @property
    def fold(self) -> Any:
        return self.engine.fold

    @property
    def session_id(self) -> str:
        return self.recorder.session_id

    @property
    def client_id(self) -> int:
        return int(getattr(self.ib.client, "clientId", 0) or self.settings.client_id)

    # --- readiness -------------------------------------------------------------------------------

    def ready_now(self) -> bool:
        return bool(self.ib.isConnected()) and not self.recorder.reconciling and not self.fold.reconciling

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (on recorded events, no polling) until ``predicate()`` holds; False on timeout."""
        if predicate():
            return True
        woke = asyncio.Event()
        remove = self.watch.add(lambda *_: woke.set())
        deadline = self.loop.time() + timeout
        try:
            while not predicate():
                left = deadline - self.loop.time()
                if left <= 0:
                    return False
                woke.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woke.wait(), left)
            return True
        finally:
            remove()

    async def ready(self, timeout: float = 10.0) -> bool:
        """Connected and no reconciliation running (the governor blocks new orders while it runs)."""
        return await self.until(self.ready_now, timeout)

    # --- the engine's recording protocol -------------------------------------------------------

    def _govern(
        self, intent: Any, send: Callable[[], Any], *, causation_id: str | None = None
    ) -> tuple[ev.GovernorDecision, ev.Envelope]:
        """Pre-check on the state before the intent; record the intent, then the decision (its cause is
        the intent); send only on ALLOW.

        The request goes out through the recorder's hook, which records the intent (carrying
        ``causation_id``) just before the library sends it; a blocked intent is recorded here and never
        sent. The decision's ``details["at_ns"]`` is the time the pre-check used (the replayer re-checks
        at that time).
        """
        rec = self.recorder
        decision = self.engine.pre_check(intent, rec.clock()[0])
        if decision.decision != "ALLOW":
            i_env = rec.record(intent, causation_id=causation_id)
            return decision, rec.record(decision, causation_id=event_id(i_env))
        before = rec.last_intent
        sent = False
        try:
            with rec.intent_context(causation_id=causation_id):
                send()
            sent = True
        finally:
            i_env = rec.last_intent if rec.last_intent is not before else None
            if i_env is None and sent:  # sent, but the hook did not record it (client not "ready")
                i_env = rec.record(intent, causation_id=causation_id)
            if i_env is not None:  # not sent and not recorded (not connected): nothing happened
                d_env = rec.record(decision, causation_id=event_id(i_env))
        return decision, d_env

    # --- market prices ---------------------------------------------------------------------------

    async def quote(self, contract: Any, timeout: float = 3.0) -> QuoteOutcome:
        """One snapshot quote for ``contract``, recorded (as ``price_observed``) before a market order's
        pre-check. Paper accounts often have no live subscription: on errors 10089 / 354 / 10167 the
        quote is asked again as delayed data (``reqMarketDataType(3)``, then 4 = delayed-frozen).
        No answer within ``timeout`` per attempt, or another error, ends it: the outcome says why and the
        governor decides on what it knows (and says how to fix a missing price)."""
        gov = self.engine.governor
        con_id = int(getattr(contract, "conId", 0) or 0)
        symbol = str(getattr(contract, "symbol", "") or "")
        sec_type = str(getattr(contract, "secType", "") or "STK")
        known = gov.market_price(con_id, symbol, sec_type)
        if known is not None:
            return QuoteOutcome(price=known, market_data_type=0, message="price already recorded")
        ib = self.ib
        errors: list[int] = []
        mdt_used = 1
        for mdt in (1, 3, 4):
            if mdt != 1:
                ib.reqMarketDataType(mdt)
                mdt_used = mdt
            try:
                ticker = await self._request_snapshot(contract, timeout)
            except Exception as exc:  # noqa: BLE001 - e.g. ib_async refuses a contract without conId
                msg = f"cannot ask a quote for {symbol}: {exc}"
                return self._quote_done(QuoteOutcome(price=None, market_data_type=mdt, errors=errors, message=msg))
            req_ids = {r for r, t in ib.wrapper.reqId2Ticker.items() if t is ticker}
            failed: list[int] = []

            def on_error(req_id: int, code: int, *_: Any, _ids: set = req_ids, _failed: list = failed) -> None:
                if req_id in _ids:
                    _failed.append(code)

            ib.errorEvent += on_error
            try:
                got = await self.until(
                    lambda _f=failed: gov.market_price(con_id, symbol, sec_type) is not None or bool(_f), timeout
                )
            finally:
                ib.errorEvent -= on_error
                with contextlib.suppress(Exception):
                    ib.cancelMktData(contract)
            errors += failed
            price = gov.market_price(con_id, symbol, sec_type)
            if price is not None:
                break
            if not got:
                msg = f"no quote for {symbol} within {timeout:g}s (market data type {mdt})"
                return self._quote_done(QuoteOutcome(price=None, market_data_type=mdt, errors=errors, message=msg))
            if not any(c in DELAYED_DATA_CODES for c in failed):
                msg = f"quote for {symbol} refused (error {', '.join(map(str, failed))})"
                return self._quote_done(QuoteOutcome(price=None, market_data_type=mdt, errors=errors, message=msg))
        price = gov.market_price(con_id, symbol, sec_type)
        msg = f"snapshot quote {price:g}" if price is not None else f"no quote for {symbol}, even delayed"
        return self._quote_done(QuoteOutcome(price=price, market_data_type=mdt_used, errors=errors, message=msg))

    async def _request_snapshot(self, contract: Any, timeout: float) -> Any:
        """``reqMktData(snapshot=True)``; ib_async insists on a conId: qualify the contract first then."""
        try:
            return self.ib.reqMktData(contract, "", True, False)
        except ValueError:
            if getattr(contract, "conId", 0):
                raise
        await asyncio.wait_for(self.ib.qualifyContractsAsync(contract), timeout)
        return self.ib.reqMktData(contract, "", True, False)

    def _quote_done(self, q: QuoteOutcome) -> QuoteOutcome:
        if q.market_data_type not in (0, 1):
            with contextlib.suppress(Exception):
                self.ib.reqMarketDataType(1)  # back to live data for whatever the session does next
        log.info("quote: %s", q.message)
        return q

    # --- placing ---------------------------------------------------------------------------------

    async def place(
        self, contract: Any, order: Any, *, timeout: float = 10.0, linger: float | None = None,
        ready_timeout: float = 10.0,
    ) -> MonitorResult:
        """Pre-check, record, send, monitor. Returns when the order settled or ``timeout`` passed."""
        if not await self.ready(ready_timeout) and not self.ib.isConnected():
            raise ConnectError(
                f"not connected to {self.settings.host}:{self.settings.port}: nothing was sent", "disconnected"
            )
        ib = self.ib
        if not getattr(order, "orderId", 0):
            order.orderId = ib.client.getReqId()
        cid = self.client_id
        oid = int(order.orderId)
        intent = adapter.place_order(contract, order, oid, cid, modify=False)
        return await self._submit(intent, lambda: ib.placeOrder(contract, order), timeout, linger)

    async def modify(
        self, contract: Any, order: Any, *, timeout: float = 10.0, linger: float | None = None
    ) -> MonitorResult:
        """Send changed fields of an order already placed (IB: the same orderId again is a modify, never a
        retry), through the same pre-check, recording and monitoring as :meth:`place`."""
        oid = int(getattr(order, "orderId", 0) or 0)
        if oid <= 0:
            raise ValueError("modify needs the orderId of an order already placed; use place() for a new one")
        intent = adapter.place_order(contract, order, oid, self.client_id, modify=True)
        return await self._submit(intent, lambda: self.ib.placeOrder(contract, order), timeout, linger)

    async def _submit(
        self, intent: Any, send: Callable[[], Any], timeout: float, linger: float | None
    ) -> MonitorResult:
        monitor = OrderMonitor(self.watch, self.fold, linger=self.linger if linger is None else linger)
        monitor.bind(intent.client_id, intent.order_id, self.session_id)
        try:
            decision, d_env = self._govern(intent, send)
        except Exception:
            monitor.close()
            raise
        if decision.decision != "ALLOW":
            res = monitor.result(timed_out=False, is_settled=True)
            monitor.close()
            res.verdict = BLOCKED
            res.message = f"BLOCKED by the governor ({decision.reason}): {decision.message}. Nothing was sent"
            if decision_info(decision, d_env.seq) not in res.decisions:
                res.decisions.insert(0, decision_info(decision, d_env.seq))
            return res
        return await monitor.wait(timeout)

    async def cancel(
        self, order: OrderView | Any, *, timeout: float = 10.0, causation_id: str | None = None,
        linger: float | None = None,
    ) -> MonitorResult:
        """Cancel one order (an ``OrderView`` or a library ``Order``) and follow it until it settles."""
        view = order if isinstance(order, OrderView) else self._view_of(order)
        if view is None:
            raise ValueError(f"order {getattr(order, 'orderId', order)!r} is not in the ledger")
        monitor = OrderMonitor(self.watch, self.fold, linger=self.linger if linger is None else linger)
        monitor.follow(view)
        self._send_cancel(view, causation_id=causation_id)
        return await monitor.wait(timeout)

    def _view_of(self, order: Any) -> OrderView | None:
        perm = int(getattr(order, "permId", 0) or 0)
        if perm:
            v = self.fold.order_by_perm(perm)
            if v is not None:
                return v
        return self.fold.order_for(int(getattr(order, "clientId", 0) or self.client_id), int(order.orderId))

    def _send_cancel(self, view: OrderView, *, causation_id: str | None = None) -> bool:
        intent = ev.CancelOrder(order_id=view.order_id, client_id=view.client_id, perm_id=view.perm_id)
        order = library_order(self.ib, view)
        try:
            decision, _ = self._govern(intent, lambda: self.ib.cancelOrder(order), causation_id=causation_id)
        except Exception as exc:  # noqa: BLE001 - e.g. not connected: intent and decision stay recorded
            log.error("cancel of %s could not be sent: %s", view.key, exc)
            return False
        return decision.decision == "ALLOW"  # cancels are always allowed; kept for a stricter governor

    # --- governor hooks --------------------------------------------------------------------------

    def _governor_hook(self, env: ev.Envelope, transitions: list, decisions: list) -> None:
        p = env.payload
        if isinstance(p, ev.GovernorDecision) and p.decision == "EMERGENCY_CANCEL":
            # after the recorder has finished delivering this event
            self.loop.call_soon(self._emergency_cancel, event_id(env), p)

    def _emergency_cancel(self, decision_ref: str, d: ev.GovernorDecision) -> None:
        self.emergency_cancels.append((decision_ref, d))
        view = self.fold.order_by_perm(d.perm_id) if d.perm_id else None
        if view is None and d.order_id:
            view = self.fold.order_for(d.client_id or self.client_id, d.order_id)
        if view is not None and view.is_done:
            return
        if view is None or view.client_id != self.client_id:
            # not ours to cancel by id (another client's or TWS's order, or unknown): only a global cancel
            # reaches it; several such decisions in one burst send one
            log.error("EMERGENCY_CANCEL %s (%s) for an order this client cannot cancel by id: global cancel",
                      d.message, d.reason)
            if not self._global_pending:
                self._global_pending = True
                self.loop.call_soon(self._emergency_global_cancel, decision_ref)
            return
        log.warning("EMERGENCY_CANCEL %s (%s): %s", view.key, d.reason, d.message)
        self._send_cancel(view, causation_id=decision_ref)

    def _emergency_global_cancel(self, decision_ref: str) -> None:
        self._global_pending = False
        try:
            with self.recorder.intent_context(causation_id=decision_ref):
                self.ib.reqGlobalCancel()
        except Exception as exc:  # noqa: BLE001 - not connected: logged, the decision stays recorded
            log.error("emergency global cancel could not be sent: %s", exc)

    # --- kill switch -----------------------------------------------------------------------------

    async def cancel_all(self, timeout: float = 10.0) -> CancelAllReport:
        """reqGlobalCancel at once, then wait until every order known open is done; unknown ones say so."""
        t0 = time.monotonic()
        await self.ready(timeout)

        def still_open() -> list[OrderView]:
            return [v for v in self.fold.open_orders() if v.state not in ("Created", "Blocked")]

        targets = still_open()  # before the cancel: an order cancelled at once is still reported
        self.ib.reqGlobalCancel()  # recorded as global_cancel by the recorder's hook
        # learn other clients' (and TWS's manual) open orders too: the global cancel covers them
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ib.reqAllOpenOrdersAsync(), timeout)
        known = {v.key for v in targets}
        targets += [v for v in still_open() if v.key not in known]
        before = {v.key: v.state for v in targets}
        left = max(timeout - (time.monotonic() - t0), 0.0)
        confirmed = await self.until(lambda: all(v.is_done for v in targets), left)
        outcomes = []
        for v in targets:
            if not v.is_done:
                verdict = UNKNOWN
            else:
                verdict = build_result(v, self.fold).verdict
            outcomes.append(
                CancelOutcome(
                    order_key=v.key, order_id=v.order_id, perm_id=v.perm_id, client_id=v.client_id, symbol=v.symbol,
                    action=v.action, total_qty=float(v.total_qty), state_before=before[v.key], state=v.state,
                    broker_status=v.broker_status, filled=float(v.filled), verdict=verdict,
                )
            )
        unknown = sum(1 for o in outcomes if o.verdict == UNKNOWN)
        n_cancel = sum(1 for o in outcomes if o.verdict == CANCELLED)
        n_fill = sum(1 for o in outcomes if o.verdict == FILLED)
        msg = f"global cancel sent; {len(outcomes)} open order(s): {n_cancel} cancelled, {n_fill} filled"
        if unknown:
            msg += f", {unknown} NOT confirmed (unknown: they may still be live)"
        return CancelAllReport(
            requested=True, confirmed=confirmed and not unknown, orders=outcomes, unknown=unknown,
            elapsed_s=round(time.monotonic() - t0, 3), message=msg,
        )

    # --- lifecycle -------------------------------------------------------------------------------

    def close_watch(self) -> None:
        self._unwatch()


@asynccontextmanager
async def open_session(
    settings: ConnectionSettings,
    store: Any,
    *,
    governor: Any = None,
    connect_timeout: float = 10.0,
    reconnect: bool = True,
    reconnect_delay: float = 0.5,
    linger: float = DEFAULT_LINGER,
    scenarios_dir: str | Path | None = None,
    session_id: str | None = None,
    close_reason: str = "normal",
    start_simulator: Callable[[str, str | Path | None], Any] | None = None,
    clock: Callable[[], tuple[int, int]] | None = None,
) -> AsyncIterator[LiveSession]:
    """Connect (starting the simulator for ``--simulate``), record, check the account, keep connected.

    ``governor``: a :class:`~ledger.core.governor_config.GovernorConfig` (default: built-in limits).
    ``start_simulator(account, scenarios_dir)`` starts the TWS stand-in for ``settings.simulate``; it is
    passed in by the command line so that live code never imports the simulator. ``clock``: the
    recorder's stamp source (:class:`~ledger.live.recorder.Recorder`), e.g. the simulator's clock.
    Raises :class:`ConnectError` or :class:`~ledger.ib.settings.SettingsError` (account mismatch: after
    disconnecting). The recording session is closed (``session_ended``) and committed on exit.
    """
    from ledger.core.governor_config import default_config
    from ledger.ib.library import IB
    from ledger.ib.reconcile import keep_connected
    from ledger.live.recorder import Recorder

    sim = None
    if settings.simulate:
        if start_simulator is None:
            raise SettingsError("--simulate needs the built-in simulator, which only the ibledger command line "
                                "starts: pass start_simulator= (see ledger.cli.simulated) or connect to TWS")
        sim = start_simulator(settings.account, scenarios_dir)
        settings = settings.with_endpoint("127.0.0.1", sim.port)
    config = governor if governor is not None else default_config()
    engine = Engine(config)
    ib = IB()
    recorder = None
    keeper: asyncio.Task | None = None
    stop = asyncio.Event()
    reason = close_reason
    try:
        recorder = Recorder.attach(
            ib, store, engine=engine, session_id=session_id, config_hash=config.digest(),
            mode=settings.mode, account=settings.account, clock=clock,
        )
        try:
            await connect_client(ib, settings.host, settings.port, settings.client_id, timeout=connect_timeout,
                                 account=settings.account)
        except ConnectError as exc:
            reason = f"connect failed: {exc}"
            raise
        try:
            check_account(settings, list(ib.managedAccounts()))
        except SettingsError as exc:
            reason = "account mismatch"
            ib.disconnect()
            raise SettingsError(str(exc)) from None
        session = LiveSession(ib, recorder, engine, settings, simulator=sim, linger=linger)
        if reconnect:
            keeper = asyncio.get_running_loop().create_task(
                keep_connected(ib, settings.host, settings.port, settings.client_id, timeout=connect_timeout,
                               account=settings.account, initial_delay=reconnect_delay, stop=stop)
            )
        await session.ready(connect_timeout)
        try:
            yield session
        except BaseException as exc:
            reason = f"error: {type(exc).__name__}"
            raise
        finally:
            session.close_watch()
    finally:
        stop.set()
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(BaseException):
                await keeper
        with contextlib.suppress(Exception):
            ib.disconnect()
        try:
            if recorder is not None:
                recorder.close(reason)
        finally:
            if sim is not None:
                sim.stop()
