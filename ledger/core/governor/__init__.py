"""The risk governor as a package; the names other modules import live here so callers never change.

The decisions themselves are made by :class:`~ledger.core.governor.governor.Governor` (pure and
deterministic: time and ids come from events): its pre-trade check runs the rules of
:mod:`~ledger.core.governor.rules`, one function per row of the README's "Rules" table, in that order;
the reason codes live in :mod:`~ledger.core.governor.reasons`, prices and multipliers in
:mod:`~ledger.core.governor.pricing`, the rate and breaker windows in :mod:`~ledger.core.governor.window`.
"""

from ledger.core.governor.governor import OBSERVERS, Governor, Intent, is_precheck
from ledger.core.governor.reasons import (
    ACTIVE,
    BLOCK_REASONS,
    DERIVED_REASONS,
    HALTED,
    INPUT_REASONS,
    MANUAL_HALT,
    MANUAL_REDUCING,
    MANUAL_RESUME,
    REDUCING,
)

__all__ = [
    "ACTIVE",
    "BLOCK_REASONS",
    "DERIVED_REASONS",
    "HALTED",
    "INPUT_REASONS",
    "MANUAL_HALT",
    "MANUAL_REDUCING",
    "MANUAL_RESUME",
    "OBSERVERS",
    "REDUCING",
    "Governor",
    "Intent",
    "is_precheck",
]
