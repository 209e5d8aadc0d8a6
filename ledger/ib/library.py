"""The one module that imports an IB client library.

ib_insync (archived) and ib_async (its maintained fork) expose the same public names but cannot share
one environment (both ship ``eventkit``), so everything else imports the library from here.
``IBLEDGER_IB_LIB=ib_async`` (or ``ib_insync``) forces one; otherwise ib_insync is preferred, then
ib_async.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def _load() -> ModuleType:
    wanted = os.environ.get("IBLEDGER_IB_LIB", "").strip()
    candidates = [wanted] if wanted else ["ib_insync", "ib_async"]
    errors: list[str] = []
    for name in candidates:
        if name not in ("ib_insync", "ib_async"):
            raise ImportError(f"IBLEDGER_IB_LIB={name!r}: expected 'ib_insync' or 'ib_async'")
        try:
            return importlib.import_module(name)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            errors.append(f"{name}: {exc}")
    raise ImportError(
        "no IB client library found (" + "; ".join(errors) + "); install ib_insync==0.9.86 or ib_async>=2.1,<3"
    )


ib = _load()
LIBRARY_NAME: str = ib.__name__
LIBRARY_VERSION: str = getattr(ib, "__version__", "unknown")

IB = ib.IB
Contract = ib.Contract
Stock = ib.Stock
Order = ib.Order
LimitOrder = ib.LimitOrder
MarketOrder = ib.MarketOrder
Trade = ib.Trade
ExecutionFilter = ib.ExecutionFilter
util = ib.util
