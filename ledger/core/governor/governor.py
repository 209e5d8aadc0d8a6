"""The risk governor: pure, deterministic decisions on every order, recorded as ``governor_decision`` events.

Inputs are only (a) the events so far (through :meth:`Governor.observe`, which the :class:`~ledger.core.engine.
Engine` calls after the fold applied each envelope), (b) the proposed intent and (c) the time carried by the
events (``recv_ns``; the ``now_ns`` given to :meth:`Governor.pre_check` is the intent envelope's
``recv_ns``). No clock, no uuid4, no randomness, no set iteration: two runs over one stream give the same
decisions, live and in replay, with no replay branch anywhere.

Decisions (``ledger.core.events.GovernorDecision``):

* ``ALLOW`` / ``BLOCK`` -- answers of :meth:`pre_check` for a place / modify / cancel intent. Cancels are
  always allowed (they reduce risk). A BLOCK carries a reason code from :data:`BLOCK_REASONS` and the
  numbers behind it in ``details`` (``limit``, ``value``, ...).
* ``STATE_CHANGE`` -- the trading state changed. *Derived* ones (a circuit breaker tripped,
  :data:`DERIVED_REASONS`) are made by the governor itself and applied the moment they are made; when
  the recorded copy flows back through :meth:`observe` it changes nothing. *Input* ones (an operator's
  halt / resume / reducing, or the state carried into a new session, :data:`INPUT_REASONS`) are applied
  when they are observed: they are facts the governor cannot re-derive, so a replay honours them.
* ``EMERGENCY_CANCEL`` -- one per order that may be live, after a breaker tripped with
  ``breakers.emergency_cancel`` on, or after an operator's halt with ``cancel_all``: the caller cancels it.

What the governor learns from recorded decisions: ALLOWed places / modifies fill the rate windows (the
governor limits the orders *it* let through); input STATE_CHANGEs set the trading state.
"""

from __future__ import annotations

import math
from typing import Any

from ledger.core import events as ev
from ledger.core import statemachine as sm
from ledger.core.events import Envelope, GovernorDecision
from ledger.core.fold import LedgerFold, OrderView, Transition
from ledger.core.governor.pricing import (
    _AUX_IS_PRICE,
    _NEEDS_MULTIPLIER,
    _as_multiplier,
    _finite,
    _price_set,
    _sym_key,
)
from ledger.core.governor.window import _Window
from ledger.core.governor_config import GovernorConfig, default_config

__all__ = [
    "BLOCK_REASONS",
    "DERIVED_REASONS",
    "INPUT_REASONS",
    "Governor",
    "Intent",
    "is_precheck",
]

Intent = ev.PlaceOrder | ev.ModifyOrder | ev.CancelOrder

ACTIVE, HALTED, REDUCING = "ACTIVE", "HALTED", "REDUCING"
OK = "OK"

# BLOCK reason codes, in the order the rules are checked (the first failing rule decides).
RECORDER_FAULT = "RECORDER_FAULT"
RECONCILING = "RECONCILING"
LEDGER_STALE = "LEDGER_STALE"
HALTED_REASON = "HALTED"
SYMBOL_DENIED = "SYMBOL_DENIED"
SYMBOL_NOT_ALLOWED = "SYMBOL_NOT_ALLOWED"
INVALID_ORDER = "INVALID_ORDER"
MAX_QTY = "MAX_QTY"
UNKNOWN_MULTIPLIER = "UNKNOWN_MULTIPLIER"
MARKET_ORDER_NO_PRICE = "MARKET_ORDER_NO_PRICE"
MAX_NOTIONAL = "MAX_NOTIONAL"
REDUCING_ONLY = "REDUCING_ONLY"
MAX_OPEN_ORDERS = "MAX_OPEN_ORDERS"
RATE_LIMIT_SEC = "RATE_LIMIT_SEC"
RATE_LIMIT_MIN = "RATE_LIMIT_MIN"
BLOCK_REASONS: tuple[str, ...] = (
    RECORDER_FAULT, RECONCILING, LEDGER_STALE, HALTED_REASON, SYMBOL_DENIED, SYMBOL_NOT_ALLOWED, INVALID_ORDER,
    MAX_QTY, UNKNOWN_MULTIPLIER, MARKET_ORDER_NO_PRICE, MAX_NOTIONAL, REDUCING_ONLY, MAX_OPEN_ORDERS,
    RATE_LIMIT_SEC, RATE_LIMIT_MIN,
)  # fmt: skip

