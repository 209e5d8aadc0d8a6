"""The order fold: envelopes in, order aggregates, fills, positions, anomalies and transitions out.

Pure and deterministic (README "Design: Principles" 2-5): no IB library, no store, no clock, no uuid4, no
unseeded randomness, no set iteration. Time comes only from ``env.recv_ns``. Every container that is
iterated is a dict or list, so iteration follows arrival order and two folds of one stream produce
byte-identical :meth:`LedgerFold.snapshot` output. The fold never raises on input: invalid input is an
:class:`Anomaly` (recorded, not applied), and a bug inside a handler becomes an ``internal_error``
anomaly rather than an exception.

``LedgerFold`` is incremental: it mutates its own state, one :meth:`LedgerFold.apply` per envelope, so
the live recorder, the replayer and the tests all run the very same code path.

Identity (README "Design: Identity")
-------------------------------
* ``permId`` is the long-term identity; ``(session_id, client_id, order_id)`` correlates before it is
  known (permId is 0 right after placeOrder; an execution may arrive before any status). The two are
  bound on the first message that carries both.
* A ``(client_id, order_id)`` binding is scoped to the recording session (orderIds repeat across TWS
  logins), and it is **superseded** when a ``place_order`` intent reuses the id after the bound order is
  done (Filled, Cancelled, Rejected, Blocked-and-placed, Inactive without whyHeld): the new intent is a
  new order. A ``place_order`` on a bound order that is not done is a *modify* (IB semantics: re-sending
  placeOrder with the same orderId modifies). A broker message whose (client, order) is bound to an
  order with a *different* non-zero permId is also a new order (the id was reused by TWS).
* Manual TWS orders (orderId 0 or negative, executions with orderId 2147483647) and completed orders
  (``completedOrder``, orderId 0) are matched by permId only. Negative ids are still bound, as aliases.
* Keys: ``perm:<permId>`` when the order is first seen with a permId, else
  ``<session_id>:<client_id>:<order_id>`` (``~2``, ``~3``... when superseded). A key never changes and
  is never reused; ``order_for`` / ``order_by_perm`` find orders by their broker ids.
* When a permId-only record and a (client, order)-only record turn out to be one order (e.g. we placed
  an order, lost the connection before any acknowledgement, and reconciliation returned it as a
  completed order with orderId 0), the later-created record is merged into the earlier one: its fills
  and its current broker status move over (the status through the table, as one observation), it
  leaves ``orders`` with a transition to ``Merged``, ``merged`` maps its key to the survivor's, and an
  ``identity_merged`` anomaly (informational) names both keys.
* A broker message in a later session about a (client, orderId) that this session never bound, while an
  order placed under that (client, orderId) in one of the last few earlier sessions was never
  acknowledged, is about that order (the recorder restarted while it was in flight) — provided nothing
  in the message contradicts it (quantity, contract, side): the two are bound, not duplicated.
* The client id of intents and of broker messages carrying client id 0 defaults to the session's
  (from ``session_started`` / ``connected``).

Ledger state (see :mod:`ledger.core.statemachine` for the names)
-----------------------------------------------------------
Derived after every event from: the accepted broker status (validated by the README's status table), the
executions and the local intents. Fills are facts: when executions cover the total quantity the order
is ``Filled`` whatever the statuses say (``Filled`` absorbs everything after it); a broker ``Filled``
status with fewer executed shares is ``AwaitingExecutions`` and ``fill_pending`` (not an error: the
executions may still come, e.g. from reqExecutions after a reconnect). ``fill_status_mismatch`` is
recorded only at a checkpoint — a successful ``reconcile_ended`` (the broker has just told us every
execution of the day) or ``session_ended`` — for orders whose broker-reported filled quantity is still
not covered by executions (once per order and reported quantity).

Governor decisions (``action="place"``): ALLOW before the ``place_order`` → ``Created``; BLOCK → ``Blocked``
whether it comes before the intent (the intent then attaches to the blocked record) or after it (an
unacknowledged order becomes Blocked; one the broker already knows is not: ``block_after_ack``). A
broker message or execution for a Blocked order wins (facts first) and is flagged.

Error codes never make an order terminal. ``201`` + ``Inactive`` (either order) → ``Rejected``.
``10148`` / ``161`` / ``10147`` refuse a pending cancel (the overlay is cleared, the state underneath is
restored). Errors do not count as an acknowledgement: an order with only errors stays ``unconfirmed``.

Overlays
--------
``PendingCancel``: set by a ``cancel_order`` / ``global_cancel`` intent or a broker ``PendingCancel``;
cleared by a terminal state, by a live status after broker ``PendingCancel`` (cancel refused), or by a
cancel-refusal error. A live status that merely repeats the status before our cancel intent does *not*
clear it (the cancel may not have reached the broker yet). A partial fill does not clear it either (the
cancel may still succeed for the remainder); a fill that completes the order does (terminal).
``PendingModify``: set by ``modify_order`` or a ``place_order`` on a live bound order; cleared by an
``openOrder`` that reflects the requested quantity / prices / type / tif, by a terminal state, or by a
non-warning error for the order (modify refused).

Fills and commissions
---------------------
Executions are keyed by execId; the same execId twice is a no-op. The *family* is the execId up to its
last ``.``; a higher revision suffix (``.02`` over ``.01``) replaces the lower one (a correction, not an
extra fill); an older revision arriving after a newer one is kept, marked superseded. ``filled``,
``avg_fill_price`` and ``commission`` are computed over the latest revision of each family.
Commission reports join executions by execId in either order. One arriving before its execution is
held pending; if the execution never shows up, an ``unknown_commission`` anomaly is recorded at
``session_ended`` (still held: a later session's reqExecutions may bring the execution). A repeated
report with the same values is a silent no-op (both libraries emit duplicates, and reconnects re-send
them); one with different values is a ``duplicate_commission`` anomaly and the first is kept.

Positions (``positions``, per account + con_id, or account + symbol + sec_type without a con_id):
``position`` = the last ``position`` event's quantity + signed executions since (corrections adjust).

Performance: ``apply`` is written for throughput (fast paths for repeated statuses and for orders
already bound in the session); see ``tests/benchmarks/bench_fold.py``.

Redelivery: the fold expects each session's envelopes in ``seq`` order. An envelope whose ``seq`` is
not above its session's high-water mark is a redelivery and is ignored (counted in ``redelivered``,
which is not part of the snapshot).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import islice

import msgspec
from msgspec import Struct, field

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "Fill",
    "LedgerFold",
    "OrderView",
    "PositionView",
    "Snapshot",
    "Transition",
    "exec_family",
    "fold",
]

MAX_ORDER_ID = ev.MANUAL_EXEC_ORDER_ID  # orderId of executions of manual TWS orders
EPS = 1e-9

# Anomaly kinds (Anomaly.kind)
ANOMALY_KINDS: tuple[str, ...] = (
    "illegal_transition",  # ✗ cell: status not applied
    "flagged_transition",  # ⚠ cell: applied, flagged
    "unexpected_first_status",  # the "–" cell: (new) → PendingCancel, applied
    "unknown_status",  # a status string not in the table (ApiPending, ValidationError, garbage)
    "late_fill",  # a new execution after a terminal state
    "overfill",  # executions exceed the total quantity
    "fill_status_mismatch",  # at a checkpoint: broker-reported filled not covered by executions
    "status_contradicts_fills",  # executions cover the order but the broker reports it cancelled/inactive
    "unknown_commission",  # at session end: a commission report whose execution never arrived
    "duplicate_commission",  # a second report for an execId with different values (first kept)
    "blocked_order_at_broker",  # the broker reports an order the governor blocked
    "block_after_ack",  # a BLOCK decision for an order the broker already acknowledged (not applied)
    "order_id_reused",  # a (client, orderId) rebound to a different permId while the old order was open
    "identity_merged",  # two records were one order (informational)
    "unknown_order",  # an intent (cancel/modify) for an order the ledger never saw
    "modify_after_done",  # a modify intent for a done order
    "unidentified",  # an order message with neither a usable orderId nor a permId
    "bad_execution",  # an execution without execId
    "bad_number",  # NaN, ±inf, negative shares/prices (or an unset commission): recorded, not applied
    "exec_id_collision",  # an execId (or its correction family) already belongs to another order
    "recorder_fault",  # the recorder reported lost events
    "internal_error",  # a bug in the fold, caught: the event may be partly applied
)

_LIVE = sm.LIVE_STATUSES
_TERMINAL = sm.TERMINAL_STATES
_LIVE_STATES = sm.LIVE_STATES
_ROWS: dict[str, dict[str, str]] = {}
for (_frm, _to), _cell in sm.STATUS_TABLE.items():
    _ROWS.setdefault(_frm, {})[_to] = _cell
_KNOWN_STATUSES = frozenset(sm.BROKER_STATUSES)
_TERMINAL_BROKER = frozenset({sm.CANCELLED, sm.API_CANCELLED, sm.FILLED})
_PARTIAL_OF = {sm.WORKING: sm.PARTIALLY_FILLED, sm.PENDING_SUBMIT_STATE: sm.PARTIALLY_FILLED}
_BASE_OF_STATUS = {
    sm.PENDING_SUBMIT: sm.PENDING_SUBMIT_STATE,
    sm.PRE_SUBMITTED: sm.WORKING,
    sm.SUBMITTED: sm.WORKING,
    sm.API_CANCELLED: sm.CANCELLED_STATE,
    sm.CANCELLED: sm.CANCELLED_STATE,
    sm.FILLED: sm.AWAITING_EXECUTIONS,
    sm.INACTIVE: sm.INACTIVE_STATE,
}
# accepted broker status -> (ledger state without executions, with some executions)
_DERIVED = {bs: (st, _PARTIAL_OF.get(st, st)) for bs, st in _BASE_OF_STATUS.items()}
_FILLED_ST = sm.FILLED_STATE
_FILLED = sm.FILLED
_PARTIAL = sm.PARTIALLY_FILLED
_WORKING = sm.WORKING
_PENDING_SUBMIT_ST = sm.PENDING_SUBMIT_STATE
_INACTIVE_ST = sm.INACTIVE_STATE
_PENDING_CANCEL = sm.PENDING_CANCEL
_SUBMITTED = sm.SUBMITTED
_PC_OVERLAY = sm.PENDING_CANCEL_OVERLAY
_PM_OVERLAY = sm.PENDING_MODIFY_OVERLAY
_DUP = sm.DUP
_LEGAL = sm.LEGAL
_CRITICAL_OF_STATE = sm.CRITICAL_OF_STATE
_CONTRADICTING = frozenset({sm.CANCELLED, sm.API_CANCELLED, sm.INACTIVE})
_WARNING_CODES = frozenset({399, 404, 10349})  # order warnings: followed by live statuses / fills
_KIND_OF: dict[type, str] = {t: t.__struct_config__.tag for t in ev.KINDS.values()}  # type: ignore[attr-defined]


def _kind(payload: object) -> str:
    """The payload's tag (the envelope's ``kind``), for a type not in ``_KIND_OF``."""
    return payload.__struct_config__.tag  # type: ignore[attr-defined]


# --- public value types ----------------------------------------------------------------------------


_UNSET_LIMIT = 1e300  # IB's UNSET_DOUBLE (sys.float_info.max) and friends mean 'not set'
_INF = float("inf")


def _finite(x: float | None) -> bool:
    """A usable number: not None, NaN, ±inf or an unset sentinel that slipped through."""
    return x is not None and -_UNSET_LIMIT < x < _UNSET_LIMIT


class Fill(Struct, kw_only=True, gc=False):
    """One execution (a fact), with its commission once the report has joined."""

    exec_id: str
    family: str  # execId up to the last '.': revisions of one execution share it
    revision: str  # the suffix after the last '.' ("" if none)
    shares: float
    price: float
    time: str = ""
    side: str = ""
    account: str = ""
    session_id: str = ""
    seq: int = 0
    recv_ns: int = 0
    commission: float | None = None
    currency: str = ""
    realized_pnl: float | None = None
    superseded: bool = False  # a later revision of the family replaced it (not counted)
    correction: bool = False  # it replaced an earlier revision
    late: bool = False  # a new execution (new family) that arrived after a terminal state


class OrderView(Struct, kw_only=True, gc=False):
    """The ledger's view of one order. Mutated by the fold only; read it, do not write it."""

    key: str
    session_id: str = ""  # the session the record was created in
    perm_id: int = 0
    order_id: int = 0
    client_id: int = 0
    account: str = ""
    symbol: str = ""
    sec_type: str = ""
    con_id: int = 0
    action: str = ""
    total_qty: float = 0.0
    order_type: str = ""
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = ""
    order_ref: str = ""
    broker_status: str = ""  # last broker status accepted by the table ("" = none yet)
    why_held: str = ""
    state: str = ""  # ledger state (ledger.core.statemachine); "" only before the first event is applied
    overlay: str = ""  # "" | "PendingCancel" | "PendingModify"
    filled: float = 0.0  # from executions (latest revision per family)
    remaining: float = 0.0  # total_qty - filled (broker's remaining if the quantity is unknown)
    avg_fill_price: float = 0.0  # from executions
    commission: float = 0.0  # joined reports, latest revision per family
    broker_filled: float = 0.0  # last filled reported by an accepted orderStatus
    broker_remaining: float = 0.0
    broker_avg_fill_price: float = 0.0
    fill_pending: bool = False  # the broker reports more filled than the executions cover (yet)
    is_live: bool = False  # Working or PartiallyFilled: can execute at any moment
    is_done: bool = False  # no further activity expected
    placed: bool = False  # a place_order intent was recorded
    unconfirmed: bool = False  # placed, never acknowledged by the broker (NOT failed)
    manual: bool = False  # a TWS (non-API) order, known by permId
    late_fill: int = 0  # executions that arrived after a terminal state
    anomaly_count: int = 0
    first_seen_ns: int = 0
    last_update_ns: int = 0
    acked_ns: int = 0  # first broker message about the order (status, openOrder, execution)
    first_fill_ns: int = 0
    fills: list[Fill] = field(default_factory=list)
    statuses: list[tuple[int, str]] = field(default_factory=list)  # (recv_ns, raw status) observed
    errors: list[tuple[int, int, str]] = field(default_factory=list)  # (recv_ns, code, message)


