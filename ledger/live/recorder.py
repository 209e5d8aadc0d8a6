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

Time enters at receipt and nowhere else: ``(recv_ns, mono_ns)`` from ``clock=`` (the machine's clocks by
default, :func:`ledger.live.stamp.wall_clock`; a simulated session passes the simulator's, so two runs with one seed
record the same bytes). Events the recorder itself adds while handling a callback carry that callback's
stamp (so stamps never go backwards along the seqs of one thread). Each recorded envelope then goes through the
engine (fold + governor) in seq order, the governor's decisions are recorded as events (``causation_id``
= ``ledger.core.engine.event_id`` of the cause) and the subscribers are called — all in the thread the
callback arrived on (the IB event loop), before the library's own handler.

Where each part lives
---------------------
This class is the facade and the recording path (stamp, queue, fold, govern, notify, in one lock).
The rest is in pieces named for what they hold: the hooks on the client, behind the
:class:`~ledger.ib.client_hooks.HookPort` this class implements, in :mod:`ledger.ib.client_hooks`;
seqs, the writer queue and its bounded waiting in :mod:`ledger.live.handoff`; receipt stamps in
:mod:`ledger.live.stamp`; when the session starts and how connections are recorded in
:mod:`ledger.live.connection`; intents (once, in context, governed) in :mod:`ledger.live.intents`; the
fault book in :mod:`ledger.live.faults`; session start and end in :mod:`ledger.live.session_life`;
the kill switch in :mod:`ledger.live.guard`; reconciliation in :mod:`ledger.ib.reconcile`.

Never blocking the event loop
-----------------------------
Recording only appends to a bounded in-memory queue (:mod:`ledger.store.writer`, through
:mod:`ledger.live.handoff`); one writer thread
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
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.prices import PRICE_TICKS, PriceSampler, observation
from ledger.ib import adapter, client_hooks
from ledger.ib.hooks import Patches
from ledger.ib.reconcile import Reconciler
from ledger.live.connection import ConnectionState
from ledger.live.dispatch import Notice, Subscriber, deliver, engine_step
from ledger.live.errors import RecorderError
from ledger.live.faults import Faults
from ledger.live.guard import KillSwitch, resolve_governor
from ledger.live.handoff import WRITERS, Handoff, Writer
from ledger.live.intents import Intents
from ledger.live.journal import LossCount
from ledger.live.session_life import carry_over, ended_payload, started_payload
from ledger.live.stamp import Clock, Stamps
from ledger.store import EventStore, SeqConflict, StoreFileLost, open_store, session_id_problem

if TYPE_CHECKING:
    from ledger.ib.library import IB

log = logging.getLogger("ledger.live.recorder")

__all__ = ["Recorder", "RecorderError", "event_ref"]

