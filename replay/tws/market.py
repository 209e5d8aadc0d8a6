"""A deterministic market: one price path per instrument, at one-second resolution, on the simulated clock.

Seeded paths are a random walk built in two levels so that any stretch can be computed without the
stretch before it: an hourly walk of anchor prices (cheap, one draw per hour), and inside each hour a
Brownian bridge between consecutive anchors (3600 draws, generated only when that hour is looked at).
Every draw comes from a generator seeded by (seed, conId, level, index), so the same seed gives the
same prices — and the same bytes on the wire — whatever was asked before. A bars file replaces the walk
for its symbols: the path runs open → high → low → close through each bar.

Quotes derive from the path: the mid rounded to the instrument's tick, a spread of a few ticks,
displayed sizes drawn from the same generators. No I/O, no wall clock.
"""

from __future__ import annotations

import csv
import math
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from replay.tws.catalogue import Instrument

HOUR = 3600
#: per-second volatility of log price (about 25% a year; the walk runs through nights and weekends)
SIGMA_PER_SECOND = 0.25 / math.sqrt(365 * 86_400)
BLOCK_HOURS = 1024


class BarsFileError(ValueError):
    """A bars file is wrong; the message names the file, the row and the problem."""


@dataclass(frozen=True)
class Quote:
    time: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float
    last: float
    last_size: float

    @property
    def mid(self) -> float:
        return (self.bid + self.ask) / 2


def round_to_tick(price: float, tick: float) -> float:
    if tick <= 0:
        return price
    digits = max(0, -math.floor(math.log10(tick)) + 2)
    return round(round(price / tick) * tick, digits)


def _rng(seed: int, con_id: int, level: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, con_id & 0xFFFFFFFF, level, index + (1 << 40)])