class Anomaly(Struct, frozen=True, kw_only=True, gc=False):
    seq: int
    session_id: str
    recv_ns: int
    key: str  # order key, "" when no order is concerned
    kind: str  # one of ANOMALY_KINDS
    from_status: str = ""
    to_status: str = ""
    reason: str = ""


class Transition(Struct, frozen=True, kw_only=True, gc=False):
    """A change of ledger state and/or overlay of one order, caused by one envelope."""

    key: str
    from_state: str
    to_state: str
    from_overlay: str
    overlay: str
    broker_status: str
    cause: str  # the envelope's kind
    session_id: str
    seq: int
    recv_ns: int
    critical: str = ""  # ORDER_LIVE, PARTIALLY_FILLED, BROKER_FILLED, FILLED, CANCELLED, REJECTED, ...


class PositionView(Struct, kw_only=True, gc=False):
    """Per account and contract (con_id, or symbol+sec_type when the con_id is unknown)."""

    key: str
    account: str
    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    position: float = 0.0  # reported + fills since the report (or fills alone if never reported)
    reported: float | None = None  # last position event
    avg_cost: float = 0.0
    fills_since_report: float = 0.0
    fills_total: float = 0.0
    last_update_ns: int = 0


class Snapshot(Struct, kw_only=True):
    orders: list[OrderView]
    anomalies: list[Anomaly]
    positions: list[PositionView]
    connected: bool
    broker_link: bool
    reconciling: bool
    needs_reconcile: bool
    reconcile_unknown: list[str]
    pending_commissions: list[str]
    merged: dict[str, str]
    last_ns: int


_snapshot_encoder = msgspec.msgpack.Encoder()


def exec_family(exec_id: str) -> tuple[str, str]:
    """``(family, revision)``: "0001f4e8.65a.01.02" → ("0001f4e8.65a.01", "02")."""
    i = exec_id.rfind(".")
    if i < 0:
        return exec_id, ""
    return exec_id[:i], exec_id[i + 1 :]


def _newer(rev: str, than: str) -> bool:
    if rev.isdigit() and than.isdigit():
        return int(rev) > int(than)
    return rev > than


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a != a and b != b)  # NaN-aware


