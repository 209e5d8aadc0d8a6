"""The live layer's own error: raised where recording itself failed, never for what the broker did."""

from __future__ import annotations

__all__ = ["RecorderError"]


class RecorderError(RuntimeError):
    """The recorder could not record everything (queue full, store failure, lost events)."""
