"""Recorded live sessions against the simulator for the placement, monitor and demo tests."""

from __future__ import annotations

import asyncio
import tomllib

from ledger.ib.library import LimitOrder, Stock
from ledger.ib.settings import resolve
from ledger.live.placement import open_session
from replay.tws.scenarios import parse_document
from replay.tws.simulator import Simulator

ACCOUNT = "DU1234567"


def scenarios(text: str):
    """Scenarios written inline in the documented TOML format."""
    return parse_document(tomllib.loads(text), "test")


def settings_for(sim: Simulator, account: str = ACCOUNT, client_id: int = 1):
    return resolve(host="127.0.0.1", port=sim.port, client_id=client_id, account=account, env={})


def run_session(sim: Simulator, store, body, *, account: str = ACCOUNT, **kw):
    """``await body(session)`` inside a recorded session connected to ``sim``; returns its result."""

    async def main():
        async with open_session(settings_for(sim, account), store, **kw) as sess:
            return await body(sess)

    return asyncio.run(main())


def stock(symbol: str = "AAPL"):
    return Stock(symbol, "SMART", "USD")


def limit(action: str, qty: float, price: float = 100.0, ref: str = ""):
    return LimitOrder(action, qty, price, orderRef=ref)