class WalkPath:
    """The seeded two-level walk for one instrument."""

    def __init__(self, inst: Instrument, seed: int, anchor: int, sigma: float = SIGMA_PER_SECOND) -> None:
        self.inst = inst
        self.seed = seed
        self.anchor = anchor - anchor % HOUR
        self.sigma = sigma
        self._log0 = math.log(inst.price)
        self._blocks: dict[int, np.ndarray] = {}  # block -> cumulative log offsets of its hours
        self._block_start: dict[int, float] = {0: 0.0}
        self._hours: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def _block(self, b: int) -> np.ndarray:
        steps = self._blocks.get(b)
        if steps is None:
            draws = _rng(self.seed, self.inst.con_id, 1, b).standard_normal(BLOCK_HOURS) * self.sigma * 60.0
            steps = self._blocks[b] = np.concatenate(([0.0], np.cumsum(draws)))
        return steps

    def _start_of_block(self, b: int) -> float:
        if b in self._block_start:
            return self._block_start[b]
        if b > 0:
            value = self._start_of_block(b - 1) + float(self._block(b - 1)[-1])
        else:
            value = self._start_of_block(b + 1) - float(self._block(b)[-1])
        self._block_start[b] = value
        return value

    def hour_log(self, h: int) -> float:
        """Log offset of the anchor at the start of hour ``h`` (hour 0 starts at the anchor)."""
        b, i = divmod(h, BLOCK_HOURS)
        return self._start_of_block(b) + float(self._block(b)[i])

    def _hour(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._hours.get(h)
        if cached is not None:
            self._hours.move_to_end(h)
            return cached
        rng = _rng(self.seed, self.inst.con_id, 2, h)
        w = np.cumsum(rng.standard_normal(HOUR) * self.sigma)
        start, end = self.hour_log(h), self.hour_log(h + 1)
        bridge = w - (np.arange(1, HOUR + 1) / HOUR) * (w[-1] - (end - start))
        logs = start + np.concatenate(([0.0], bridge[:-1]))
        prices = np.exp(self._log0 + logs)
        volumes = rng.integers(1, 11, HOUR).astype(float) * max(self.inst.size / 10.0, 1.0)
        self._hours[h] = (prices, volumes)
        if len(self._hours) > 256:
            self._hours.popitem(last=False)
        return prices, volumes

    def series(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        """(mid prices, traded volume) for every second in ``[t0, t1)``."""
        if t1 <= t0:
            return np.empty(0), np.empty(0)
        parts_p, parts_v = [], []
        t = t0
        while t < t1:
            h, offset = divmod(t - self.anchor, HOUR)
            prices, volumes = self._hour(h)
            take = min(HOUR - offset, t1 - t)
            parts_p.append(prices[offset : offset + take])
            parts_v.append(volumes[offset : offset + take])
            t += take
        return np.concatenate(parts_p), np.concatenate(parts_v)

    def first_time(self) -> int | None:
        return None


class BarsPath:
    """A path read from OHLCV bars: open → high → low → close through each bar, flat outside them."""

    def __init__(self, inst: Instrument, bars: list[tuple[int, float, float, float, float, float]]) -> None:
        if not bars:
            raise BarsFileError(f"no bars for {inst.symbol}")
        self.inst = inst
        self.bars = sorted(bars)
        self.times = np.array([b[0] for b in self.bars], dtype=np.int64)
        gaps = np.diff(self.times)
        self.bar_seconds = int(np.median(gaps)) if len(gaps) else 60

    def first_time(self) -> int | None:
        return int(self.times[0])

    def series(self, t0: int, t1: int) -> tuple[np.ndarray, np.ndarray]:
        n = max(t1 - t0, 0)
        prices = np.empty(n)
        volumes = np.zeros(n)
        span = self.bar_seconds
        k = 0
        while k < n:
            t = t0 + k
            i = int(np.searchsorted(self.times, t, side="right")) - 1
            if i < 0:
                nxt = int(self.times[0])
                take = min(nxt - t, n - k)
                prices[k : k + take] = self.bars[0][1]
                k += take
                continue
            start, o, h, low, c, v = self.bars[i]
            end = start + span
            if t >= end:
                nxt = int(self.times[i + 1]) if i + 1 < len(self.times) else t0 + n
                take = max(min(nxt - t, n - k), 1)
                prices[k : k + take] = c
                k += take
                continue
            take = min(end - t, n - k)
            last = span - 1
            knots = [0, last // 3, (2 * last) // 3, last]
            points = (o, h, low, c) if c >= o else (o, low, h, c)
            offsets = np.arange(t - start, t - start + take)
            prices[k : k + take] = np.interp(offsets, knots, points)
            volumes[k : k + take] = v / span
            k += take
        return prices, volumes


def _parse_time(text: str, where: str) -> int:
    s = text.strip()
    if s.isdigit():
        return int(s)
    for fmt in ("%Y%m%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y%m%d", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(s.replace("Z", ""), fmt).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    try:
        return int(datetime.fromisoformat(s).timestamp())
    except ValueError as exc:
        raise BarsFileError(f"{where}: time {text!r} is not epoch seconds or an ISO date-time") from exc


def load_bars(path: str | Path) -> dict[str, list[tuple[int, float, float, float, float, float]]]:
    """Bars by symbol from CSV (or Parquet when pyarrow is installed): time, open, high, low, close, volume
    and an optional symbol column (default: the file's stem)."""
    path = Path(path)
    rows: list[dict[str, object]]
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise BarsFileError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # noqa: BLE001 - pyarrow raises many types
            raise BarsFileError(f"{path}: cannot read Parquet ({exc})") from exc
    else:
        try:
            rows = list(csv.DictReader(path.read_text().splitlines()))
        except OSError as exc:
            raise BarsFileError(f"{path}: cannot read ({exc.strerror})") from exc
    out: dict[str, list[tuple[int, float, float, float, float, float]]] = {}
    for n, row in enumerate(rows, start=2):
        where = f"{path} row {n}"
        row = {str(k).strip().lower(): v for k, v in row.items()}
        missing = [k for k in ("time", "open", "high", "low", "close") if row.get(k) in (None, "")]
        if missing:
            raise BarsFileError(f"{where}: missing {', '.join(missing)} (columns: time,open,high,low,close,volume)")
        try:
            o, h, low, c = (float(row[k]) for k in ("open", "high", "low", "close"))  # type: ignore[arg-type]
            v = float(row.get("volume") or 0)  # type: ignore[arg-type]
        except ValueError as exc:
            raise BarsFileError(f"{where}: {exc}") from exc
        if not (low <= min(o, c) and h >= max(o, c)):
            raise BarsFileError(f"{where}: high/low do not contain open/close ({o}, {h}, {low}, {c})")
        t = row["time"]
        epoch = int(t.timestamp()) if isinstance(t, datetime) else _parse_time(str(t), where)
        symbol = str(row.get("symbol") or path.stem).upper()
        out.setdefault(symbol, []).append((epoch, o, h, low, c, v))
    return out


class Market:
    """Price paths for every instrument that is asked about, and the quotes and bars derived from them."""

    def __init__(
        self,
        seed: int = 1,
        anchor: int = 0,
        bars: dict[str, list[tuple[int, float, float, float, float, float]]] | None = None,
    ) -> None:
        self.seed = seed
        self.anchor = anchor
        self.bars = bars or {}
        self._paths: dict[int, WalkPath | BarsPath] = {}

    def path(self, inst: Instrument) -> WalkPath | BarsPath:
        p = self._paths.get(inst.con_id)
        if p is None:
            rows = self.bars.get(inst.symbol.upper())
            p = BarsPath(inst, rows) if rows else WalkPath(inst, self.seed, self.anchor)
            self._paths[inst.con_id] = p
        return p

    def quote(self, inst: Instrument, t: int) -> Quote:
        prices, volumes = self.path(inst).series(t, t + 1)
        mid = float(prices[0])
        tick = inst.min_tick
        spread_ticks = max(1, round(mid * 0.0002 / tick)) if tick > 0 else 1
        bid = round_to_tick(mid - spread_ticks * tick / 2, tick)
        ask = round_to_tick(bid + spread_ticks * tick, tick)
        rng = _rng(self.seed, inst.con_id, 3, t - self.anchor)
        lot = max(inst.size / 3.0, 1.0)
        sizes = rng.integers(1, 7, 3)
        last = ask if rng.random() < 0.5 else bid
        return Quote(
            time=t,
            bid=bid,
            ask=ask,
            bid_size=float(sizes[0] * lot),
            ask_size=float(sizes[1] * lot),
            last=last,
            last_size=float(max(volumes[0], 1.0)),
        )

    def bar(self, inst: Instrument, t0: int, t1: int, what: str = "TRADES") -> tuple | None:
        """(open, high, low, close, volume, wap, count) over ``[t0, t1)``; None for an empty range."""
        prices, volumes = self.path(inst).series(t0, t1)
        if not len(prices):
            return None
        tick = inst.min_tick
        if what.upper() == "BID":
            prices = prices * (1 - 0.0001)
        elif what.upper() == "ASK":
            prices = prices * (1 + 0.0001)
        o, h, low, c = (round_to_tick(float(x), tick) for x in (prices[0], prices.max(), prices.min(), prices[-1]))
        volume = float(volumes.sum()) if what.upper() == "TRADES" else -1.0
        wap = round(float(np.average(prices, weights=volumes)) if volumes.sum() > 0 else float(prices.mean()), 6)
        count = int(len(prices)) if what.upper() == "TRADES" else -1
        return o, h, low, c, volume, wap, count

    def session_stats(self, inst: Instrument, day_start: int, t: int) -> tuple[float, float, float, float, float]:
        """(open, high, low, previous close, volume) of the session so far, for the opening ticks."""
        today = self.bar(inst, day_start, max(t, day_start + 1)) or (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
        prev = self.bar(inst, day_start - 60, day_start) or today
        return today[0], today[1], today[2], prev[3], today[4]


def instruments_with_bars(market: Market, instruments: Iterable[Instrument]) -> list[Instrument]:
    return [i for i in instruments if i.symbol.upper() in market.bars]
