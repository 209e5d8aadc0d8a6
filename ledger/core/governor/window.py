"""A sliding count of event times: the rate limits and the circuit breakers both ask "n within a span?".

Times come from events (``recv_ns``), never from a clock, so a replay counts exactly as live did.
"""

from __future__ import annotations

from collections import deque


class _Window:
    """The last ``n`` event times: "n within ``span_ns``" is one comparison (O(1), memory O(n))."""

    __slots__ = ("n", "span", "times")

    def __init__(self, n: int, span_ns: int) -> None:
        self.n = n
        self.span = span_ns
        self.times: deque[int] = deque(maxlen=max(n, 1))

    def full_at(self, now_ns: int) -> bool:
        """Would one more event at ``now_ns`` exceed the limit (``n`` already inside the window)?"""
        t = self.times
        return self.n > 0 and len(t) == self.n and t[0] > now_ns - self.span

    def count_at(self, now_ns: int) -> int:
        lo = now_ns - self.span
        return sum(1 for x in self.times if x > lo)

    def add(self, ns: int) -> bool:
        """Record an event; True when ``n`` events now fall within the window ending at ``ns``."""
        if self.n <= 0:
            return False
        t = self.times
        t.append(ns)
        return len(t) == self.n and t[0] > ns - self.span

    def clear(self) -> None:
        self.times.clear()
