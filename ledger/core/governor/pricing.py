"""How the governor prices an order: which number counts as a price, per-security-type keys, multipliers.

Kept apart from the rules so the one definition of "a usable price" (finite, positive, not IB's unset
sentinel) serves the notional check, the market-price tables and the multiplier reader alike.
"""

from __future__ import annotations

import math
from typing import Any

# Contracts whose notional depends on a multiplier: never priced x1 by guess.
_NEEDS_MULTIPLIER = frozenset({"FUT", "OPT", "FOP", "FWD", "WAR", "IOPT"})
# Order types whose aux price is a trigger price (a fair estimate of where they execute); for the others
# (TRAIL: a trailing amount, REL: an offset...) the aux price is not a price at all.
_AUX_IS_PRICE = frozenset({"STP", "STP PRT", "MIT", "STP LMT", "LIT"})
# ib_insync / ib_async fill unset prices with IB's UNSET_DOUBLE (sys.float_info.max): a finite number
# that is no price. Anything this large is treated as "not set".
_NO_PRICE_ABOVE = 1e300

_INF = math.inf


def _finite(x: float | None) -> bool:
    cls = x.__class__
    return (cls is float or cls is int) and -_INF < x < _INF  # type: ignore[operator]


def _price_set(x: float | None) -> bool:
    """A usable price: a finite positive number that is not IB's unset sentinel."""
    return _finite(x) and 0 < x < _NO_PRICE_ABOVE  # type: ignore[operator]


def _sym_key(symbol: str, sec_type: str) -> str:
    """Prices by symbol are kept per security type: an AAPL option is never priced at AAPL stock."""
    return f"{symbol.upper()}|{(sec_type or 'STK').upper()}"


def _as_multiplier(raw: Any) -> float | None:
    if raw in (None, ""):
        return None
    try:
        m = float(raw)
    except (TypeError, ValueError):
        return None
    return m if math.isfinite(m) and 0 < m < _NO_PRICE_ABOVE else None