# STATE_CHANGE / EMERGENCY_CANCEL reasons
BREAKER_REJECTIONS = "BREAKER_REJECTIONS"
BREAKER_ERRORS = "BREAKER_ERRORS"
BREAKER_ANOMALIES = "BREAKER_ANOMALIES"
DERIVED_REASONS: tuple[str, ...] = (BREAKER_REJECTIONS, BREAKER_ERRORS, BREAKER_ANOMALIES)
MANUAL_HALT = "MANUAL_HALT"
MANUAL_RESUME = "MANUAL_RESUME"
MANUAL_REDUCING = "MANUAL_REDUCING"
CARRIED_OVER = "CARRIED_OVER"
INPUT_REASONS: tuple[str, ...] = (MANUAL_HALT, MANUAL_RESUME, MANUAL_REDUCING, CARRIED_OVER)
_INPUT = frozenset(INPUT_REASONS)

_SEC_NS = 1_000_000_000
_MIN_NS = 60 * _SEC_NS
_SIDES = {"BUY": 1, "SELL": -1, "SSHORT": -1, "SLONG": -1}
# States of an order the broker may be working (an emergency cancel targets them). Created (allowed,
# not sent), Blocked and AwaitingExecutions (the broker says Filled) are left alone.
_CANCELLABLE = frozenset(
    {sm.UNCONFIRMED, sm.UNKNOWN, sm.PENDING_SUBMIT_STATE, sm.WORKING, sm.PARTIALLY_FILLED, sm.INACTIVE_STATE}
)
_PRECHECK_ACTIONS = frozenset({"place", "modify", "cancel"})
_SHADOW = frozenset({"shadow_place", "shadow_modify"})


def is_precheck(d: GovernorDecision) -> bool:
    """An ALLOW / BLOCK answer to an intent (as opposed to a state change or an emergency cancel)."""
    return d.decision in ("ALLOW", "BLOCK") and (d.action in _PRECHECK_ACTIONS or d.action in _SHADOW)


def _clean(details: dict[str, Any]) -> dict[str, float | int | str]:
    """Details must survive JSON: NaN / inf become strings, None is dropped."""
    out: dict[str, float | int | str] = {}
    for k, v in details.items():
        if v is None:
            continue
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = str(v)
        else:
            out[k] = v
    return out


