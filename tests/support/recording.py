"""Helpers shared by the recorder and reconciliation tests (not collected)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ledger.core import events as ev
from ledger.ib.library import LimitOrder, Stock
from ledger.store import open_store
from tests.support.simulator import wait_until

AAPL = Stock("AAPL", "SMART", "USD")


def buy_filled(ib: Any, qty: float, *, price: float = 100.0, ref: str = "fill_simple", timeout: float = 3.0) -> Any:
    """Buy ``qty`` AAPL at ``price`` through the real client under the simulator scenario ``ref`` (one
    that fills) and wait until the library reports it Filled; returns the trade."""
    trade = ib.placeOrder(AAPL, LimitOrder("BUY", qty, price, orderRef=ref))
    assert wait_for(ib, lambda: trade.orderStatus.status == "Filled", timeout)
    return trade


def wait_for(ib: Any, predicate: Callable[[], bool], timeout: float = 3.0) -> bool:
    """Run the client's loop until ``predicate()`` holds, waiting across a dropped connection."""
    return wait_until(ib, predicate, timeout, across_drops=True)


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Await inside a running loop until ``predicate()`` holds; the test fails if it never does."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on a fresh loop, leaving an open current loop behind for the blocking API
    (``asyncio.run`` would leave none, and ib_insync's blocking calls need one)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
        asyncio.set_event_loop(asyncio.new_event_loop())


def stored(url: str, session_id: str) -> list[ev.Envelope]:
    with open_store(url) as s:
        return list(s.read_session(session_id))
