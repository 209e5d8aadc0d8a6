"""The public shape of a folded order and an anomaly: one field list for JSON output and the replay digest.

``ibledger orders --json``, ``ibledger replay --json`` and the replay digest all read :data:`ORDER_FIELDS`,
so the fields a user sees are exactly the fields a replay check compares.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ledger.core.fold import Anomaly, OrderView
from ledger.core.fold.views import ORDER_FIELDS, order_values

__all__ = ["ORDER_FIELDS", "anomaly_row", "order_row", "order_values"]



def order_row(o: OrderView) -> dict[str, Any]:
    """An order as a JSON-able dict of :data:`ORDER_FIELDS`."""
    return dict(zip(ORDER_FIELDS, msgspec.to_builtins(order_values(o)), strict=True))


def anomaly_row(a: Anomaly) -> dict[str, Any]:
    return msgspec.to_builtins(a)
