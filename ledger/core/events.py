"""The ledger's facts: one msgspec Struct per event kind, wrapped in an envelope.

Raw IB callbacks are kept losslessly: the typed fields are the ones the fold and the governor read,
and ``contract`` / ``order`` / ``order_state`` / ``execution`` keep every field the wire carried as a
plain mapping (attribute names as the client library spells them), so nothing a later question needs
is thrown away at record time.

Every kind carries a schema version (``SCHEMA_VERSION`` class variable, written into the envelope's
``v``). Readers accept older versions through ``UPCASTERS`` and refuse newer ones with
:class:`SchemaError` instead of silently decoding garbage.
"""

from __future__ import annotations

import decimal
import sys
from typing import Any, ClassVar, Literal

import msgspec
from msgspec import Struct, field

Source = Literal["live", "replay", "synthetic", "reconcile"]
SOURCES: tuple[str, ...] = ("live", "replay", "synthetic", "reconcile")

Raw = dict[str, Any]

MANUAL_EXEC_ORDER_ID = 2147483647
"""The orderId IB puts on executions of manual TWS orders (IB's UNSET_INTEGER, 2**31 - 1): "no API order"."""

SIMULATOR_ACCOUNT = "DU1234567"
"""The paper account the built-in simulator manages unless told otherwise, and so the account a
simulated session (``--simulate``, ``ibledger demo``) expects. Here because the simulator shares only
this module with the ledger."""

SIMULATOR_CLIENT_ID = 1
"""The API client id of a simulated session when none is configured (a real session must name its own:
two programs on one client id kick each other out). Not the doctor's probe id, which must avoid every
running program's id."""

# --- IB's "unset" sentinels ------------------------------------------------------------------------
# The client libraries fill every number nobody set with a sentinel (ib_insync / ib_async: UNSET_DOUBLE,
# UNSET_INTEGER; the official client also UNSET_DECIMAL and UNSET_LONG). They mean "no value", never a
# number (10 x 1.8e308 is an infinite notional), so payloads carry None instead: the adapter maps them
# at receipt, and the v1 -> v2 upcasters below map them in sessions recorded before it did.

UNSET_DOUBLE: float = sys.float_info.max
UNSET_INTEGER: int = 2**31 - 1
UNSET_LONG: int = 2**63 - 1
UNSET_DECIMAL = decimal.Decimal(2**127 - 1)
_UNSET_INTS = frozenset({UNSET_INTEGER, UNSET_LONG})
# the same sentinels as the text some OrderState fields carry (margins, commissions of a what-if)
_UNSET_TEXT = frozenset({repr(UNSET_DOUBLE), str(UNSET_DOUBLE), "1.7976931348623157E308", str(UNSET_DECIMAL)})
# raw keys whose 2**31-1 is a marker with a meaning, not an unset number: an execution's orderId of
# 2147483647 says "not an API order" (a manual TWS order), which the fold keys by permId
_INT_MARKERS = frozenset({"orderId"})


def is_unset(v: Any) -> bool:
    """Is ``v`` one of IB's "no value" sentinels (as a number, a Decimal or the text of one)?"""
    t = type(v)
    if t is float:
        return v == UNSET_DOUBLE or v == -UNSET_DOUBLE
    if t is int:
        return v in _UNSET_INTS
    if t is str:
        return v in _UNSET_TEXT
    if t is decimal.Decimal:
        return v == UNSET_DECIMAL or v == UNSET_DOUBLE
    return False


def unset_to_none(v: Any) -> Any:
    """``v`` with every sentinel replaced by None, recursively through mappings and lists."""
    t = type(v)
    if t is dict:
        return {k: (x if type(x) is int and k in _INT_MARKERS else unset_to_none(x)) for k, x in v.items()}
    if t is list:
        return [unset_to_none(x) for x in v]
    return None if is_unset(v) else v


def _has_unset(v: Any) -> bool:
    t = type(v)
    if t is dict:
        return any(not (type(x) is int and k in _INT_MARKERS) and _has_unset(x) for k, x in v.items())
    if t is list:
        return any(_has_unset(x) for x in v)
    return is_unset(v)