class _Core(Struct, gc=False):
    """Internal per-order state kept next to the public view (never encoded)."""

    view: OrderView
    idx: int
    families: dict[str, Fill] = field(default_factory=dict)  # family -> latest revision
    placed: bool = False
    blocked: bool = False
    allowed: bool = False
    rejected: bool = False  # error 201 seen (cleared by a later live status)
    pc_from: str = ""  # broker status before PendingCancel
    pending_mod: ev.PlaceOrder | None = None
    mismatch_flagged: float = -1.0
    notional: float = 0.0
    # the latest (session, client, order) binding, for the fast path of _resolve
    bsid: str = ""
    bcid: int = 0
    boid: int = 0
    # position row of this order's fills, cached for the (account, con_id, side) it was made from
    pos_key: str = ""
    pos_sign: float = 0.0
    pos_src: tuple[str, int, str] | None = None
    seen: str = ""  # the last session a broker message resolved to this order in


class LedgerFold:
    """Incremental fold of envelopes into order views (see the module docstring for the rules)."""

    def __init__(self) -> None:
        self.orders: dict[str, OrderView] = {}
        self.anomalies: list[Anomaly] = []
        self.positions: dict[str, PositionView] = {}
        self.connected = False
        self.broker_link = True  # TWS's own link to IB (1100 / 1101 / 1102)
        self.reconciling = False
        self.needs_reconcile = False
        self.reconcile_unknown: list[str] = []
        self.last_ns = 0
        self.redelivered = 0
        self._active: dict[str, _Core] = {}  # not done, in order of becoming active
        self._by_perm: dict[int, _Core] = {}
        self._bind: dict[tuple[str, int, int], _Core] = {}
        self._sessions: dict[str, None] = {}  # sessions seen, in order of first appearance
        self._hw: dict[str, int] = {}  # seq high-water mark per session (but the current one)
        self._cur_sid: str | None = None
        self._cur_hw = 0
        self._sess_client: dict[str, int] = {}
        self._sess_account: dict[str, str] = {}  # the session's account, for messages that carry none
        self._perm_acct: dict[tuple[str, int], _Core] = {}  # (account, permId) when accounts share a permId
        self.what_ifs: list[tuple[str, int, int]] = []  # (session, client, order) of what-if requests
        self._what_if: dict[tuple[str, int, int], None] = {}
        self._execs: dict[str, _Core] = {}  # execId -> the order it belongs to
        self._pending_comm: dict[str, ev.CommissionReport] = {}
        self._pending_flagged: dict[str, bool] = {}
        self._suspects: dict[str, _Core] = {}
        self.merged: dict[str, str] = {}  # keys merged away -> the key the order lives on as
        self._n = 0
        self._merge_out: list[Transition] | None = None  # transitions produced by a merge in _resolve
        self._handlers = {
            ev.OrderStatus: self._on_status,
            ev.ExecDetails: self._on_exec,
            ev.CommissionReport: self._on_commission,
            ev.OpenOrder: self._on_open,
            ev.CompletedOrder: self._on_completed,
            ev.PlaceOrder: self._on_place,
            ev.ModifyOrder: self._on_modify,
            ev.CancelOrder: self._on_cancel,
            ev.GlobalCancel: self._on_global_cancel,
            ev.GovernorDecision: self._on_decision,
            ev.Error: self._on_error,
            ev.Position: self._on_position,
            ev.SessionStarted: self._on_session_started,
            ev.SessionEnded: self._on_session_ended,
            ev.Connected: self._on_connected,
            ev.Disconnected: self._on_disconnected,
            ev.ReconcileStarted: self._on_reconcile_started,
            ev.ReconcileEnded: self._on_reconcile_ended,
            ev.RecorderFault: self._on_recorder_fault,
        }

    # --- public API ----------------------------------------------------------------------------

    def apply(self, env: Envelope) -> list[Transition]:
        """Apply one envelope; return the ledger-state transitions it caused (often none)."""
        sid = env.session_id
        seq = env.seq
        if sid == self._cur_sid:
            if seq <= self._cur_hw:
                self.redelivered += 1
                return []
        else:
            hw = self._hw.get(sid)
            if hw is not None and seq <= hw:
                self.redelivered += 1
                return []
            if self._cur_sid is not None:
                self._hw[self._cur_sid] = self._cur_hw
            if sid not in self._sessions:
                self._sessions[sid] = None
            self._cur_sid = sid
        self._cur_hw = seq
        ns = env.recv_ns
        if ns > self.last_ns:
            self.last_ns = ns
        p = env.payload
        handler = self._handlers.get(type(p))
        if handler is None:
            return []
        try:
            return handler(env, p)
        except Exception as exc:  # never crash on input: record the bug as a fact
            self._anomaly(env, None, "internal_error", f"{type(exc).__name__}: {exc}")
            return []

    def apply_all(self, envs: Iterable[Envelope]) -> LedgerFold:
        apply = self.apply
        for env in envs:
            apply(env)
        return self

    def order_for(self, client_id: int, order_id: int, session_id: str | None = None) -> OrderView | None:
        """The order bound to (client_id, order_id) in ``session_id`` (default: the latest binding)."""
        if session_id is not None:
            core = self._bind.get((session_id, client_id, order_id))
            return core.view if core is not None else None
        for sid in reversed(self._sessions):
            core = self._bind.get((sid, client_id, order_id))
            if core is not None:
                return core.view
        return None

    def order_of_exec(self, exec_id: str) -> OrderView | None:
        """The order an execution (and so its commission report) belongs to, as the fold decided it.

        Readers of the fold (the projector) ask here instead of keeping an index of their own, so a
        colliding or re-delivered execId is attributed the same way everywhere.
        """
        core = self._execs.get(exec_id)
        return core.view if core is not None else None

    def order_by_perm(self, perm_id: int) -> OrderView | None:
        core = self._by_perm.get(perm_id)
        return core.view if core is not None else None

    def open_orders(self) -> list[OrderView]:
        """Orders not done (live, unconfirmed, pending submit, awaiting executions...), by activation."""
        return [c.view for c in self._active.values()]

    @property
    def pending_commissions(self) -> list[str]:
        """execIds of commission reports still waiting for their execution."""
        return list(self._pending_comm)

    def snapshot_struct(self) -> Snapshot:
        return Snapshot(
            orders=list(self.orders.values()),
            anomalies=self.anomalies,
            positions=list(self.positions.values()),
            connected=self.connected,
            broker_link=self.broker_link,
            reconciling=self.reconciling,
            needs_reconcile=self.needs_reconcile,
            reconcile_unknown=self.reconcile_unknown,
            pending_commissions=list(self._pending_comm),
            merged=self.merged,
            last_ns=self.last_ns,
        )

    def snapshot(self) -> bytes:
        """Canonical msgpack projection: two folds of one stream give byte-identical bytes."""
        return _snapshot_encoder.encode(self.snapshot_struct())

    # --- helpers ---------------------------------------------------------------------------------

    def _anomaly(self, env: Envelope, core: _Core | None, kind: str, reason: str, frm: str = "", to: str = "") -> None:
        key = ""
        if core is not None:
            key = core.view.key
            core.view.anomaly_count += 1
        self.anomalies.append(
            Anomaly(
                seq=env.seq,
                session_id=env.session_id,
                recv_ns=env.recv_ns,
                key=key,
                kind=kind,
                from_status=frm,
                to_status=to,
                reason=reason,
            )
        )

    def _client(self, sid: str, cid: int) -> int:
        return cid if cid else self._sess_client.get(sid, 0)

    def _create(
        self, env: Envelope, cid: int, oid: int, pid: int, manual: bool = False, intent: ev.PlaceOrder | None = None
    ) -> _Core:
        sid = env.session_id
        if pid > 0:
            key = f"perm:{pid}"
        else:
            key = f"{sid}:{cid}:{oid}"
        if key in self.orders:  # a superseded (client, orderId), or a perm key freed by a merge
            base = key
            n = 2
            key = f"{base}~{n}"
            while key in self.orders or key in self.merged:
                n += 1
                key = f"{base}~{n}"
        elif key in self.merged:
            key = f"{key}~m{len(self.merged)}"
        ns = env.recv_ns
        if intent is None:
            view = OrderView(
                key=key,
                session_id=sid,
                perm_id=pid if pid > 0 else 0,
                order_id=oid,
                client_id=cid,
                manual=manual,
                first_seen_ns=ns,
                last_update_ns=ns,
            )
        else:
            p = intent
            view = OrderView(
                key=key,
                session_id=sid,
                order_id=oid,
                client_id=cid,
                account=p.account,
                symbol=p.symbol,
                sec_type=p.sec_type,
                con_id=p.con_id,
                action=p.action,
                total_qty=p.total_qty if 0 < p.total_qty < _UNSET_LIMIT else 0.0,
                order_type=p.order_type,
                lmt_price=p.lmt_price if _finite(p.lmt_price) else None,
                aux_price=p.aux_price if _finite(p.aux_price) else None,
                tif=p.tif,
                order_ref=p.order_ref,
                placed=True,
                first_seen_ns=ns,
                last_update_ns=ns,
            )
        self._n += 1
        core = _Core(view=view, idx=self._n, placed=intent is not None)
        self.orders[key] = view
        self._active[key] = core
        if pid > 0:
            if self._by_perm.get(pid) is None:
                self._by_perm[pid] = core
            else:
                self._claim_perm(core, pid)
        return core

    def _bind_key(self, core: _Core, bkey: tuple[str, int, int]) -> None:
        self._bind[bkey] = core
        core.bsid, core.bcid, core.boid = bkey
        v = core.view
        if v.order_id == 0 and bkey[2] > 0:
            v.order_id = bkey[2]
            v.client_id = bkey[1]

    def _perm(self, env: Envelope, pid: int, account: str) -> _Core | None:
        """The order known by ``pid`` *in this account*: permIds are unique per account only."""
        core = self._by_perm.get(pid)
        if core is None:
            return None
        if account:
            known = core.view.account
            if known and known != account:
                return self._perm_acct.get((account, pid))
            return core
        if self._perm_acct:  # no account on the message (orderStatus): the session's, if it tells them apart
            alt = self._perm_acct.get((self._sess_account.get(env.session_id, ""), pid))
            if alt is not None:
                return alt
        return core

    def _claim_perm(self, core: _Core, pid: int) -> None:
        """``core`` is now the order known by ``pid``; another account's order keeps it in its scope."""
        old = self._by_perm.get(pid)
        if old is not None and old is not core and old.view.account:
            self._perm_acct[(old.view.account, pid)] = old
        self._by_perm[pid] = core
        if core.view.account:
            self._perm_acct[(core.view.account, pid)] = core

    def _resolve(
        self, env: Envelope, cid: int, oid: int, pid: int, create: bool, manual: bool = False, account: str = ""
    ) -> _Core | None:
        """Find (or create) the order a broker message is about, binding identities on the way."""
        core = self._by_perm.get(pid) if pid > 0 else None
        if core is not None and (account or self._perm_acct):
            core = self._perm(env, pid, account)
        if oid == 0 or oid == MAX_ORDER_ID:
            if core is None and create and pid > 0:
                core = self._create(env, self._client(env.session_id, cid), 0, pid, manual)
            return core
        sid = env.session_id
        if not cid:
            cid = self._sess_client.get(sid, 0)
        if core is not None and core.boid == oid and core.bcid == cid and core.bsid == sid:
            return core  # fast path: already bound to exactly this (session, client, order)
        bkey = (sid, cid, oid)
        b = self._bind.get(bkey)
        if b is None:
            if core is None:
                # placed in an earlier session and never acknowledged: the broker is now telling us
                # about it (the recorder restarted while the order was in flight)
                u = self._unacked_elsewhere(sid, cid, oid)
                if u is not None and _plausible(u.view, env.payload):
                    core = u
                    if pid > 0:
                        if u.view.perm_id == 0:
                            u.view.perm_id = pid
                        self._by_perm[pid] = u
                elif not create:
                    return None
                else:
                    core = self._create(env, cid, oid, pid, manual or oid < 0)
            self._bind_key(core, bkey)
            return core
        if core is None:
            bp = b.view.perm_id
            if pid <= 0 or bp == pid:
                return b
            if bp == 0:
                b.view.perm_id = pid
                self._by_perm[pid] = b
                return b
            # the same (client, orderId) now names another permId: TWS reused the id
            if not b.view.is_done:
                self._anomaly(
                    env,
                    b,
                    "order_id_reused",
                    f"orderId {oid} (client {cid}) now reported with permId {pid}, was {bp} (still open)",
                )
            if not create:
                return None
            core = self._create(env, cid, oid, pid, manual or oid < 0)
            self._bind_key(core, bkey)
            return core
        if b is core:
            return core
        if b.view.perm_id == 0:
            if b.placed and b.idx > core.idx and b.view.session_id == sid and core.view.session_id != sid and (
                core.seen != sid and core.bsid != sid
            ):
                # A fresh placement of this session answered with a permId an order of an earlier session
                # holds, which this session never heard of: an independent run (another simulator, a
                # restarted paper broker) reusing permIds. The new order takes the permId from here on.
                b.view.perm_id = pid
                self._claim_perm(b, pid)
                return b
            return self._merge(env, b, core, pid)
        # bound to an order with another permId, and the permId is known elsewhere: follow the permId
        self._bind_key(core, bkey)
        return core

    def _unacked_elsewhere(self, sid: str, cid: int, oid: int) -> _Core | None:
        """The latest order placed under (cid, oid) in an earlier session and never acknowledged."""
        for other in islice(reversed(self._sessions), 4):  # the recorder's last few restarts
            if other == sid:
                continue
            core = self._bind.get((other, cid, oid))
            if core is not None:
                v = core.view
                return core if (v.unconfirmed and not v.perm_id and not v.is_done) else None
        return None

    def _merge(self, env: Envelope, a: _Core, b: _Core, pid: int) -> _Core:
        """Two records are one order: fold the later-created into the earlier."""
        keep, gone = (a, b) if a.idx < b.idx else (b, a)
        kv, gv = keep.view, gone.view
        out: list[Transition] = []
        old_state, old_overlay = kv.state, kv.overlay
        kv.perm_id = pid
        self._by_perm[pid] = keep
        for bkey in [k for k, c in self._bind.items() if c is gone]:
            self._bind_key(keep, bkey)
        for name in ("account", "symbol", "sec_type", "action", "order_type", "tif", "order_ref"):
            if not getattr(kv, name) and getattr(gv, name):
                setattr(kv, name, getattr(gv, name))
        for name in ("con_id", "total_qty"):
            if not getattr(kv, name) and getattr(gv, name):
                setattr(kv, name, getattr(gv, name))
        if kv.lmt_price is None:
            kv.lmt_price = gv.lmt_price
        if kv.aux_price is None:
            kv.aux_price = gv.aux_price
        if kv.order_id == 0 and gv.order_id > 0:
            kv.order_id, kv.client_id = gv.order_id, gv.client_id
        keep.placed = keep.placed or gone.placed
        keep.allowed = keep.allowed or gone.allowed
        keep.rejected = keep.rejected or gone.rejected
        kv.manual = kv.manual and gv.manual
        if gv.acked_ns and (not kv.acked_ns or gv.acked_ns < kv.acked_ns):
            kv.acked_ns = gv.acked_ns
        if gv.first_fill_ns and (not kv.first_fill_ns or gv.first_fill_ns < kv.first_fill_ns):
            kv.first_fill_ns = gv.first_fill_ns
        kv.first_seen_ns = min(kv.first_seen_ns, gv.first_seen_ns)
        kv.statuses = sorted(kv.statuses + gv.statuses, key=lambda s: s[0])
        kv.errors = sorted(kv.errors + gv.errors, key=lambda e: e[0])
        kv.late_fill += gv.late_fill
        kv.anomaly_count += gv.anomaly_count
        if not kv.broker_filled:
            kv.broker_filled = gv.broker_filled
            kv.broker_remaining = gv.broker_remaining
            kv.broker_avg_fill_price = gv.broker_avg_fill_price
        # the absorbed record's broker status goes through the table once
        if gv.broker_status and gv.broker_status != kv.broker_status:
            if not kv.why_held:
                kv.why_held = gv.why_held
            self._status(keep, env, gv.broker_status, gv.why_held, observe=False)
        if gv.overlay and not kv.overlay:
            kv.overlay = gv.overlay
            keep.pending_mod = gone.pending_mod
        for f in gv.fills:
            self._execs[f.exec_id] = keep
            kv.fills.append(f)
            prev = keep.families.get(f.family)
            if f.superseded:
                continue
            if prev is None or _newer(f.revision, prev.revision):
                if prev is not None:
                    prev.superseded = True
                    f.correction = True
                keep.families[f.family] = f
            else:
                f.superseded = True
        self._recount(keep)
        # retire the absorbed record
        del self.orders[gv.key]
        self._active.pop(gv.key, None)
        self._suspects.pop(gv.key, None)
        self.merged[gv.key] = kv.key
        out.append(
            Transition(
                key=gv.key,
                from_state=gv.state,
                to_state=sm.MERGED,
                from_overlay=gv.overlay,
                overlay="",
                broker_status=gv.broker_status,
                cause=env.kind,
                session_id=env.session_id,
                seq=env.seq,
                recv_ns=env.recv_ns,
                critical="",
            )
        )
        self._anomaly(env, keep, "identity_merged", f"{gv.key} is the same order as {kv.key} (permId {pid})")
        self._refresh(keep, env, old_state, old_overlay, out)
        self._merge_out = out
        return keep

    def _recount(self, core: _Core) -> None:
        v = core.view
        filled = 0.0
        notional = 0.0
        commission = 0.0
        for f in core.families.values():
            filled += f.shares
            notional += f.shares * f.price
            if f.commission is not None:
                commission += f.commission
        v.filled = filled
        core.notional = notional
        v.avg_fill_price = notional / filled if filled else 0.0
        v.commission = commission

    def _refresh(self, core: _Core, env: Envelope, old_state: str, old_overlay: str, out: list[Transition]) -> None:
        """Re-derive the ledger state and the flags after a change; record the transition, if any."""
        v = core.view
        cur = v.state
        filled = v.filled
        tq = v.total_qty
        # --- derive: fills are facts, then the accepted broker status, then local intents ---
        if cur == _FILLED_ST:  # Filled absorbs everything
            new = cur
        else:
            bs = v.broker_status
            if filled > 0 and (
                (tq > 0 and filled >= tq - EPS) or (tq <= 0 and bs == _FILLED and filled >= v.broker_filled - EPS)
            ):
                new = _FILLED_ST
            elif not bs:
                if filled > 0:
                    new = _PARTIAL
                elif core.blocked:
                    new = sm.BLOCKED
                elif core.placed:
                    new = sm.UNCONFIRMED
                elif core.allowed:
                    new = sm.CREATED
                else:
                    new = sm.UNKNOWN
            else:
                if bs == _PENDING_CANCEL:
                    bs = core.pc_from
                    if not bs or bs == _PENDING_CANCEL:
                        bs = _SUBMITTED
                # (state without executions, state with some): see _DERIVED
                new = _DERIVED[bs][filled > 0]
                if new == _INACTIVE_ST and core.rejected:
                    new = sm.REJECTED
        if new != old_state or new != cur or new == _INACTIVE_ST:
            if new in _TERMINAL and v.overlay:
                v.overlay = ""
                core.pending_mod = None
            v.state = new
            # a held order (Inactive with whyHeld: locate, child, trigger) is working: it may execute
            v.is_live = new in _LIVE_STATES or (new == _INACTIVE_ST and bool(v.why_held))
            done = new in _TERMINAL or (new == _INACTIVE_ST and not v.why_held)
            if done != v.is_done:
                v.is_done = done
            key = v.key
            active = self._active
            if done:
                if key in active:
                    del active[key]
            elif key not in active:
                active[key] = core
        if v.unconfirmed or (core.placed and not v.acked_ns):
            unconfirmed = core.placed and not core.blocked and not v.acked_ns
            if unconfirmed != v.unconfirmed:
                v.unconfirmed = unconfirmed
        if tq > 0:
            rem = tq - filled
            v.remaining = rem if rem > 0 else 0.0
        else:
            v.remaining = v.broker_remaining
        pending = v.broker_filled > filled + EPS
        if pending != v.fill_pending:
            v.fill_pending = pending
            if pending:
                self._suspects[v.key] = core
            else:
                self._suspects.pop(v.key, None)
        ns = env.recv_ns
        v.last_update_ns = ns
        overlay = v.overlay
        if new != old_state:
            critical = _CRITICAL_OF_STATE.get(new, "")
        elif overlay != old_overlay:
            if old_overlay == _PC_OVERLAY and not overlay:
                critical = sm.CANCEL_REFUSED
            elif old_overlay == _PM_OVERLAY and not overlay:
                critical = sm.MODIFIED if core.pending_mod is None else "MODIFY_REFUSED"
            else:
                critical = ""
        else:
            return
        out.append(
            Transition(
                key=v.key,
                from_state=old_state,
                to_state=new,
                from_overlay=old_overlay,
                overlay=overlay,
                broker_status=v.broker_status,
                cause=_KIND_OF.get(type(env.payload)) or _kind(env.payload),
                session_id=env.session_id,
                seq=env.seq,
                recv_ns=ns,
                critical=critical,
            )
        )

    def _check(self, core: _Core, env: Envelope, frm: str, status: str, cell: str | None, why_held: str) -> bool:
        """The non-✓ cells: record what must be recorded; True if the status is still to be applied."""
        v = core.view
        if cell is None:
            self._anomaly(
                env,
                core,
                "unknown_status",
                f"{status!r} is not an IB order status this ledger knows",
                frm,
                status,
            )
            return False
        if cell == sm.DUP:
            if why_held:
                v.why_held = why_held
            return False
        if cell == sm.IF_WHY_HELD:
            if not (why_held or v.why_held):
                self._anomaly(
                    env,
                    core,
                    "illegal_transition",
                    f"{frm} → {status} is legal only for a held order (no whyHeld)",
                    frm,
                    status,
                )
                return False
        elif cell == sm.IF_FILL:
            if not v.fills:
                self._anomaly(
                    env,
                    core,
                    "illegal_transition",
                    f"{frm} → {status} without any execution",
                    frm,
                    status,
                )
                return False
            self._anomaly(
                env,
                core,
                "flagged_transition",
                f"{frm} → {status}: late execution after a cancel",
                frm,
                status,
            )
        elif cell == sm.ILLEGAL:
            self._anomaly(env, core, "illegal_transition", f"{frm} → {status} is not a legal transition", frm, status)
            return False
        elif cell == sm.WARN:
            self._anomaly(env, core, "flagged_transition", f"{frm} → {status} is legal but unusual", frm, status)
        elif cell == sm.UNSPECIFIED:
            self._anomaly(
                env,
                core,
                "unexpected_first_status",
                f"first status {status}: order first seen while a cancel is pending",
                frm,
                status,
            )
        return True

    def _status(self, core: _Core, env: Envelope, status: str, why_held: str, observe: bool = True) -> bool:
        """Validate one observed broker status against the table; apply it if allowed. True if applied."""
        v = core.view
        if observe:
            v.statuses.append((env.recv_ns, status))
            if not v.acked_ns:
                v.acked_ns = env.recv_ns
        frm = v.broker_status
        cell = _ROWS[frm].get(status)
        if cell != _LEGAL and not self._check(core, env, frm, status, cell, why_held):
            return False
        # apply
        if not frm and core.blocked and not v.fills:
            self._anomaly(env, core, "blocked_order_at_broker", f"broker reports {status} for a blocked order")
        if status in _LIVE:
            if frm == _PENDING_CANCEL and v.overlay == _PC_OVERLAY:
                v.overlay = ""  # cancel refused: the state underneath is back
            core.rejected = False
        elif status in _TERMINAL_BROKER:
            if v.overlay:
                v.overlay = ""
                core.pending_mod = None
        elif status == _PENDING_CANCEL:
            core.pc_from = frm
            v.overlay = _PC_OVERLAY
        v.broker_status = status
        if why_held or status != sm.INACTIVE:
            v.why_held = why_held
        if v.state == _FILLED_ST and status in _CONTRADICTING:
            self._anomaly(
                env,
                core,
                "status_contradicts_fills",
                f"executions cover the order ({v.filled:g}) but the broker reports {status}",
                frm,
                status,
            )
        return True

    # --- broker callbacks ------------------------------------------------------------------------

    def _on_status(self, env: Envelope, p: ev.OrderStatus) -> list[Transition]:
        filled, rem, avg, last = p.filled, p.remaining, p.avg_fill_price, p.last_fill_price
        # NaN fails every comparison; ±inf or a sentinel makes the sum too large
        if not (
            filled >= 0.0 and rem >= 0.0 and avg >= 0.0 and last >= 0.0 and filled + rem + avg + last < _UNSET_LIMIT
        ):
            self._anomaly(
                env,
                None,
                "bad_number",
                f"orderStatus {p.status} of order {p.order_id} (permId {p.perm_id}): filled {p.filled!r}, remaining "
                f"{p.remaining!r}, avgFillPrice {p.avg_fill_price!r}, lastFillPrice {p.last_fill_price!r}: recorded, "
                "not applied",
            )
            return []
        pid = p.perm_id
        oid = p.order_id
        core = self._by_perm.get(pid) if pid > 0 else None
        merged = None
        if core is None or core.boid != oid or core.bcid != p.client_id or core.bsid != env.session_id:
            self._merge_out = None
            core = self._resolve(env, p.client_id, oid, pid, True, oid <= 0)
            if core is None:
                self._anomaly(env, None, "unidentified", f"orderStatus {p.status} without orderId or permId")
                return []
            core.seen = env.session_id
            merged = self._merge_out
        v = core.view
        status = p.status
        if merged is None and not p.why_held and _ROWS[v.broker_status].get(status) == _DUP:
            # fast path: a repeated status (the most common message of all)
            ns = env.recv_ns
            v.statuses.append((ns, status))
            v.broker_avg_fill_price = p.avg_fill_price
            if p.filled == v.broker_filled and (p.remaining == v.broker_remaining or v.total_qty > 0):
                v.last_update_ns = ns
                return []
            v.broker_filled = p.filled
            v.broker_remaining = p.remaining
            out: list[Transition] = []
            self._refresh(core, env, v.state, v.overlay, out)
            return out
        out = merged or []
        old_state, old_overlay = v.state, v.overlay
        if self._status(core, env, status, p.why_held) or v.broker_status == status:
            v.broker_filled = p.filled
            v.broker_remaining = p.remaining
            v.broker_avg_fill_price = p.avg_fill_price
        self._refresh(core, env, old_state, old_overlay, out)
        return out

    def _on_open(self, env: Envelope, p: ev.OpenOrder, completed: bool = False) -> list[Transition]:
        if p.order.get("whatIf") is True:
            return []  # the broker's answer to a what-if (margin, commission): not an order
        self._merge_out = None
        oid = 0 if completed else p.order_id
        core = self._resolve(
            env, p.client_id, oid, p.perm_id, True, (not completed) and p.order_id <= 0, p.account
        )
        if core is None:
            self._anomaly(env, None, "unidentified", f"{env.kind} without orderId or permId")
            return []
        core.seen = env.session_id
        out: list[Transition] = self._merge_out or []
        v = core.view
        old_state, old_overlay = v.state, v.overlay
        if not v.acked_ns:
            v.acked_ns = env.recv_ns
        _copy_order_fields(v, p)
        pm = core.pending_mod
        if pm is not None and _reflects(p, pm):
            core.pending_mod = None
            if v.overlay == sm.PENDING_MODIFY_OVERLAY:
                v.overlay = ""
        if p.status and self._status(core, env, p.status, "") and completed:
            # A completed order (reconciliation after a reconnect) carries the broker's final filled
            # quantity; without it broker_filled would keep the last pre-disconnect orderStatus value.
            bf = p.order.get("filledQuantity")
            if isinstance(bf, int | float) and 0 <= bf < _UNSET_LIMIT:
                v.broker_filled = float(bf)
                if v.total_qty > 0:
                    v.broker_remaining = max(v.total_qty - float(bf), 0.0)
        self._refresh(core, env, old_state, old_overlay, out)
        return out

    def _on_completed(self, env: Envelope, p: ev.CompletedOrder) -> list[Transition]:
        return self._on_open(env, p, True)

    def _on_exec(self, env: Envelope, p: ev.ExecDetails) -> list[Transition]:
        eid = p.exec_id
        if not eid:
            self._anomaly(env, None, "bad_execution", "execution without execId")
            return []
        owner = self._execs.get(eid)
        if owner is not None and self._same_exec(owner, p):
            return []  # the same execId twice: a duplicate, not a fill
        shares = p.shares
        price = p.price
        if not (0.0 <= shares < _UNSET_LIMIT and 0.0 <= price < _UNSET_LIMIT):
            self._anomaly(
                env,
                owner,
                "bad_number",
                f"execution {eid}: shares {shares!r}, price {price!r} (not finite or negative): recorded, not applied",
            )
            return []
        pid = p.perm_id
        oid = p.order_id
        core = self._by_perm.get(pid) if pid > 0 else None
        if (
            core is None
            or core.boid != oid
            or core.bcid != p.client_id
            or core.bsid != env.session_id
            or (self._perm_acct and p.account and core.view.account and core.view.account != p.account)
        ):
            self._merge_out = None
            core = self._resolve(env, p.client_id, oid, pid, True, oid == MAX_ORDER_ID or oid < 0, p.account)
            if core is None:
                self._anomaly(env, None, "unidentified", f"execution {eid} without orderId or permId")
                return []
            core.seen = env.session_id
            out: list[Transition] = self._merge_out or []
        else:
            out = []
        if owner is not None:
            if owner is core or any(f.exec_id == eid for f in core.view.fills):
                return out  # a duplicate (delivered again under other ids)
            self._anomaly(
                env,
                core,
                "exec_id_collision",
                f"execution {eid} of {core.view.key} has the execId of an execution of {owner.view.key}: applied to "
                f"{core.view.key} (the order its ids name); a commission report for it now joins {core.view.key}",
            )
        v = core.view
        old_state = v.state
        old_overlay = v.overlay
        ns = env.recv_ns
        if not v.acked_ns:
            v.acked_ns = ns
        if not v.first_fill_ns:
            v.first_fill_ns = ns
        i = eid.rfind(".")
        if i < 0:
            family, rev = eid, ""
        else:
            family, rev = eid[:i], eid[i + 1 :]
        fams = core.families
        prev = fams.get(family)
        if prev is None and rev != "01" and rev.isdigit() and int(rev) > 1:
            other = self._family_owner(family, rev)
            if other is not None and other is not core:
                self._anomaly(
                    env,
                    core,
                    "exec_id_collision",
                    f"correction {eid} of {core.view.key} names the execution family {family} of {other.view.key}: "
                    f"kept as an execution of {core.view.key}, {other.view.key} untouched",
                )
        # a new execution after a terminal state is late; a revision of a known one is not a new fill
        late = prev is None and old_state in _TERMINAL
        fill = Fill(
            exec_id=eid,
            family=family,
            revision=rev,
            shares=shares,
            price=price,
            time=p.time,
            side=p.side,
            account=p.account,
            session_id=env.session_id,
            seq=env.seq,
            recv_ns=ns,
            late=late,
        )
        self._execs[eid] = core
        if self._pending_comm:
            pc = self._pending_comm.pop(eid, None)
            if pc is not None:
                fill.commission = pc.commission
                fill.currency = pc.currency
                fill.realized_pnl = pc.realized_pnl
                self._pending_flagged.pop(eid, None)
        v.fills.append(fill)
        # static fields the execution knows better than nothing
        if not v.symbol or not v.account or not v.con_id or not v.action:
            _fill_static(v, p)
        if prev is None:
            fams[family] = fill
            filled = v.filled + shares
            v.filled = filled
            core.notional += shares * price
            v.avg_fill_price = core.notional / filled if filled else 0.0
            if fill.commission is not None:
                v.commission += fill.commission
            delta = shares
        elif _newer(rev, prev.revision):
            prev.superseded = True
            fill.correction = True
            fams[family] = fill
            self._recount(core)
            delta = shares - prev.shares
        else:
            fill.superseded = True
            delta = 0.0
        if delta:
            self._position_fill(core, p, delta, ns)
        if late:
            v.late_fill += 1
            self._anomaly(env, core, "late_fill", f"execution {eid} ({shares:g} @ {price:g}) after {old_state}")
        tq = v.total_qty
        if tq > 0 and delta > 0 and v.filled > tq + EPS:
            self._anomaly(env, core, "overfill", f"executions cover {v.filled:g} of {tq:g}")
        self._refresh(core, env, old_state, old_overlay, out)
        return out

    def _same_exec(self, owner: _Core, p: ev.ExecDetails) -> bool:
        """Is an execution with a known execId about the order that already holds it (a duplicate)?"""
        v = owner.view
        if p.perm_id > 0 and self._by_perm.get(p.perm_id) is not owner:
            return False  # another order holds that permId now (or another account's): resolve it
        return not (p.account and v.account and p.account != v.account)

    def _family_owner(self, family: str, rev: str) -> _Core | None:
        """The order holding an earlier revision of ``family`` ("F.01" for "F.02"), if any."""
        width = len(rev)
        top = int(rev)
        for n in range(top - 1, max(top - 10, 0), -1):
            owner = self._execs.get(f"{family}.{n:0{width}d}")
            if owner is not None:
                return owner
        return None

    def _position_fill(self, core: _Core, p: ev.ExecDetails, qty: float, ns: int) -> None:
        """Add an execution's signed quantity to its account/contract position row."""
        src = (p.account, p.con_id, p.side)
        if src != core.pos_src:
            v = core.view
            side = p.side or v.action
            if side in ("BOT", "BUY"):
                sign = 1.0
            elif side in ("SLD", "SELL", "SSHORT"):
                sign = -1.0
            else:
                sign = 0.0
            account = p.account or v.account
            con_id = p.con_id or v.con_id
            symbol = p.symbol or v.symbol
            sec_type = p.sec_type or v.sec_type
            pos_key = _position_key(account, con_id, symbol, sec_type)
            if sign and pos_key not in self.positions:
                self.positions[pos_key] = PositionView(
                    key=pos_key, account=account, con_id=con_id, symbol=symbol, sec_type=sec_type
                )
            core.pos_src, core.pos_key, core.pos_sign = src, pos_key, sign
        sign = core.pos_sign
        if sign:
            qty = sign * qty
            pv = self.positions[core.pos_key]
            pv.fills_total += qty
            pv.fills_since_report += qty
            pv.position = (pv.reported or 0.0) + pv.fills_since_report
            pv.last_update_ns = ns

    def _on_commission(self, env: Envelope, p: ev.CommissionReport) -> list[Transition]:
        eid = p.exec_id
        core = self._execs.get(eid)
        c = p.commission
        rp = p.realized_pnl
        if rp is not None and (rp >= ev.UNSET_DOUBLE or rp <= -ev.UNSET_DOUBLE):
            # IB's "no value" (an opening execution has no realized P&L): the commission still applies
            p = msgspec.structs.replace(p, realized_pnl=None)
        if c is None or not -_UNSET_LIMIT < c < _UNSET_LIMIT or (
            p.realized_pnl is not None and not -_UNSET_LIMIT < p.realized_pnl < _UNSET_LIMIT
        ):
            self._anomaly(
                env,
                core,
                "bad_number",
                f"commission report for {eid}: commission {c!r}, realizedPNL {p.realized_pnl!r}: recorded, not applied",
            )
            return []
        if core is None:
            prev = self._pending_comm.get(eid)
            if prev is None:
                self._pending_comm[eid] = p
            elif not (_same(prev.commission, p.commission) and prev.currency == p.currency):
                self._anomaly(
                    env,
                    None,
                    "duplicate_commission",
                    f"second commission report for {eid} differs ({prev.commission:g} vs {p.commission:g});"
                    " kept the first",
                )
            return []
        for fill in reversed(core.view.fills):
            if fill.exec_id == eid:
                break
        else:  # pragma: no cover - the index and the fills agree
            return []
        if fill.commission is None:
            fill.commission = p.commission
            fill.currency = p.currency
            fill.realized_pnl = p.realized_pnl
            if not fill.superseded:
                core.view.commission += p.commission
            return []
        if not (_same(fill.commission, p.commission) and fill.currency == p.currency):
            self._anomaly(
                env,
                core,
                "duplicate_commission",
                f"second commission report for {eid} differs ({fill.commission:g} vs {p.commission:g}); kept the first",
            )
        return []

    def _on_error(self, env: Envelope, p: ev.Error) -> list[Transition]:
        code = p.code
        if code == sm.ERR_CONNECTIVITY_LOST:
            self.broker_link = False
        elif code == sm.ERR_CONNECTIVITY_RESTORED_LOST or code == sm.ERR_CONNECTIVITY_RESTORED:
            self.broker_link = True
            self.needs_reconcile = True
        rid = p.req_id
        if rid <= 0:
            return []
        sid = env.session_id
        core = self._bind.get((sid, self._sess_client.get(sid, 0), rid))
        if core is None:
            return []
        v = core.view
        old_state, old_overlay = v.state, v.overlay
        v.errors.append((env.recv_ns, code, p.message))
        if code == sm.ERR_REJECTED:
            core.rejected = True
        if code in sm.CANCEL_REFUSAL_CODES and v.overlay == sm.PENDING_CANCEL_OVERLAY:
            v.overlay = ""
        elif v.overlay == sm.PENDING_MODIFY_OVERLAY and code not in _WARNING_CODES and not 2100 <= code < 2200:
            v.overlay = ""  # modify refused; pending_mod kept so the transition says MODIFY_REFUSED
        out: list[Transition] = []
        self._refresh(core, env, old_state, old_overlay, out)
        core.pending_mod = None if not v.overlay else core.pending_mod
        return out

    def _on_position(self, env: Envelope, p: ev.Position) -> list[Transition]:
        if not (-_UNSET_LIMIT < p.position < _UNSET_LIMIT and -_UNSET_LIMIT < p.avg_cost < _UNSET_LIMIT):
            self._anomaly(
                env,
                None,
                "bad_number",
                f"position {p.account} {p.symbol or p.con_id}: {p.position!r} @ {p.avg_cost!r}: recorded, not applied",
            )
            return []
        pos_key = _position_key(p.account, p.con_id, p.symbol, p.sec_type)
        pv = self.positions.get(pos_key)
        if pv is None:
            pv = PositionView(key=pos_key, account=p.account, con_id=p.con_id, symbol=p.symbol, sec_type=p.sec_type)
            self.positions[pos_key] = pv
        pv.reported = p.position
        pv.avg_cost = p.avg_cost
        pv.fills_since_report = 0.0
        pv.position = p.position
        pv.last_update_ns = env.recv_ns
        return []

    # --- local intents ---------------------------------------------------------------------------

    def _on_place(self, env: Envelope, p: ev.PlaceOrder) -> list[Transition]:
        oid = p.order_id
        if oid == 0 or oid == MAX_ORDER_ID:
            self._anomaly(env, None, "unidentified", f"place_order with orderId {oid}")
            return []
        sid = env.session_id
        cid = p.client_id or self._sess_client.get(sid, 0)
        bkey = (sid, cid, oid)
        if p.order.get("whatIf") is True:
            # a what-if asks for margin and commission; the broker never works it: not an order
            if bkey not in self._what_if:
                self._what_if[bkey] = None
                self.what_ifs.append(bkey)
            b = self._bind.get(bkey)
            if b is not None and b.allowed and not b.placed and not b.view.acked_ns and not b.view.fills:
                # the governor's ALLOW made a Created record for it: a what-if is never an order
                del self._bind[bkey]
                del self.orders[b.view.key]
                self._active.pop(b.view.key, None)
            return []
        out: list[Transition] = []
        b = self._bind.get(bkey)
        if b is not None:
            bv = b.view
            attach = not b.placed and not bv.acked_ns and (b.blocked or b.allowed) and not bv.fills
            if not attach and not bv.is_done:
                return self._modify(env, b, p, out)
            if attach:
                v = b.view
                old_state, old_overlay = v.state, v.overlay
                b.placed = True
                v.placed = True
                _copy_order_fields(v, p)
                self._refresh(b, env, old_state, old_overlay, out)
                return out
        core = self._create(env, cid, oid, 0, intent=p)
        self._bind_key(core, bkey)
        self._refresh(core, env, "", "", out)
        return out

    def _modify(self, env: Envelope, core: _Core, p: ev.PlaceOrder, out: list[Transition]) -> list[Transition]:
        v = core.view
        old_state, old_overlay = v.state, v.overlay
        core.pending_mod = p
        if not v.acked_ns:
            _copy_order_fields(v, p)  # nothing confirmed yet: the intent is all we know
        if v.overlay != sm.PENDING_CANCEL_OVERLAY:
            v.overlay = sm.PENDING_MODIFY_OVERLAY
        self._refresh(core, env, old_state, old_overlay, out)
        return out

    def _on_modify(self, env: Envelope, p: ev.ModifyOrder) -> list[Transition]:
        sid = env.session_id
        core = self._bind.get((sid, self._client(sid, p.client_id), p.order_id))
        if core is None:
            self._anomaly(env, None, "unknown_order", f"modify for unknown orderId {p.order_id}")
            return []
        if core.view.is_done:
            self._anomaly(env, core, "modify_after_done", f"modify of a {core.view.state} order")
            return []
        return self._modify(env, core, p, [])

    def _on_cancel(self, env: Envelope, p: ev.CancelOrder) -> list[Transition]:
        core = self._by_perm.get(p.perm_id) if p.perm_id > 0 else None
        if core is None:
            sid = env.session_id
            core = self._bind.get((sid, self._client(sid, p.client_id), p.order_id))
        if core is None:
            self._anomaly(env, None, "unknown_order", f"cancel for unknown orderId {p.order_id}")
            return []
        v = core.view
        if v.is_done or v.overlay == sm.PENDING_CANCEL_OVERLAY:
            return []  # a cancel racing a terminal state is not an anomaly
        old_state, old_overlay = v.state, v.overlay
        v.overlay = sm.PENDING_CANCEL_OVERLAY
        out: list[Transition] = []
        self._refresh(core, env, old_state, old_overlay, out)
        return out

    def _on_global_cancel(self, env: Envelope, p: ev.GlobalCancel) -> list[Transition]:
        out: list[Transition] = []
        for core in list(self._active.values()):
            v = core.view
            if v.is_done or v.overlay == sm.PENDING_CANCEL_OVERLAY or v.state in (sm.CREATED, sm.BLOCKED):
                continue
            old_state, old_overlay = v.state, v.overlay
            v.overlay = sm.PENDING_CANCEL_OVERLAY
            self._refresh(core, env, old_state, old_overlay, out)
        return out

    def _on_decision(self, env: Envelope, p: ev.GovernorDecision) -> list[Transition]:
        oid = p.order_id
        if oid <= 0 or oid == MAX_ORDER_ID:
            return []
        sid = env.session_id
        cid = self._client(sid, p.client_id)
        bkey = (sid, cid, oid)
        b = self._bind.get(bkey)
        out: list[Transition] = []
        if p.action == "modify" and p.decision == "BLOCK":
            if b is not None and b.view.overlay == sm.PENDING_MODIFY_OVERLAY:
                v = b.view
                old_state, old_overlay = v.state, v.overlay
                v.overlay = ""
                self._refresh(b, env, old_state, old_overlay, out)
            return out
        if p.action != "place" or p.decision not in ("BLOCK", "ALLOW"):
            return out
        fresh = b is None or (b.view.is_done and (b.placed or b.blocked))
        if fresh:
            core = self._create(env, cid, oid, 0)
            self._bind_key(core, bkey)
            if p.symbol:
                core.view.symbol = p.symbol
            old_state, old_overlay = "", ""
        else:
            core = b  # type: ignore[assignment]
            old_state, old_overlay = core.view.state, core.view.overlay
        v = core.view
        if p.decision == "BLOCK":
            if v.acked_ns or v.fills:
                self._anomaly(env, core, "block_after_ack", f"BLOCK ({p.reason}) for an order the broker knows")
                return out
            core.blocked = True
        else:
            core.allowed = True
        self._refresh(core, env, old_state, old_overlay, out)
        return out

    # --- session, connection, reconciliation -----------------------------------------------------

    def _on_session_started(self, env: Envelope, p: ev.SessionStarted) -> list[Transition]:
        self._sess_client[env.session_id] = p.client_id
        if p.account:
            self._sess_account[env.session_id] = p.account
        return []

    def _on_connected(self, env: Envelope, p: ev.Connected) -> list[Transition]:
        self._sess_client[env.session_id] = p.client_id
        self.connected = True
        self.broker_link = True
        self.needs_reconcile = True
        return []

    def _on_disconnected(self, env: Envelope, p: ev.Disconnected) -> list[Transition]:
        self.connected = False
        if self.reconciling:
            self.reconciling = False  # interrupted: what it was fetching is unknown, not empty
        self.needs_reconcile = True
        return []

    def _on_reconcile_started(self, env: Envelope, p: ev.ReconcileStarted) -> list[Transition]:
        self.reconciling = True
        return []

    def _on_reconcile_ended(self, env: Envelope, p: ev.ReconcileEnded) -> list[Transition]:
        self.reconciling = False
        self.reconcile_unknown = list(p.unknown)
        if p.ok and not p.unknown:
            self.needs_reconcile = False
            self._checkpoint(env, "after reconciliation")
        return []

    def _on_session_ended(self, env: Envelope, p: ev.SessionEnded) -> list[Transition]:
        self._checkpoint(env, "at session end")
        for eid in self._pending_comm:
            if eid not in self._pending_flagged:
                self._pending_flagged[eid] = True
                self._anomaly(env, None, "unknown_commission", f"commission report for execution {eid} never seen")
        self.connected = False
        self.reconciling = False
        return []

    def _on_recorder_fault(self, env: Envelope, p: ev.RecorderFault) -> list[Transition]:
        self._anomaly(env, None, "recorder_fault", f"{p.message} (lost {p.lost})")
        return []

    def _checkpoint(self, env: Envelope, when: str) -> None:
        for core in list(self._suspects.values()):
            v = core.view
            if v.fill_pending and core.mismatch_flagged != v.broker_filled:
                core.mismatch_flagged = v.broker_filled
                self._anomaly(
                    env,
                    core,
                    "fill_status_mismatch",
                    f"broker reports {v.broker_filled:g} filled ({v.broker_status}), executions cover "
                    f"{v.filled:g} {when}",
                    v.broker_status,
                    "",
                )


