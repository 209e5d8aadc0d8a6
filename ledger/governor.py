"""Risk governor (pass-through placeholder: always ALLOW). The real rules replace this shortly."""

from __future__ import annotations

from ledger import events as ev
from ledger.events import Envelope, GovernorDecision
from ledger.governor_config import GovernorConfig, default_config
from ledger.orders import LedgerFold, Transition

Intent = ev.PlaceOrder | ev.ModifyOrder | ev.CancelOrder


class Governor:
    def __init__(self, config: GovernorConfig | None, fold: LedgerFold) -> None:
        self.config = config or default_config()
        self.fold = fold
        self.trading_state = self.config.state.initial

    def observe(self, env: Envelope, transitions: list[Transition]) -> list[GovernorDecision]:
        return []

    def pre_check(self, intent: Intent, now_ns: int) -> GovernorDecision:
        action = "cancel" if isinstance(intent, ev.CancelOrder) else (
            "modify" if isinstance(intent, ev.ModifyOrder) else "place")
        return GovernorDecision(
            decision="ALLOW", reason="OK", action=action, order_id=intent.order_id,
            client_id=intent.client_id, symbol=getattr(intent, "symbol", ""),
            trading_state=self.trading_state,  # type: ignore[arg-type]
        )
