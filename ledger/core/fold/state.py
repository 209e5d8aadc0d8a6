"""Per-order internal state and the shared status tables the fold's pieces read; the anomaly recorder."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from msgspec import Struct, field

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope
from ledger.core.fold.archive import Archive
from ledger.core.fold.views import Anomaly, Fill, OrderView, PositionView, Transition

MAX_ORDER_ID = ev.MANUAL_EXEC_ORDER_ID  # orderId of executions of manual TWS orders


EPS = 1e-9


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


_UNSET_LIMIT = 1e300  # IB's UNSET_DOUBLE (sys.float_info.max) and friends mean 'not set'


_INF = float("inf")


def _finite(x: float | None) -> bool:
    """A usable number: not None, NaN, ±inf or an unset sentinel that slipped through."""
    return x is not None and -_UNSET_LIMIT < x < _UNSET_LIMIT


def _newer(rev: str, than: str) -> bool:
    if rev.isdigit() and than.isdigit():
        return int(rev) > int(than)
    return rev > than


def _same(a: float | None, b: float | None) -> bool:
    return a == b or (a != a and b != b)  # NaN-aware


class OrderState(Struct, gc=False):
    """Internal per-order state kept next to the public view (never encoded)."""

    view: OrderView
    idx: int
    families: dict[str, Fill] = field(default_factory=dict)  # family -> latest revision
    placed: bool = False
    blocked: bool = False
    allowed: bool = False
    rejected: bool = False  # error 201 seen (cleared by a later live status)
    pc_from: str = ""  # broker status before PendingCancel
    pending_mod: ev.PlaceOrder | ev.ModifyOrder | None = None
    mismatch_flagged: float = -1.0
    notional: float = 0.0
    # the latest (session, client, order) binding, for the fast path of identity.resolve
    bsid: str = ""
    bcid: int = 0
    boid: int = 0
    # position row of this order's fills, cached for the (account, con_id, side) it was made from
    pos_key: str = ""
    pos_sign: float = 0.0
    pos_src: tuple[str, int, str] | None = None
    seen: str = ""  # the last session a broker message resolved to this order in
    binds: list[tuple[str, int, int]] | None = None  # its (session, client, order) bindings (compact folds)
    # set when the order is retired (compact folds): the families as indexes into view.fills, and the index
    # keys it held then -- (permIds, (account, permId)s, bindings, execIds)
    fams: list[int] | None = None
    held: tuple[list[int], list[tuple[str, int]], list[tuple[str, int, int]], list[str]] | None = None
    # a reader's own per-order numbers (the projector's marks), retired and checkpointed with the order so the
    # reader gets them back with it; the fold never reads them
    ext: list[int] | None = None


def record_anomaly(
    led: FoldState, env: Envelope, core: OrderState | None, kind: str, reason: str, frm: str = "", to: str = ""
) -> None:
    key = ""
    if core is not None:
        key = core.view.key
        core.view.anomaly_count += 1
    led.anomalies.append(
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


def session_client(led: FoldState, sid: str, cid: int) -> int:
    return cid if cid else led._sess_client.get(sid, 0)


class FoldState:
    """Everything the fold knows: the one state object that every handler function of the package mutates.

    All of the fold's state lives in its attributes (none in module globals), so a fresh instance is a fresh
    fold; :class:`LedgerFold` adds the dispatch and the read API on top of it.
    """

    def __init__(self, compact: bool = False, timeline: bool = True, keep: int = 20_000,
                 archive: Archive | None = None) -> None:
        """``compact``: retire orders done for a while (beyond the ``keep`` most recent) to a temporary file
        (see :mod:`ledger.core.fold.archive`), or to ``archive`` when given (a persistent one, which makes the
        fold checkpointable); ``timeline=False``: keep no per-order status timeline (``OrderView.statuses``)
        -- a replay or a projection does not show it, a live monitor does."""
        self.timeline = timeline
        self._keep = keep
        self._arch: Archive | None = (archive or Archive()) if compact or archive is not None else None
        # compact: told of each order as it is retired (its final state, before it leaves memory) and as it is
        # re-inflated (a reader keeping per-order rows, the projector, writes or reloads its own)
        self.on_retire: Callable[[OrderState], None] | None = None
        self.on_revive: Callable[[OrderState], None] | None = None
        # compact: finished orders, oldest first (retired beyond keep); an OrderedDict pops its oldest in O(1)
        self._done: OrderedDict[str, OrderState] = OrderedDict()
        self._resident: dict[str, OrderState] = {}  # compact: every order in memory, by key
        self._tomb: dict[tuple[str, int, int], None] = {}  # compact: bindings deleted (never revived)
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
        self._active: dict[str, OrderState] = {}  # not done, in order of becoming active
        self._by_perm: dict[int, OrderState] = {}
        self._bind: dict[tuple[str, int, int], OrderState] = {}
        self._sessions: dict[str, None] = {}  # sessions seen, in order of first appearance
        self._hw: dict[str, int] = {}  # seq high-water mark per session (but the current one)
        self._cur_sid: str | None = None
        self._cur_hw = 0
        self._sess_client: dict[str, int] = {}
        self._sess_account: dict[str, str] = {}  # the session's account, for messages that carry none
        self._perm_acct: dict[tuple[str, int], OrderState] = {}  # (account, permId) when accounts share a permId
        self.what_ifs: list[tuple[str, int, int]] = []  # (session, client, order) of what-if requests
        self._what_if: dict[tuple[str, int, int], None] = {}
        self._execs: dict[str, OrderState] = {}  # execId -> the order it belongs to
        self._pending_comm: dict[str, ev.CommissionReport] = {}
        self._pending_flagged: dict[str, bool] = {}
        self._suspects: dict[str, OrderState] = {}
        self.merged: dict[str, str] = {}  # keys merged away -> the key the order lives on as
        self._n = 0
        self._merge_out: list[Transition] | None = None  # transitions produced by a merge in identity.resolve
