"""A governor session for tests: records like the live recorder (intent, then its decision, every event
processed), so a test states orders and broker events and reads the decisions back (not collected)."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.engine import Engine, event_id
from ledger.core.events import GovernorDecision
from ledger.core.governor_config import GovernorConfig, parse_config

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
SEC = 1_000 * MS


class Session:
    """Records like the live recorder: intent, then decision (causation = intent), every event processed."""

    def __init__(self, config: GovernorConfig | str | None = None, sid: str = "s1", client_id: int = 1) -> None:
        if isinstance(config, str):
            config = parse_config(config)
        self.engine = Engine(config)
        self.sid = sid
        self.seq = 0
        self.ns = T0
        self.recorded: list[ev.Envelope] = []
        self.emitted: list[GovernorDecision] = []  # decisions returned by process (breakers...)
        self.perm = 5000
        self.event(ev.SessionStarted(library="test", library_version="0", client_id=client_id))
        self.event(ev.Connected(host="127.0.0.1", port=7497, client_id=client_id))

    def event(self, p: ev.Event, dt_ms: float = 10, causation: str | None = None) -> list[GovernorDecision]:
        self.ns += int(dt_ms * MS)
        self.seq += 1
        env = ev.envelope(self.sid, self.seq, p, recv_ns=self.ns, causation_id=causation)
        self.recorded.append(env)
        out = self.engine.process(env)
        for d in out:
            self.emitted.append(d)
            self.event(d, 0, event_id(env))
        return out

    def intent(self, p: ev.PlaceOrder | ev.CancelOrder, dt_ms: float = 10) -> GovernorDecision:
        d = self.engine.pre_check(p, self.ns + int(dt_ms * MS))
        self.event(p, dt_ms)
        self.event(d, 0, event_id(self.recorded[-1]))
        return d

    def place(
        self,
        oid: int,
        qty: float = 10,
        price: float | None = 100.0,
        symbol: str = "AAPL",
        action: str = "BUY",
        dt_ms: float = 10,
        **kw: object,
    ) -> GovernorDecision:
        order_type = kw.pop("order_type", "LMT" if price is not None else "MKT")
        return self.intent(
            ev.PlaceOrder(
                order_id=oid,
                client_id=1,
                symbol=symbol,
                action=action,
                total_qty=qty,
                order_type=order_type,
                lmt_price=price,
                account="DU1",
                **kw,
            ),  # type: ignore[arg-type]
            dt_ms,
        )

    def status(self, oid: int, status: str, filled: float = 0.0, dt_ms: float = 10) -> list[GovernorDecision]:
        return self.event(
            ev.OrderStatus(order_id=oid, client_id=1, status=status, filled=filled, perm_id=self.perm + oid), dt_ms
        )

    def fill(self, oid: int, shares: float, price: float, symbol: str = "AAPL", side: str = "BOT") -> None:
        self.event(
            ev.ExecDetails(
                exec_id=f"e{oid}.{self.seq}.01",
                order_id=oid,
                client_id=1,
                perm_id=self.perm + oid,
                shares=shares,
                price=price,
                symbol=symbol,
                side=side,
                account="DU1",
            )
        )

    def live(self, oid: int, **kw: object) -> GovernorDecision:
        d = self.place(oid, **kw)  # type: ignore[arg-type]
        if d.decision == "ALLOW":
            self.status(oid, "Submitted")
        return d


def blocked(d: GovernorDecision, reason: str) -> None:
    assert d.decision == "BLOCK", d
    assert d.reason == reason, d
