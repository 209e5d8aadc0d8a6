"""The receipt clock: what a recorded event's ``recv_ns`` / ``mono_ns`` are read from.

Only the live layers read it, when a callback arrives; the fold, the governor and replay never do (they
take time from the events). A simulated session passes its own clock instead of :func:`wall_clock`, so
two runs with one seed record the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Clock", "wall_clock"]

#: ``() -> (recv_ns, mono_ns)``: wall-clock nanoseconds since the epoch and monotonic nanoseconds
Clock = Callable[[], tuple[int, int]]


def wall_clock() -> tuple[int, int]:
    """The machine's clocks: the default receipt stamp."""
    return time.time_ns(), time.monotonic_ns()
