"""The one code path that folds events and runs the governor, live and in replay."""

from __future__ import annotations

from ledger.events import Envelope, GovernorDecision
from ledger.governor import Governor, Intent
from ledger.governor_config import GovernorConfig
from ledger.orders import LedgerFold


def event_id(env: Envelope) -> str:
    """The id other events refer to (causation_id / correlation_id): ``"<session_id>#<seq>"``."""
    return f"{env.session_id}#{env.seq}"


class Engine:
    def __init__(self, config: GovernorConfig | None = None) -> None:
        self.fold = LedgerFold()
        self.governor = Governor(config, self.fold)

    @property
    def config(self) -> GovernorConfig:
        return self.governor.config

    @property
    def trading_state(self) -> str:
        return self.governor.trading_state

    def process(self, env: Envelope) -> list[GovernorDecision]:
        transitions = self.fold.apply(env)
        return self.governor.observe(env, transitions)

    def pre_check(self, intent: Intent, now_ns: int) -> GovernorDecision:
        return self.governor.pre_check(intent, now_ns)