def _plausible(v: OrderView, p: object) -> bool:
    """Could this broker message be about ``v`` (an unacknowledged order of an earlier session)?"""
    tq = v.total_qty
    if isinstance(p, ev.OrderStatus):
        q = p.filled + p.remaining
        return not (q > 0 and tq > 0 and abs(q - tq) > EPS)
    if isinstance(p, ev.ExecDetails):
        if p.con_id and v.con_id and p.con_id != v.con_id:
            return False
        if p.symbol and v.symbol and p.symbol != v.symbol:
            return False
        if v.action and p.side and (p.side == "BOT") != (v.action == "BUY"):
            return False
        return not (tq > 0 and p.shares > tq + EPS)
    if isinstance(p, ev.OpenOrder):
        if p.con_id and v.con_id and p.con_id != v.con_id:
            return False
        if p.symbol and v.symbol and p.symbol != v.symbol:
            return False
        if p.action and v.action and p.action != v.action:
            return False
        return not (p.total_qty > 0 and tq > 0 and abs(p.total_qty - tq) > EPS)
    return True


def _fill_static(v: OrderView, p: ev.ExecDetails) -> None:
    if not v.account and p.account:
        v.account = p.account
    if not v.symbol and p.symbol:
        v.symbol = p.symbol
    if not v.con_id and p.con_id:
        v.con_id = p.con_id
    if not v.sec_type and p.sec_type:
        v.sec_type = p.sec_type
    if not v.action and p.side:
        v.action = "BUY" if p.side == "BOT" else "SELL" if p.side == "SLD" else ""


