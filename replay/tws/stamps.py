"""Receipt stamps for recording a simulated session: time from the simulated clock, never the machine's.

A recording takes ``(recv_ns, mono_ns)`` for every callback it receives. Against the simulator those
come from here (``open_session(..., clock=sim.recording_clock())``): each stamp is one microsecond after
the previous one, and never before the simulated instant the driver last synchronised to
(:meth:`SimStamps.sync`, called where nothing is in flight, e.g. after moving the market clock and a
round trip). So the stamps depend only on how many stamps were taken and where the driver synchronised,
never on when a message happened to be read: two runs with one seed that receive the same messages in
the same order record the same bytes.

Why not read the simulated clock at each stamp: the simulator moves its clock in its own thread (every
execution takes a simulated second), so a message read just before or just after such a move would be
stamped differently from run to run.

The monotonic part is the same value: the stamps only move forward.
"""

from __future__ import annotations

import threading

from replay.tws.broker import SimClock

__all__ = ["STEP_NS", "SimStamps"]

#: how far each stamp moves past the previous one
STEP_NS = 1_000


class SimStamps:
    """A callable ``() -> (recv_ns, mono_ns)``, floored at the simulated instant of the last :meth:`sync`."""

    def __init__(self, clock: SimClock, step_ns: int = STEP_NS) -> None:
        self.clock = clock
        self.step_ns = step_ns
        self._floor = clock.epoch_ns()
        self._last = self._floor - step_ns
        self._lock = threading.Lock()  # stamps may be asked from the IB loop and from other threads

    def sync(self) -> int:
        """Move the floor to the simulated clock's instant now (call only when nothing is in flight)."""
        with self._lock:
            self._floor = max(self._floor, self.clock.epoch_ns())
            return self._floor

    def __call__(self) -> tuple[int, int]:
        with self._lock:
            now = max(self._floor, self._last + self.step_ns)
            self._last = now
        return now, now
