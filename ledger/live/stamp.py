"""Receipt stamps: the one place the recorder reads the clock.

``recv_ns`` (wall clock) and ``mono_ns`` (monotonic) are taken when a callback arrives. Everything the
recorder adds while handling that callback (session start, connection, reconciliation brackets, faults,
governor decisions) carries the callback's stamp rather than a later reading, so stamps never go
backwards along the seqs of one thread and a replay sees the same times the governor decided at.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

__all__ = ["Clock", "Stamps", "wall_clock"]

#: ``() -> (recv_ns, mono_ns)``: wall-clock nanoseconds since the epoch and monotonic nanoseconds
Clock = Callable[[], tuple[int, int]]


def wall_clock() -> tuple[int, int]:
    """The machine's clocks: the default receipt stamp (the fold, the governor and replay never read a
    clock; they take time from the events)."""
    return time.time_ns(), time.monotonic_ns()


class Stamps:
    """The stamp of the callback being recorded, if any (``ctx``); else the clock's.

    ``clock`` is the machine's (:func:`wall_clock`) unless a simulated session gives its own, so two runs
    with one seed record the same bytes.
    """

    __slots__ = ("clock", "ctx")

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or wall_clock
        self.ctx: tuple[int, int] | None = None  # (recv_ns, mono_ns) of the callback being recorded

    def now(self) -> tuple[int, int]:
        """The receipt stamp: the triggering callback's while one is being recorded, else now."""
        ctx = self.ctx
        if ctx is not None:
            return ctx
        return self.clock()

    @property
    def in_callback(self) -> bool:
        """A callback (or a record call) is being handled on this recorder right now."""
        return self.ctx is not None

    @contextlib.contextmanager
    def at(self, recv_ns: int, mono_ns: int) -> Iterator[None]:
        """Everything recorded inside the block carries this stamp (restored afterwards, so it nests)."""
        prev = self.ctx
        self.ctx = (recv_ns, mono_ns)
        try:
            yield
        finally:
            self.ctx = prev
