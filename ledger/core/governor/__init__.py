"""The risk governor as a package; the names other modules import live here so callers never change.

The decisions themselves are made by :class:`~ledger.core.governor.governor.Governor` (pure and
deterministic: time and ids come from events).
"""

from ledger.core.governor.governor import (
    ACTIVE,
    BLOCK_REASONS,
    DERIVED_REASONS,
    HALTED,
    INPUT_REASONS,
    MANUAL_HALT,
    MANUAL_REDUCING,
    MANUAL_RESUME,
    REDUCING,
    Governor,
    Intent,
    is_precheck,
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
    "REDUCING",
    "Governor",
    "Intent",
    "is_precheck",
]