def _position_key(account: str, con_id: int, symbol: str, sec_type: str) -> str:
    if con_id:
        return f"{account}:{con_id}"
    return f"{account}:{symbol}:{sec_type}"


def _copy_order_fields(v: OrderView, p: ev.PlaceOrder | ev.OpenOrder) -> None:
    """The order's terms from an intent or an openOrder/completedOrder; unset fields keep what is known."""
    if p.account:
        v.account = p.account
    if p.symbol:
        v.symbol = p.symbol
    if p.sec_type:
        v.sec_type = p.sec_type
    if p.con_id:
        v.con_id = p.con_id
    if p.action:
        v.action = p.action
    if 0 < p.total_qty < _UNSET_LIMIT:
        v.total_qty = p.total_qty
    if p.order_type:
        v.order_type = p.order_type
    # NaN, ±inf and unset sentinels are no price: what is known is kept
    if p.lmt_price is not None and -_UNSET_LIMIT < p.lmt_price < _UNSET_LIMIT:
        v.lmt_price = p.lmt_price
    if p.aux_price is not None and -_UNSET_LIMIT < p.aux_price < _UNSET_LIMIT:
        v.aux_price = p.aux_price
    if p.tif:
        v.tif = p.tif
    if p.order_ref:
        v.order_ref = p.order_ref


def _reflects(o: ev.OpenOrder, m: ev.PlaceOrder) -> bool:
    """Does the broker's openOrder show the requested modification?"""
    if m.total_qty > 0 and not _same(o.total_qty, m.total_qty):
        return False
    if m.lmt_price is not None and not _same(o.lmt_price, m.lmt_price):
        return False
    if m.aux_price is not None and not _same(o.aux_price, m.aux_price):
        return False
    if m.order_type and o.order_type and o.order_type != m.order_type:
        return False
    if m.tif and o.tif and o.tif != m.tif:
        return False
    return True


def fold(envs: Iterable[Envelope]) -> LedgerFold:
    """Fold a whole stream from scratch."""
    return LedgerFold().apply_all(envs)
