"""Market prices for the governor: which ticks count as a price, and how few of them are worth keeping.

The strategy's own market-data subscription already brings prices to the client (the wrapper's tick
callbacks). The recorder turns some of them into ``price_observed`` events, so a market order is priced
from the ledger itself -- live and, identically, in replay. A busy feed sends many ticks per second; the
:class:`PriceSampler` keeps at most one per contract per interval and only when the price moved by more
than a fraction since the last kept one, so the store grows with price *changes*, not with the feed.

Pure: no IB library, no clock (the caller passes its receipt stamp).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from ledger.core import events as ev

__all__ = ["DELAYED_DATA_CODES", "PRICE_TICKS", "PriceSampler", "observation", "tick_price"]

# tick type -> the name recorded (live and delayed variants). Only prices one could trade near: not
# open / high / low / 52-week figures.
PRICE_TICKS: dict[int, str] = {
    1: "bid", 2: "ask", 4: "last", 9: "close", 37: "mark",
    66: "bid", 67: "ask", 68: "last", 75: "close", 79: "mark",
}  # fmt: skip
_DELAYED = frozenset({66, 67, 68, 75, 79})

# errors that mean "no live market data for this account / contract": ask again for delayed data
# (reqMarketDataType 3, then 4 = delayed-frozen)
DELAYED_DATA_CODES = frozenset({10089, 354, 10167, 10168})

_NO_PRICE_ABOVE = 1e300  # IB's UNSET_DOUBLE (sys.float_info.max) is no price


def tick_price(price: Any) -> float | None:
    """``price`` as a usable price, or None (unset sentinel, -1 "no data", NaN, inf, zero)."""
    try:
        p = float(price)
    except (TypeError, ValueError):
        return None
    return p if math.isfinite(p) and 0 < p < _NO_PRICE_ABOVE else None


def observation(
    contract: Any, tick_type: int, price: Any, market_data_type: int = 0, origin: str = "tick"
) -> ev.PriceObserved | None:
    """The event for one price tick on ``contract`` (a library Contract), or None if it is no price."""
    name = PRICE_TICKS.get(tick_type)
    p = tick_price(price)
    if name is None or p is None or contract is None:
        return None
    mdt = market_data_type or (3 if tick_type in _DELAYED else 1)
    return ev.PriceObserved(
        con_id=int(getattr(contract, "conId", 0) or 0),
        symbol=str(getattr(contract, "symbol", "") or "").upper(),
        sec_type=str(getattr(contract, "secType", "") or ""),
        price=p,
        tick=name,
        tick_type=int(tick_type),
        market_data_type=int(mdt),
        origin=origin,
    )


class _Kept(msgspec.Struct):
    price: float
    mono_ns: int


class PriceSampler:
    """Which observations to keep: per contract, at most one per ``interval_s`` and only on a move of more
    than ``move`` (a fraction) since the last kept one. The first one per contract is always kept."""

    def __init__(self, interval_s: float = 1.0, move: float = 0.0005) -> None:
        self.interval_ns = int(interval_s * 1e9)
        self.move = move
        self._last: dict[tuple[int, str], _Kept] = {}
        self.seen = 0
        self.kept = 0

    def keep(self, obs: ev.PriceObserved, mono_ns: int) -> bool:
        self.seen += 1
        key = (obs.con_id, obs.symbol if not obs.con_id else "")
        last = self._last.get(key)
        if last is not None:
            if mono_ns - last.mono_ns < self.interval_ns:
                return False
            if abs(obs.price - last.price) <= self.move * last.price:
                return False
        self._last[key] = _Kept(obs.price, mono_ns)
        self.kept += 1
        return True
