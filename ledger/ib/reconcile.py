"""Reconciliation: ask the broker what really happened, bracketed by reconcile_started / reconcile_ended.

Fills happen while we are away (README "Design: Principles" 6), so after every connect and reconnect, and when
TWS reports its own link to IB restored (error 1101 "data lost"; 1102 "data maintained" gets the same
check), the broker is asked for open orders, completed orders, executions and positions. The answers
arrive through the wrapper callbacks, which the recorder records like any other (at wrapper level: on
reconnect the libraries raise no ``execDetailsEvent`` for fetched executions, but the wrapper's
``execDetails`` is still called), with ``source="reconcile"``.

Two ways a bracket runs:

* **connect** — ``connect()`` itself sends exactly these four requests (positions, open orders,
  completed orders, then executions). The bracket opens when the handshake completes (``connectAck``)
  and closes when all four end markers arrived, or when the library reports the connection
  synchronized (``connectedEvent``), or when the connection drops. A query whose end marker never came
  (timed out, skipped by ``readonly`` / ``fetchFields``, connection lost) is listed as *unknown*, and
  one follow-up query bracket is scheduled while the connection is up.
* **query** — :meth:`Reconciler.run` sends the four requests itself, one after the other (the library
  wants executions after the orders), each with a timeout. Used on 1101/1102, on attach to an already
  connected client, and on demand (``Recorder.reconcile``).

A query that failed or timed out is *unknown*, never *empty* (``ReconcileEnded.unknown``, ``ok=False``).
While a bracket is open the governor blocks new orders (it reacts to the recorded events);
``Recorder.reconciling`` says so too.

:func:`keep_connected` reconnects with exponential backoff and jitter. Jitter uses ``random``: this is
connection plumbing, outside the fold and the governor, and a seeded ``rng`` can be passed for tests.

Attribution caveat: during a bracket, every callback of the kinds the queries return (openOrder,
orderStatus, completedOrder, execDetails with a request id, commissionReport, position and the end
markers) is stamped ``source="reconcile"``; a live status of the same kind arriving in that window is
stamped so as well (the wire does not tell them apart). Live executions (request id -1) stay ``live``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ledger.core.events import ReconcileEnded, ReconcileStarted
from ledger.ib import adapter

if TYPE_CHECKING:  # pragma: no cover
    import asyncio as _asyncio
    import threading

    from ledger.core.events import Envelope, Event


class RecorderPort(Protocol):
    """What reconciliation needs of the recorder that hosts it, and nothing more.

    The recorder implements it publicly; reconciliation never reaches into the recorder's internals, so the
    IB layer does not depend on the live layer.
    """

    @property
    def loop(self) -> _asyncio.AbstractEventLoop | None: ...

    @property
    def lock(self) -> threading.RLock: ...

    def record_system(self, payload: Event, *, source: str = "reconcile") -> Envelope | None: ...

log = logging.getLogger("ledger.ib.reconcile")

__all__ = ["QUERIES", "Bracket", "Reconciler", "keep_connected"]

#: the four queries, in the order they are sent (executions after the orders)
QUERIES: tuple[str, ...] = ("open_orders", "completed_orders", "executions", "positions")

#: error codes after which the broker is asked again (1101: data lost, 1102: data maintained)
RECONCILE_CODES = frozenset({1101, 1102})

_RECONCILE_KINDS = frozenset(k for kinds in adapter.RECONCILE_QUERIES.values() for k in kinds)
_COUNTED = {"openOrder": "open_orders", "completedOrder": "completed_orders", "execDetails": "executions",
            "position": "positions"}


class Bracket:
    """One reconciliation in progress."""

    __slots__ = ("reason", "mode", "pending", "counts", "started_seq")

    def __init__(self, reason: str, mode: str) -> None:
        self.reason = reason
        self.mode = mode  # "connect" | "query"
        self.pending: dict[str, None] = dict.fromkeys(QUERIES)  # ordered set of unanswered queries
        self.counts: dict[str, int] = dict.fromkeys(QUERIES, 0)
        self.started_seq = 0


class Reconciler:
    """Owned by a :class:`~ledger.live.recorder.Recorder`; every method except :meth:`run` is called with the
    recorder's lock held, in the thread the callback arrived on."""

    def __init__(self, rec: RecorderPort, ib: Any, *, timeout: float = 10.0, enabled: bool = True) -> None:
        self.rec = rec
        self.ib = ib
        self.timeout = timeout
        self.enabled = enabled
        self.bracket: Bracket | None = None
        self.last: ReconcileEnded | None = None
        self.runs = 0
        self._task: asyncio.Task | None = None
        self._again: str = ""  # a reason that arrived while a bracket was open
        self._followup_done = False

    # --- stamping (called for every wrapper callback) -----------------------------------------

    def source_for(self, name: str, args: tuple) -> str:
        if self.bracket is None or name not in _RECONCILE_KINDS:
            return "live"
        if name == "execDetails" and args and _req_id(args[0]) == -1:
            return "live"  # a live fill during the bracket
        return "reconcile"

    def on_recorded(self, name: str, source: str) -> None:
        b = self.bracket
        if b is None:
            return
        if source == "reconcile":
            counted = _COUNTED.get(name)
            if counted is not None:
                b.counts[counted] += 1
        query = adapter.QUERY_END.get(name)
        if query is not None:
            b.pending.pop(query, None)
            if b.mode == "connect" and not b.pending:
                self._close(b)

    # --- lifecycle hooks ----------------------------------------------------------------------

    def on_connect(self, reconnect: bool) -> None:
        """The handshake completed: the library's own synchronization is the reconciliation."""
        self._followup_done = False
        self._again = ""  # a request from before the connection was lost: this connect answers it
        if not self.enabled:
            return
        if self.bracket is not None:  # a previous bracket never closed (its connection is gone)
            self._close(self.bracket, dropped=True)
        self._open("reconnect" if reconnect else "connect", "connect")

    def on_synchronized(self) -> None:
        """``connectedEvent``: ``connect()`` finished; close the connect bracket with what is missing."""
        b = self.bracket
        if b is not None and b.mode == "connect":
            ended = self._close(b)
            if not ended.ok and not self._followup_done:
                self._followup_done = True
                self.schedule("retry after connect: " + ",".join(ended.unknown))
        elif self._again and b is None:
            reason, self._again = self._again, ""
            self._schedule_soon(reason)

    def on_disconnect(self) -> None:
        b = self.bracket
        if b is not None:
            self._close(b, dropped=True)

    def on_error(self, code: int) -> None:
        if self.enabled and code in RECONCILE_CODES:
            self.schedule(f"error {code}")

    # --- brackets -----------------------------------------------------------------------------

    def _open(self, reason: str, mode: str) -> Bracket:
        b = Bracket(reason, mode)
        self.bracket = b
        self.runs += 1
        env = self.rec.record_system(ReconcileStarted(reason=reason))
        b.started_seq = env.seq if env is not None else 0
        return b

    def _close(self, b: Bracket, *, dropped: bool = False, failed: tuple[str, ...] = ()) -> ReconcileEnded:
        """Close ``b``: every query still pending (or failed) is unknown."""
        unknown = [q for q in QUERIES if q in b.pending or q in failed]
        ended = ReconcileEnded(
            ok=not unknown,
            unknown=unknown,
            open_orders=b.counts["open_orders"],
            completed_orders=b.counts["completed_orders"],
            executions=b.counts["executions"],
            positions=b.counts["positions"],
        )
        if self.bracket is b:
            self.bracket = None
        self.rec.record_system(ended)
        self.last = ended
        if unknown:
            log.warning("reconciliation (%s) incomplete: unknown %s", b.reason, ", ".join(unknown))
        if self._again and self.bracket is None and not dropped:
            reason, self._again = self._again, ""
            self._schedule_soon(reason)
        return ended

    def _schedule_soon(self, reason: str) -> None:
        # after the current step: the task that is closing this bracket must be done first
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = self.rec.loop
            if loop is None or loop.is_closed():
                self._again = reason
                return
            loop.call_soon_threadsafe(self.schedule, reason)
            return
        loop.call_soon(self.schedule, reason)

    # --- query mode ---------------------------------------------------------------------------

    def schedule(self, reason: str) -> asyncio.Task | None:
        """Start :meth:`run` as a task on the running loop (coalesced with one already running)."""
        if self.bracket is not None:
            self._again = self._again or reason
            return self._task if self._task is not None and not self._task.done() else None
        if self._task is not None and not self._task.done():
            self._again = self._again or reason
            return self._task
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = self.rec.loop
            if loop is None or loop.is_closed():
                log.warning("reconciliation (%s) wanted but no event loop is running; call rec.reconcile()",
                            reason)
                self._again = self._again or reason
                return None
            loop.call_soon_threadsafe(self.schedule, reason)
            return None
        self._task = loop.create_task(self.run(reason), name=f"ibledger-reconcile[{reason}]")
        self._task.add_done_callback(_log_task_error)
        return self._task

    async def run(self, reason: str = "manual") -> ReconcileEnded:
        """Send the four queries one after the other; record the bracket; return ``ReconcileEnded``."""
        with self.rec.lock:
            if self.bracket is not None:
                busy = self.bracket
            else:
                busy = None
                b = self._open(reason, "query")
        if busy is not None:  # one is running: wait for it instead of sending everything twice
            while self.bracket is busy:
                await asyncio.sleep(0.01)
            return self.last or ReconcileEnded(ok=False, unknown=list(QUERIES))
        failed: list[str] = []
        for query in QUERIES:
            if self.bracket is not b:  # the connection dropped: the bracket was closed for us
                break
            if not self.ib.isConnected():
                failed.append(query)
                continue
            try:
                await asyncio.wait_for(self._request(query), self.timeout)
            except TimeoutError:
                log.warning("reconciliation (%s): %s timed out after %.1fs", reason, query, self.timeout)
                failed.append(query)
            except Exception as exc:  # noqa: BLE001 - ConnectionError etc.: the answer is unknown
                log.warning("reconciliation (%s): %s failed: %s", reason, query, exc)
                failed.append(query)
            else:
                with self.rec.lock:
                    b.pending.pop(query, None)
        with self.rec.lock:
            if self.bracket is b:
                return self._close(b, failed=tuple(failed))
        return self.last or ReconcileEnded(ok=False, unknown=list(QUERIES))

    async def _request(self, query: str) -> Any:
        ib = self.ib
        if query == "open_orders":
            return await ib.reqOpenOrdersAsync()
        if query == "completed_orders":
            return await ib.reqCompletedOrdersAsync(False)
        if query == "executions":
            return await ib.reqExecutionsAsync()
        if query == "positions":
            return await ib.reqPositionsAsync()
        raise ValueError(f"unknown reconciliation query {query!r}")

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def stop(self) -> None:
        """The session ends: no more queries, and a bracket still open is closed (its pending queries
        unknown) so the session never ends inside a reconciliation."""
        self.cancel()
        if self.bracket is not None:
            self._close(self.bracket, dropped=True)

    def run_now(self, reason: str) -> Any:
        """Reconcile now. Inside a running event loop: the task (await it), or None when one is already
        due. Otherwise the loop runs until done and the ``ReconcileEnded`` payload is returned."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            from ledger.ib.library import util  # only when there is no loop: the library runs one

            return util.run(self.run(reason))
        return self.schedule(reason)


def _req_id(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


def _log_task_error(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("reconciliation task failed: %s: %s", type(exc).__name__, exc)


# --- reconnect ---------------------------------------------------------------------------------


async def keep_connected(
    ib: Any,
    host: str,
    port: int,
    client_id: int,
    *,
    timeout: float = 4.0,
    readonly: bool = False,
    account: str = "",
    initial_delay: float = 0.5,
    max_delay: float = 30.0,
    jitter: float = 0.25,
    rng: random.Random | None = None,
    stop: asyncio.Event | None = None,
    on_state: Callable[[str, str], None] | None = None,
) -> None:
    """Keep ``ib`` connected until ``stop`` is set (or the task is cancelled).

    Connects at once; after a failed attempt or a lost connection waits ``delay * (1 ± jitter)`` and
    tries again, the delay doubling from ``initial_delay`` up to ``max_delay`` and resetting after a
    successful connect. ``on_state(state, detail)`` is told "connecting", "connected", "failed" and
    "disconnected". Reconciliation needs nothing more: a :class:`~ledger.live.recorder.Recorder` attached to
    ``ib`` brackets every connect's synchronization itself.
    """
    rng = rng or random.Random()
    stop = stop or asyncio.Event()
    lost = asyncio.Event()

    def on_disconnected() -> None:
        lost.set()

    def tell(state: str, detail: str = "") -> None:
        if on_state is not None:
            try:
                on_state(state, detail)
            except Exception:  # noqa: BLE001
                log.exception("keep_connected: on_state callback failed")

    ib.disconnectedEvent += on_disconnected
    delay = initial_delay
    try:
        while not stop.is_set():
            if not ib.isConnected():
                tell("connecting", f"{host}:{port} clientId {client_id}")
                try:
                    lost.clear()
                    await ib.connectAsync(host, port, clientId=client_id, timeout=timeout, readonly=readonly,
                                          account=account)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - refused, reset, timeout, clientId in use ...
                    detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
                    wait = max(0.0, delay * (1.0 + jitter * (2.0 * rng.random() - 1.0)))
                    log.warning("connect to %s:%s failed (%s); retrying in %.2fs", host, port, detail, wait)
                    tell("failed", detail)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), wait)
                    delay = min(delay * 2.0, max_delay)
                    continue
                delay = initial_delay
                tell("connected", f"{host}:{port} clientId {client_id}")
            # wait for a drop (or stop); poll too, in case the event fired before we listened
            stop_task = asyncio.ensure_future(stop.wait())
            lost_task = asyncio.ensure_future(lost.wait())
            try:
                while ib.isConnected() and not stop.is_set() and not lost.is_set():
                    await asyncio.wait({stop_task, lost_task}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (stop_task, lost_task):
                    t.cancel()
            if stop.is_set():
                break
            if not ib.isConnected():
                tell("disconnected", "connection lost")
                wait = max(0.0, initial_delay * (1.0 + jitter * (2.0 * rng.random() - 1.0)))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
            lost.clear()
    finally:
        ib.disconnectedEvent -= on_disconnected
