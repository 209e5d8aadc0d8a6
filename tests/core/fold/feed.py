"""Envelopes for the fold's per-module tests: one session, gapless seq, 1 ms apart."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold import LedgerFold


class Feed:
    """A fold plus the numbering of its envelopes; ``env(p)`` makes the next envelope without applying it."""

    def __init__(self, session: str = "S1") -> None:
        self.fold = LedgerFold()
        self.session = session
        self.seq = 0
        self(ev.SessionStarted(library="test", library_version="0", client_id=1, account="DU1"))

    def env(self, p: ev.Event) -> Envelope:
        self.seq += 1
        return Envelope(
            session_id=self.session, seq=self.seq, recv_ns=1_000_000_000 + self.seq * 1_000_000, mono_ns=0,
            source="live", payload=p,
        )

    def __call__(self, *payloads: ev.Event) -> list:
        out: list = []
        for p in payloads:
            out += self.fold.apply(self.env(p))
        return out


def place(oid: int = 1, qty: float = 100.0) -> ev.PlaceOrder:
    return ev.PlaceOrder(
        order_id=oid, client_id=1, account="DU1", symbol="AAPL", sec_type="STK", con_id=265598, action="BUY",
        total_qty=qty, order_type="LMT", lmt_price=10.0,
    )


def status(s: str, oid: int = 1, perm: int = 501, filled: float = 0.0, qty: float = 100.0) -> ev.OrderStatus:
    return ev.OrderStatus(order_id=oid, client_id=1, perm_id=perm, status=s, filled=filled, remaining=qty - filled)


def execd(eid: str, shares: float, price: float = 10.0, oid: int = 1, perm: int = 501) -> ev.ExecDetails:
    return ev.ExecDetails(
        exec_id=eid, order_id=oid, client_id=1, perm_id=perm, shares=shares, price=price, side="BOT",
        account="DU1", symbol="AAPL", sec_type="STK", con_id=265598,
    )
