"""The instruments the simulated TWS knows: a built-in set of common contracts plus user-supplied ones.

A strategy's first lines are usually ``qualifyContracts`` and a price request, so the simulator needs
contract definitions that look like TWS's: a conId, local symbol, multiplier, tick size, trading hours,
valid exchanges. Unknown contracts are refused with error 200, as TWS does. User instruments come from
a TOML file (``[[instrument]]`` tables) or a CSV file with the same column names as ``Instrument``.

The conIds of the well-known stocks are the real ones, so recorded sessions and fixtures keep matching.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

from replay.tws.protocol import ContractSpec

US_EQUITY_HOURS = "20240102:0930-20240102:1600;20240103:0930-20240103:1600"
US_EQUITY_EXT_HOURS = "20240102:0400-20240102:2000;20240103:0400-20240103:2000"
CME_HOURS = "20240101:1700-20240102:1600;20240102:1700-20240103:1600"
FX_HOURS = "20240101:1715-20240102:1700;20240102:1715-20240103:1700"
STK_ORDER_TYPES = "ACTIVETIM,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,GAT,GTC,GTD,IOC,LIT,LMT,MIT,MKT,MOC,MTL,OCA,REL,STP,STPLMT,TRAIL,TRAILLIMIT,WHATIF"  # noqa: E501


class CatalogueError(ValueError):
    """An instruments file is wrong; the message names the file, the row and the problem."""


@dataclass(frozen=True)
class Instrument:
    con_id: int
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""
    multiplier: str = ""
    last_trade: str = ""  # YYYYMMDD for FUT/OPT
    strike: float = 0.0
    right: str = ""  # C / P
    min_tick: float = 0.01
    long_name: str = ""
    valid_exchanges: str = "SMART"
    order_types: str = STK_ORDER_TYPES
    trading_hours: str = US_EQUITY_EXT_HOURS
    liquid_hours: str = US_EQUITY_HOURS
    time_zone: str = "US/Eastern"
    industry: str = ""
    category: str = ""
    under_con_id: int = 0
    under_symbol: str = ""
    under_sec_type: str = ""
    market_rule: int = 26
    #: sent in the contract details' secIdList as TWS does for stocks (clients such as NautilusTrader key
    #: equities by it); "" sends none
    isin: str = ""
    #: where the seeded price path starts
    price: float = 100.0
    #: average displayed size at the touch
    size: float = 300.0

    def contract(self) -> ContractSpec:
        """The contract as TWS echoes it on orders, positions and executions."""
        return ContractSpec(
            conId=self.con_id,
            symbol=self.symbol,
            secType=self.sec_type,
            lastTradeDateOrContractMonth=self.last_trade,
            strike=self.strike,
            right=self.right,
            multiplier=self.multiplier,
            exchange=self.exchange,
            primaryExchange=self.primary_exchange,
            currency=self.currency,
            localSymbol=self.local_symbol or self.symbol,
            tradingClass=self.trading_class or self.symbol,
        )

    @property
    def point_value(self) -> float:
        """Currency per point of price (the multiplier, 1 for cash instruments)."""
        try:
            return float(self.multiplier) if self.multiplier else 1.0
        except ValueError:
            return 1.0


#: the built-in stocks' and ETFs' ISINs
ISINS = {
    "AAPL": "US0378331005", "MSFT": "US5949181045", "IBM": "US4592001014", "AMZN": "US0231351067",
    "NVDA": "US67066G1040", "TSLA": "US88160R1014", "GOOGL": "US02079K3059", "META": "US30303M1027",
    "JPM": "US46625H1005", "XOM": "US30231G1022", "BAC": "US0605051046", "KO": "US1912161007",
    "SPY": "US78462F1030", "QQQ": "US46090E1032", "IWM": "US4642876555", "DIA": "US78467X1090",
    "GLD": "US78463V1070", "TLT": "US4642874329", "GME": "US36467W1099",
}  # fmt: skip


def _stk(con_id: int, symbol: str, primary: str, name: str, price: float, industry: str = "", etf: bool = False):
    return Instrument(
        con_id=con_id,
        symbol=symbol,
        isin=ISINS.get(symbol, ""),
        primary_exchange=primary,
        trading_class="NMS" if primary in ("NASDAQ", "ISLAND") else symbol,
        long_name=name,
        valid_exchanges=f"SMART,AMEX,NYSE,CBOE,PHLX,ISE,CHX,ARCA,ISLAND,DRCTEDGE,BEX,BATS,EDGEA,IEX,{primary}",
        industry="ETF" if etf else industry,
        category="Broad" if etf else "",
        price=price,
    )


def _fut(con_id: int, symbol: str, local: str, expiry: str, exchange: str, multiplier: str, tick: float, price: float):
    return Instrument(
        con_id=con_id,
        symbol=symbol,
        sec_type="FUT",
        exchange=exchange,
        local_symbol=local,
        trading_class=symbol,
        multiplier=multiplier,
        last_trade=expiry,
        min_tick=tick,
        long_name=f"{symbol} futures {expiry[:6]}",
        valid_exchanges=exchange,
        order_types="ACTIVETIM,ADJUST,ALERT,GAT,GTC,GTD,IOC,LIT,LMT,MIT,MKT,OCA,STP,STPLMT,TRAIL,TRAILLIMIT,WHATIF",
        trading_hours=CME_HOURS,
        liquid_hours="20240102:0930-20240102:1600;20240103:0930-20240103:1600",
        time_zone="US/Central",
        market_rule=67,
        price=price,
        size=20.0,
    )


def _opt(con_id: int, expiry: str, strike: float, right: str, price: float) -> Instrument:
    local = f"AAPL  {expiry[2:]}{right}{int(strike * 1000):08d}"
    return Instrument(
        con_id=con_id,
        symbol="AAPL",
        sec_type="OPT",
        local_symbol=local,
        trading_class="AAPL",
        multiplier="100",
        last_trade=expiry,
        strike=strike,
        right=right,
        min_tick=0.01,
        long_name="APPLE INC",
        valid_exchanges="SMART,AMEX,CBOE,PHLX,PSE,ISE,BOX,BATS,NASDAQOM,CBOE2,MIAX,GEMINI,EDGX,MERCURY,PEARL,EMERALD",
        under_con_id=265598,
        under_symbol="AAPL",
        under_sec_type="STK",
        liquid_hours="20240102:0930-20240102:1600;20240103:0930-20240103:1600",
        trading_hours="20240102:0930-20240102:1600;20240103:0930-20240103:1600",
        market_rule=32,
        price=price,
        size=50.0,
    )


def _fx(con_id: int, base: str, quote: str, price: float, tick: float) -> Instrument:
    return Instrument(
        con_id=con_id,
        symbol=base,
        sec_type="CASH",
        exchange="IDEALPRO",
        currency=quote,
        local_symbol=f"{base}.{quote}",
        trading_class=f"{base}.{quote}",
        min_tick=tick,
        long_name=f"{base}.{quote}",
        valid_exchanges="IDEALPRO",
        order_types="ACTIVETIM,AD,ADJUST,ALERT,ALLOC,AVGCOST,BASKET,GAT,GTC,GTD,IOC,LMT,MKT,OCA,STP,STPLMT,TRAIL,WHATIF",
        trading_hours=FX_HOURS,
        liquid_hours=FX_HOURS,
        market_rule=239,
        price=price,
        size=1_000_000.0,
    )


BUILTIN: tuple[Instrument, ...] = (
    _stk(265598, "AAPL", "NASDAQ", "APPLE INC", 185.0, "Technology"),
    _stk(272093, "MSFT", "NASDAQ", "MICROSOFT CORP", 370.0, "Technology"),
    _stk(8314, "IBM", "NYSE", "INTL BUSINESS MACHINES CORP", 162.0, "Technology"),
    _stk(3691937, "AMZN", "NASDAQ", "AMAZON.COM INC", 150.0, "Consumer, Cyclical"),
    _stk(4815747, "NVDA", "NASDAQ", "NVIDIA CORP", 480.0, "Technology"),
    _stk(76792991, "TSLA", "NASDAQ", "TESLA INC", 245.0, "Consumer, Cyclical"),
    _stk(208813719, "GOOGL", "NASDAQ", "ALPHABET INC-CL A", 139.0, "Communications"),
    _stk(107113386, "META", "NASDAQ", "META PLATFORMS INC-CLASS A", 345.0, "Communications"),
    _stk(1520593, "JPM", "NYSE", "JPMORGAN CHASE & CO", 170.0, "Financial"),
    _stk(13977, "XOM", "NYSE", "EXXON MOBIL CORP", 100.0, "Energy"),
    _stk(10098, "BAC", "NYSE", "BANK OF AMERICA CORP", 33.0, "Financial"),
    _stk(8894, "KO", "NYSE", "COCA-COLA CO/THE", 59.0, "Consumer, Non-cyclical"),
    _stk(756733, "SPY", "ARCA", "SPDR S&P 500 ETF TRUST", 472.0, etf=True),
    _stk(320227571, "QQQ", "NASDAQ", "INVESCO QQQ TRUST SERIES 1", 402.0, etf=True),
    _stk(9579970, "IWM", "ARCA", "ISHARES RUSSELL 2000 ETF", 200.0, etf=True),
    _stk(73128548, "DIA", "ARCA", "SPDR DJIA TRUST", 376.0, etf=True),
    _stk(51529211, "GLD", "ARCA", "SPDR GOLD SHARES", 190.0, etf=True),
    _stk(15547841, "TLT", "NASDAQ", "ISHARES 20+ YEAR TREASURY BO", 98.0, etf=True),
    _fut(495512563, "ES", "ESH4", "20240315", "CME", "50", 0.25, 4770.0),
    _fut(551601561, "ES", "ESM4", "20240621", "CME", "50", 0.25, 4820.0),
    _fut(495512572, "MES", "MESH4", "20240315", "CME", "5", 0.25, 4770.0),
    _fut(563947738, "NQ", "NQH4", "20240315", "CME", "20", 0.25, 16800.0),
    _fut(212921504, "CL", "CLG4", "20240122", "NYMEX", "1000", 0.01, 71.5),
    _fut(130555216, "GC", "GCG4", "20240227", "COMEX", "100", 0.1, 2070.0),
    _opt(671111111, "20240119", 180.0, "C", 7.1),
    _opt(671111112, "20240119", 180.0, "P", 1.9),
    _opt(671111113, "20240119", 185.0, "C", 3.6),
    _opt(671111114, "20240119", 185.0, "P", 3.4),
    _opt(671111115, "20240119", 190.0, "C", 1.4),
    _opt(671111116, "20240119", 190.0, "P", 6.2),
    _opt(671111117, "20240216", 185.0, "C", 6.0),
    _opt(671111118, "20240216", 185.0, "P", 5.5),
    _fx(12087792, "EUR", "USD", 1.1040, 0.00005),
    _fx(12087797, "GBP", "USD", 1.2730, 0.00005),
    _fx(15016059, "USD", "JPY", 141.00, 0.005),
    _fx(15016062, "AUD", "USD", 0.6810, 0.00005),
)


def _norm_right(right: str) -> str:
    r = right.upper()
    return {"CALL": "C", "PUT": "P"}.get(r, r)


class Catalogue:
    """Instruments by conId; ``lookup`` matches a (partial) contract the way reqContractDetails does."""

    def __init__(self, instruments: Iterable[Instrument] = BUILTIN) -> None:
        self._by_con_id: dict[int, Instrument] = {}
        for inst in instruments:
            self.add(inst)

    def add(self, inst: Instrument) -> None:
        self._by_con_id[inst.con_id] = inst

    def __iter__(self):
        return iter(self._by_con_id.values())

    def __len__(self) -> int:
        return len(self._by_con_id)

    def by_con_id(self, con_id: int) -> Instrument | None:
        return self._by_con_id.get(con_id)

    def lookup(self, c: ContractSpec) -> list[Instrument]:
        """Every instrument the contract's given fields agree with (empty fields match anything)."""
        if c.conId:
            inst = self._by_con_id.get(c.conId)
            return [inst] if inst is not None else []
        out = []
        for inst in self._by_con_id.values():
            if c.localSymbol and c.localSymbol.replace(" ", "") != (inst.local_symbol or inst.symbol).replace(" ", ""):
                continue
            if c.symbol and c.symbol.upper() != inst.symbol:
                continue
            if not c.symbol and not c.localSymbol:
                continue
            if (c.secType or "STK").upper() != inst.sec_type:
                continue
            if c.currency and c.currency.upper() != inst.currency:
                continue
            if c.exchange and c.exchange.upper() not in (inst.exchange, *inst.valid_exchanges.split(",")):
                continue
            if c.primaryExchange and c.primaryExchange.upper() not in (inst.primary_exchange, inst.exchange):
                continue
            if c.lastTradeDateOrContractMonth and not inst.last_trade.startswith(c.lastTradeDateOrContractMonth):
                continue
            if c.strike and abs(c.strike - inst.strike) > 1e-9:
                continue
            if c.right and _norm_right(c.right) != inst.right:
                continue
            if c.multiplier and inst.multiplier and float(c.multiplier) != float(inst.multiplier):
                continue
            if c.tradingClass and c.tradingClass != (inst.trading_class or inst.symbol):
                continue
            out.append(inst)
        return out

    def resolve(self, c: ContractSpec) -> Instrument | None:
        """The one instrument a contract names, or None when unknown or ambiguous."""
        found = self.lookup(c)
        return found[0] if len(found) == 1 else None

    def matching(self, pattern: str, limit: int = 16) -> list[Instrument]:
        """reqMatchingSymbols: symbols starting with the pattern first, then names containing it."""
        p = pattern.upper().strip()
        if not p:
            return []
        seen: set[tuple[str, str, str]] = set()
        firsts, rest = [], []
        for inst in self._by_con_id.values():
            if inst.sec_type not in ("STK", "CASH", "FUT"):
                continue
            key = (inst.symbol, inst.sec_type, inst.currency)
            if key in seen:
                continue
            if inst.symbol.startswith(p):
                firsts.append(inst)
            elif p in inst.long_name.upper():
                rest.append(inst)
            else:
                continue
            seen.add(key)
        return (firsts + rest)[:limit]

    def derivative_types(self, inst: Instrument) -> list[str]:
        return sorted({i.sec_type for i in self._by_con_id.values() if i.under_con_id == inst.con_id and i is not inst})

    def options_on(self, under_con_id: int) -> list[Instrument]:
        return [i for i in self._by_con_id.values() if i.sec_type == "OPT" and i.under_con_id == under_con_id]


