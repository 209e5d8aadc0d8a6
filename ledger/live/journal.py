"""The recorder's count of what it could not record: lost events are counted, never silent.

A loss *burst* starts with the first event refused while the queue is full (the engine is told at
once, through the writer's reserve) and ends when the store takes events again; the events lost
since the previous report are then recorded in one ``RecorderFault`` with their exact number.
"""

from __future__ import annotations

import msgspec


class LossCount(msgspec.Struct):
    """Events lost in this session: in total, by event kind, and how many no ``RecorderFault`` told yet."""

    total: int = 0
    by_kind: dict[str, int] = msgspec.field(default_factory=dict)
    unreported: int = 0
    burst: bool = False

    def count(self, kind: str, *, report: bool = True) -> bool:
        """One event of ``kind`` lost. ``report=False`` once the session is over for good (told already).
        Returns True when this loss starts a burst (the moment to tell the engine)."""
        self.total += 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        if not report:
            return False
        self.unreported += 1
        started, self.burst = not self.burst, True
        return started

    def take_unreported(self) -> int:
        """The losses not yet reported, now being reported (the count restarts at zero)."""
        n, self.unreported = self.unreported, 0
        return n
