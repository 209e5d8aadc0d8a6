"""The public shape of a folded order and an anomaly: one field list for JSON output and the replay digest.

``ibledger orders --json``, ``ibledger replay --json`` and the replay digest all read :data:`ORDER_FIELDS`,
so the fields a user sees are exactly the fields a replay check compares.
"""

from __future__ import annotations

import operator
from typing import Any

import msgspec

from ledger.core.fold import Anomaly, OrderView

ORDER_FIELDS: tuple[str, ...] = (
    "key", "perm_id", "order_id", "client_id", "account", "symbol", "action", "total_qty", "order_type",
    "lmt_price", "order_ref", "broker_status", "state", "overlay", "filled", "remaining", "avg_fill_price",
    "commission", "is_live", "is_done", "anomaly_count", "manual", "unconfirmed", "late_fill", "fill_pending",
)  # fmt: skip

order_values = operator.attrgetter(*ORDER_FIELDS)
"""The order's public fields as a tuple, in :data:`ORDER_FIELDS` order (what the replay digest hashes)."""


def order_row(o: OrderView) -> dict[str, Any]:
    """An order as a JSON-able dict of :data:`ORDER_FIELDS`."""
    return dict(zip(ORDER_FIELDS, msgspec.to_builtins(order_values(o)), strict=True))


def anomaly_row(a: Anomaly) -> dict[str, Any]:
    return msgspec.to_builtins(a)