class Governor:
    """Trading state, limits and circuit breakers over one :class:`LedgerFold` (read-only for it)."""

    def __init__(self, config: GovernorConfig | None, fold: LedgerFold) -> None:
        cfg = config if config is not None else default_config()
        self.config = cfg
        self.fold = fold
        self.trading_state: str = cfg.state.initial
        self.recorder_fault = False
        lim = cfg.limits
        self._rate_sec = _Window(lim.max_orders_per_sec, _SEC_NS)
        self._rate_min = _Window(lim.max_orders_per_min, _MIN_NS)
        br = cfg.breakers
        span = int(br.window_s * _SEC_NS)
        self._breakers: dict[str, _Window] = {
            BREAKER_REJECTIONS: _Window(br.max_rejections, span),
            BREAKER_ERRORS: _Window(br.max_errors, span),
            BREAKER_ANOMALIES: _Window(br.max_anomalies, span),
        }
        self._ignored_errors = frozenset(br.ignore_error_codes)
        self._ignored_anomalies = frozenset(br.ignore_anomalies)
        self._deny = frozenset(cfg.deny_symbols)
        self._allow = frozenset(cfg.allow_symbols)
        self._open: dict[str, OrderView] = {}  # orders not done, in order of becoming open
        # latest prices by con_id (int) and by symbol (str): market observations and execution prices
        self._market_price: dict[int | str, float] = {}
        self._last_price: dict[int | str, float] = {}
        self._wire_multiplier: dict[int, float] = {}  # con_id -> multiplier the broker sent
        self.stale = False  # disconnected / 1100 / 1101 until the reconciliation that follows ended
        self._n_anomalies = 0
        self._session = ""
        self._session_client: dict[str, int] = {}
        self._sessions_seen = 0

    # --- learning from events ------------------------------------------------------------------

    def observe(self, env: Envelope, transitions: list[Transition]) -> list[GovernorDecision]:
        """React to one envelope the fold has just applied; return the decisions to record (often none)."""
        out: list[GovernorDecision] = []
        p = env.payload
        fold = self.fold
        ns = env.recv_ns
        if env.session_id != self._session:
            self._session = env.session_id
        if transitions:
            orders = fold.orders
            opened = self._open
            for t in transitions:
                key = t.key
                v = orders.get(key)
                if v is None or v.is_done:
                    opened.pop(key, None)
                elif key not in opened:
                    opened[key] = v
                if t.to_state == sm.REJECTED and t.from_state != sm.REJECTED:
                    self._trip(BREAKER_REJECTIONS, ns, env, out)
        n_anom = len(fold.anomalies)
        if n_anom != self._n_anomalies:
            new = fold.anomalies[self._n_anomalies : n_anom]
            self._n_anomalies = n_anom
            for a in new:
                if a.kind not in self._ignored_anomalies:
                    self._trip(BREAKER_ANOMALIES, ns, env, out)
        typ = type(p)
        if typ is ev.OrderStatus:
            if p.status == sm.INACTIVE:  # Inactive without whyHeld is done without a state transition
                for key in [k for k, v in self._open.items() if v.is_done]:
                    del self._open[key]
        elif typ is ev.GovernorDecision:
            self._on_decision(p, ns)
        elif typ is ev.PriceObserved:
            if _price_set(p.price):
                if p.con_id:
                    self._market_price[p.con_id] = p.price
                if p.symbol:
                    self._market_price[_sym_key(p.symbol, p.sec_type)] = p.price
        elif typ is ev.ExecDetails:
            if p.shares > 0 and _price_set(p.price):
                if p.con_id:
                    self._last_price[p.con_id] = p.price
                if p.symbol:
                    self._last_price[_sym_key(p.symbol, p.sec_type)] = p.price
            self._learn_multiplier(p.con_id, p.contract)
        elif typ is ev.OpenOrder or typ is ev.CompletedOrder:
            self._learn_multiplier(p.con_id, p.contract)
        elif typ is ev.Disconnected:
            self.stale = True
        elif typ is ev.Error:
            code = p.code
            if code == 1100 or code == 1101:  # connectivity lost / restored with data lost
                self.stale = True
            if not (1100 <= code <= 1300 or 2100 <= code <= 2199 or code in self._ignored_errors):
                self._trip(BREAKER_ERRORS, ns, env, out)
        elif typ is ev.RecorderFault:
            if self.config.state.block_after_recorder_fault:
                self.recorder_fault = True
        elif typ is ev.ReconcileEnded:
            self.stale = False
            if p.ok and not p.unknown:
                self.recorder_fault = False
        elif typ is ev.SessionStarted:
            self._session_client[env.session_id] = p.client_id
            self._sessions_seen += 1
            if self._sessions_seen > 1 and self.trading_state != self.config.state.initial:
                out.append(self._state_change(self.trading_state, CARRIED_OVER, "state carried into a new session"))
        elif typ is ev.Connected:
            self._session_client[env.session_id] = p.client_id
        return out

    def _learn_multiplier(self, con_id: int, contract: dict[str, Any]) -> None:
        if con_id and contract:
            m = _as_multiplier(contract.get("multiplier"))
            if m is not None:
                self._wire_multiplier[con_id] = m

    def _on_decision(self, p: GovernorDecision, ns: int) -> None:
        if p.decision == "ALLOW" or p.action in _SHADOW:
            # a shadow BLOCK (state.enforce = false) did not stop the order: it counts like an ALLOW
            if p.action == "place" or p.action == "modify" or p.action in _SHADOW:
                self._rate_sec.add(ns)
                self._rate_min.add(ns)
        elif p.decision == "STATE_CHANGE" and p.reason in _INPUT:
            self._apply_state(p.trading_state, p.reason)

    def _apply_state(self, state: str, reason: str) -> None:
        self.trading_state = state
        if reason == MANUAL_RESUME:
            self.recorder_fault = False
            for w in self._breakers.values():
                w.clear()

    def _trip(self, breaker: str, ns: int, env: Envelope, out: list[GovernorDecision]) -> None:
        w = self._breakers[breaker]
        if not w.add(ns):
            return
        w.clear()
        if self.trading_state == HALTED:
            return
        br = self.config.breakers
        label = {BREAKER_REJECTIONS: "rejections", BREAKER_ERRORS: "errors", BREAKER_ANOMALIES: "anomalies"}
        details = {"limit": w.n, "value": w.n, "window_s": br.window_s, "from": self.trading_state}
        msg = f"{w.n} {label[breaker]} within {br.window_s:g}s (event {env.session_id}#{env.seq}): halted"
        out.append(self._state_change(HALTED, breaker, msg, details))
        self.trading_state = HALTED
        if br.emergency_cancel:
            out.extend(self._emergency(breaker))

    # --- decisions -----------------------------------------------------------------------------

    def _decision(self, decision: str, reason: str, message: str = "", **kw: Any) -> GovernorDecision:
        details = kw.pop("details", None)
        return GovernorDecision(
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
            message=message,
            trading_state=self.trading_state,  # type: ignore[arg-type]
            details=_clean(details) if details else {},
            **kw,
        )

    def _state_change(
        self, to: str, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> GovernorDecision:
        d = dict(details or {})
        d.setdefault("from", self.trading_state)
        d["to"] = to
        return GovernorDecision(
            decision="STATE_CHANGE",
            reason=reason,
            message=message,
            action="state",
            trading_state=to,  # type: ignore[arg-type]
            details=_clean(d),
        )

    def _emergency(self, reason: str) -> list[GovernorDecision]:
        out = []
        for v in list(self._open.values()):
            if v.is_done or v.state not in _CANCELLABLE or v.overlay == sm.PENDING_CANCEL_OVERLAY:
                continue
            out.append(
                self._decision(
                    "EMERGENCY_CANCEL",
                    reason,
                    f"cancel {v.key} ({v.state})",
                    action="cancel",
                    order_id=v.order_id,
                    client_id=v.client_id,
                    perm_id=v.perm_id,
                    symbol=v.symbol,
                    details={"key": v.key, "state": v.state, "remaining": v.remaining},
                )
            )
        return out

    # --- operator --------------------------------------------------------------------------------

    def set_state(self, state: str, reason: str, message: str = "", cancel_all: bool = False) -> list[GovernorDecision]:
        """An operator's state change: applied now, and again (idempotently) when the recorded copy is observed."""
        d = self._state_change(state, reason, message or reason.lower().replace("_", " "))
        self._apply_state(state, reason)
        out = [d]
        if cancel_all:
            out.extend(self._emergency(reason))
        return out

    def carry_state(self, state: str) -> None:
        """The trading state an earlier session of the account ended in (read from its recorded
        decisions). The next ``session_started`` records it as ``CARRIED_OVER``, which is how a replay of
        the new session alone learns it."""
        if state in (ACTIVE, HALTED, REDUCING):
            self.trading_state = state

    # --- pre-trade check -------------------------------------------------------------------------

    def market_price(self, con_id: int = 0, symbol: str = "", sec_type: str = "STK") -> float | None:
        """The latest recorded market price (``price_observed``) for the contract, or None."""
        got = self._lookup(self._market_price, con_id, symbol, sec_type)
        return got

    def open_orders(self) -> list[OrderView]:
        """Orders not done, in the order they became open (what ``max_open_orders`` counts)."""
        return list(self._open.values())

    def pre_check(self, intent: Intent, now_ns: int, session_id: str | None = None) -> GovernorDecision:
        """ALLOW or BLOCK ``intent`` at event time ``now_ns``. Pure: changes no state.

        ``session_id``: the recording session the intent belongs to (default: the session of the last
        event processed -- the recorder's own)."""
        if isinstance(intent, ev.CancelOrder):
            return self._decision(
                "ALLOW",
                OK,
                "cancels are always allowed",
                action="cancel",
                order_id=intent.order_id,
                client_id=intent.client_id,
                perm_id=intent.perm_id,
                details={"at_ns": now_ns},
            )
        sid = self._session if session_id is None else session_id
        cid = intent.client_id or self._session_client.get(sid, 0)
        view = self.fold.order_for(cid, intent.order_id, sid) if intent.order_id else None
        if view is not None and view.is_done:
            view = None
        is_modify = isinstance(intent, ev.ModifyOrder) or view is not None
        action = "modify" if is_modify else "place"
        symbol = (intent.symbol or (view.symbol if view is not None else "")).upper()
        side = (intent.action or (view.action if view is not None else "")).upper()
        qty = intent.total_qty
        if not (_finite(qty) and qty > 0) and view is not None and intent.total_qty == 0:
            qty = view.total_qty
        lmt = intent.lmt_price
        aux = intent.aux_price
        otype = intent.order_type or (view.order_type if view is not None else "")
        if view is not None:
            if lmt is None:
                lmt = view.lmt_price
            if aux is None:
                aux = view.aux_price
        base = (action, intent.order_id, cid, view.perm_id if view is not None else 0, symbol)
        details: dict[str, Any] = {"at_ns": now_ns, "qty": qty, "side": side}
        if otype:
            details["order_type"] = otype
        block = self._block
        cfg = self.config
        if self.recorder_fault:
            return block(base, details, RECORDER_FAULT, "the recorder reported a fault: events may be lost")
        if cfg.state.block_while_reconciling and self.fold.reconciling:
            return block(base, details, RECONCILING, "reconciliation in progress: the ledger is not complete yet")
        if cfg.state.block_while_reconciling and self.stale:
            return block(
                base, details, LEDGER_STALE,
                "the connection was lost (disconnect or error 1100/1101): the ledger may miss what happened "
                "meanwhile; new orders wait until the reconciliation after the reconnect has ended",
            )
        state = self.trading_state
        if state == HALTED:
            return block(base, details, HALTED_REASON, "trading is halted")
        if symbol in self._deny:
            return block(base, details, SYMBOL_DENIED, f"{symbol} is in symbols.deny")
        if self._allow and symbol not in self._allow:
            return block(base, details, SYMBOL_NOT_ALLOWED, f"{symbol or '(no symbol)'} is not in symbols.allow")
        sign = _SIDES.get(side)
        if sign is None:
            return block(base, details, INVALID_ORDER, f"unknown order action {side!r}")
        if not (_finite(qty) and qty > 0):
            details["qty"] = str(qty)
            return block(base, details, INVALID_ORDER, f"quantity must be a positive number, got {qty!r}")
        sym_lim = cfg.symbol_limits.get(symbol) if cfg.symbol_limits else None
        max_qty = cfg.limits.max_qty
        max_notional = cfg.limits.max_notional
        if sym_lim is not None:
            if sym_lim.max_qty is not None:
                max_qty = sym_lim.max_qty
            if sym_lim.max_notional is not None:
                max_notional = sym_lim.max_notional
        if max_qty > 0 and qty > max_qty:
            details["limit"], details["value"] = max_qty, qty
            return block(base, details, MAX_QTY, f"quantity {qty:g} exceeds max_qty {max_qty:g}")
        con_id = intent.con_id or (view.con_id if view is not None else 0)
        sec_type = (intent.sec_type or str((intent.contract or {}).get("secType") or "")).upper()
        mult = self._multiplier(symbol, con_id, intent.contract)
        if mult is None:
            if sec_type in _NEEDS_MULTIPLIER:
                details["sec_type"] = sec_type
                return block(
                    base, details, UNKNOWN_MULTIPLIER,
                    f"{sec_type} {symbol or '(no symbol)'}: contract multiplier unknown (not on the order's contract "
                    f"and not in [prices].multipliers); qualify the contract or set [prices].multipliers.{symbol}",
                )
            mult = 1.0
        price, price_src = self._price(symbol, sec_type, con_id, otype, lmt, aux)
        if price is not None:
            notional = qty * price * mult
            details["price"], details["price_source"] = price, price_src
            details["multiplier"], details["notional"] = mult, notional
            if max_notional > 0 and notional > max_notional:
                details["limit"], details["value"] = max_notional, notional
                return block(
                    base,
                    details,
                    MAX_NOTIONAL,
                    f"notional {notional:,.2f} ({qty:g} x {price:g} x {mult:g}) exceeds max_notional "
                    f"{max_notional:,.2f}",
                )
        elif max_notional > 0:
            details["limit"] = max_notional
            return block(
                base,
                details,
                MARKET_ORDER_NO_PRICE,
                f"no price known for {otype or 'the'} order on {symbol or '(no symbol)'}: notional unknown. "
                f"Subscribe market data for the contract before placing (reqMktData: its ticks are recorded "
                f"as prices), set [prices].reference.{symbol or 'SYMBOL'} in the governor config, or use a "
                f"limit order",
            )
        if state == REDUCING:
            own = view.key if view is not None else ""
            position, pending = self._exposure(symbol, intent, sign, own)
            if position * sign >= 0 or qty + pending > abs(position) + 1e-9:
                details["limit"], details["value"], details["position"] = abs(position), qty + pending, position
                return block(
                    base,
                    details,
                    REDUCING_ONLY,
                    f"trading state REDUCING: {side} {qty:g} {symbol} does not reduce position {position:g}"
                    + (f" (with {pending:g} already working)" if pending else ""),
                )
        if not is_modify:
            max_open = cfg.limits.max_open_orders
            if max_open > 0:
                n_open = len(self._open)
                details["open_orders"] = n_open
                if n_open >= max_open:
                    details["limit"], details["value"] = max_open, n_open + 1
                    return block(base, details, MAX_OPEN_ORDERS, f"{n_open} orders open, max_open_orders {max_open}")
        if self._rate_sec.full_at(now_ns):
            n = self._rate_sec.n
            details["limit"], details["value"] = n, n + 1
            return block(base, details, RATE_LIMIT_SEC, f"{n} orders in the last second (max_orders_per_sec {n})")
        if self._rate_min.full_at(now_ns):
            n = self._rate_min.n
            details["limit"], details["value"] = n, n + 1
            return block(base, details, RATE_LIMIT_MIN, f"{n} orders in the last minute (max_orders_per_min {n})")
        return self._answer("ALLOW", OK, "", base, details)

    def _block(
        self, base: tuple[str, int, int, int, str], details: dict[str, Any], reason: str, msg: str
    ) -> GovernorDecision:
        return self._answer("BLOCK", reason, msg, base, details)

    def _answer(
        self, decision: str, reason: str, msg: str, base: tuple[str, int, int, int, str], details: dict[str, Any]
    ) -> GovernorDecision:
        action, order_id, client_id, perm_id, symbol = base
        if decision == "BLOCK" and not self.config.state.enforce:
            # shadow mode: "would have blocked"; the order goes out, and the fold does not take it for blocked
            action = f"shadow_{action}"
            details["shadow"] = 1
        for v in details.values():
            if type(v) is float and not math.isfinite(v):
                details = _clean(details)
                break
        return GovernorDecision(
            decision=decision,  # type: ignore[arg-type]
            reason=reason,
            message=msg,
            action=action,
            order_id=order_id,
            client_id=client_id,
            perm_id=perm_id,
            symbol=symbol,
            trading_state=self.trading_state,  # type: ignore[arg-type]
            details=details,
        )

    def _price(
        self, symbol: str, sec_type: str, con_id: int, order_type: str, lmt: float | None, aux: float | None
    ) -> tuple[float | None, str]:
        """The price a notional check uses: the order's own (limit, or a stop's trigger), else the latest
        market price recorded for the contract, else its last execution price, else the reference."""
        if _price_set(lmt):
            return lmt, "limit"
        if _price_set(aux) and (order_type.upper() in _AUX_IS_PRICE or not order_type):
            return aux, "stop"
        for table, source in ((self._market_price, "market"), (self._last_price, "last_fill")):
            got = self._lookup(table, con_id, symbol, sec_type)
            if got is not None:
                return got, source
        ref = self.config.reference_prices.get(symbol)
        if ref is not None:
            return ref, "reference"
        return None, ""

    @staticmethod
    def _lookup(table: dict[int | str, float], con_id: int, symbol: str, sec_type: str) -> float | None:
        """By con_id; else by symbol and security type -- but a derivative with a con_id never takes the
        price of another contract on the same symbol (another strike, another expiry)."""
        if con_id:
            got = table.get(con_id)
            if got is not None or (sec_type or "STK").upper() in _NEEDS_MULTIPLIER:
                return got
        return table.get(_sym_key(symbol, sec_type)) if symbol else None

    def _multiplier(self, symbol: str, con_id: int, contract: dict[str, Any]) -> float | None:
        """From the order's contract, else what the broker sent for the con_id, else the config; None
        when none of them knows it."""
        m = _as_multiplier(contract.get("multiplier") if contract else None)
        if m is not None:
            return m
        if con_id:
            m = self._wire_multiplier.get(con_id)
            if m is not None:
                return m
        return self.config.multipliers.get(symbol)

    def _exposure(self, symbol: str, intent: ev.PlaceOrder, sign: int, own_key: str) -> tuple[float, float]:
        """(net position in ``symbol`` [for the intent's account / con_id], working qty on the same side)."""
        position = 0.0
        for pv in self.fold.positions.values():
            if pv.symbol.upper() != symbol:
                continue
            if intent.account and pv.account and pv.account != intent.account:
                continue
            if intent.con_id and pv.con_id and pv.con_id != intent.con_id:
                continue
            position += pv.position
        pending = 0.0
        for v in self._open.values():
            if v.is_done or v.key == own_key or v.symbol.upper() != symbol:
                continue
            if _SIDES.get(v.action.upper()) == sign and v.state in _CANCELLABLE | {sm.CREATED}:
                pending += v.remaining if v.remaining > 0 else 0.0
        return position, pending
