"""Server → client messages beyond the order flow: contracts, market data, account, P&L.

Field layouts are what the unmodified clients decode at server version 176 (ib_insync 0.9.86 and
ib_async 2.1 ``decoder.py``, ibapi 10.x ``decoder.py``). Pure functions returning field lists; the
simulator frames and sends them.
"""

from __future__ import annotations

from collections.abc import Sequence

from replay.tws.catalogue import Instrument
from replay.tws.protocol import UNSET_DOUBLE, ContractSpec, Fields, contract_fields


class Msg:
    TICK_PRICE = 1
    TICK_SIZE = 2
    ACCT_VALUE = 6
    PORTFOLIO_VALUE = 7
    CONTRACT_DATA = 10
    HISTORICAL_DATA = 17
    TICK_GENERIC = 45
    TICK_STRING = 46
    REAL_TIME_BARS = 50
    CONTRACT_DATA_END = 52
    TICK_SNAPSHOT_END = 57
    MARKET_DATA_TYPE = 58
    ACCOUNT_SUMMARY = 63
    POSITION_MULTI = 71
    POSITION_MULTI_END = 72
    ACCOUNT_UPDATE_MULTI = 73
    SECDEF_OPT_PARAMS = 75
    SECDEF_OPT_PARAMS_END = 76
    SYMBOL_SAMPLES = 79
    TICK_REQ_PARAMS = 81
    HEAD_TIMESTAMP = 88
    HISTORICAL_DATA_UPDATE = 90
    MARKET_RULE = 93
    PNL = 94
    PNL_SINGLE = 95


class Tick:
    """Tick types (live; the delayed ones are these plus ``DELAYED_OFFSET`` where TWS defines them)."""

    BID_SIZE = 0
    BID = 1
    ASK = 2
    ASK_SIZE = 3
    LAST = 4
    LAST_SIZE = 5
    HIGH = 6
    LOW = 7
    VOLUME = 8
    CLOSE = 9
    OPEN = 14
    LAST_TIMESTAMP = 45


#: live tick type -> delayed tick type (reqMarketDataType 3 / 4)
DELAYED = {0: 69, 1: 66, 2: 67, 3: 70, 4: 68, 5: 71, 6: 72, 7: 73, 8: 74, 9: 75, 14: 76, 45: 88}


def contract_details(req_id: int, inst: Instrument, exchange: str = "") -> Fields:
    c = inst.contract()
    return [
        Msg.CONTRACT_DATA,
        req_id,
        c.symbol,
        c.secType,
        inst.last_trade,
        inst.strike,
        inst.right,
        exchange or inst.exchange,
        c.currency,
        c.localSymbol,
        inst.trading_class or inst.symbol,  # marketName
        c.tradingClass,
        c.conId,
        inst.min_tick,
        inst.multiplier,
        inst.order_types,
        inst.valid_exchanges,
        1,  # priceMagnifier
        inst.under_con_id,
        inst.long_name,
        inst.primary_exchange,
        inst.last_trade[:6],  # contractMonth
        inst.industry,
        inst.category,
        "",  # subcategory
        inst.time_zone,
        inst.trading_hours,
        inst.liquid_hours,
        "",  # evRule
        "",  # evMultiplier
        *((1, "ISIN", inst.isin) if inst.isin else (0,)),  # secIdList: count, then tag/value pairs
        1,  # aggGroup
        inst.under_symbol,
        inst.under_sec_type,
        ",".join([str(inst.market_rule)] * len(inst.valid_exchanges.split(","))),
        inst.last_trade,  # realExpirationDate
        "COMMON" if inst.sec_type == "STK" else "",
        "0.0001" if inst.sec_type == "STK" else "1",  # minSize
        "0.0001" if inst.sec_type == "STK" else "1",  # sizeIncrement
        "100" if inst.sec_type == "STK" else "1",  # suggestedSizeIncrement
    ]


def contract_details_end(req_id: int) -> Fields:
    return [Msg.CONTRACT_DATA_END, 1, req_id]


def symbol_samples(req_id: int, found: Sequence[tuple[Instrument, Sequence[str]]]) -> Fields:
    f: Fields = [Msg.SYMBOL_SAMPLES, req_id, len(found)]
    for inst, derivatives in found:
        f += [inst.con_id, inst.symbol, inst.sec_type, inst.primary_exchange or inst.exchange, inst.currency]
        f += [len(derivatives), *derivatives]
        f += [inst.long_name, ""]  # description, issuerId (server version >= 176)
    return f