_MAX_DECISION_DEPTH = 8


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
        writer: str = "auto",
        governor: Any = None,
        enforce: bool = True,
        carry_over: bool = True,
        clock: Clock | None = None,
    ) -> None:
        if writer not in WRITERS:
            raise ValueError(f"writer must be one of {', '.join(WRITERS)}, not {writer!r}")
        if switch_interval is not None:
            # process-wide: the writer thread re-takes the GIL once per SQLite step, and with Python's
            # default 5 ms switch interval each of those can wait for a busy IB loop (commit latency)
            sys.setswitchinterval(switch_interval)
        self.ib = ib
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
        self._stamps = Stamps(clock)
        self.config_hash = config_hash
        self.mode = mode
        self.account = account
        self._lock = threading.RLock()
        self._depth = 0
        self._notify: list[tuple[Envelope, list, list]] = []
        self._subscribers: list[Subscriber] = []
        self.closed = False  # session_ended recorded: the hooks only pass through (read on every callback)
        self.engine_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._patches = Patches()  # what _install hooked into the client, so close() undoes only that
        self.reconciler = Reconciler(self, ib, timeout=reconcile_timeout, enabled=reconcile)
        self.connection = ConnectionState(
            start=self._start_session, record_connected=self._record_connected, record=self._record,
            reconciler=self.reconciler, client_connected=lambda: bool(self.ib.client.isConnected()),
        )
        self._handoff = Handoff(
            self.store, self.session_id, writer=writer, queue_size=queue_size, max_batch=max_batch,
            full_block_s=full_block_s, max_block_s=max_block_s, on_error=self._on_writer_error,
            on_lost=self._on_lost,
        )
        self.faults = Faults(self.session_id, self._handoff)
        self._handoff.add_listener(self._after_commit)
        self.intents = Intents(
            record=self._record, stamp=self._stamp, lock=self._lock, engine=self.engine,
            client_id=self._client_id, fault=lambda: self.faults.first, governed=self.governed,
        )
        cfg = getattr(self.engine, "config", None)
        self.prices = PriceSampler(getattr(cfg, "observe_interval_s", 1.0), getattr(cfg, "observe_move", 0.0005))
        self.carry_over = carry_over
        self.carried_from: str | None = None  # the earlier session of the account the governor learned from
        self.kill_switch = KillSwitch(self)
        self._handoff.start()
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
        (``"auto"``, the default: commits in a child process fed through shared memory, which never waits
        for this process's GIL, see :mod:`ledger.store.writer_process` -- or the writer thread when the
        store cannot be reopened by a child; ``"process"`` or ``"thread"`` force one), ``clock`` (a callable returning
        ``(recv_ns, mono_ns)`` used for every stamp instead of the machine's clocks, e.g. a simulator's).
        """
        rec = cls(ib, store, engine=engine, session_id=session_id, config_hash=config_hash, mode=mode,
                  queue_size=queue_size, reconcile=reconcile, governor=governor, enforce=enforce, **options)
        try:
            rec._install()
        except BaseException:
            rec._handoff.close(1.0)
            if rec._own_store:
                rec.store.close()
            raise
        return rec

    def _install(self) -> None:
        client_hooks.install(self, self.ib, self._patches)
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        if self.ib.isConnected():
            self._attach_connected()

    def _attach_connected(self) -> None:
        """Attached to a client that is already connected: start, record the connection, reconcile."""
        client = self.ib.client
        accounts = list(getattr(self.ib.wrapper, "accounts", []) or [])
        with self._lock:
            self.connection.ensure_started(accounts=accounts)
            self.connection.connected(adapter.connected(client), *self._stamp(), sync=False)
        if self.reconciler.enabled:
            self.reconciler.run_now("attach")

    # --- public API ------------------------------------------------------------------------------

    @property
    def fold(self) -> Any:
        return self.engine.fold

    @property
    def losses(self) -> LossCount:
        """Events lost in this session: counted by kind, never silent."""
        return self._handoff.losses

    @property
    def stopped(self) -> str:
        """Why recording stopped for good (seq conflict, store file lost); "" while recording."""
        return self._handoff.stopped

    @property
    def full_block_s(self) -> float:
        return self._handoff.full_block_s

    @property
    def max_block_s(self) -> float:
        return self._handoff.max_block_s

    @property
    def blocked_s(self) -> float:
        return self._handoff.blocked_s

    @property
    def on_fatal(self) -> list[Callable[[str], None]]:
        """Told once, with why, when the session stops for good (on the IB loop when there is one)."""
        return self.faults.on_fatal

    @property
    def internal_errors(self) -> int:
        """Callbacks that could not be converted or recorded (each recorded as a fault)."""
        return self.faults.internal_errors

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
        return self._handoff.committed_seq

    @property
    def last_seq(self) -> int:
        """Highest seq recorded (queued); ``committed_seq`` is the acknowledged part of it."""
        return self._handoff.seq

    @property
    def fault(self) -> BaseException | None:
        return self.faults.first

    @property
    def healthy(self) -> bool:
        return self.faults.first is None

    @property
    def reconciling(self) -> bool:
        return self.reconciler.bracket is not None

    @property
    def connects(self) -> int:
        """How many connections were recorded (1 + reconnects)."""
        return self.connection.connects

    @property
    def writer(self) -> Writer:
        return self._handoff.writer

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
        if self.closed:
            raise RecorderError(f"recorder for session {self.session_id} is closed")
        try:
            _check_encodable(payload)
        except Exception as exc:  # noqa: BLE001
            raise RecorderError(f"cannot record {type(payload).__name__}: not encodable ({exc})") from exc
        env = self._record(payload, source=source, correlation_id=correlation_id, causation_id=causation_id)
        if env is None:
            fault = self.faults.first
            raise RecorderError(f"could not record {ev.kind_of(payload)}: {fault}") from fault
        self.intents.recorded_by_caller(payload, env)  # the hook that sends it will not record it twice
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
        with self.intents.context(correlation_id, causation_id):
            yield

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
        self._handoff.add_listener(callback)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything recorded so far is committed; raise the fault if there is one."""
        self._drain_faults()
        target = self._handoff.seq
        ok = self._handoff.wait_committed(target, timeout)
        if self.faults.first is not None:
            raise self.faults.first
        if not ok:
            raise RecorderError(
                f"flush: seq {self._handoff.committed_seq} of {target} committed after {timeout:.1f}s"
            )

    async def flush_async(self, timeout: float = 5.0) -> None:
        """:meth:`flush` without blocking the event loop."""
        self._drain_faults()
        target = self._handoff.seq
        ok = await asyncio.get_running_loop().run_in_executor(None, self._handoff.wait_committed, target, timeout)
        if self.faults.first is not None:
            raise self.faults.first
        if not ok:
            raise RecorderError(f"flush: seq {self._handoff.committed_seq} of {target} committed after {timeout}s")

    def reconcile(self, reason: str = "manual") -> Any:
        """Reconcile now. Inside a running event loop: returns the task (await it). Otherwise runs the
        loop until done and returns the ``ReconcileEnded`` payload."""
        return self.reconciler.run_now(reason)

    async def reconcile_async(self, reason: str = "manual") -> ev.ReconcileEnded:
        return await self.reconciler.run(reason)

    def close(self, reason: str = "normal", timeout: float = 10.0) -> None:
        """Record ``session_ended``, commit everything, stop the writer, unhook. Re-raises a fault."""
        with self._lock:
            if self.closed:
                return
            self.reconciler.stop()
            self.connection.ensure_started()
            self._drain_faults_locked(force=True)
            self._record(ended_payload(reason, self._handoff.seq), source="live", _reserve=True)
            self.closed = True
        self._unhook()
        complete = self._handoff.close(timeout)
        if self._own_store:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001
                log.exception("closing the store failed")
        if not complete and self.faults.first is None:
            self.faults.first = RecorderError(
                f"close: {self._handoff.enqueued_seq - self._handoff.committed_seq} event(s) not committed"
            )
        if self.faults.first is not None:
            log.error("recorder closed with a fault (session %s, committed seq %s, lost %s): %s",
                      self.session_id, self._handoff.committed_seq, self.lost, self.faults.first)
            raise self.faults.first

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
            stamps = self._stamps
            outer_ctx = stamps.ctx
            if outer_ctx is None:
                stamps.ctx = (recv_ns, mono_ns or 0)
            self._depth += 1
            try:
                if self.closed:
                    return None
                if not self.connection.started:
                    self.connection.ensure_started()
                if self.faults.to_tell():
                    self._drain_faults_locked()
                env = self._enqueue(payload, source, correlation_id, causation_id, recv_ns, mono_ns or 0,
                                    _reserve)
                if env is not None:
                    self._process(env, 0)
                elif self.faults.inbox:
                    self._drain_faults_locked()
            finally:
                stamps.ctx = outer_ctx
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
        return self._handoff.put(payload, source, correlation_id, causation_id, recv_ns, mono_ns, reserve)

    def _on_lost(self, kind: str, burst_started: bool) -> None:
        self.faults.lost(kind, burst_started)

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

    def _start_session(self, accounts: Sequence[str] | None, at: tuple[int, int] | None) -> None:
        """Write ``session_started`` (through the reserve), at the held handshake's stamp when there is
        one; the account is the one configured, else the only one the client manages. A governed
        session first folds in the account's previous one (carry-over)."""
        account = self.account
        if not account and accounts and len(accounts) == 1:
            account = accounts[0]
        if self.governed and self.carry_over and account:
            self.carried_from = carry_over(self.store, self.engine, session_id=self.session_id, account=account)
        started = started_payload(self.ib.client, account=account, config_hash=self.config_hash, mode=self.mode,
                                  engine_config=self.engine.config)
        ns, mono = at if at is not None else self._stamp()
        env = self._enqueue(started, "live", None, None, ns, mono, reserve=True)
        if env is not None:
            self._process(env, 0)

    def _record_connected(self, payload: ev.Connected, recv_ns: int, mono_ns: int) -> None:
        env = self._enqueue(payload, "live", None, None, recv_ns, mono_ns)
        if env is not None:
            self._process(env, 0)

    # --- time -----------------------------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int]:
        return self._stamps.now()

    def _at(self, recv_ns: int, mono_ns: int) -> contextlib.AbstractContextManager[None]:
        return self._stamps.at(recv_ns, mono_ns)

    @property
    def clock(self) -> Clock:
        """The receipt stamp source, ``() -> (recv_ns, mono_ns)``: the machine's clocks unless ``clock=``
        gave a simulated one (read by the client hooks, placement's governor time and the monitor)."""
        return self._stamps.clock

    @property
    def in_callback(self) -> bool:
        """A callback or record call is being handled right now (its stamp is in force)."""
        return self._stamps.in_callback

    # --- faults --------------------------------------------------------------------------------------

    def _after_commit(self, batch: Any, commit_ns: int) -> None:
        """Writer thread, after each commit: once the store takes events again, report what was lost
        (on the IB loop) without waiting for the next callback."""
        if self.losses.unreported and not self.closed:
            self._on_loop(self._drain_faults)

    def _on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn)

    def _on_writer_error(self, exc: BaseException) -> None:
        # writer thread: never take the recorder lock here (the loop thread may hold it while waiting
        # for queue room that only this thread can make)
        if isinstance(exc, (SeqConflict, StoreFileLost)):
            if not self.stopped:
                self.faults.stop(exc, self._loop)
            return
        if self.faults.store_failed(exc):
            self._on_loop(self._drain_faults)

    def _drain_faults(self) -> None:
        if self.closed:
            return
        with self._lock:
            self._drain_faults_locked()

    def _drain_faults_locked(self, force: bool = False) -> None:
        """Record the faults waiting to be told (see :meth:`Faults.next_report`), each through the reserve."""
        faults = self.faults
        if self.stopped:  # nothing can be recorded any more: the fault was told once, at the stop
            faults.inbox.clear()
            return
        while (report := faults.next_report(force)) is not None:
            message, lost = report
            payload = ev.RecorderFault(message=message, lost=lost + self.losses.unreported)
            env = self._enqueue(payload, "live", None, None, *self._stamp(), reserve=True)
            if env is None:
                faults.inbox.appendleft((message, 0))
                return
            self.losses.take_unreported()
            self._process(env, 0)

    def internal_error(self, where: str, exc: BaseException, args: tuple = ()) -> None:
        """A callback could not be converted: record what we have as a fault (never drop silently)."""
        try:
            with self._lock:
                self.faults.internal(where, exc, args)
                self._drain_faults_locked()
        except Exception:  # noqa: BLE001
            log.exception("recorder fault reporting failed")

    # --- the port the client hooks use (ledger.ib.client_hooks.HookPort) --------------------------------

    def on_callback(self, name: str, payload: ev.Event, args: tuple, recv_ns: int, mono_ns: int) -> None:
        """A wrapper callback: start the session if needed, record it (attributed to a reconciliation
        bracket when one is open), all under the callback's stamp."""
        if self._loop is None:
            self._capture_loop()
        rc = self.reconciler
        stamps = self._stamps
        with self._lock:
            prev = stamps.ctx
            stamps.ctx = (recv_ns, mono_ns)  # one stamp for all this callback causes
            try:
                if not self.connection.started:
                    self.connection.ensure_started(
                        accounts=payload.accounts.split(",") if name == "managedAccounts" else None  # type: ignore[attr-defined]
                    )
                if rc.bracket is None:
                    self._record(payload, recv_ns=recv_ns, mono_ns=mono_ns)
                else:
                    source = rc.source_for(name, args)
                    self._record(payload, source=source, recv_ns=recv_ns, mono_ns=mono_ns)  # type: ignore[arg-type]
                    rc.on_recorded(name, source)
                if name == "error":
                    rc.on_error(payload.code)  # type: ignore[attr-defined]
            finally:
                stamps.ctx = prev

    def _capture_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass

    def on_connect_ack(self, payload: ev.Connected, recv_ns: int, mono_ns: int) -> None:
        """The handshake completed (see :mod:`ledger.live.connection` for when it is recorded)."""
        self._capture_loop()
        with self._lock, self._at(recv_ns, mono_ns):
            self.connection.acknowledged(payload, recv_ns, mono_ns)

    def on_connection_closed(self) -> None:
        with self._lock, self._at(*self.clock()):
            self.connection.closed_by_server()

    def on_disconnect(self) -> None:
        with self._lock, self._at(*self.clock()):
            self.connection.disconnected("client disconnect")

    def on_api_error(self, msg: Any) -> None:
        self.connection.api_error(str(msg))

    def on_synchronized(self, *args: Any) -> None:
        if self.closed:
            return
        try:
            with self._lock:
                self.reconciler.on_synchronized()
        except Exception as exc:  # noqa: BLE001
            self.internal_error("connectedEvent", exc, args)

    def was_placed(self, key: tuple[int, int]) -> bool:
        return key in self.intents.placed

    def on_place(self, payload: ev.PlaceOrder, key: tuple[int, int]) -> BaseException | None:
        return self.intents.place(payload, key)

    def on_unchecked_place(self, exc: BaseException, order_id: int, symbol: str, args: tuple) -> BaseException | None:
        """Recorded as a fault; governed and enforcing, the order is not sent (fail closed)."""
        self.internal_error("placeOrder", exc, args)
        return self.intents.unchecked_place(exc, order_id, symbol, self.governed and self.engine.config.state.enforce)

    def on_cancel(self, payload: ev.CancelOrder) -> None:
        self.intents.cancel(payload)

    def on_global_cancel(self, payload: ev.GlobalCancel) -> None:
        self.intents.record(payload)
        if self.governed:
            # placements still queued in the client would go out after the global cancel and be live:
            # they are dropped instead (never sent)
            self.kill_switch.drop_unsent()

    def on_price(self, obs: ev.PriceObserved, recv_ns: int, mono_ns: int) -> None:
        with self._lock:
            self._record(obs, recv_ns=recv_ns, mono_ns=mono_ns)

    def _client_id(self) -> int:
        return client_hooks.client_id(self.ib)

    @property
    def last_intent(self) -> Envelope | None:
        """The envelope of the latest intent recorded by a hook (or found recorded by the caller)."""
        return self.intents.last

    # --- market prices ---------------------------------------------------------------------------------

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


_payload_encoder = msgspec.msgpack.Encoder()


def _check_encodable(payload: ev.Event) -> None:
    if not isinstance(payload, ev.Event):
        raise TypeError(f"expected an ledger.core.events payload, got {type(payload).__name__}")
    _payload_encoder.encode(payload)

