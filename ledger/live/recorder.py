"""The live recorder: every raw IB callback and local intent becomes an event, before anything else.

``Recorder.attach(ib, store)`` wraps, on the user's own ``IB`` instance (ib_insync or ib_async, blocking
or asyncio use, before or after ``connect()``):

* the bound callback methods on ``ib.wrapper`` (``orderStatus``, ``openOrder``, ``execDetails``,
  ``commissionReport``, ``error``, ``completedOrder``, ``position``, the ``*End`` markers,
  ``nextValidId``, ``managedAccounts``, ``currentTime``, ``connectAck``, ``connectionClosed``): each
  call is converted (:mod:`ledger.ib.adapter`), stamped and queued **first**, then the library's original
  runs. Nothing the recorder does can stop the library's processing: every recording error is caught,
  logged and itself recorded as a ``RecorderFault``;
* ``ib.placeOrder`` / ``ib.cancelOrder`` / ``ib.reqGlobalCancel``: a ``PlaceOrder`` (``ModifyOrder``
  when the orderId was placed before), ``CancelOrder`` or ``GlobalCancel`` is recorded before the
  request is sent (``placeOrder`` on an order without id assigns it first, the way the library would).
  Code that records the intent itself first (``rec.record(PlaceOrder(order_id=...))``, e.g. to run the
  governor on it) and then sends it is not recorded twice: the hook finds the intent with the same
  (client id, order id) and only makes it ``last_intent``. ``intent_context()`` puts a correlation /
  causation id on the intents the hooks record;
* ``ib.disconnect``: ``Disconnected`` before the library closes the socket. Server-side drops arrive
  through ``connectionClosed`` with the reason the client reported (``apiError``);
* ``ib.wrapper.priceSizeTick`` (both libraries' TICK_PRICE callback): prices of the strategy's own
  market-data subscriptions become ``price_observed`` events, sampled per contract
  (:class:`~ledger.core.prices.PriceSampler`): the governor prices market orders from them.

With ``governor=`` (:mod:`ledger.live.guard`) ``placeOrder`` is checked before it is sent: pre-check, intent,
decision (caused by the intent), then the original call on ALLOW or :class:`~ledger.live.guard.OrderBlocked`
on BLOCK; an order that cannot be checked is not sent either (fail closed). The governor's emergency
cancels and ``engine.halt(..., cancel_all=True)`` go out through the same ``IB``, ahead of the client's
request throttle, and placements still waiting in that throttle queue are dropped (never sent) and
recorded as cancelled (``DROPPED_UNSENT``). The account's previous session is folded into the engine at
start, so the trading state and the breaker windows carry over.

The session starts with ``session_started`` (library and version, client id, host, port, account,
server version, config hash, ibledger version, mode). Attached to a connected client it is written at
once, followed by ``connected`` and a reconciliation. Attached before ``connect()`` it waits for the
connection: ``connectAck`` is held until the next message (``managedAccounts``, which names the
account), then ``session_started``, ``connected`` and ``reconcile_started`` are written with the
handshake's stamp. Something recorded before any connection starts the session with zeros.
``close()`` writes ``session_ended``; a session without it is a crashed one.

Time enters here and nowhere else: ``recv_ns = time.time_ns()`` and ``mono_ns = time.monotonic_ns()``
at receipt, or both from ``clock=`` when one is given (a simulated session takes its stamps from the
simulator's clock, so two runs with one seed record the same bytes). Events the recorder itself adds
while handling a callback carry that callback's stamp (so
stamps never go backwards along the seqs of one thread). Each recorded envelope then goes through the
engine (fold + governor) in seq order, the governor's decisions are recorded as events (``causation_id``
= ``ledger.core.engine.event_id`` of the cause) and the subscribers are called — all in the thread the
callback arrived on (the IB event loop), before the library's own handler.

Never blocking the event loop
-----------------------------
Recording only appends to a bounded in-memory queue (:mod:`ledger.store.writer`); one writer thread
group-commits everything queued in one store transaction. *Acknowledged* means committed:
``committed_seq`` and ``flush()``.

When the queue is full (the store is slower than the stream for ``queue_size`` events), the recorder
**blocks the loop briefly** (``full_block_s``, default 1 s) with a loud warning, giving the writer time
to drain. If it is still full, the event is **lost and counted** — never dropped silently: the seq is
not consumed (the stream stays gapless), ``lost`` / ``lost_by_kind`` grow, ``fault`` is set,
``log.error`` says so, a ``RecorderFault`` is recorded at once through a small reserve of queue slots
(so the governor stops new orders immediately), and when the queue has room again another one carries
the exact count lost since (the ``lost`` fields of a session's ``RecorderFault`` events add up to
``Recorder.lost``). Lost events are not folded either: the in-memory ledger stays equal to what the
store will hold. Governor decisions and ``session_ended`` may use the reserve too.

When the store fails, the writer keeps the batch and retries with backoff (nothing is skipped: a
skipped batch would leave a seq gap); the first failure sets ``fault``, logs an error and records a
``RecorderFault`` (delivered on the IB loop, or with the next event when no loop runs). A fault is
sticky: ``healthy`` stays False, the governor blocks new orders from the ``RecorderFault`` event on, and
``flush()`` / ``close()`` re-raise the error. ``close(timeout)`` gives up on a store that stays down and
counts what it could not commit as lost. While the store fails (disk full, database down) callbacks
never wait for queue room: they are counted as lost at once, and the waiting a merely slow store may
cause is bounded in total (``max_block_s`` per burst); when the store takes events again, one
``RecorderFault`` carries the exact count lost. A ``SeqConflict`` (another process writing the same
session) or a lost store file (deleted or replaced under the recorder: the path's device and inode are
checked at each group commit) stops the session for good: one fault, one log line, ``stopped`` says
why, ``on_fatal`` listeners are told (``ibledger record`` exits), and nothing more is attempted.

What ``kill -9`` can lose
-------------------------
Exactly the events not yet acknowledged: those in the queue and the batch being committed at that
instant — with a healthy store, the last few milliseconds. Everything at or below ``committed_seq`` is
in the store (a SQLite WAL commit — with ``synchronous=FULL``, the default, also across power loss;
``NORMAL`` keeps the kill -9 guarantee — or a PostgreSQL commit). The store opens cleanly afterwards and
lists the session as crashed (no ``session_ended``). ``tests/live/test_crash.py`` checks this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.core import events as ev
from ledger.core.events import Envelope, envelope
from ledger.core.prices import PRICE_TICKS, PriceSampler, observation
from ledger.ib import adapter
from ledger.ib.hooks import Patches
from ledger.ib.reconcile import Reconciler
from ledger.live.dispatch import Notice, Subscriber, deliver, engine_step
from ledger.live.guard import KillSwitch, OrderBlocked, resolve_governor, send_ahead
from ledger.live.journal import LossCount
from ledger.live.session_life import carry_over, started_payload
from ledger.store import EventStore, SeqConflict, StoreFileLost, open_store, session_id_problem
from ledger.store.writer import Writer

if TYPE_CHECKING:
    from ledger.ib.library import IB

log = logging.getLogger("ledger.live.recorder")

__all__ = ["Recorder", "RecorderError", "event_ref"]

_MAX_DECISION_DEPTH = 8
_PRICE_TICK = "priceSizeTick"  # both libraries' wrapper method for TICK_PRICE


Clock = Callable[[], tuple[int, int]]


def wall_clock() -> tuple[int, int]:
    """The default receipt stamp: (wall-clock ns since the epoch, monotonic ns)."""
    return time.time_ns(), time.monotonic_ns()


class RecorderError(RuntimeError):
    """The recorder could not record everything (queue full, store failure, lost events)."""


def event_ref(env: Envelope) -> str:
    """How an event is referred to by ``causation_id`` / ``correlation_id`` (``ledger.core.engine.event_id``)."""
    from ledger.core.engine import event_id

    return event_id(env)


def _default_engine(config: Any = None) -> Any:
    from ledger.core.engine import Engine

    return Engine(config)


class Recorder:
    """See the module docstring. Create with :meth:`attach`."""

    def __init__(
        self,
        ib: Any,
        store: EventStore | str,
        *,
        engine: Any = None,
        session_id: str | None = None,
        config_hash: str = "",
        mode: str = "paper",
        queue_size: int = 10_000,
        reconcile: bool = True,
        account: str = "",
        full_block_s: float = 1.0,
        max_block_s: float = 5.0,
        reconcile_timeout: float = 10.0,
        max_batch: int = 100,
        switch_interval: float | None = None,
        writer: str = "thread",
        governor: Any = None,
        enforce: bool = True,
        carry_over: bool = True,
        clock: Clock | None = None,
    ) -> None:
        if writer not in ("thread", "process"):
            raise ValueError(f"writer must be 'thread' or 'process', not {writer!r}")
        if switch_interval is not None:
            # process-wide: the writer thread re-takes the GIL once per SQLite step, and with Python's
            # default 5 ms switch interval each of those can wait for a busy IB loop (commit latency)
            sys.setswitchinterval(switch_interval)
        self.ib = ib
        #: the receipt stamp source: (recv_ns, mono_ns); the wall clock unless a simulated one is given
        self.clock: Clock = clock or wall_clock
        self._own_store = isinstance(store, str)
        self.store: EventStore = open_store(store) if isinstance(store, str) else store
        try:
            # a random id is right here: this is where a new fact-stream starts (not fold/governor/replay)
            self.session_id = session_id if session_id is not None else str(uuid.uuid4())
            problem = session_id_problem(self.session_id)
            if problem is not None:
                raise RecorderError(f"--session-id: {problem}; pass another one (or none for a new UUID)")
            if self.store.last_seq(self.session_id) > 0:
                raise RecorderError(
                    f"session {self.session_id} already has events in {self.store.url}: "
                    f"a recording session id is used once; pass a new one (or none)"
                )
            gov_config = resolve_governor(governor, enforce)
            if gov_config is not None and engine is not None:
                raise ValueError("pass either governor= (the recorder builds the engine) or engine=, not both")
            self.engine = engine if engine is not None else _default_engine(gov_config)
            self.governed = gov_config is not None
            if self.governed and not config_hash:
                config_hash = gov_config.digest()  # type: ignore[union-attr]
        except BaseException:
            if self._own_store:
                self.store.close()
            raise
        self._ctx: tuple[int, int] | None = None
        self.config_hash = config_hash
        self.mode = mode
        self.account = account
        self.full_block_s = full_block_s
        self.max_block_s = max_block_s  # total IB-loop blocking allowed per loss burst (see _enqueue)
        self.blocked_s = 0.0  # IB-loop time spent waiting for queue room in the current burst
        self.stopped: str = ""  # why recording stopped for good (seq conflict, store file lost); "" = recording
        self.on_fatal: list[Callable[[str], None]] = []  # told once, on the IB loop when there is one
        self._lock = threading.RLock()
        self._seq = 0
        self._depth = 0
        self._notify: list[tuple[Envelope, list, list]] = []
        self._subscribers: list[Subscriber] = []
        self._started = False
        self._closed = False
        self._conn_open = False  # a Connected is recorded and no Disconnected since
        self._connects = 0
        self._pending_connect: tuple[ev.Connected, int, int] | None = None
        self._placed: dict[tuple[int, int], None] = {}
        self._intent_local = threading.local()
        self._prerecorded: dict[tuple, Envelope] = {}  # intents recorded by rec.record(), not yet sent
        self.last_intent: Envelope | None = None  # envelope of the latest intent recorded by a hook
        self._last_api_error = ""
        self._fault: BaseException | None = None
        self._faults_inbox: deque[tuple[str, int]] = deque()  # (message, lost) to record as RecorderFault
        self.losses = LossCount()  # events lost (queue full, or given up by the writer): counted, never silent
        self._lost_logged_at = 0.0
        self.internal_errors = 0
        self.engine_errors = 0
        self._full_warned_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._patches = Patches()  # what _install hooked into the client, so close() undoes only that
        self.reconciler = Reconciler(self, ib, timeout=reconcile_timeout, enabled=reconcile)
        writer_cls: Any = Writer
        if writer == "process":
            from ledger.store.writer_process import ProcessWriter

            writer_cls = ProcessWriter
        self._writer = writer_cls(
            self.store, capacity=queue_size, max_batch=max_batch, on_error=self._on_writer_error,
            name=f"ibledger-writer-{self.session_id[:8]}",
        )
        self._writer.add_listener(self._after_commit)
        cfg = getattr(self.engine, "config", None)
        self.prices = PriceSampler(getattr(cfg, "observe_interval_s", 1.0), getattr(cfg, "observe_move", 0.0005))
        self.carry_over = carry_over
        self.carried_from: str | None = None  # the earlier session of the account the governor learned from
        self.kill_switch = KillSwitch(self)
        self._writer.start()
        if self.governed:
            self.engine.sink = self._record_operator_decisions
            self._subscribers.append(self.kill_switch.on_event)

    # --- construction ----------------------------------------------------------------------------

    @classmethod
    def attach(
        cls,
        ib: IB,
        store: EventStore | str,
        *,
        engine: Any = None,
        session_id: str | None = None,
        config_hash: str = "",
        mode: str = "paper",
        queue_size: int = 10_000,
        reconcile: bool = True,
        governor: Any = None,
        enforce: bool = True,
        **options: Any,
    ) -> Recorder:
        """Start recording ``ib`` (connected or not) into ``store`` (an EventStore or a URL).

        ``governor``: ``None`` (record only), ``"default"`` (built-in limits), a TOML path or a
        :class:`~ledger.core.governor_config.GovernorConfig`. With one, every ``ib.placeOrder`` (new or
        modify) is pre-checked before it is sent; a BLOCK raises :class:`ledger.OrderBlocked` (nothing
        sent; intent and decision recorded). ``enforce=False``: shadow mode (recorded, never refused).
        Emergency cancels (breakers, ``engine.halt(..., cancel_all=True)``) go out through ``ib``.

        Extra options: ``carry_over`` (governed only, default True: fold the account's previous session
        in at start, so a halt and the breaker windows carry over), ``account`` (for ``session_started``
        when attached before connect),
        ``full_block_s`` (longest wait of one callback for queue room), ``max_block_s`` (total such waiting
        per loss burst: a store that stays full or slow never freezes the strategy for longer),
        ``reconcile_timeout`` (seconds per query), ``max_batch`` (events per commit),
        ``switch_interval`` (sets ``sys.setswitchinterval`` for the whole process, e.g. 0.0005: shorter
        GIL hand-offs between the IB loop and the writer thread; not touched by default), ``writer``
        (``"thread"``, the default, or ``"process"``: commits in a child process that never waits for
        this process's GIL, see :mod:`ledger.store.writer_process`), ``clock`` (a callable returning
        ``(recv_ns, mono_ns)`` used for every stamp instead of the machine's clocks, e.g. a simulator's).
        """
        rec = cls(ib, store, engine=engine, session_id=session_id, config_hash=config_hash, mode=mode,
                  queue_size=queue_size, reconcile=reconcile, governor=governor, enforce=enforce, **options)
        try:
            rec._install()
        except BaseException:
            rec._writer.close(1.0)
            if rec._own_store:
                rec.store.close()
            raise
        return rec

    def _install(self) -> None:
        ib = self.ib
        w = ib.wrapper
        for name, builder in adapter.CALLBACKS.items():
            original = getattr(w, name, None)
            if original is not None:
                self._hook(w, name, self._callback_hook(name, builder, original))
        if getattr(w, _PRICE_TICK, None) is not None:
            self._hook(w, _PRICE_TICK, self._tick_hook(getattr(w, _PRICE_TICK)))
        self._hook(w, adapter.CONNECT_ACK, self._connect_ack_hook(getattr(w, adapter.CONNECT_ACK)))
        self._hook(w, adapter.CONNECTION_CLOSED, self._closed_hook(getattr(w, adapter.CONNECTION_CLOSED)))
        self._hook(ib, "placeOrder", self._place_hook(ib.placeOrder))
        self._hook(ib, "cancelOrder", self._cancel_hook(ib.cancelOrder))
        self._hook(ib, "reqGlobalCancel", self._global_cancel_hook(ib.reqGlobalCancel))
        self._hook(ib, "disconnect", self._disconnect_hook(ib.disconnect))
        self._listen(ib.client.apiError, self._on_api_error)
        self._listen(ib.connectedEvent, self._on_connected_event)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if ib.isConnected():
            self._attach_connected()

    def _hook(self, obj: Any, name: str, hook: Any) -> None:
        self._patches.hook(obj, name, hook)

    def _listen(self, event: Any, handler: Any) -> None:
        self._patches.listen(event, handler)

    def _attach_connected(self) -> None:
        """Attached to a client that is already connected: start, record the connection, reconcile."""
        client = self.ib.client
        accounts = list(getattr(self.ib.wrapper, "accounts", []) or [])
        with self._lock:
            self._ensure_started(accounts=accounts)
            self._on_connect(adapter.connected(client), *self._stamp(), sync=False)
        if self.reconciler.enabled:
            self._reconcile_now("attach")

    # --- public API ------------------------------------------------------------------------------

    @property
    def fold(self) -> Any:
        return self.engine.fold

    @property
    def lost(self) -> int:
        """Events lost in this session (queue full, or given up by the writer)."""
        return self.losses.total

    @property
    def lost_by_kind(self) -> dict[str, int]:
        """Events lost in this session, by event kind."""
        return self.losses.by_kind

    @property
    def committed_seq(self) -> int:
        return self._writer.committed_seq

    @property
    def last_seq(self) -> int:
        """Highest seq recorded (queued); ``committed_seq`` is the acknowledged part of it."""
        return self._seq

    @property
    def fault(self) -> BaseException | None:
        return self._fault

    @property
    def healthy(self) -> bool:
        return self._fault is None

    @property
    def reconciling(self) -> bool:
        return self.reconciler.bracket is not None

    @property
    def connects(self) -> int:
        """How many connections were recorded (1 + reconnects)."""
        return self._connects

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def writer(self) -> Writer:
        return self._writer

    # --- the port reconciliation uses (ledger.ib.reconcile.RecorderPort) ---------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The IB event loop the recorder's callbacks run on (None until connected)."""
        return self._loop

    @property
    def lock(self) -> threading.RLock:
        """Held while an event is stamped, folded and queued: keeps seq order equal to fold order."""
        return self._lock

    def record_system(self, payload: ev.Event, *, source: ev.Source = "reconcile") -> Envelope | None:
        """Record an event the recorder itself produces (reconciliation brackets); None once faulted."""
        return self._record(payload, source=source)

    def record(
        self,
        payload: ev.Event,
        *,
        source: ev.Source = "live",
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> Envelope:
        """Record a local event (intent, decision, fault, note) on the same path as the callbacks.

        Returns the envelope (queued; ``flush()`` to wait for the commit) after the engine processed it
        and the subscribers were called. Raises :class:`RecorderError` when the payload cannot be
        encoded (nothing recorded) or could not be queued (counted as lost; the recorder is faulted).
        An intent recorded here and then sent through ``ib.placeOrder`` / ``cancelOrder`` /
        ``reqGlobalCancel`` is not recorded a second time by the hooks (matched on client id and
        order id: set ``order.orderId`` before recording).
        """
        if self._closed:
            raise RecorderError(f"recorder for session {self.session_id} is closed")
        try:
            _check_encodable(payload)
        except Exception as exc:  # noqa: BLE001
            raise RecorderError(f"cannot record {type(payload).__name__}: not encodable ({exc})") from exc
        env = self._record(payload, source=source, correlation_id=correlation_id, causation_id=causation_id)
        if env is None:
            raise RecorderError(f"could not record {ev.kind_of(payload)}: {self._fault}") from self._fault
        key = self._intent_key(payload)
        if key is not None:
            self._prerecorded[key] = env  # the hook on ib.placeOrder / cancelOrder will not record it twice
        return env

    @contextlib.contextmanager
    def intent_context(self, *, correlation_id: str | None = None, causation_id: str | None = None) -> Iterator[None]:
        """Intents recorded by the ``placeOrder`` / ``cancelOrder`` / ``reqGlobalCancel`` hooks in this
        thread, inside the block, carry these ids (e.g. ``causation_id`` = ``event_ref`` of the governor
        decision that allowed the order). ``last_intent`` is the envelope of the latest one::

            with rec.intent_context(causation_id=event_ref(decision_env)):
                trade = ib.placeOrder(contract, order)
            intent_env = rec.last_intent
        """
        loc = self._intent_local
        prev = getattr(loc, "ctx", None)
        loc.ctx = (correlation_id, causation_id)
        try:
            yield
        finally:
            loc.ctx = prev

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """``callback(env, transitions, decisions)`` after fold + governor for every recorded event.

        Called in the thread that recorded the event (the IB loop for callbacks), before the library
        handles the callback. ``decisions`` are the governor's payloads (each also recorded, and
        delivered as its own event). Exceptions are logged and ignored. Returns an unsubscribe function.
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def on_commit(self, callback: Callable[[Sequence[Envelope], int], None]) -> None:
        """``callback(batch, commit_mono_ns)`` in the writer thread after each commit (keep it short)."""
        self._writer.add_listener(callback)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything recorded so far is committed; raise the fault if there is one."""
        self._drain_faults()
        target = self._seq
        ok = self._writer.wait_committed(target, timeout)
        if self._fault is not None:
            raise self._fault
        if not ok:
            raise RecorderError(
                f"flush: seq {self._writer.committed_seq} of {target} committed after {timeout:.1f}s"
            )

    async def flush_async(self, timeout: float = 5.0) -> None:
        """:meth:`flush` without blocking the event loop."""
        self._drain_faults()
        target = self._seq
        ok = await asyncio.get_running_loop().run_in_executor(None, self._writer.wait_committed, target, timeout)
        if self._fault is not None:
            raise self._fault
        if not ok:
            raise RecorderError(f"flush: seq {self._writer.committed_seq} of {target} committed after {timeout}s")

    def reconcile(self, reason: str = "manual") -> Any:
        """Reconcile now. Inside a running event loop: returns the task (await it). Otherwise runs the
        loop until done and returns the ``ReconcileEnded`` payload."""
        return self._reconcile_now(reason)

    async def reconcile_async(self, reason: str = "manual") -> ev.ReconcileEnded:
        return await self.reconciler.run(reason)

    def close(self, reason: str = "normal", timeout: float = 10.0) -> None:
        """Record ``session_ended``, commit everything, stop the writer, unhook. Re-raises a fault."""
        with self._lock:
            if self._closed:
                return
            self.reconciler.cancel()
            if self.reconciler.bracket is not None:
                self.reconciler._close(self.reconciler.bracket, dropped=True)
            self._ensure_started()
            self._drain_faults_locked(force=True)
            self._record(ev.SessionEnded(reason=reason, events=self._seq + 1), source="live", _reserve=True)
            self._closed = True
        self._unhook()
        complete = self._writer.close(timeout)
        self.losses.total += self._writer.lost
        if self._own_store:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the store failed")
        if not complete and self._fault is None:
            self._fault = RecorderError(
                f"close: {self._writer.enqueued_seq - self._writer.committed_seq} event(s) not committed"
            )
        if self._fault is not None:
            log.error("recorder closed with a fault (session %s, committed seq %s, lost %s): %s",
                      self.session_id, self._writer.committed_seq, self.lost, self._fault)
            raise self._fault

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close("normal")
        else:
            try:
                self.close(f"error: {exc_type.__name__}")
            except Exception:  # noqa: BLE001 - do not mask the original exception
                log.exception("closing the recorder after an error failed")

    def _unhook(self) -> None:
        self._patches.undo()

    # --- the recording path ----------------------------------------------------------------------

    def _record(
        self,
        payload: ev.Event,
        *,
        source: ev.Source = "live",
        correlation_id: str | None = None,
        causation_id: str | None = None,
        recv_ns: int | None = None,
        mono_ns: int | None = None,
        _reserve: bool = False,
    ) -> Envelope | None:
        """Stamp, queue, fold, govern; then (outermost call only) notify subscribers."""
        with self._lock:
            if recv_ns is None:
                recv_ns, mono_ns = self._stamp()
            outer_ctx = self._ctx
            if outer_ctx is None:
                self._ctx = (recv_ns, mono_ns or 0)
            self._depth += 1
            try:
                if self._closed:
                    return None
                if not self._started:
                    self._ensure_started()
                if self._faults_inbox or self.losses.unreported:
                    self._drain_faults_locked()
                env = self._enqueue(payload, source, correlation_id, causation_id, recv_ns, mono_ns or 0,
                                    _reserve)
                if env is not None:
                    self._process(env, 0)
                elif self._faults_inbox:
                    self._drain_faults_locked()
            finally:
                self._ctx = outer_ctx
                self._depth -= 1
                if self._depth == 0 and self._notify:
                    notify, self._notify = self._notify, []
                else:
                    notify = None
        if notify:
            self._deliver(notify)
        return env

    def _enqueue(
        self, payload: ev.Event, source: ev.Source, correlation_id: str | None, causation_id: str | None,
        recv_ns: int, mono_ns: int, reserve: bool = False,
    ) -> Envelope | None:
        if self.stopped:  # the session is over for good: count, do not retry, do not report again
            self.losses.count(ev.kind_of(payload), report=False)
            return None
        seq = self._seq + 1
        env = envelope(self.session_id, seq, payload, recv_ns=recv_ns, mono_ns=mono_ns, source=source,
                       correlation_id=correlation_id, causation_id=causation_id)
        w = self._writer
        if not w.put(env, 0.0, reserve=reserve):
            # Wait for room only while the writer is making progress (behind, not failing: a full disk or
            # a dead database will not drain in a second) and within the burst's total budget, so the
            # IB loop is never frozen for more than max_block_s whatever the store does.
            budget = min(self.full_block_s, self.max_block_s - self.blocked_s)
            if not w.dead and not w.failing and budget > 0:
                now = time.monotonic()
                if now - self._full_warned_at > 5.0:
                    self._full_warned_at = now
                    log.warning(
                        "recorder queue FULL (%d events waiting, writer behind): blocking the IB loop up to "
                        "%.1fs (%.1fs left of %.1fs per burst) so nothing is lost", w.capacity - w.free(),
                        budget, self.max_block_s - self.blocked_s, self.max_block_s,
                    )
                ok = w.put(env, budget, reserve=reserve)
                self.blocked_s += time.monotonic() - now
            else:
                ok = False
            if not ok:
                kind = ev.kind_of(payload)
                if self.losses.count(kind):
                    # tell the engine now (through the reserve), not when the queue has room again
                    self._faults_inbox.append(("queue full or writer stopped: events are being LOST", 0))
                now = time.monotonic()
                if self._fault is None or now - self._lost_logged_at > 1.0:
                    self._lost_logged_at = now
                    self._set_fault(
                        RecorderError(f"recorder LOST events: queue full or writer stopped ({self.lost} lost so "
                                      f"far, latest a {kind}; by kind: {self.lost_by_kind})"),
                        report=False,
                    )
                return None
        self._seq = seq
        return env

    def _process(self, env: Envelope, depth: int) -> None:
        stepped = engine_step(self.engine, env)
        if stepped is None:
            self.engine_errors += 1
            transitions, decisions = [], []
        else:
            transitions, decisions = stepped
        self._notify.append((env, transitions, decisions))
        if not decisions:
            return
        if depth >= _MAX_DECISION_DEPTH:
            log.error("governor decisions nested deeper than %d: not recording more", _MAX_DECISION_DEPTH)
            return
        cause = event_ref(env)
        for d in decisions:
            # decisions may use the reserve: the governor's reaction (e.g. to a fault) must be kept
            denv = self._enqueue(d, env.source, env.correlation_id, cause, *self._stamp(), reserve=True)
            if denv is not None:
                self._process(denv, depth + 1)

    def _deliver(self, notify: list[Notice]) -> None:
        subs = list(self._subscribers)
        if subs:
            deliver(subs, notify)

    def _ensure_started(self, accounts: Sequence[str] | None = None) -> None:
        if self._started:
            return
        self._started = True
        pending, self._pending_connect = self._pending_connect, None
        client = self.ib.client
        account = self.account
        if not account and accounts and len(accounts) == 1:
            account = accounts[0]
        if self.governed and self.carry_over and account:
            self.carried_from = carry_over(self.store, self.engine, session_id=self.session_id, account=account)
        started = started_payload(client, account=account, config_hash=self.config_hash, mode=self.mode,
                                  engine_config=self.engine.config)
        ns, mono = (pending[1], pending[2]) if pending else self._stamp()
        env = self._enqueue(started, "live", None, None, ns, mono, reserve=True)
        if env is not None:
            self._process(env, 0)
        if pending is not None:
            self._on_connect(*pending, sync=True)

    def _on_connect(self, payload: ev.Connected, recv_ns: int, mono_ns: int, *, sync: bool) -> None:
        env = self._enqueue(payload, "live", None, None, recv_ns, mono_ns)
        if env is not None:
            self._process(env, 0)
        self._conn_open = True
        self._connects += 1
        if sync:
            self.reconciler.on_connect(reconnect=self._connects > 1)

    # --- time -----------------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int]:
        """The receipt stamp: the triggering callback's while one is being recorded, else now."""
        ctx = self._ctx
        if ctx is not None:
            return ctx
        return self.clock()

    @contextlib.contextmanager
    def _at(self, recv_ns: int, mono_ns: int) -> Iterator[None]:
        """Everything recorded while handling one callback (session start, connection, brackets,
        faults, decisions) carries that callback's receipt stamp, so stamps never go backwards."""
        prev = self._ctx
        self._ctx = (recv_ns, mono_ns)
        try:
            yield
        finally:
            self._ctx = prev

    # --- faults --------------------------------------------------------------------------------------

    def _set_fault(self, exc: BaseException, *, report: bool = True) -> None:
        first = self._fault is None
        if first:
            self._fault = exc
        log.error("RECORDER FAULT (session %s): %s — new orders are blocked", self.session_id, exc)
        if report:
            self._faults_inbox.append((f"{type(exc).__name__}: {exc}", 0))

    def _after_commit(self, batch: Any, commit_ns: int) -> None:
        """Writer thread, after each commit: once the store takes events again, report what was lost
        (on the IB loop) without waiting for the next callback."""
        if self.losses.unreported and not self._closed:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._drain_faults)

    def _stop_for_good(self, exc: BaseException) -> None:
        """The writer cannot go on (another writer owns the session's seqs, or the store file is gone):
        stop the session with one fault, one log line and no more attempts."""
        if isinstance(exc, SeqConflict):
            why = (f"another writer appended to session {self.session_id} (expected seq {exc.expected}, got "
                   f"{exc.got}): two recorders must not share a session id; this recorder stopped")
        else:
            why = f"{exc}; this recorder stopped"
        self.stopped = why
        self._fault = RecorderError(why)
        self._fault.__cause__ = exc
        log.error("RECORDER STOPPED (session %s): %s — new orders are blocked", self.session_id, why)
        for fn in list(self.on_fatal):
            loop = self._loop
            try:
                if loop is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(fn, why)
                else:
                    fn(why)
            except Exception:  # noqa: BLE001 - a listener never breaks the stop
                log.exception("on_fatal listener failed")

    def _on_writer_error(self, exc: BaseException) -> None:
        # writer thread: never take the recorder lock here (the loop thread may hold it while waiting
        # for queue room that only this thread can make)
        if isinstance(exc, (SeqConflict, StoreFileLost)):
            if not self.stopped:
                self._stop_for_good(exc)
            return
        first = self._fault is None
        if first:
            self._fault = exc
            log.error("RECORDER FAULT (session %s): store append failed: %s: %s — new orders are blocked; "
                      "retrying", self.session_id, type(exc).__name__, exc)
            self._faults_inbox.append((f"store append failed: {type(exc).__name__}: {exc}", 0))
            loop = self._loop
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._drain_faults)
                except RuntimeError:
                    pass

    def _drain_faults(self) -> None:
        if self._closed:
            return
        with self._lock:
            self._drain_faults_locked()

    def _drain_faults_locked(self, force: bool = False) -> None:
        """Record pending faults. Lost events are reported in one ``RecorderFault`` once the queue has
        room again (or at close), with the exact count since the previous report."""
        if self.stopped:  # nothing can be recorded any more: the fault was told once, at the stop
            self._faults_inbox.clear()
            return
        while self._faults_inbox or self.losses.unreported:
            if self._faults_inbox:
                message, lost = self._faults_inbox.popleft()
            elif force or (self._writer.free() > 0 and not self._writer.failing):
                message, lost = f"events lost while the queue was full (by kind so far: {self.lost_by_kind})", 0
                self.losses.burst = False
                self.blocked_s = 0.0  # the store keeps up again: a new burst gets a new budget
            else:
                return
            payload = ev.RecorderFault(message=message, lost=lost + self.losses.unreported)
            env = self._enqueue(payload, "live", None, None, *self._stamp(), reserve=True)
            if env is None:
                self._faults_inbox.appendleft((message, 0))
                return
            self.losses.take_unreported()
            self._process(env, 0)

    def _internal_error(self, where: str, exc: BaseException, args: tuple = ()) -> None:
        """A callback could not be converted: record what we have as a fault (never drop silently)."""
        self.internal_errors += 1
        log.exception("recorder could not record %s (the library still handles it)", where)
        try:
            text = repr(args)[:4000]
        except Exception:  # noqa: BLE001
            text = "<unrepresentable>"
        try:
            self._set_fault(RecorderError(f"could not record {where}: {type(exc).__name__}: {exc}"), report=False)
            with self._lock:
                self._faults_inbox.append((f"unrecorded callback {where}: {exc}; args: {text}", 0))
                self._drain_faults_locked()
        except Exception:  # noqa: BLE001
            log.exception("recorder fault reporting failed")

    # --- hooks -----------------------------------------------------------------------------------------

    def _callback_hook(self, name: str, builder: adapter.Builder, original: Callable[..., Any]) -> Any:
        is_error = name == "error"
        is_accounts = name == "managedAccounts"
        lock = self._lock
        rc = self.reconciler
        clock = self.clock

        def hook(*args: Any, **kwargs: Any) -> Any:
            recv_ns, mono_ns = clock()
            if not self._closed:
                try:
                    a = adapter.bind_args(original, args, kwargs) if kwargs else args
                    payload = builder(*a)
                    if self._loop is None:
                        self._capture_loop()
                    with lock:
                        prev = self._ctx
                        self._ctx = (recv_ns, mono_ns)  # see _at(): one stamp for all this callback causes
                        try:
                            if not self._started:
                                self._ensure_started(
                                    accounts=payload.accounts.split(",") if is_accounts else None  # type: ignore[attr-defined]
                                )
                            if rc.bracket is None:
                                self._record(payload, recv_ns=recv_ns, mono_ns=mono_ns)
                            else:
                                source = rc.source_for(name, a)
                                self._record(payload, source=source, recv_ns=recv_ns, mono_ns=mono_ns)  # type: ignore[arg-type]
                                rc.on_recorded(name, source)
                            if is_error:
                                rc.on_error(payload.code)  # type: ignore[attr-defined]
                        finally:
                            self._ctx = prev
                except Exception as exc:  # noqa: BLE001 - the library must still see the callback
                    self._internal_error(name, exc, args)
            return original(*args, **kwargs)

        return hook

    def _capture_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

    def _connect_ack_hook(self, original: Callable[..., Any]) -> Any:
        def hook(*args: Any, **kwargs: Any) -> Any:
            recv_ns, mono_ns = self.clock()
            if not self._closed:
                try:
                    self._capture_loop()
                    payload = adapter.connected(self.ib.client)
                    with self._lock, self._at(recv_ns, mono_ns):
                        if not self._started:
                            # session_started waits for managedAccounts (the next message) to name the account
                            self._pending_connect = (payload, recv_ns, mono_ns)
                        else:
                            self._on_connect(payload, recv_ns, mono_ns, sync=True)
                except Exception as exc:  # noqa: BLE001
                    self._internal_error("connectAck", exc, args)
            return original(*args, **kwargs)

        return hook

    def _closed_hook(self, original: Callable[..., Any]) -> Any:
        def hook(*args: Any, **kwargs: Any) -> Any:
            if not self._closed:
                try:
                    self._disconnected(self._last_api_error or "connection closed by the server")
                except Exception as exc:  # noqa: BLE001
                    self._internal_error("connectionClosed", exc, args)
            return original(*args, **kwargs)

        return hook

    def _disconnect_hook(self, original: Callable[..., Any]) -> Any:
        def hook(*args: Any, **kwargs: Any) -> Any:
            if not self._closed:
                try:
                    self._disconnected("client disconnect")
                except Exception as exc:  # noqa: BLE001
                    self._internal_error("disconnect", exc, args)
            return original(*args, **kwargs)

        return hook

    def _disconnected(self, reason: str) -> None:
        with self._lock, self._at(*self.clock()):
            if self._pending_connect is not None or (not self._started and self.ib.client.isConnected()):
                self._ensure_started()
            if not self._conn_open:
                return
            self._conn_open = False
            self.reconciler.on_disconnect()
            self._record(ev.Disconnected(reason=reason))
            self._last_api_error = ""

    def _on_api_error(self, msg: Any) -> None:
        self._last_api_error = str(msg)

    def _on_connected_event(self, *args: Any) -> None:
        if self._closed:
            return
        try:
            with self._lock:
                self.reconciler.on_synchronized()
        except Exception as exc:  # noqa: BLE001
            self._internal_error("connectedEvent", exc, args)

    def _client_id(self) -> int:
        cid = getattr(self.ib.wrapper, "clientId", None)
        if cid is None or cid == -1:
            cid = getattr(self.ib.client, "clientId", 0)
        try:
            return int(cid)
        except (TypeError, ValueError):
            return 0

    def _intent_key(self, payload: ev.Event) -> tuple | None:
        if isinstance(payload, ev.PlaceOrder):  # ModifyOrder included
            return ("place", payload.client_id or self._client_id(), payload.order_id)
        if isinstance(payload, ev.CancelOrder):
            return ("cancel", payload.client_id or self._client_id(), payload.order_id)
        if isinstance(payload, ev.GlobalCancel):
            return ("global",)
        return None

    def _record_intent(self, payload: ev.Event) -> None:
        if self._prerecorded:
            pre = self._prerecorded.pop(self._intent_key(payload), None)
            if pre is not None:  # already recorded through rec.record() just before sending
                self.last_intent = pre
                return
        ctx = getattr(self._intent_local, "ctx", None)
        correlation_id, causation_id = ctx if ctx is not None else (None, None)
        env = self._record(payload, correlation_id=correlation_id, causation_id=causation_id)
        if env is not None:
            self.last_intent = env

    def _place_hook(self, original: Callable[..., Any]) -> Any:
        def placeOrder(contract: Any, order: Any, *args: Any, **kwargs: Any) -> Any:
            blocked: ev.GovernorDecision | None = None
            client = self.ib.client
            # governed: also in the moment between the socket and the API being up (the library would send)
            if not self._closed and (client.isReady() or (self.governed and client.isConnected())):
                try:
                    if not getattr(order, "orderId", 0):
                        # the id the library would assign, assigned first so the intent carries it
                        order.orderId = self.ib.client.getReqId()
                    cid = self._client_id()
                    oid = int(order.orderId)
                    key = (cid, oid)
                    modify = key in self._placed or key in getattr(self.ib.wrapper, "trades", {})
                    payload = adapter.place_order(contract, order, oid, cid, modify=modify)
                    if self.governed and self._intent_key(payload) not in self._prerecorded:
                        decision = self._govern_intent(payload)
                        if decision.decision == "BLOCK" and not decision.action.startswith("shadow_"):
                            blocked = decision
                    else:
                        self._record_intent(payload)
                    if blocked is None:
                        self._placed[key] = None
                except Exception as exc:  # noqa: BLE001
                    self._internal_error("placeOrder", exc, (contract, order))
                    if self.governed and self.engine.config.state.enforce:
                        # fail closed: an order the governor could not check is not sent
                        blocked = ev.GovernorDecision(
                            decision="BLOCK", reason="RECORDER_FAULT", action="place",
                            order_id=int(getattr(order, "orderId", 0) or 0),
                            symbol=str(getattr(contract, "symbol", "") or ""),
                            message=f"the order could not be checked and recorded ({type(exc).__name__}: {exc})",
                        )
            if blocked is not None:
                raise OrderBlocked(blocked)
            return original(contract, order, *args, **kwargs)

        return placeOrder

    def _govern_intent(self, payload: ev.Event) -> ev.GovernorDecision:
        """The engine's protocol for one intent: pre-check on the state before it, record the intent,
        then its decision (caused by the intent), one stamp for both. Returns the decision."""
        ctx = getattr(self._intent_local, "ctx", None)
        correlation_id, causation_id = ctx if ctx is not None else (None, None)
        with self._lock:
            recv_ns, mono_ns = self._stamp()
            decision = self.engine.pre_check(payload, recv_ns)  # type: ignore[arg-type]
            i_env = self._record(payload, correlation_id=correlation_id, causation_id=causation_id,
                                 recv_ns=recv_ns, mono_ns=mono_ns)
            if i_env is None:
                raise RecorderError(f"the intent could not be recorded: {self._fault}")
            self.last_intent = i_env
            self._record(decision, correlation_id=correlation_id, causation_id=event_ref(i_env),
                         recv_ns=recv_ns, mono_ns=mono_ns)
        return decision

    def _cancel_hook(self, original: Callable[..., Any]) -> Any:
        def cancelOrder(order: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._closed and self.ib.client.isReady():
                try:
                    payload = adapter.cancel_order(order, self._client_id())
                    if self.governed and self._intent_key(payload) not in self._prerecorded:
                        self._govern_intent(payload)
                    else:
                        self._record_intent(payload)
                except Exception as exc:  # noqa: BLE001
                    self._internal_error("cancelOrder", exc, (order,))
            if self.governed and self.ib.client.isConnected():
                # a cancel reduces risk: it goes out now, not behind the client's request throttle
                return send_ahead(self.ib.client, lambda: original(order, *args, **kwargs))
            return original(order, *args, **kwargs)

        return cancelOrder

    # --- market prices ---------------------------------------------------------------------------------

    def _tick_hook(self, original: Callable[..., Any]) -> Any:
        """Price ticks of the strategy's own subscriptions become ``price_observed`` (sampled, see
        :class:`~ledger.core.prices.PriceSampler`): the governor prices market orders from them."""
        sampler = self.prices
        wrapper = self.ib.wrapper
        interval_ns, move = sampler.interval_ns, sampler.move
        fast: dict[Any, tuple[int, float]] = {}  # reqId -> (mono_ns, price) of the last kept observation
        monotonic_ns = time.monotonic_ns
        clock = self.clock
        wall = clock is wall_clock  # the common case reads one clock per tick, the full stamp only when kept

        def hook(reqId: Any, tickType: Any, price: Any, *args: Any, **kwargs: Any) -> Any:
            if not self._closed and tickType in PRICE_TICKS:
                try:
                    if wall:
                        mono_ns = monotonic_ns()
                    else:
                        recv_ns, mono_ns = clock()
                    f = fast.get(reqId)
                    # the common case, decided without building anything: too soon, or no move
                    if f is None or (mono_ns - f[0] >= interval_ns and abs(price - f[1]) > move * f[1]):
                        ticker = getattr(wrapper, "reqId2Ticker", {}).get(reqId)
                        contract = getattr(ticker, "contract", None)
                        mdt = int(getattr(ticker, "marketDataType", 0) or 0)
                        obs = observation(contract, int(tickType), price, mdt)
                        if obs is not None and sampler.keep(obs, mono_ns):
                            fast[reqId] = (mono_ns, obs.price)
                            with self._lock:
                                self._record(obs, recv_ns=time.time_ns() if wall else recv_ns, mono_ns=mono_ns)
                    else:
                        sampler.seen += 1
                except Exception as exc:  # noqa: BLE001 - the library must still see the tick
                    self._internal_error(_PRICE_TICK, exc, (reqId, tickType, price))
            return original(reqId, tickType, price, *args, **kwargs)

        return hook

    def record_price(self, contract: Any, price: float, *, tick: str = "last", market_data_type: int = 1,
                     origin: str = "snapshot") -> Envelope | None:
        """Record one price for ``contract`` (e.g. a snapshot quote taken before a market order); not
        sampled. Returns the envelope, or None when ``price`` is no price (unset, NaN, <= 0)."""
        tick_type = {v: k for k, v in PRICE_TICKS.items() if k < 60}.get(tick, 4)
        obs = observation(contract, tick_type, price, market_data_type, origin)
        if obs is None:
            return None
        obs = msgspec.structs.replace(obs, tick=tick)
        return self.record(obs)

    # --- governor actions through this IB ------------------------------------------------------------

    def _record_operator_decisions(self, decisions: list[ev.GovernorDecision]) -> None:
        """``Engine.halt`` / ``resume`` / ``reduce`` on a governed recorder's engine: recorded here (and
        an emergency cancel carried out at once)."""
        for d in decisions:
            self.record(d)

    def _global_cancel_hook(self, original: Callable[..., Any]) -> Any:
        def reqGlobalCancel(*args: Any, **kwargs: Any) -> Any:
            if not self._closed and self.ib.client.isReady():
                try:
                    self._record_intent(adapter.global_cancel())
                    if self.governed:
                        # placements still queued in the client would go out after the global cancel
                        # and be live: they are dropped instead (never sent)
                        self.kill_switch.drop_unsent()
                except Exception as exc:  # noqa: BLE001
                    self._internal_error("reqGlobalCancel", exc)
            if self.governed and self.ib.client.isConnected():
                return send_ahead(self.ib.client, lambda: original(*args, **kwargs))
            return original(*args, **kwargs)

        return reqGlobalCancel

    # --- reconciliation ------------------------------------------------------------------------------

    def _reconcile_now(self, reason: str) -> Any:
        try:
            asyncio.get_running_loop()
            running = True
        except RuntimeError:
            running = False
        if running:
            task = self.reconciler.schedule(reason)
            return task
        from ledger.ib.library import util

        return util.run(self.reconciler.run(reason))


_payload_encoder = msgspec.msgpack.Encoder()


def _check_encodable(payload: ev.Event) -> None:
    if not isinstance(payload, ev.Event):
        raise TypeError(f"expected an ledger.core.events payload, got {type(payload).__name__}")
    _payload_encoder.encode(payload)

