"""Contract requests answered from the catalogue: details, matching symbols, option chains, market rules.

Each function takes the request's raw fields (as the client encoded them) and returns the reply
messages, so the simulator only frames and sends them. An unknown contract gets error 200, the code
TWS uses ("No security definition has been found for the request").
"""

from __future__ import annotations

from collections.abc import Sequence

from replay.tws import messages as M
from replay.tws import protocol as P
from replay.tws.catalogue import Catalogue, Instrument
from replay.tws.protocol import ContractSpec, Fields

NO_DEFINITION = 200
NO_DEFINITION_TEXT = "No security definition has been found for the request"


def contract_at(fields: Sequence[str], start: int) -> ContractSpec:
    """The 12 contract fields the clients write for a Contract, starting at ``start``."""
    return P._contract(list(fields[start : start + 12]))


def _int(s: str, default: int = 0) -> int:
    try:
        return int(s) if s.strip() else default
    except ValueError:
        return int(float(s))


def describe(c: ContractSpec) -> str:
    parts = [c.secType or "STK", c.symbol or c.localSymbol or f"conId {c.conId}"]
    if c.lastTradeDateOrContractMonth:
        parts.append(c.lastTradeDateOrContractMonth)
    if c.strike:
        parts.append(f"{c.strike:g}{c.right}")
    parts.append(f"{c.exchange or '?'}/{c.currency or '?'}")
    return " ".join(parts)


def no_definition(req_id: int, c: ContractSpec, server_version: int) -> Fields:
    return P.error(req_id, NO_DEFINITION, f"{NO_DEFINITION_TEXT}: {describe(c)}", server_version=server_version)


def contract_details(catalogue: Catalogue, fields: Sequence[str], server_version: int) -> list[Fields]:
    """reqContractDetails: ``9, 8, reqId, <contract>, includeExpired, secIdType, secId[, issuerId]``."""
    req_id = _int(fields[2])
    c = contract_at(fields, 3)
    found = catalogue.lookup(c)
    if not found:
        return [no_definition(req_id, c, server_version)]
    exchange = c.exchange.upper() if c.exchange else ""
    out = [M.contract_details(req_id, inst, exchange) for inst in found]
    out.append(M.contract_details_end(req_id))
    return out


def matching_symbols(catalogue: Catalogue, fields: Sequence[str]) -> list[Fields]:
    """reqMatchingSymbols: ``81, reqId, pattern``."""
    req_id = _int(fields[1])
    pattern = fields[2] if len(fields) > 2 else ""
    found = [(inst, catalogue.derivative_types(inst)) for inst in catalogue.matching(pattern)]
    return [M.symbol_samples(req_id, found)]


def sec_def_opt_params(catalogue: Catalogue, fields: Sequence[str], server_version: int) -> list[Fields]:
    """reqSecDefOptParams: ``78, reqId, underlyingSymbol, futFopExchange, underlyingSecType, underlyingConId``."""
    req_id = _int(fields[1])
    symbol, _fop_exchange, sec_type = fields[2], fields[3], fields[4] or "STK"
    con_id = _int(fields[5])
    under: Instrument | None = catalogue.by_con_id(con_id) if con_id else None
    if under is None:
        under = catalogue.resolve(ContractSpec(symbol=symbol, secType=sec_type, exchange=""))
    if under is None:
        return [no_definition(req_id, ContractSpec(conId=con_id, symbol=symbol, secType=sec_type), server_version)]
    options = catalogue.options_on(under.con_id)
    out: list[Fields] = []
    if options:
        exchanges = options[0].valid_exchanges.split(",")
        expirations = sorted({o.last_trade for o in options})
        strikes = sorted({o.strike for o in options})
        first = options[0]
        for exchange in exchanges:
            out.append(
                M.sec_def_opt_params(
                    req_id, exchange, under.con_id, first.trading_class, first.multiplier, expirations, strikes
                )
            )
    out.append(M.sec_def_opt_params_end(req_id))
    return out


#: market rule id -> (low edge, increment) pairs
MARKET_RULES: dict[int, tuple[tuple[float, float], ...]] = {
    26: ((0.0, 0.01),),
    32: ((0.0, 0.01), (3.0, 0.05)),
    67: ((0.0, 0.25),),
    239: ((0.0, 0.00005),),
}


def market_rule(fields: Sequence[str]) -> list[Fields]:
    """reqMarketRule: ``91, marketRuleId``; an unknown rule is answered with a one-cent increment."""
    rule = _int(fields[1]) if len(fields) > 1 else 0
    return [M.market_rule(rule, MARKET_RULES.get(rule, ((0.0, 0.01),)))]
