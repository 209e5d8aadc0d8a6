"""Which ticks become price observations, and the sampler that keeps a busy feed out of the store."""

from __future__ import annotations

import math
import sys

from hypothesis import given
from hypothesis import strategies as st

from ledger.core.prices import PriceSampler, observation, tick_price
from ledger.ib.library import Stock

SEC = 1_000_000_000


def contract():
    c = Stock("AAPL", "SMART", "USD")
    c.conId = 265598
    return c


def test_only_prices_one_could_trade_near_are_observations():
    c = contract()
    assert observation(c, 4, 187.5).tick == "last"
    assert observation(c, 68, 187.5).market_data_type == 3  # a delayed last
    assert observation(c, 1, 187.4, 4).market_data_type == 4
    assert observation(c, 6, 190.0) is None  # the day's high is no price to trade at
    for bad in (sys.float_info.max, -1.0, 0.0, math.nan, math.inf, None, "x"):
        assert observation(c, 4, bad) is None
        assert tick_price(bad) is None
    assert observation(None, 4, 1.0) is None


def test_sampler_keeps_one_per_interval_and_only_on_a_move():
    s = PriceSampler(interval_s=1.0, move=0.001)
    o = lambda p: observation(contract(), 4, p)  # noqa: E731
    assert s.keep(o(100.0), 0)
    assert not s.keep(o(120.0), SEC // 2)  # a big move, but within the interval
    assert not s.keep(o(100.05), 2 * SEC)  # the interval passed, but a move of 0.05 % only
    assert s.keep(o(100.2), 2 * SEC)  # 0.2 %: kept
    other = observation(Stock("MSFT", "SMART", "USD"), 4, 300.0)
    assert s.keep(other, 2 * SEC)  # per contract
    assert (s.seen, s.kept) == (5, 3)


@given(st.lists(st.tuples(st.integers(0, 10 * SEC), st.floats(1, 1000)), max_size=60))
def test_never_more_than_one_kept_per_contract_per_interval(ticks):
    s = PriceSampler(interval_s=1.0, move=0.0)
    kept = [t for t, p in sorted(ticks) if s.keep(observation(contract(), 4, p), t)]
    assert all(b - a >= SEC for a, b in zip(kept, kept[1:], strict=False))
    assert s.kept == len(kept) <= 11