def sec_def_opt_params(
    req_id: int, exchange: str, under_con_id: int, trading_class: str, multiplier: str, expirations, strikes
) -> Fields:
    return [
        Msg.SECDEF_OPT_PARAMS,
        req_id,
        exchange,
        under_con_id,
        trading_class,
        multiplier,
        len(expirations),
        *expirations,
        len(strikes),
        *strikes,
    ]


def sec_def_opt_params_end(req_id: int) -> Fields:
    return [Msg.SECDEF_OPT_PARAMS_END, req_id]


def market_rule(rule_id: int, increments: Sequence[tuple[float, float]]) -> Fields:
    f: Fields = [Msg.MARKET_RULE, rule_id, len(increments)]
    for low, inc in increments:
        f += [low, inc]
    return f


# --------------------------------------------------------------------------- market data


def tick_req_params(req_id: int, min_tick: float, bbo_exchange: str = "9c0001", permissions: int = 3) -> Fields:
    return [Msg.TICK_REQ_PARAMS, req_id, min_tick, bbo_exchange, permissions]


def market_data_type(req_id: int, data_type: int) -> Fields:
    return [Msg.MARKET_DATA_TYPE, 1, req_id, data_type]


def tick_price(req_id: int, tick_type: int, price: float, size: float, attr_mask: int = 0) -> Fields:
    return [Msg.TICK_PRICE, 6, req_id, tick_type, price, size, attr_mask]


def tick_size(req_id: int, tick_type: int, size: float) -> Fields:
    return [Msg.TICK_SIZE, 6, req_id, tick_type, size]


def tick_string(req_id: int, tick_type: int, value: str) -> Fields:
    return [Msg.TICK_STRING, 6, req_id, tick_type, value]


def tick_snapshot_end(req_id: int) -> Fields:
    return [Msg.TICK_SNAPSHOT_END, 1, req_id]


def historical_data(req_id: int, start: str, end: str, bars: Sequence[tuple]) -> Fields:
    """bars: (date, open, high, low, close, volume, wap, count)."""
    f: Fields = [Msg.HISTORICAL_DATA, req_id, start, end, len(bars)]
    for b in bars:
        f += list(b)
    return f


def historical_data_update(req_id: int, bar: tuple) -> Fields:
    date, o, h, low, c, volume, wap, count = bar
    return [Msg.HISTORICAL_DATA_UPDATE, req_id, count, date, o, c, h, low, wap, volume]


def head_timestamp(req_id: int, when: str) -> Fields:
    return [Msg.HEAD_TIMESTAMP, req_id, when]


def real_time_bar(req_id: int, epoch: int, o: float, h: float, low: float, c: float, volume: float, wap: float, n: int):
    return [Msg.REAL_TIME_BARS, 3, req_id, epoch, o, h, low, c, volume, wap, n]


# --------------------------------------------------------------------------- account


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    return [Msg.ACCOUNT_SUMMARY, 1, req_id, account, tag, value, currency]


def account_update_multi(req_id: int, account: str, model: str, key: str, value: str, currency: str) -> Fields:
    return [Msg.ACCOUNT_UPDATE_MULTI, 1, req_id, account, model, key, value, currency]


def position_multi(req_id: int, account: str, c: ContractSpec, qty: float, avg_cost: float, model: str = "") -> Fields:
    return [
        Msg.POSITION_MULTI,
        1,
        req_id,
        account,
        *contract_fields(c),
        qty,
        avg_cost,
        model,
    ]


def position_multi_end(req_id: int) -> Fields:
    return [Msg.POSITION_MULTI_END, 1, req_id]


def portfolio_value(
    c: ContractSpec,
    qty: float,
    market_price: float,
    market_value: float,
    avg_cost: float,
    unrealized: float,
    realized: float,
    account: str,
) -> Fields:
    return [
        Msg.PORTFOLIO_VALUE,
        8,
        *contract_fields(c, exchange=False, primary=True),
        qty,
        market_price,
        market_value,
        avg_cost,
        unrealized,
        realized,
        account,
    ]


def pnl(req_id: int, daily: float, unrealized: float, realized: float) -> Fields:
    return [Msg.PNL, req_id, daily, unrealized, realized]


def pnl_single(req_id: int, pos: float, daily: float, unrealized: float, realized: float, value: float) -> Fields:
    return [Msg.PNL_SINGLE, req_id, pos, daily, unrealized, realized, value]


__all__ = ["Msg", "Tick", "DELAYED", "UNSET_DOUBLE"]
