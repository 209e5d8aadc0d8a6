"""Market-data requests: reqMktData (streaming, snapshot), reqMarketDataType, reqHistoricalData (with
keepUpToDate), reqHeadTimeStamp, reqRealTimeBars — all answered from ``replay.tws.market``.

``Feeds`` keeps the subscriptions per connection. ``step()`` is called each time the simulated clock
moves a second and pushes what changed to the subscribers, so a run on a manual clock streams exactly
the same ticks as one at real time, only at another pace.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from replay.tws import contracts as C
from replay.tws import messages as M
from replay.tws import protocol as P
from replay.tws.catalogue import Catalogue, Instrument
from replay.tws.market import Market, Quote
from replay.tws.messages import DELAYED, Tick
from replay.tws.protocol import Fields

log = logging.getLogger("replay.tws.simulator")

LIVE, FROZEN, DELAYED_TYPE, DELAYED_FROZEN = 1, 2, 3, 4
DELAY_SECONDS = 15 * 60
HISTORY_YEARS = 1
#: the prefix of TWS's historical-data errors (code 162; ib_async files 321 under warnings and would hang)
HMDS = "Historical Market Data Service error message:"

_BAR_SIZES = {
    "sec": 1,
    "secs": 1,
    "min": 60,
    "mins": 60,
    "hour": 3600,
    "hours": 3600,
    "day": 86400,
}
_DURATION_UNITS = {"S": 1, "D": 86400, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}


class RequestRefused(ValueError):
    """A request the simulator answers with an error: (code, text)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def bar_seconds(setting: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s+([a-z]+)\s*", setting.lower())
    if not m or m.group(2) not in _BAR_SIZES:
        raise RequestRefused(162, f"{HMDS}Error validating request.-'bP' : cause - Invalid bar size {setting!r}")
    return int(m.group(1)) * _BAR_SIZES[m.group(2)]


def duration_seconds(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([SDWMY])\s*", text.upper())
    if not m:
        raise RequestRefused(162, f"{HMDS}Error validating request.-'bP' : cause - Invalid duration {text!r} ('1 D')")
    return int(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_end(text: str, now: int, zone: ZoneInfo) -> int:
    """endDateTime: '' (now), 'yyyymmdd hh:mm:ss[ zone]' (local or the named zone), 'yyyymmdd-hh:mm:ss' (UTC)."""
    s = text.strip()
    if not s:
        return now
    try:
        if "-" in s and " " not in s:
            return int(datetime.strptime(s, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC).timestamp())
        parts = s.split(" ")
        tz = ZoneInfo(parts[2]) if len(parts) > 2 else zone
        if len(parts) == 1:
            return int(datetime.strptime(parts[0], "%Y%m%d").replace(tzinfo=tz).timestamp()) + 86400
        return int(datetime.strptime(parts[0] + parts[1], "%Y%m%d%H:%M:%S").replace(tzinfo=tz).timestamp())
    except (ValueError, KeyError) as exc:
        raise RequestRefused(162, f"{HMDS}Error validating request.-'bP' : cause - Invalid end {text!r}") from exc


def sessions(inst: Instrument, day: date, use_rth: bool, zone: ZoneInfo) -> list[tuple[int, int]]:
    """The trading windows of one local day as epoch ranges (weekends are closed)."""
    if day.weekday() >= 5:
        return []
    if use_rth:
        start, end = time(9, 30), time(16, 0)
    elif inst.sec_type in ("STK", "OPT"):
        start, end = time(4, 0), time(20, 0)
    else:
        start, end = time(0, 0), None
    t0 = int(datetime.combine(day, start, zone).timestamp())
    t1 = int(datetime.combine(day, end, zone).timestamp()) if end else t0 + 86400
    return [(t0, t1)]


@dataclass(eq=False)
class _Sub:
    conn: Any
    req_id: int
    inst: Instrument
    kind: str  # "mkt" | "bars" | "rtb"
    data_type: int = LIVE
    last: Quote | None = None
    bar_size: int = 0
    what: str = "TRADES"
    format_date: int = 1


class Feeds:
    def __init__(
        self,
        catalogue: Catalogue,
        market: Market,
        clock: Any,
        send: Callable[[Any, Fields], None],
    ) -> None:
        self.catalogue = catalogue
        self.market = market
        self.clock = clock
        self.send = send
        self.zone = ZoneInfo(clock.tz_name)
        self._data_type: dict[int, int] = {}  # id(conn) -> reqMarketDataType
        self._subs: dict[tuple[int, int], _Sub] = {}

    # ------------------------------------------------------------------ helpers

    def now(self) -> int:
        return int(self.clock.epoch())

    def _resolve(self, conn: Any, req_id: int, fields: Sequence[str], start: int) -> Instrument | None:
        c = C.contract_at(fields, start)
        inst = self.catalogue.resolve(c)
        if inst is None:
            self.send(conn, C.no_definition(req_id, c, conn.server_version))
        return inst

    def _refuse(self, conn: Any, req_id: int, exc: RequestRefused) -> None:
        log.warning("connection %s: request %s refused: %s", getattr(conn, "number", "?"), req_id, exc.text)
        self.send(conn, P.error(req_id, exc.code, exc.text, server_version=conn.server_version))

    def _date(self, t: int, daily: bool, format_date: int) -> str:
        local = datetime.fromtimestamp(t, self.zone)
        if daily:
            return f"{local:%Y%m%d}"
        if format_date == 2:
            return str(t)
        return f"{local:%Y%m%d %H:%M:%S} {self.clock.tz_name}"

    def drop(self, conn: Any) -> None:
        """A connection closed: its subscriptions end."""
        self._data_type.pop(id(conn), None)
        for key in [k for k, s in self._subs.items() if s.conn is conn]:
            del self._subs[key]

    def cancel(self, conn: Any, fields: Sequence[str], index: int) -> None:
        try:
            req_id = int(fields[index])
        except (IndexError, ValueError):
            return
        self._subs.pop((id(conn), req_id), None)

    # ------------------------------------------------------------------ reqMktData

    def market_data_type(self, conn: Any, fields: Sequence[str]) -> None:
        """reqMarketDataType: ``59, 1, type`` (1 live, 2 frozen, 3 delayed, 4 delayed frozen)."""
        try:
            kind = int(fields[2])
        except (IndexError, ValueError):
            kind = 0
        if kind not in (LIVE, FROZEN, DELAYED_TYPE, DELAYED_FROZEN):
            self._refuse(
                conn, -1, RequestRefused(321, f"Error validating request.-'bM' : cause - market data type {kind}")
            )
            return
        self._data_type[id(conn)] = kind

    def _ticks(self, req_id: int, q: Quote, data_type: int, previous: Quote | None) -> list[Fields]:
        delayed = data_type in (DELAYED_TYPE, DELAYED_FROZEN)

        def tt(kind: int) -> int:
            return DELAYED[kind] if delayed else kind

        out: list[Fields] = []
        if previous is None or (q.bid, q.bid_size) != (previous.bid, previous.bid_size):
            out.append(M.tick_price(req_id, tt(Tick.BID), q.bid, q.bid_size, 1))
            out.append(M.tick_size(req_id, tt(Tick.BID_SIZE), q.bid_size))
        if previous is None or (q.ask, q.ask_size) != (previous.ask, previous.ask_size):
            out.append(M.tick_price(req_id, tt(Tick.ASK), q.ask, q.ask_size, 1))
            out.append(M.tick_size(req_id, tt(Tick.ASK_SIZE), q.ask_size))
        out.append(M.tick_price(req_id, tt(Tick.LAST), q.last, q.last_size))
        out.append(M.tick_size(req_id, tt(Tick.LAST_SIZE), q.last_size))
        out.append(M.tick_string(req_id, tt(Tick.LAST_TIMESTAMP), str(q.time)))
        return out

    def _opening(self, req_id: int, inst: Instrument, t: int, data_type: int) -> list[Fields]:
        delayed = data_type in (DELAYED_TYPE, DELAYED_FROZEN)
        local = datetime.fromtimestamp(t, self.zone).date()
        day = sessions(inst, local, False, self.zone) or [(t - 3600, t)]
        o, h, low, close, volume = self.market.session_stats(inst, day[0][0], t)

        def tt(kind: int) -> int:
            return DELAYED[kind] if delayed else kind

        return [
            M.tick_price(req_id, tt(Tick.HIGH), h, 0),
            M.tick_price(req_id, tt(Tick.LOW), low, 0),
            M.tick_size(req_id, tt(Tick.VOLUME), volume),
            M.tick_price(req_id, tt(Tick.CLOSE), close, 0),
            M.tick_price(req_id, tt(Tick.OPEN), o, 0),
        ]

    def mkt_data(self, conn: Any, fields: Sequence[str]) -> None:
        """reqMktData: ``1, 11, reqId, <contract>, ..., genericTicks, snapshot, regulatorySnapshot, options``."""
        req_id = int(fields[2])
        inst = self._resolve(conn, req_id, fields, 3)
        if inst is None:
            return
        snapshot = fields[-3] == "1" or fields[-2] == "1"
        data_type = self._data_type.get(id(conn), LIVE)
        t = self.now() - (DELAY_SECONDS if data_type in (DELAYED_TYPE, DELAYED_FROZEN) else 0)
        q = self.market.quote(inst, t)
        self.send(conn, M.market_data_type(req_id, data_type))
        self.send(conn, M.tick_req_params(req_id, inst.min_tick))
        for f in self._ticks(req_id, q, data_type, None) + self._opening(req_id, inst, t, data_type):
            self.send(conn, f)
        if snapshot:
            self.send(conn, M.tick_snapshot_end(req_id))
            return
        if data_type in (FROZEN, DELAYED_FROZEN):
            return
        self._subs[(id(conn), req_id)] = _Sub(conn, req_id, inst, "mkt", data_type, last=q)

    # ------------------------------------------------------------------ history

    def bars(
        self, inst: Instrument, end: int, duration: int, size: int, use_rth: bool, what: str, format_date: int
    ) -> list[tuple]:
        start = end - duration
        if start < self.head_time(inst):
            start = self.head_time(inst)
        daily = size >= 86400
        out: list[tuple] = []
        day = datetime.fromtimestamp(start, self.zone).date()
        last_day = datetime.fromtimestamp(end - 1, self.zone).date()
        while day <= last_day:
            for s0, s1 in sessions(inst, day, use_rth, self.zone):
                lo, hi = max(s0, start), min(s1, end)
                if lo >= hi:
                    continue
                if daily:
                    b = self.market.bar(inst, lo, hi, what)
                    if b is not None:
                        out.append((self._date(lo, True, format_date), *b))
                    continue
                t = lo - (lo - s0) % size
                while t < hi:
                    b0, b1 = max(t, lo), min(t + size, hi)
                    b = self.market.bar(inst, b0, b1, what)
                    if b is not None:
                        out.append((self._date(t, False, format_date), *b))
                    t += size
            day += timedelta(days=1)
        return out

    def head_time(self, inst: Instrument) -> int:
        first = self.market.path(inst).first_time()
        if first is not None:
            return first
        anchor = self.market.anchor
        return anchor - HISTORY_YEARS * 365 * 86400

    def historical_data(self, conn: Any, fields: Sequence[str]) -> None:
        """reqHistoricalData: ``20, reqId, <contract>, includeExpired, end, barSize, duration, useRTH,
        whatToShow, formatDate, [legs], keepUpToDate, chartOptions``."""
        req_id = int(fields[1])
        inst = self._resolve(conn, req_id, fields, 2)
        if inst is None:
            return
        try:
            keep = fields[-2] == "1"
            end = parse_end(fields[15], self.now(), self.zone)
            size = bar_seconds(fields[16])
            duration = duration_seconds(fields[17])
            if keep and fields[15].strip():
                raise RequestRefused(162, f"{HMDS}Error validating request.-'bP' : cause - keepUpToDate needs no end")
            if duration > 400 * 86400 or (size < 60 and duration > 2 * 86400):
                raise RequestRefused(
                    162,
                    "Historical Market Data Service error message:Trading TWS session is "
                    "disconnected. (request too large for the simulator: shorten the duration)",
                )
        except RequestRefused as exc:
            self._refuse(conn, req_id, exc)
            return
        use_rth, what = fields[18] == "1", fields[19] or "TRADES"
        format_date = int(fields[20] or 1)
        end = min(end, self.now())
        bars = self.bars(inst, end, duration, size, use_rth, what, format_date)
        start_s = self._date(end - duration, False, 1)
        end_s = self._date(end, False, 1)
        self.send(conn, M.historical_data(req_id, start_s, end_s, bars))
        if keep:
            self._subs[(id(conn), req_id)] = _Sub(
                conn, req_id, inst, "bars", bar_size=size, what=what, format_date=format_date
            )

    def head_timestamp(self, conn: Any, fields: Sequence[str]) -> None:
        """reqHeadTimeStamp: ``87, reqId, <contract>, includeExpired, useRTH, whatToShow, formatDate``."""
        req_id = int(fields[1])
        inst = self._resolve(conn, req_id, fields, 2)
        if inst is None:
            return
        t = self.head_time(inst)
        text = str(t) if fields[-1] == "2" else f"{datetime.fromtimestamp(t, UTC):%Y%m%d-%H:%M:%S}"
        self.send(conn, M.head_timestamp(req_id, text))

    def real_time_bars(self, conn: Any, fields: Sequence[str]) -> None:
        """reqRealTimeBars: ``50, 3, reqId, <contract>, barSize, whatToShow, useRTH, options``; 5-second bars."""
        req_id = int(fields[2])
        inst = self._resolve(conn, req_id, fields, 3)
        if inst is None:
            return
        self._subs[(id(conn), req_id)] = _Sub(conn, req_id, inst, "rtb", what=fields[16] or "TRADES", bar_size=5)

    # ------------------------------------------------------------------ the clock moved

    def step(self) -> int:
        """Push one second of market to every subscriber; returns how many messages went out."""
        t = self.now()
        sent = 0
        for sub in list(self._subs.values()):
            if getattr(sub.conn, "closed", False):
                continue
            if sub.kind == "mkt":
                qt = t - (DELAY_SECONDS if sub.data_type == DELAYED_TYPE else 0)
                q = self.market.quote(sub.inst, qt)
                for f in self._ticks(sub.req_id, q, sub.data_type, sub.last):
                    self.send(sub.conn, f)
                    sent += 1
                sub.last = q
            elif sub.kind == "rtb" and t % 5 == 0:
                b = self.market.bar(sub.inst, t - 5, t, sub.what)
                if b is not None:
                    o, h, low, c, volume, wap, count = b
                    self.send(sub.conn, M.real_time_bar(sub.req_id, t - 5, o, h, low, c, volume, wap, count))
                    sent += 1
            elif sub.kind == "bars" and t % 5 == 0:
                start = t - t % sub.bar_size if sub.bar_size < 86400 else t - 3600
                b = self.market.bar(sub.inst, start, t + 1, sub.what)
                if b is not None:
                    date_s = self._date(start, sub.bar_size >= 86400, sub.format_date)
                    self.send(sub.conn, M.historical_data_update(sub.req_id, (date_s, *b)))
                    sent += 1
        return sent

    def subscriptions(self) -> int:
        return len(self._subs)
