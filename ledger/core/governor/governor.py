"""The risk governor: pure, deterministic decisions on every order, recorded as ``governor_decision`` events.

Inputs are only (a) the events so far (through :meth:`Governor.observe`, which the :class:`~ledger.core.engine.
Engine` calls after the fold applied each envelope), (b) the proposed intent and (c) the time carried by the
events (``recv_ns``; the ``now_ns`` given to :meth:`Governor.pre_check` is the intent envelope's
``recv_ns``). No clock, no uuid4, no randomness, no set iteration: two runs over one stream give the same
decisions, live and in replay, with no replay branch anywhere.

Decisions (``ledger.core.events.GovernorDecision``; the reason codes are in :mod:`ledger.core.governor.reasons`):

* ``ALLOW`` / ``BLOCK`` -- answers of :meth:`pre_check` for a place / modify / cancel intent. Cancels are
  always allowed (they reduce risk). A BLOCK carries a reason code from ``BLOCK_REASONS`` and the
  numbers behind it in ``details`` (``limit``, ``value``, ...).
* ``STATE_CHANGE`` -- the trading state changed. *Derived* ones (a circuit breaker tripped,
  ``DERIVED_REASONS``) are made by the governor itself and applied the moment they are made; when
  the recorded copy flows back through :meth:`observe` it changes nothing. *Input* ones (an operator's
  halt / resume / reducing, or the state carried into a new session, ``INPUT_REASONS``) are applied
  when they are observed: they are facts the governor cannot re-derive, so a replay honours them.
* ``EMERGENCY_CANCEL`` -- one per order that may be live, after a breaker tripped with
  ``breakers.emergency_cancel`` on, or after an operator's halt with ``cancel_all``: the caller cancels it.

What the governor learns from recorded decisions: ALLOWed places / modifies fill the rate windows (the
governor limits the orders *it* let through); input STATE_CHANGEs set the trading state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
from ledger.core.governor.reasons import (
    ACTIVE,
    BREAKER_ANOMALIES,
    BREAKER_ERRORS,
    BREAKER_REJECTIONS,
    CARRIED_OVER,
    HALTED,
    INPUT_REASONS,
    MANUAL_RESUME,
    OK,
    REDUCING,
)
from ledger.core.governor.rules import CANCELLABLE, RULES, SIDES, Check, ledger_stale, reconciling, symbol_lists
from ledger.core.governor.window import _Window
from ledger.core.governor_config import GovernorConfig, default_config

__all__ = ["OBSERVERS", "Governor", "Intent", "is_precheck"]

Intent = ev.PlaceOrder | ev.ModifyOrder | ev.CancelOrder

_INPUT = frozenset(INPUT_REASONS)

_SEC_NS = 1_000_000_000
_MIN_NS = 60 * _SEC_NS
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
        self.rate_sec = _Window(lim.max_orders_per_sec, _SEC_NS)
        self.rate_min = _Window(lim.max_orders_per_min, _MIN_NS)
        br = cfg.breakers
        span = int(br.window_s * _SEC_NS)
        self._breakers: dict[str, _Window] = {
            BREAKER_REJECTIONS: _Window(br.max_rejections, span),
            BREAKER_ERRORS: _Window(br.max_errors, span),
            BREAKER_ANOMALIES: _Window(br.max_anomalies, span),
        }
        self._ignored_errors = frozenset(br.ignore_error_codes)
        self._ignored_anomalies = frozenset(br.ignore_anomalies)
        self.deny = frozenset(cfg.deny_symbols)
        # RULES in order, less those this (frozen) config makes inert: they could neither refuse nor add a detail
        inert: set[Any] = set()
        if not cfg.state.block_while_reconciling:
            inert |= {reconciling, ledger_stale}
        if not cfg.deny_symbols and not cfg.allow_symbols:
            inert.add(symbol_lists)
        self._rules = tuple(rule for _codes, rule in RULES if rule not in inert)
        self._sym_limits = bool(cfg.symbol_limits)  # without overrides every symbol has the plain limits
        self._limits = (lim.max_qty, lim.max_notional)
        self.allow = frozenset(cfg.allow_symbols)
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
        """React to one envelope the fold has just applied; return the decisions to record (often none).

        First what the fold derived (orders opening and closing, rejections, anomalies), then what the
        event itself says, through :data:`OBSERVERS` (one small method per kind the governor learns from)."""
        return self.observe_as(env, transitions, OBSERVERS.get(type(env.payload)))

    def observe_as(
        self,
        env: Envelope,
        transitions: list[Transition],
        observer: Callable[[Governor, Envelope, list[GovernorDecision]], None] | None,
    ) -> list[GovernorDecision]:
        """:meth:`observe` with the payload's :data:`OBSERVERS` entry already looked up (the engine looks
        it up once per event to decide whether to call at all)."""
        out: list[GovernorDecision] = []
        self._session = env.session_id
        if transitions:
            self._track_orders(env, transitions, out)
        if len(self.fold.anomalies) != self._n_anomalies:
            self._count_anomalies(env, out)
        if observer is not None:
            observer(self, env, out)
        return out

    def _track_orders(self, env: Envelope, transitions: list[Transition], out: list[GovernorDecision]) -> None:
        """Orders not done, in the order they became open; a broker rejection counts for its breaker."""
        orders = self.fold.orders
        opened = self._open
        for t in transitions:
            key = t.key
            v = orders.get(key)
            if v is None or v.is_done:
                opened.pop(key, None)
            elif key not in opened:
                opened[key] = v
            if t.to_state == sm.REJECTED and t.from_state != sm.REJECTED:
                self._trip(BREAKER_REJECTIONS, env.recv_ns, env, out)

    def _count_anomalies(self, env: Envelope, out: list[GovernorDecision]) -> None:
        """The anomalies the fold flagged with this event, minus the ignored kinds, count for their breaker."""
        anomalies = self.fold.anomalies
        new = anomalies[self._n_anomalies :]
        self._n_anomalies = len(anomalies)
        for a in new:
            if a.kind not in self._ignored_anomalies:
                self._trip(BREAKER_ANOMALIES, env.recv_ns, env, out)

    # one method per event kind the governor learns from (see OBSERVERS)

    def _on_order_status(self, env: Envelope, out: list[GovernorDecision]) -> None:
        if env.payload.status == sm.INACTIVE:  # Inactive without whyHeld is done without a state transition
            for key in [k for k, v in self._open.items() if v.is_done]:
                del self._open[key]

    def _on_governor_decision(self, env: Envelope, out: list[GovernorDecision]) -> None:
        self._on_decision(env.payload, env.recv_ns)

    def _on_price_observed(self, env: Envelope, out: list[GovernorDecision]) -> None:
        p = env.payload
        if _price_set(p.price):
            if p.con_id:
                self._market_price[p.con_id] = p.price
            if p.symbol:
                self._market_price[_sym_key(p.symbol, p.sec_type)] = p.price

    def _on_exec_details(self, env: Envelope, out: list[GovernorDecision]) -> None:
        p = env.payload
        if p.shares > 0 and _price_set(p.price):
            if p.con_id:
                self._last_price[p.con_id] = p.price
            if p.symbol:
                self._last_price[_sym_key(p.symbol, p.sec_type)] = p.price
        self._learn_multiplier(p.con_id, p.contract)

    def _on_order_contract(self, env: Envelope, out: list[GovernorDecision]) -> None:
        self._learn_multiplier(env.payload.con_id, env.payload.contract)

    def _on_disconnected(self, env: Envelope, out: list[GovernorDecision]) -> None:
        self.stale = True

    def _on_error(self, env: Envelope, out: list[GovernorDecision]) -> None:
        code = env.payload.code
        if code == 1100 or code == 1101:  # connectivity lost / restored with data lost
            self.stale = True
        if not (1100 <= code <= 1300 or 2100 <= code <= 2199 or code in self._ignored_errors):
            self._trip(BREAKER_ERRORS, env.recv_ns, env, out)

    def _on_recorder_fault(self, env: Envelope, out: list[GovernorDecision]) -> None:
        if self.config.state.block_after_recorder_fault:
            self.recorder_fault = True

    def _on_reconcile_ended(self, env: Envelope, out: list[GovernorDecision]) -> None:
        p = env.payload
        self.stale = False
        if p.ok and not p.unknown:
            self.recorder_fault = False

    def _on_session_started(self, env: Envelope, out: list[GovernorDecision]) -> None:
        self._session_client[env.session_id] = env.payload.client_id
        self._sessions_seen += 1
        if self._sessions_seen > 1 and self.trading_state != self.config.state.initial:
            out.append(self._state_change(self.trading_state, CARRIED_OVER, "state carried into a new session"))

    def _on_connected(self, env: Envelope, out: list[GovernorDecision]) -> None:
        self._session_client[env.session_id] = env.payload.client_id

    def _learn_multiplier(self, con_id: int, contract: dict[str, Any]) -> None:
        if con_id and contract:
            m = _as_multiplier(contract.get("multiplier"))
            if m is not None:
                self._wire_multiplier[con_id] = m

    def _on_decision(self, p: GovernorDecision, ns: int) -> None:
        if p.decision == "ALLOW" or p.action in _SHADOW:
            # a shadow BLOCK (state.enforce = false) did not stop the order: it counts like an ALLOW
            if p.action == "place" or p.action == "modify" or p.action in _SHADOW:
                self.rate_sec.add(ns)
                self.rate_min.add(ns)
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
            if v.is_done or v.state not in CANCELLABLE or v.overlay == sm.PENDING_CANCEL_OVERLAY:
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

    def open_count(self) -> int:
        """How many orders are not done (what ``max_open_orders`` compares)."""
        return len(self._open)

    def pre_check(self, intent: Intent, now_ns: int, session_id: str | None = None) -> GovernorDecision:
        """ALLOW or BLOCK ``intent`` at event time ``now_ns``. Pure: changes no state.

        Cancels are always allowed; a place or modify runs :data:`~ledger.core.governor.rules.RULES` in
        order and the first refusal decides. ``session_id``: the recording session the intent belongs to
        (default: the session of the last event processed -- the recorder's own)."""
        if isinstance(intent, ev.CancelOrder):
            return self._allow_cancel(intent, now_ns)
        check = self._resolve(intent, now_ns, session_id)
        for rule in self._rules:
            refused = rule(self, check)
            if refused is not None:
                return self._answer("BLOCK", refused[0], refused[1], check)
        return self._answer("ALLOW", OK, "", check)

    def _allow_cancel(self, intent: ev.CancelOrder, now_ns: int) -> GovernorDecision:
        """Cancels reduce risk: allowed in every state."""
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

    def _resolve(self, intent: ev.PlaceOrder, now_ns: int, session_id: str | None) -> Check:
        """The intent as the rules see it: a place for an order not done is a modify, and a modify takes
        what it leaves out (symbol, side, quantity, prices, type) from the order it modifies."""
        sid = self._session if session_id is None else session_id
        cid = intent.client_id or self._session_client.get(sid, 0)
        # only an order not done matters (a modify of it): a retired order is done, so memory suffices
        view = self.fold.open_order_for(cid, intent.order_id, sid) if intent.order_id else None
        if view is None:
            symbol, side, qty, otype = intent.symbol.upper(), intent.action.upper(), intent.total_qty, intent.order_type
            lmt, aux, con_id = intent.lmt_price, intent.aux_price, intent.con_id
        else:
            symbol, side, qty, otype, lmt, aux, con_id = _fields(intent, view)
        sec_type = (intent.sec_type or str((intent.contract or {}).get("secType") or "")).upper()
        price, price_src = self._price(symbol, sec_type, con_id, otype, lmt, aux)
        max_qty, max_notional = self._limits_for(symbol) if self._sym_limits else self._limits
        details: dict[str, Any] = {"at_ns": now_ns, "qty": qty, "side": side}
        if otype:
            details["order_type"] = otype
        # positional, in Check's field order: intent, now_ns, view, action, client_id, perm_id, symbol, side,
        # qty, order_type, sec_type, multiplier, price, price_source, max_qty, max_notional, details
        return Check(
            intent, now_ns, view,
            "modify" if isinstance(intent, ev.ModifyOrder) or view is not None else "place",
            cid, view.perm_id if view is not None else 0, symbol, side,
            qty, otype, sec_type, self._multiplier(symbol, con_id, intent.contract),
            price, price_src, max_qty, max_notional, details,
        )  # fmt: skip

    def _limits_for(self, symbol: str) -> tuple[float, float]:
        """(max_qty, max_notional) for ``symbol``: its ``[symbol_limits]`` override where it has one."""
        cfg = self.config
        max_qty, max_notional = cfg.limits.max_qty, cfg.limits.max_notional
        sym_lim = cfg.symbol_limits.get(symbol) if cfg.symbol_limits else None
        if sym_lim is not None:
            if sym_lim.max_qty is not None:
                max_qty = sym_lim.max_qty
            if sym_lim.max_notional is not None:
                max_notional = sym_lim.max_notional
        return max_qty, max_notional

    def _answer(self, decision: str, reason: str, msg: str, check: Check) -> GovernorDecision:
        action, details = check.action, check.details
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
            order_id=check.intent.order_id,
            client_id=check.client_id,
            perm_id=check.perm_id,
            symbol=check.symbol,
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

    def exposure(self, symbol: str, intent: ev.PlaceOrder, sign: int, own_key: str) -> tuple[float, float]:
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
            if SIDES.get(v.action.upper()) == sign and v.state in CANCELLABLE | {sm.CREATED}:
                pending += v.remaining if v.remaining > 0 else 0.0
        return position, pending


def _fields(
    intent: ev.PlaceOrder, view: OrderView | None
) -> tuple[str, str, float, str, float | None, float | None, int]:
    """(symbol, side, qty, order type, limit, aux, con_id) of an intent; a modify takes what it leaves
    out from the order it modifies. Symbol and side upper case."""
    symbol, side, qty, otype = intent.symbol, intent.action, intent.total_qty, intent.order_type
    lmt, aux, con_id = intent.lmt_price, intent.aux_price, intent.con_id
    if view is not None:
        symbol, side, otype = symbol or view.symbol, side or view.action, otype or view.order_type
        if not (_finite(qty) and qty > 0) and intent.total_qty == 0:
            qty = view.total_qty
        lmt = view.lmt_price if lmt is None else lmt
        aux = view.aux_price if aux is None else aux
        con_id = con_id or view.con_id
    return symbol.upper(), side.upper(), qty, otype, lmt, aux, con_id


#: The event kinds the governor learns from, each with its method (exact payload types, as the fold's).
OBSERVERS: dict[type, Callable[[Governor, Envelope, list[GovernorDecision]], None]] = {
    ev.OrderStatus: Governor._on_order_status,
    ev.GovernorDecision: Governor._on_governor_decision,
    ev.PriceObserved: Governor._on_price_observed,
    ev.ExecDetails: Governor._on_exec_details,
    ev.OpenOrder: Governor._on_order_contract,
    ev.CompletedOrder: Governor._on_order_contract,
    ev.Disconnected: Governor._on_disconnected,
    ev.Error: Governor._on_error,
    ev.RecorderFault: Governor._on_recorder_fault,
    ev.ReconcileEnded: Governor._on_reconcile_ended,
    ev.SessionStarted: Governor._on_session_started,
    ev.Connected: Governor._on_connected,
}