class Event(Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    """Base of every payload. The tag (``kind``) is the snake_case name used everywhere."""

    SCHEMA_VERSION: ClassVar[int] = 1


# --- recording session lifecycle -------------------------------------------------------------


class SessionStarted(Event, tag="session_started"):
    library: str
    library_version: str
    client_id: int = 0
    host: str = ""
    port: int = 0
    account: str = ""
    server_version: int = 0
    config_hash: str = ""
    ibledger_version: str = ""
    mode: str = "paper"  # paper | live | simulation | import
    note: str = ""
    # The governor config in force, as TOML (limits only, never credentials): a replay of this session
    # re-runs the governor under the limits it was recorded with unless told otherwise.
    governor_config: str = ""


class SessionEnded(Event, tag="session_ended"):
    reason: str = "normal"
    events: int = 0


# --- connection lifecycle ----------------------------------------------------------------------


class Connected(Event, tag="connected"):
    host: str
    port: int
    client_id: int
    server_version: int = 0
    connection_time: str = ""


class Disconnected(Event, tag="disconnected"):
    reason: str = ""


class NextValidId(Event, tag="next_valid_id"):
    order_id: int


class ManagedAccounts(Event, tag="managed_accounts"):
    accounts: str


class CurrentTime(Event, tag="current_time"):
    time: int


# --- raw order callbacks -----------------------------------------------------------------------


class OrderStatus(Event, tag="order_status"):
    SCHEMA_VERSION: ClassVar[int] = 2  # v2: mkt_cap_price None when unset (v1 kept IB's sentinel)

    order_id: int
    status: str
    filled: float = 0.0
    remaining: float = 0.0
    avg_fill_price: float = 0.0
    perm_id: int = 0
    parent_id: int = 0
    last_fill_price: float = 0.0
    client_id: int = 0
    why_held: str = ""
    mkt_cap_price: float | None = 0.0


class OpenOrder(Event, tag="open_order"):
    """``openOrder`` callback: the order as the broker knows it, plus its ``orderState``."""

    SCHEMA_VERSION: ClassVar[int] = 2  # v2: unset prices None, here and in the raw mappings

    order_id: int
    perm_id: int = 0
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
    status: str = ""
    contract: Raw = field(default_factory=dict)
    order: Raw = field(default_factory=dict)
    order_state: Raw = field(default_factory=dict)


class CompletedOrder(OpenOrder, tag="completed_order"):
    """``completedOrder`` callback (reqCompletedOrders): same shape, orderId is usually 0."""


class OpenOrderEnd(Event, tag="open_order_end"):
    pass


class CompletedOrdersEnd(Event, tag="completed_orders_end"):
    pass


class ExecDetails(Event, tag="exec_details"):
    exec_id: str
    req_id: int = -1
    order_id: int = 0
    perm_id: int = 0
    client_id: int = 0
    time: str = ""
    account: str = ""
    exchange: str = ""
    side: str = ""
    shares: float = 0.0
    price: float = 0.0
    cum_qty: float = 0.0
    avg_price: float = 0.0
    order_ref: str = ""
    symbol: str = ""
    sec_type: str = ""
    con_id: int = 0
    contract: Raw = field(default_factory=dict)
    execution: Raw = field(default_factory=dict)


class ExecDetailsEnd(Event, tag="exec_details_end"):
    req_id: int = -1


class CommissionReport(Event, tag="commission_report"):
    SCHEMA_VERSION: ClassVar[int] = 2  # v2: unset commission / realized P&L / yield None

    exec_id: str
    commission: float | None = 0.0
    currency: str = ""
    realized_pnl: float | None = None
    yield_: float | None = None
    yield_redemption_date: int = 0


class Error(Event, tag="error"):
    """``error`` callback. Codes 1100/1101/1102/1300 are connectivity facts, 2xxx are farm notices."""

    req_id: int
    code: int
    message: str = ""
    advanced_order_reject_json: str = ""


class Position(Event, tag="position"):
    account: str
    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    position: float = 0.0
    avg_cost: float = 0.0
    contract: Raw = field(default_factory=dict)


class PositionEnd(Event, tag="position_end"):
    pass


# --- local intents -----------------------------------------------------------------------------


class PlaceOrder(Event, tag="place_order"):
    """A placeOrder we sent (or are about to send). A second one with the same orderId is a modify."""

    SCHEMA_VERSION: ClassVar[int] = 2  # v2: unset prices None, here and in the raw mappings

    order_id: int
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
    contract: Raw = field(default_factory=dict)
    order: Raw = field(default_factory=dict)


class ModifyOrder(PlaceOrder, tag="modify_order"):
    pass


class CancelOrder(Event, tag="cancel_order"):
    order_id: int
    client_id: int = 0
    perm_id: int = 0
    reason: str = ""


class GlobalCancel(Event, tag="global_cancel"):
    reason: str = ""


# --- governor and reconciliation ---------------------------------------------------------------

Decision = Literal["ALLOW", "BLOCK", "EMERGENCY_CANCEL", "STATE_CHANGE"]
TradingState = Literal["ACTIVE", "HALTED", "REDUCING"]


class GovernorDecision(Event, tag="governor_decision"):
    """What the governor decided, why (a standard reason code) and the numbers behind it."""

    decision: Decision
    reason: str
    message: str = ""
    action: str = ""  # place | modify | cancel | transition | ...
    order_id: int = 0
    client_id: int = 0
    perm_id: int = 0
    symbol: str = ""
    trading_state: TradingState = "ACTIVE"
    details: dict[str, float | int | str] = field(default_factory=dict)


class ReconcileStarted(Event, tag="reconcile_started"):
    reason: str = "connect"


class ReconcileEnded(Event, tag="reconcile_ended"):
    ok: bool = True
    unknown: list[str] = field(default_factory=list)  # queries that failed or timed out
    open_orders: int = 0
    completed_orders: int = 0
    executions: int = 0
    positions: int = 0


class PriceObserved(Event, tag="price_observed"):
    """A market price seen for a contract (a tick of the strategy's own market data, or a snapshot quote).

    The governor prices market and stop orders from the latest one per contract; the recorder keeps at
    most one per contract per interval and only on a move, so a busy feed does not flood the store."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    price: float = 0.0
    tick: str = ""  # last | bid | ask | close | mark | ... (the tick type's name)
    tick_type: int = 0
    market_data_type: int = 1  # 1 live, 2 frozen, 3 delayed, 4 delayed-frozen
    origin: str = "tick"  # tick (the strategy's subscription) | snapshot (a one-off quote)


class RecorderFault(Event, tag="recorder_fault"):
    """The recorder could not keep up or the store failed: the governor stops new orders."""

    message: str
    lost: int = 0


PAYLOAD_TYPES: tuple[type[Event], ...] = (
    SessionStarted,
    SessionEnded,
    Connected,
    Disconnected,
    NextValidId,
    ManagedAccounts,
    CurrentTime,
    OrderStatus,
    OpenOrder,
    CompletedOrder,
    OpenOrderEnd,
    CompletedOrdersEnd,
    ExecDetails,
    ExecDetailsEnd,
    CommissionReport,
    Error,
    Position,
    PositionEnd,
    PlaceOrder,
    ModifyOrder,
    CancelOrder,
    GlobalCancel,
    GovernorDecision,
    ReconcileStarted,
    ReconcileEnded,
    RecorderFault,
    PriceObserved,
)

Payload = (
    SessionStarted
    | SessionEnded
    | Connected
    | Disconnected
    | NextValidId
    | ManagedAccounts
    | CurrentTime
    | OrderStatus
    | OpenOrder
    | CompletedOrder
    | OpenOrderEnd
    | CompletedOrdersEnd
    | ExecDetails
    | ExecDetailsEnd
    | CommissionReport
    | Error
    | Position
    | PositionEnd
    | PlaceOrder
    | ModifyOrder
    | CancelOrder
    | GlobalCancel
    | GovernorDecision
    | ReconcileStarted
    | ReconcileEnded
    | RecorderFault
    | PriceObserved
)

KINDS: dict[str, type[Event]] = {t.__struct_config__.tag: t for t in PAYLOAD_TYPES}  # type: ignore[misc]


def kind_of(payload: Event) -> str:
    return payload.__struct_config__.tag  # type: ignore[return-value]


class Envelope(Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One stored event. ``seq`` is gapless within ``session_id``; ``v`` is the payload's schema version.

    ``recv_ns`` is the wall clock at receipt and the only time the fold and governor ever use;
    ``mono_ns`` serves latency measurement within one process.
    """

    session_id: str
    seq: int
    recv_ns: int
    mono_ns: int
    source: Source
    payload: Payload
    v: int = 1
    correlation_id: str | None = None
    causation_id: str | None = None

    @property
    def kind(self) -> str:
        return self.payload.__struct_config__.tag  # type: ignore[return-value]


class SchemaError(ValueError):
    """An event that this version of ibledger cannot read (unknown kind or newer schema)."""


# Upcasters turn an older payload mapping into the current one: {(kind, from_version): fn}.
# Each bumps exactly one version; they chain until the current version is reached.
UPCASTERS: dict[tuple[str, int], Any] = {}
# The same on the decoded payload itself (no round trip through builtins): {(kind, from_version): fn}.
# Tried first; used where the old and new versions share one Struct type.
PAYLOAD_UPCASTERS: dict[tuple[str, int], Any] = {}

_OPTIONAL: dict[type, dict[str, bool]] = {}


def _optional_fields(cls: type) -> dict[str, bool]:
    """field name -> does its type admit None (for the sentinel upcaster)."""
    got = _OPTIONAL.get(cls)
    if got is None:
        got = _OPTIONAL[cls] = {
            f.name: f.type is Any or type(None) in getattr(f.type, "__args__", ()) for f in msgspec.structs.fields(cls)
        }
    return got


def upcast_unset(payload: Event) -> Event:
    """v1 -> v2 of the kinds that carried IB's unset sentinels: every sentinel becomes None.

    A typed number that cannot be None (a quantity, an average price) becomes 0, IB's own "none".
    Typed ids and texts are left alone (an id of 2**31-1 is an id, e.g. the marker of a manual TWS
    order's execution): only typed floats and the raw mappings carried the sentinels.
    """
    changes: dict[str, Any] = {}
    optional = _optional_fields(type(payload))
    for name in payload.__struct_fields__:
        v = getattr(payload, name)
        if type(v) in (int, str, bool) or not _has_unset(v):
            continue
        new = unset_to_none(v)
        if new is None and not optional.get(name, True):
            new = 0.0 if type(v) is float else 0
        changes[name] = new
    return msgspec.structs.replace(payload, **changes) if changes else payload


for _cls in (OrderStatus, OpenOrder, CompletedOrder, CommissionReport, PlaceOrder, ModifyOrder):
    PAYLOAD_UPCASTERS[(_cls.__struct_config__.tag, 1)] = upcast_unset  # type: ignore[attr-defined]


def envelope(
    session_id: str,
    seq: int,
    payload: Event,
    *,
    recv_ns: int,
    mono_ns: int = 0,
    source: Source = "live",
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    """Build an envelope stamped with the payload kind's current schema version."""
    return Envelope(
        session_id=session_id,
        seq=seq,
        recv_ns=recv_ns,
        mono_ns=mono_ns,
        source=source,
        payload=payload,  # type: ignore[arg-type]
        v=type(payload).SCHEMA_VERSION,
        correlation_id=correlation_id,
        causation_id=causation_id,
    )


def check_version(env: Envelope) -> Envelope:
    """Refuse envelopes written by a newer schema; upcast older ones (fast path: already current)."""
    current = type(env.payload).SCHEMA_VERSION
    if env.v == current:
        return env
    if env.v > current:
        raise SchemaError(
            f"event {env.session_id}#{env.seq} kind {env.kind!r} has schema v{env.v}, this ibledger reads "
            f"up to v{current}: upgrade ibledger to read it"
        )
    return _upcast(env)


def _upcast(env: Envelope) -> Envelope:
    kind = env.kind
    payload = env.payload
    v = env.v
    current = type(payload).SCHEMA_VERSION
    while v < current and (kind, v) in PAYLOAD_UPCASTERS and (kind, v) not in UPCASTERS:
        payload = PAYLOAD_UPCASTERS[(kind, v)](payload)
        v += 1
    if v == current:
        return msgspec.structs.replace(env, payload=payload, v=v)
    data = msgspec.to_builtins(payload)
    while v < current:
        fn = UPCASTERS.get((kind, v))
        if fn is None:
            raise SchemaError(f"event {env.session_id}#{env.seq} kind {kind!r}: no upcaster from v{v}")
        data = fn(data)
        v += 1
    payload = msgspec.convert(data, KINDS[kind])
    return msgspec.structs.replace(env, payload=payload, v=v)
