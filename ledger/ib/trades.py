"""The client library's own order objects: finding the one a ledger order stands for, and telling a
``Trade`` that its order never left the client."""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

__all__ = ["library_order", "mark_cancelled_locally"]


def library_order(ib: Any, view: Any) -> Any:
    """The library's ``Order`` for a ledger order (what ``cancelOrder`` takes), or a minimal one."""
    for t in ib.trades():
        o = t.order
        if (view.perm_id and o.permId == view.perm_id) or (
            o.orderId == view.order_id and o.clientId in (view.client_id, 0)
        ):
            return o
    from ledger.ib.library import Order

    return Order(orderId=view.order_id, clientId=view.client_id, permId=view.perm_id)


def mark_cancelled_locally(ib: Any, order_id: int, message: str) -> None:
    """Tell the strategy's ``Trade`` that an order that never left the client is cancelled (the library
    would otherwise show it PendingSubmit forever). Nothing is recorded here: the recorder did."""
    for trade in ib.trades():
        if trade.order.orderId == order_id and trade.orderStatus.status not in ("Cancelled", "Filled"):
            trade.orderStatus.status = "Cancelled"
            with contextlib.suppress(Exception):
                from ledger.ib.library import ib as library

                now = datetime.datetime.now(datetime.UTC)
                trade.log.append(library.TradeLogEntry(time=now, status="Cancelled", message=message))
            with contextlib.suppress(Exception):
                trade.cancelledEvent.emit(trade)
