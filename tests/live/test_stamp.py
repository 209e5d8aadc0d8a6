"""Receipt stamps: a callback's stamp covers everything recorded while it is handled, and nests."""

from __future__ import annotations

import time

from ledger.live.stamp import Stamps


def test_outside_a_callback_the_stamp_is_the_clock():
    s = Stamps()
    before = time.time_ns()
    recv_ns, mono_ns = s.now()
    assert before <= recv_ns <= time.time_ns() and mono_ns > 0 and not s.in_callback


def test_inside_a_callback_everything_carries_its_stamp_and_nesting_restores_the_outer_one():
    s = Stamps()
    with s.at(100, 7):
        assert s.now() == (100, 7) and s.in_callback
        with s.at(200, 8):
            assert s.now() == (200, 8)
        assert s.now() == (100, 7)
    assert s.ctx is None


def test_the_stamp_is_restored_when_recording_raises():
    s = Stamps()
    try:
        with s.at(1, 1):
            raise ValueError("boom")
    except ValueError:
        pass
    assert s.ctx is None
