"""The fold's public views: what a reader of the fold sees (orders, fills, positions, anomalies, transitions)."""

from __future__ import annotations

import operator

from msgspec import Struct, field

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


class Transition(Struct, frozen=True, gc=False):
    """A change of ledger state and/or overlay of one order, caused by one envelope.

    Not keyword-only: :func:`~ledger.core.fold.status.refresh` makes one on about a third of all events and
    builds it positionally, in field order (a third of the cost of eleven keywords)."""

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


def exec_family(exec_id: str) -> tuple[str, str]:
    """``(family, revision)``: "0001f4e8.65a.01.02" → ("0001f4e8.65a.01", "02")."""
    i = exec_id.rfind(".")
    if i < 0:
        return exec_id, ""
    return exec_id[:i], exec_id[i + 1 :]


ORDER_FIELDS: tuple[str, ...] = (
    "key", "perm_id", "order_id", "client_id", "account", "symbol", "action", "total_qty", "order_type",
    "lmt_price", "order_ref", "broker_status", "state", "overlay", "filled", "remaining", "avg_fill_price",
    "commission", "is_live", "is_done", "anomaly_count", "manual", "unconfirmed", "late_fill", "fill_pending",
)  # fmt: skip
"""An order's public fields: what ``ibledger orders --json``, ``replay --json`` and the replay digest show."""

order_values = operator.attrgetter(*ORDER_FIELDS)
"""The order's public fields as a tuple, in :data:`ORDER_FIELDS` order (what the replay digest hashes)."""