_FIELD_TYPES = {f.name: f.type for f in fields(Instrument)}


def _coerce(name: str, value: object, where: str) -> object:
    kind = _FIELD_TYPES.get(name)
    if kind is None:
        raise CatalogueError(f"{where}: unknown column {name!r}; known: {', '.join(_FIELD_TYPES)}")
    try:
        if kind == "int":
            return int(value)  # type: ignore[arg-type]
        if kind == "float":
            return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise CatalogueError(f"{where}: {name}={value!r} is not a number") from exc
    return str(value)


def _instrument(row: dict[str, object], where: str) -> Instrument:
    values = {k: _coerce(k, v, where) for k, v in row.items() if v not in ("", None)}
    for required in ("con_id", "symbol"):
        if required not in values:
            raise CatalogueError(f"{where}: {required} is required")
    inst = Instrument(**values)  # type: ignore[arg-type]
    if inst.sec_type != "STK" and "valid_exchanges" not in values:
        inst = replace(inst, valid_exchanges=inst.exchange)
    return inst


def load_instruments(path: str | Path) -> list[Instrument]:
    """Instruments from a TOML (``[[instrument]]``) or CSV file; errors name the file and the row."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CatalogueError(f"{path}: cannot read ({exc.strerror})") from exc
    rows: Sequence[dict[str, object]]
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{path}: not valid TOML ({exc})") from exc
        rows = data.get("instrument", [])
        if not isinstance(rows, list):
            raise CatalogueError(f"{path}: 'instrument' must be an array of tables ([[instrument]])")
    return [_instrument(dict(r), f"{path} instrument #{i + 1}") for i, r in enumerate(rows)]
