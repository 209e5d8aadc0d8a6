"""The matching model of the default scenario: when and at what price a working order fills.

Pure decisions against one quote, so the simulator's clock alone decides what happens: MKT fills at
the touch, LMT when marketable (at the touch, which may improve on the limit), STP / STP LMT trigger
on the last trade, TRAIL follows the best price by its trailing amount or percent. Fills are capped at
the displayed size at the touch (the rest fills on later seconds), plus an optional slippage in ticks.
The order fields the protocol's ``OrderSpec`` does not carry (trailing percent, trail stop, whatIf,
OCA type) are read from the raw placeOrder message by ``order_extras``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from replay.tws.catalogue import Instrument
from replay.tws.market import Quote, round_to_tick
from replay.tws.protocol import UNSET_DOUBLE, OrderSpec

MATCHED_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT", "TRAIL", "TRAIL LIMIT", "MOC", "LOC"})


@dataclass(frozen=True)
class Extras:
    trail_stop_price: float | None = None
    trailing_percent: float | None = None
    what_if: bool = False
    oca_type: int = 0


def _num(s: str) -> float | None:
    s = s.strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return None if v == UNSET_DOUBLE else v


def order_extras(raw: Sequence[str]) -> Extras:
    """Fields past the fixed head of a placeOrder message (layout of the clients' ``placeOrder``)."""
    try:
        if raw[4] == "BAG":
            return Extras()
        o = list(raw[16:])
        oca_type = int(o[31] or 0)
        i = 49
        dn = 8 if o[i] else 0  # deltaNeutralOrderType set: its contract block follows
        i = 51 + dn  # continuousUpdate
        trail_stop, trailing_pct = _num(o[i + 2]), _num(o[i + 3])
        i += 4  # scaleInitLevelSize
        incr = _num(o[i + 2])
        i += 3 + (7 if incr is not None and 0 < incr else 0)
        i += 3  # scaleTable, activeStartTime, activeStopTime
        hedge = o[i]
        i += 1 + (1 if hedge else 0)
        i += 4  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
        i += 4 if o[i] in ("1", "True") else 1  # delta-neutral contract
        algo = o[i]
        i += 1
        if algo:
            i += 1 + 2 * int(o[i] or 0)
        i += 1  # algoId
        what_if = o[i] in ("1", "True")
        return Extras(trail_stop, trailing_pct, what_if, oca_type)
    except (IndexError, ValueError):
        return Extras()


@dataclass
class Working:
    """Matching state of one order: trigger and trail bookkeeping."""

    extras: Extras
    triggered: bool = False
    extreme: float | None = None  # best price seen since placement (TRAIL)


def _is_buy(spec: OrderSpec) -> bool:
    return spec.action.upper() == "BUY"


def _stop_price(spec: OrderSpec, w: Working, q: Quote, tick: float) -> float | None:
    buy = _is_buy(spec)
    if spec.orderType.startswith("TRAIL"):
        ref = q.last
        if w.extreme is None:
            w.extreme = ref
        w.extreme = min(w.extreme, ref) if buy else max(w.extreme, ref)
        if w.extras.trailing_percent:
            offset = w.extreme * w.extras.trailing_percent / 100.0
        elif spec.auxPrice:
            offset = spec.auxPrice
        elif w.extras.trail_stop_price is not None:
            return w.extras.trail_stop_price
        else:
            return None
        return round_to_tick(w.extreme + offset if buy else w.extreme - offset, tick)
    return spec.auxPrice


def fill(spec: OrderSpec, remaining: float, w: Working, q: Quote, inst: Instrument, slippage_ticks: int = 0):
    """(quantity, price) that fills now against ``q``, or None. Updates trigger/trail state in ``w``."""
    kind = spec.orderType.upper()
    if kind not in MATCHED_TYPES or remaining <= 0:
        return None
    buy = _is_buy(spec)
    tick = inst.min_tick
    if kind in ("STP", "STP LMT", "TRAIL", "TRAIL LIMIT") and not w.triggered:
        stop = _stop_price(spec, w, q, tick)
        if stop is None:
            return None
        if (buy and q.last >= stop) or (not buy and q.last <= stop):
            w.triggered = True
        else:
            return None
    touch = q.ask if buy else q.bid
    limited = kind in ("LMT", "STP LMT", "TRAIL LIMIT", "LOC")
    if limited:
        limit = spec.lmtPrice
        if kind == "TRAIL LIMIT" and limit is None:
            return None
        if limit is None or (buy and touch > limit + 1e-9) or (not buy and touch < limit - 1e-9):
            return None
    price = touch + (slippage_ticks * tick if buy else -slippage_ticks * tick)
    if limited and spec.lmtPrice is not None:
        price = min(price, spec.lmtPrice) if buy else max(price, spec.lmtPrice)
    size = q.ask_size if buy else q.bid_size
    qty = min(remaining, max(size, 1.0))
    return qty, round_to_tick(price, tick)


def commission(inst: Instrument, qty: float, price: float) -> float:
    """IBKR-Pro-like fixed commissions: stocks $0.005/share (min $1, max 1% of value), futures $2.25,
    options $0.65 per contract (min $1), FX 0.2 bp (min $2)."""
    value = abs(qty * price * inst.point_value)
    if inst.sec_type == "FUT":
        c = 2.25 * qty
    elif inst.sec_type == "OPT":
        c = max(0.65 * qty, 1.0)
    elif inst.sec_type == "CASH":
        c = max(value * 0.00002, 2.0)
    else:
        c = min(max(0.005 * qty, 1.0), value * 0.01) if value else 1.0
    return round(c, 4)


def initial_margin(inst: Instrument, qty: float, price: float) -> float:
    value = abs(qty * price * inst.point_value)
    rate = {"FUT": 0.06, "OPT": 1.0, "CASH": 0.03}.get(inst.sec_type, 0.25)
    return round(value * rate, 2)
