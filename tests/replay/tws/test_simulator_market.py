"""The seeded market seen through the real client: quotes, streaming, delayed data, history, bars."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.market import BarsFileError, load_bars
from replay.tws.simulator import Simulator
from tests.support.simulator import connected, wait_until

pytestmark = pytest.mark.ibclient

AAPL = iblib.Stock("AAPL", "SMART", "USD", conId=265598)


@pytest.fixture
def sim():
    with Simulator(seed=7) as s:
        yield s


@pytest.fixture
def ib(sim: Simulator):
    with connected(sim.port, client_id=31) as client:
        yield client


def _on_tick(price: float, tick: float) -> bool:
    return abs(price / tick - round(price / tick)) < 1e-6


def test_snapshot_quote_is_a_sane_market(ib):
    [t] = ib.reqTickers(AAPL)
    assert t.bid > 0 and t.ask > t.bid and t.last in (t.bid, t.ask)
    assert _on_tick(t.bid, 0.01) and _on_tick(t.ask, 0.01)
    assert t.bidSize > 0 and t.askSize > 0
    assert abs(t.bid / 185.0 - 1) < 0.05  # the walk starts at the catalogue's price
    assert not math.isnan(t.high) and t.low <= t.high


def test_same_seed_same_quotes_other_seed_other_quotes():
    quotes = []
    for seed in (7, 7, 8):
        with Simulator(seed=seed) as s:
            with connected(s.port, client_id=1) as c:
                s.advance(30)
                [t] = c.reqTickers(AAPL)
                quotes.append((t.bid, t.ask, t.bidSize, t.askSize, t.last))
    assert quotes[0] == quotes[1]
    assert quotes[0] != quotes[2]


def test_streaming_follows_the_clock(sim: Simulator, ib):
    ticker = ib.reqMktData(AAPL)
    assert wait_until(ib, lambda: ticker.bid > 0)
    seen = set()
    for _ in range(20):
        sim.advance(30)
        ib.sleep(0.02)
        seen.add(ticker.last)
    assert wait_until(ib, lambda: ticker.time is not None)
    assert len(seen) > 3  # the price moves
    ib.cancelMktData(AAPL)
    ib.sleep(0.05)
    before = ticker.last
    pushed = sim.advance(60)
    assert pushed == 0 and ticker.last == before


def test_market_data_type_3_sends_delayed_ticks(sim: Simulator, ib):
    ib.reqMarketDataType(3)
    [t] = ib.reqTickers(AAPL)
    assert t.marketDataType == 3
    assert t.bid > 0 and t.ask > t.bid
    delayed = [f for d, _c, f in sim.wire_log if d == "out" and f[0] == "1"]
    assert delayed and {int(f[3]) for f in delayed} <= {66, 67, 68, 72, 73, 75, 76}


def test_unknown_contract_market_data_is_error_200(ib):
    errors = []
    ib.errorEvent += lambda *a: errors.append(a[1])
    # through the client's encoder: ib_async refuses to key a ticker on a contract without conId
    ib.client.reqMktData(ib.client.getReqId(), iblib.Stock("NOSUCH", "SMART", "USD"), "", False, False, [])
    assert wait_until(ib, lambda: 200 in errors)


def test_history_bars_come_from_one_path(ib):
    five = ib.reqHistoricalData(AAPL, "", "1 D", "5 mins", "TRADES", True)
    hourly = ib.reqHistoricalData(AAPL, "", "1 D", "1 hour", "TRADES", True)
    assert len(five) == 78  # one regular session of 6.5 hours
    assert isinstance(five[0].date, datetime) and five[0].date.hour == 9 and five[0].date.minute == 30
    for b in five:
        assert b.low <= min(b.open, b.close) <= max(b.open, b.close) <= b.high and b.volume > 0
    first_hour = [b for b in five if b.date < hourly[1].date]
    assert hourly[0].open == first_hour[0].open
    assert hourly[0].high == max(b.high for b in first_hour)
    assert hourly[0].low == min(b.low for b in first_hour)
    daily = ib.reqHistoricalData(AAPL, "", "10 D", "1 day", "TRADES", True)
    assert len(daily) == 6 and all(b.volume > 0 for b in daily)  # weekdays only


def test_history_refuses_a_bad_bar_size(ib):
    errors = []
    ib.errorEvent += lambda *a: errors.append(a[1])
    assert len(ib.reqHistoricalData(AAPL, "", "1 D", "7 fortnights", "TRADES", True)) == 0
    assert wait_until(ib, lambda: 162 in errors)


def test_keep_up_to_date_and_real_time_bars(sim: Simulator, ib):
    bars = ib.reqHistoricalData(AAPL, "", "1 D", "1 min", "TRADES", False, keepUpToDate=True)
    n = len(bars)
    updates = []
    bars.updateEvent += lambda b, has_new: updates.append(has_new)
    rt = ib.reqRealTimeBars(AAPL, 5, "TRADES", False)
    ib.sleep(0.05)
    sim.advance(125)
    assert wait_until(ib, lambda: len(rt) >= 25 and len(bars) >= n + 2)
    assert [b.time for b in rt[:2]][1].timestamp() - rt[0].time.timestamp() == 5
    assert updates


def test_head_timestamp(ib):
    head = ib.reqHeadTimeStamp(AAPL, "TRADES", True)
    assert isinstance(head, datetime) and head.year == 2023


def test_a_running_clock_streams_by_itself():
    with Simulator(seed=3, market_speed=200) as s:
        with connected(s.port, client_id=2) as c:
            ticker = c.reqMktData(AAPL)
            times = set()
            assert wait_until(c, lambda: (times.add(ticker.time), len(times) > 5)[1], timeout=10)


def test_bars_file_drives_the_path(tmp_path: Path):
    path = tmp_path / "AAPL.csv"
    rows = ["time,open,high,low,close,volume"]
    start = 1704205800  # 2024-01-02 09:30 US/Eastern
    price = 190.0
    for i in range(30):
        rows.append(f"{start + 60 * i},{price},{price + 0.5},{price - 0.25},{price + 0.1},{1000 + i}")
        price += 0.1
    path.write_text("\n".join(rows) + "\n")
    bars = load_bars(path)
    with Simulator(seed=1, bars=bars) as s:
        with connected(s.port, client_id=3) as c:
            s.advance(30 * 60)
            got = c.reqHistoricalData(AAPL, "", "1800 S", "1 min", "TRADES", True)
            assert len(got) == 30
            assert [(b.open, b.high, b.low, b.close) for b in got[:2]] == [
                (190.0, 190.5, 189.75, 190.1),
                (190.1, 190.6, 189.85, 190.2),
            ]
            assert c.reqHeadTimeStamp(AAPL, "TRADES", True).timestamp() == start


def test_bad_bars_file_says_where(tmp_path: Path):
    bad = tmp_path / "x.csv"
    bad.write_text("time,open,high,low,close\n1704205800,10,9,8,9.5\n")
    with pytest.raises(BarsFileError, match=r"x.csv row 2: high/low do not contain"):
        load_bars(bad)
    bad.write_text("time,open,high\n1,2,3\n")
    with pytest.raises(BarsFileError, match="missing low, close"):
        load_bars(bad)
