"""The loss count: every lost event is counted by kind; a burst is announced once and reported exactly."""

from __future__ import annotations

from ledger.live.journal import LossCount


def test_a_burst_is_announced_once_and_its_losses_are_reported_exactly():
    c = LossCount()
    assert c.count("order_status") is True  # first loss: tell the engine now
    assert c.count("order_status") is False
    assert c.count("execution") is False
    assert (c.total, c.by_kind, c.unreported) == (3, {"order_status": 2, "execution": 1}, 3)
    assert c.take_unreported() == 3 and c.unreported == 0
    assert c.take_unreported() == 0
    c.burst = False  # the store takes events again
    assert c.count("tick") is True
    assert (c.total, c.unreported) == (4, 1)


def test_after_the_session_stopped_losses_are_counted_but_never_reported_again():
    c = LossCount()
    assert c.count("order_status", report=False) is False
    assert (c.total, c.by_kind, c.unreported, c.burst) == (1, {"order_status": 1}, 0, False)
