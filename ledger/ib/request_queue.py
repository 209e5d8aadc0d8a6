"""The client's request throttle: sending a request ahead of it, and taking back placements still in it.

ib_insync / ib_async send at most ``MaxRequests`` requests per ``RequestsInterval`` and queue the rest
(``client._msgQ``: serialized requests, fields joined by NUL). A kill switch must not wait behind that
queue, and a placement still in it was never sent, so it can be dropped instead of cancelled.
"""

from __future__ import annotations

from typing import Any

__all__ = ["send_ahead", "take_unsent_placements"]

_PLACE_ORDER_MSG = "3"  # the TWS API message id of PLACE_ORDER (first field of a queued request)


def take_unsent_placements(client: Any) -> list[int]:
    """Remove PLACE_ORDER requests still waiting in the client's throttle queue; return their order ids.

    Both libraries queue serialized requests (``client._msgQ``, fields joined by NUL) when more than
    ``MaxRequests`` went out within ``RequestsInterval``: those are not sent yet, so dropping them sends
    nothing. Other queued requests (market data, queries) stay queued in their order."""
    q = getattr(client, "_msgQ", None)
    if not q:
        return []
    dropped: list[int] = []
    keep = []
    for msg in list(q):
        fields = msg.split("\0")
        if fields and fields[0] == _PLACE_ORDER_MSG and len(fields) > 1:
            try:
                dropped.append(int(fields[1]))
                continue
            except ValueError:
                pass
        keep.append(msg)
    q.clear()
    q.extend(keep)
    return dropped


def send_ahead(client: Any, send: Any) -> Any:
    """Run ``send()`` (a library cancel call) so its request leaves now, ahead of the throttle queue.

    The queue is set aside while the call runs with throttling off, then put back as it was (it keeps
    draining at the library's pace)."""
    q = getattr(client, "_msgQ", None)
    if q is None or not hasattr(client, "MaxRequests"):
        return send()
    waiting = list(q)
    q.clear()
    had = client.__dict__.get("MaxRequests", None)
    client.MaxRequests = 0  # 0 = no throttling, for this one call
    try:
        return send()
    finally:
        if had is None:
            del client.MaxRequests
        else:
            client.MaxRequests = had
        q.extend(waiting)
