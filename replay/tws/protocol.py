"""The TWS socket protocol, server side: framing, the handshake, request decoders, message encoders.

Field layouts follow what the unmodified clients decode (ib_insync 0.9.86 ``decoder.py`` and
ib_async 2.1, which agree at server version 176). A message is a 4-byte big-endian length followed by
NUL-terminated text fields. The client opens with the raw bytes ``API\\0`` and one length-prefixed
``v<min>..<max>[ options]`` string; the server answers with one frame of exactly two fields: its
version and the connection time.

Pure functions only: no sockets, no state. ``replay.tws.simulator`` does the I/O, ``replay.tws.broker`` keeps
the truth.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# the orderId TWS puts on executions of manual (non-API) orders, re-exported for the broker
from ledger.core.events import MANUAL_EXEC_ORDER_ID as MANUAL_EXEC_ORDER_ID

SERVER_VERSION = 176
MIN_CLIENT_VERSION = 157

UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = 1.7976931348623157e308


class ProtocolError(ValueError):
    """The peer sent bytes that are not the TWS protocol."""


# --------------------------------------------------------------------------- message ids


class In:
    """Client → server message ids (``client.py`` sends these first)."""

    REQ_MKT_DATA = 1
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_OPEN_ORDERS = 5
    REQ_ACCOUNT_UPDATES = 6
    REQ_EXECUTIONS = 7
    REQ_IDS = 8
    REQ_CONTRACT_DETAILS = 9
    REQ_AUTO_OPEN_ORDERS = 15
    REQ_ALL_OPEN_ORDERS = 16
    REQ_MANAGED_ACCTS = 17
    REQ_CURRENT_TIME = 49
    REQ_GLOBAL_CANCEL = 58
    REQ_MARKET_DATA_TYPE = 59
    REQ_POSITIONS = 61
    REQ_ACCOUNT_SUMMARY = 62
    CANCEL_ACCOUNT_SUMMARY = 63
    CANCEL_POSITIONS = 64
    START_API = 71
    REQ_ACCOUNT_UPDATES_MULTI = 76
    CANCEL_ACCOUNT_UPDATES_MULTI = 77
    REQ_COMPLETED_ORDERS = 99


class Out:
    """Server → client message ids (keys of the clients' ``Decoder.handlers``)."""

    ORDER_STATUS = 3
    ERR_MSG = 4
    OPEN_ORDER = 5
    ACCT_VALUE = 6
    ACCT_UPDATE_TIME = 8
    NEXT_VALID_ID = 9
    EXECUTION_DATA = 11
    MANAGED_ACCTS = 15
    CURRENT_TIME = 49
    OPEN_ORDER_END = 53
    ACCT_DOWNLOAD_END = 54
    EXECUTION_DATA_END = 55
    COMMISSION_REPORT = 59
    POSITION_DATA = 61
    POSITION_END = 62
    ACCOUNT_SUMMARY_END = 64
    ACCOUNT_UPDATE_MULTI_END = 74
    COMPLETED_ORDER = 101
    COMPLETED_ORDERS_END = 102


# --------------------------------------------------------------------------- framing


def fmt(value: object) -> str:
    """One field as TWS writes it: None/unset double → empty, bools as 1/0, floats without noise."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)  # 2147483647 is meaningful (orderId of manual orders' executions)
    if isinstance(value, float):
        if value == UNSET_DOUBLE or math.isnan(value):
            return ""
        if value == math.inf:
            return "Infinite"
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def frame(fields: Iterable[object]) -> bytes:
    """Encode fields as one length-prefixed, NUL-terminated message."""
    body = "".join(fmt(f) + "\0" for f in fields).encode()
    return struct.pack(">I", len(body)) + body


def split_frames(buffer: bytes) -> tuple[list[list[str]], bytes]:
    """Split complete frames off ``buffer``; returns (messages as field lists, unconsumed rest)."""
    messages: list[list[str]] = []
    pos = 0
    while len(buffer) - pos >= 4:
        (size,) = struct.unpack_from(">I", buffer, pos)
        if size > 16 * 1024 * 1024:
            raise ProtocolError(f"frame of {size} bytes is not TWS traffic")
        if len(buffer) - pos - 4 < size:
            break
        text = buffer[pos + 4 : pos + 4 + size].decode(errors="backslashreplace")
        pos += 4 + size
        fields = text.split("\0")
        if fields and fields[-1] == "":
            fields.pop()
        messages.append(fields)
    return messages, buffer[pos:]


@dataclass(frozen=True)
class Handshake:
    min_version: int
    max_version: int
    options: str

    def negotiate(self, server_version: int = SERVER_VERSION) -> int:
        """The version the server speaks: its own, capped at the client's maximum."""
        version = min(server_version, self.max_version)
        if version < max(self.min_version, MIN_CLIENT_VERSION):
            raise ProtocolError(
                f"client accepts v{self.min_version}..{self.max_version}, server needs >= {MIN_CLIENT_VERSION}"
            )
        return version


_VERSION_RANGE = re.compile(r"^v(\d+)(?:\.\.(\d+))?(?: (.*))?$", re.S)


def parse_handshake(buffer: bytes) -> tuple[Handshake | None, bytes]:
    """Parse ``API\\0`` + prefixed ``v157..176``; (None, buffer) while incomplete."""
    if len(buffer) < 4:
        if not b"API\0".startswith(buffer):
            raise ProtocolError(f"expected 'API\\0', got {buffer!r}")
        return None, buffer
    if buffer[:4] != b"API\0":
        raise ProtocolError(f"expected 'API\\0', got {buffer[:4]!r}")
    rest = buffer[4:]
    if len(rest) < 4:
        return None, buffer
    (size,) = struct.unpack_from(">I", rest)
    if size > 4096:
        raise ProtocolError(f"handshake of {size} bytes")
    if len(rest) - 4 < size:
        return None, buffer
    text = rest[4 : 4 + size].decode(errors="replace").rstrip("\0")
    m = _VERSION_RANGE.match(text)
    if not m:
        raise ProtocolError(f"bad version range {text!r}")
    low = int(m.group(1))
    high = int(m.group(2) or low)
    return Handshake(low, high, m.group(3) or ""), rest[4 + size :]


def handshake_reply(server_version: int, connection_time: str) -> bytes:
    """Exactly two fields: the clients end the handshake on a 2-field first frame."""
    return frame([server_version, connection_time])


# --------------------------------------------------------------------------- value objects


@dataclass(frozen=True)
class ContractSpec:
    """The 12 contract fields ``Client.send`` writes for a Contract, plus secIdType/secId."""

    conId: int = 0
    symbol: str = ""
    secType: str = "STK"
    lastTradeDateOrContractMonth: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = "SMART"
    primaryExchange: str = ""
    currency: str = "USD"
    localSymbol: str = ""
    tradingClass: str = ""


@dataclass(frozen=True)
class OrderSpec:
    """The order fields the simulator understands (everything else is kept in ``PlaceOrder.raw``)."""

    action: str = "BUY"
    totalQuantity: float = 0.0
    orderType: str = "LMT"
    lmtPrice: float | None = None
    auxPrice: float | None = None
    tif: str = "DAY"
    ocaGroup: str = ""
    account: str = ""
    openClose: str = ""
    origin: int = 0
    orderRef: str = ""
    transmit: bool = True
    parentId: int = 0
    outsideRth: bool = False
    hidden: bool = False


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    msg_id: int


@dataclass(frozen=True)
class StartApi(Request):
    client_id: int = 0
    optional_capabilities: str = ""


@dataclass(frozen=True)
class PlaceOrder(Request):
    order_id: int = 0
    contract: ContractSpec = field(default_factory=ContractSpec)
    order: OrderSpec = field(default_factory=OrderSpec)
    raw: tuple[str, ...] = ()


@dataclass(frozen=True)
class CancelOrder(Request):
    order_id: int = 0
    manual_cancel_time: str = ""


@dataclass(frozen=True)
class GlobalCancel(Request):
    pass


@dataclass(frozen=True)
class ReqIds(Request):
    num_ids: int = 1


@dataclass(frozen=True)
class ReqOpenOrders(Request):
    all_clients: bool = False


@dataclass(frozen=True)
class ReqAutoOpenOrders(Request):
    auto_bind: bool = False


@dataclass(frozen=True)
class ReqCompletedOrders(Request):
    api_only: bool = False


@dataclass(frozen=True)
class ExecFilter:
    clientId: int = 0
    acctCode: str = ""
    time: str = ""
    symbol: str = ""
    secType: str = ""
    exchange: str = ""
    side: str = ""


@dataclass(frozen=True)
class ReqExecutions(Request):
    req_id: int = 0
    filter: ExecFilter = field(default_factory=ExecFilter)


@dataclass(frozen=True)
class ReqPositions(Request):
    pass


@dataclass(frozen=True)
class CancelPositions(Request):
    pass


@dataclass(frozen=True)
class ReqCurrentTime(Request):
    pass


@dataclass(frozen=True)
class ReqAccountUpdates(Request):
    subscribe: bool = True
    account: str = ""


@dataclass(frozen=True)
class ReqAccountUpdatesMulti(Request):
    req_id: int = 0
    account: str = ""
    model_code: str = ""
    ledger_and_nlv: bool = False


@dataclass(frozen=True)
class ReqAccountSummary(Request):
    req_id: int = 0
    group: str = ""
    tags: str = ""


@dataclass(frozen=True)
class ReqManagedAccounts(Request):
    pass


@dataclass(frozen=True)
class Unknown(Request):
    fields: tuple[str, ...] = ()


def _int(s: str, default: int = 0) -> int:
    s = s.strip()
    if not s:
        return default
    try:
        return int(s)
    except ValueError:
        return int(float(s))


def _float(s: str) -> float | None:
    s = s.strip()
    if not s:
        return None
    if s == "Infinite":
        return math.inf
    return float(s)


def _bool(s: str) -> bool:
    s = s.strip()
    if s.lower() in ("true", "false"):
        return s.lower() == "true"
    return bool(_int(s))


def _contract(f: Sequence[str]) -> ContractSpec:
    return ContractSpec(
        conId=_int(f[0]),
        symbol=f[1],
        secType=f[2],
        lastTradeDateOrContractMonth=f[3],
        strike=_float(f[4]) or 0.0,
        right=f[5],
        multiplier=f[6],
        exchange=f[7],
        primaryExchange=f[8],
        currency=f[9],
        localSymbol=f[10],
        tradingClass=f[11],
    )


def _place_order(f: list[str]) -> PlaceOrder:
    # layout of client.placeOrder: id, order id, 12 contract fields, secIdType, secId, then the order
    if len(f) < 35:
        raise ProtocolError(f"PLACE_ORDER with {len(f)} fields")
    contract = _contract(f[2:14])
    o = f[16:]
    order = OrderSpec(
        action=o[0],
        totalQuantity=_float(o[1]) or 0.0,
        orderType=o[2],
        lmtPrice=_float(o[3]),
        auxPrice=_float(o[4]),
        tif=o[5],
        ocaGroup=o[6],
        account=o[7],
        openClose=o[8],
        origin=_int(o[9]),
        orderRef=o[10],
        transmit=_bool(o[11]) if o[11] else True,
        parentId=_int(o[12]),
        outsideRth=_bool(o[17]),
        hidden=_bool(o[18]),
    )
    return PlaceOrder(In.PLACE_ORDER, order_id=_int(f[1]), contract=contract, order=order, raw=tuple(f))


def decode_request(fields: list[str], server_version: int = SERVER_VERSION) -> Request:
    """Decode one client message; anything not understood comes back as ``Unknown``."""
    if not fields:
        raise ProtocolError("empty message")
    msg_id = _int(fields[0], -1)
    f = fields
    try:
        if msg_id == In.START_API:
            return StartApi(msg_id, client_id=_int(f[2]), optional_capabilities=f[3] if len(f) > 3 else "")
        if msg_id == In.PLACE_ORDER:
            return _place_order(f)
        if msg_id == In.CANCEL_ORDER:
            return CancelOrder(msg_id, order_id=_int(f[2]), manual_cancel_time=f[3] if len(f) > 3 else "")
        if msg_id == In.REQ_GLOBAL_CANCEL:
            return GlobalCancel(msg_id)
        if msg_id == In.REQ_IDS:
            return ReqIds(msg_id, num_ids=_int(f[2], 1))
        if msg_id == In.REQ_OPEN_ORDERS:
            return ReqOpenOrders(msg_id, all_clients=False)
        if msg_id == In.REQ_ALL_OPEN_ORDERS:
            return ReqOpenOrders(msg_id, all_clients=True)
        if msg_id == In.REQ_AUTO_OPEN_ORDERS:
            return ReqAutoOpenOrders(msg_id, auto_bind=_bool(f[2]))
        if msg_id == In.REQ_COMPLETED_ORDERS:
            return ReqCompletedOrders(msg_id, api_only=_bool(f[1]) if len(f) > 1 else False)
        if msg_id == In.REQ_EXECUTIONS:
            flt = ExecFilter(
                clientId=_int(f[3]),
                acctCode=f[4],
                time=f[5],
                symbol=f[6],
                secType=f[7],
                exchange=f[8],
                side=f[9],
            )
            return ReqExecutions(msg_id, req_id=_int(f[2]), filter=flt)
        if msg_id == In.REQ_POSITIONS:
            return ReqPositions(msg_id)
        if msg_id == In.CANCEL_POSITIONS:
            return CancelPositions(msg_id)
        if msg_id == In.REQ_CURRENT_TIME:
            return ReqCurrentTime(msg_id)
        if msg_id == In.REQ_ACCOUNT_UPDATES:
            return ReqAccountUpdates(msg_id, subscribe=_bool(f[2]), account=f[3])
        if msg_id == In.REQ_ACCOUNT_UPDATES_MULTI:
            return ReqAccountUpdatesMulti(
                msg_id, req_id=_int(f[2]), account=f[3], model_code=f[4], ledger_and_nlv=_bool(f[5])
            )
        if msg_id == In.REQ_ACCOUNT_SUMMARY:
            return ReqAccountSummary(msg_id, req_id=_int(f[2]), group=f[3], tags=f[4])
        if msg_id == In.REQ_MANAGED_ACCTS:
            return ReqManagedAccounts(msg_id)
    except (IndexError, ValueError) as exc:
        raise ProtocolError(f"malformed message {msg_id}: {exc}; fields={f!r}") from exc
    return Unknown(msg_id, fields=tuple(f))


# --------------------------------------------------------------------------- encoders (server → client)


Fields = list[object]


def contract_fields(c: ContractSpec, *, exchange: bool = True, primary: bool = False) -> Fields:
    """A contract as the server's messages lay it out: the messages differ only in carrying the routing
    exchange, the primary exchange, or both."""
    out: Fields = [
        c.conId,
        c.symbol,
        c.secType,
        c.lastTradeDateOrContractMonth,
        c.strike,
        c.right,
        c.multiplier,
    ]
    if exchange:
        out.append(c.exchange)
    if primary:
        out.append(c.primaryExchange)
    out += [c.currency, c.localSymbol, c.tradingClass]
    return out


def order_status(
    order_id: int,
    status: str,
    filled: float,
    remaining: float,
    avg_fill_price: float,
    perm_id: int,
    parent_id: int,
    last_fill_price: float,
    client_id: int,
    why_held: str = "",
    mkt_cap_price: float = 0.0,
) -> Fields:
    # no version field since server version 136 (the decoder skips only the message id)
    return [
        Out.ORDER_STATUS,
        order_id,
        status,
        filled,
        remaining,
        avg_fill_price,
        perm_id,
        parent_id,
        last_fill_price,
        client_id,
        why_held,
        mkt_cap_price,
    ]


def error(req_id: int, code: int, message: str, advanced_json: str = "", *, server_version: int) -> Fields:
    out: Fields = [Out.ERR_MSG, 2, req_id, code, message]
    if server_version >= 166:
        out.append(advanced_json)
    return out


@dataclass(frozen=True)
class OpenOrderView:
    """Everything an OPEN_ORDER / COMPLETED_ORDER message says about one order."""

    order_id: int
    client_id: int
    perm_id: int
    contract: ContractSpec
    order: OrderSpec
    status: str
    filled: float = 0.0
    parent_perm_id: int = 0
    completed_time: str = ""
    completed_status: str = ""
    warning_text: str = ""
    #: a whatIf answer: (initMarginBefore, maintMarginBefore, equityWithLoanBefore, initMarginChange,
    #: maintMarginChange, equityWithLoanChange, initMarginAfter, maintMarginAfter, equityWithLoanAfter,
    #: commission, minCommission, maxCommission, commissionCurrency)
    what_if: tuple[object, ...] | None = None


def open_order(v: OpenOrderView, *, server_version: int) -> Fields:
    """OPEN_ORDER exactly as ``Decoder.openOrder`` reads it (no version field since v145)."""
    o = v.order
    f: Fields = [Out.OPEN_ORDER, v.order_id]
    f += contract_fields(v.contract)
    f += [
        o.action,
        o.totalQuantity,
        o.orderType,
        o.lmtPrice,
        o.auxPrice,
        o.tif,
        o.ocaGroup,
        o.account,
        o.openClose,
        o.origin,
        o.orderRef,
        v.client_id,
        v.perm_id,
        o.outsideRth,
        o.hidden,
        "",  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
    ]
    if server_version < 177:
        f.append("")  # faProfile
    f += [
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        0,  # auctionStrategy
        "",  # startingPrice
        "",  # stockRefPrice
        "",  # delta
        "",  # stockRangeLower
        "",  # stockRangeUpper
        "",  # displaySize
        False,  # blockOrder
        False,  # sweepToFill
        False,  # allOrNone
        "",  # minQty
        0,  # ocaType
        False,  # eTradeOnly
        False,  # firmQuoteOnly
        "",  # nbboPriceCap
        o.parentId,
        0,  # triggerMethod
        "",  # volatility
        0,  # volatilityType
        "",  # deltaNeutralOrderType (empty: no delta-neutral block follows)
        "",  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        0,  # referencePriceType
        "",  # trailStopPrice
        "",  # trailingPercent
        "",  # basisPoints
        "",  # basisPointsType
        "",  # comboLegsDescrip
        0,  # number of combo legs
        0,  # number of order combo legs
        0,  # number of smart combo routing params
        "",  # scaleInitLevelSize
        "",  # scaleSubsLevelSize
        "",  # scalePriceIncrement (unset: no scale block follows)
        "",  # hedgeType (empty: no hedgeParam follows)
        False,  # optOutSmartRouting
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        0,  # delta-neutral contract present
        "",  # algoStrategy (empty: no params follow)
        False,  # solicited
        v.what_if is not None,  # whatIf
        v.status,
        *(v.what_if or ("",) * 13),  # margins before/change/after, commission, min, max, currency
        v.warning_text,
        False,  # randomizeSize
        False,  # randomizePrice
    ]
    if o.orderType == "PEG BENCH":
        f += [0, False, "", "", ""]
    f += [
        0,  # number of conditions
        "",  # adjustedOrderType
        "",  # triggerPrice
        "",  # trailStopPrice
        "",  # lmtPriceOffset
        "",  # adjustedStopPrice
        "",  # adjustedStopLimitPrice
        "",  # adjustedTrailingAmount
        0,  # adjustableTrailingUnit
        "",  # softDollarTier name
        "",  # softDollarTier value
        "",  # softDollarTier displayName
        "",  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        False,  # discretionaryUpToLimitPrice
        "",  # usePriceMgmtAlgo
    ]
    if server_version >= 159:
        f.append("")  # duration
    if server_version >= 160:
        f.append("")  # postToAts
    if server_version >= 162:
        f.append(False)  # autoCancelParent
    if server_version >= 170:
        f += ["", "", "", "", ""]  # minTradeQty, minCompeteSize, competeAgainstBestOffset, midOffsets
    return f


def completed_order(v: OpenOrderView, *, server_version: int) -> Fields:
    """COMPLETED_ORDER as ``Decoder.completedOrder`` reads it: no orderId, no clientId on the wire."""
    o = v.order
    f: Fields = [Out.COMPLETED_ORDER]
    f += contract_fields(v.contract)
    f += [
        o.action,
        o.totalQuantity,
        o.orderType,
        o.lmtPrice,
        o.auxPrice,
        o.tif,
        o.ocaGroup,
        o.account,
        o.openClose,
        o.origin,
        o.orderRef,
        v.perm_id,
        o.outsideRth,
        o.hidden,
        "",  # discretionaryAmt
        "",  # goodAfterTime
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
    ]
    if server_version < 177:
        f.append("")  # faProfile
    f += [
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
        "",  # startingPrice
        "",  # stockRefPrice
        "",  # delta
        "",  # stockRangeLower
        "",  # stockRangeUpper
        "",  # displaySize
        False,  # sweepToFill
        False,  # allOrNone
        "",  # minQty
        0,  # ocaType
        0,  # triggerMethod
        "",  # volatility
        0,  # volatilityType
        "",  # deltaNeutralOrderType
        "",  # deltaNeutralAuxPrice
        False,  # continuousUpdate
        0,  # referencePriceType
        "",  # trailStopPrice
        "",  # trailingPercent
        "",  # comboLegsDescrip
        0,  # combo legs
        0,  # order combo legs
        0,  # smart combo routing params
        "",  # scaleInitLevelSize
        "",  # scaleSubsLevelSize
        "",  # scalePriceIncrement
        "",  # hedgeType
        "",  # clearingAccount
        "",  # clearingIntent
        False,  # notHeld
        0,  # delta-neutral contract present
        "",  # algoStrategy
        False,  # solicited
        v.status,
        False,  # randomizeSize
        False,  # randomizePrice
    ]
    if o.orderType == "PEG BENCH":
        f += [0, False, "", "", ""]
    f += [
        0,  # number of conditions
        "",  # trailStopPrice
        "",  # lmtPriceOffset
        "",  # cashQty
        False,  # dontUseAutoPriceForHedge
        False,  # isOmsContainer
        "",  # autoCancelDate
        v.filled,  # filledQuantity
        0,  # refFuturesConId
        False,  # autoCancelParent
        "",  # shareholder
        False,  # imbalanceOnly
        False,  # routeMarketableToBbo
        v.parent_perm_id,
        v.completed_time,
        v.completed_status,
    ]
    if server_version >= 170:
        f += ["", "", "", "", ""]
    return f


def execution(
    req_id: int,
    order_id: int,
    contract: ContractSpec,
    exec_id: str,
    time: str,
    account: str,
    exchange: str,
    side: str,
    shares: float,
    price: float,
    perm_id: int,
    client_id: int,
    cum_qty: float,
    avg_price: float,
    order_ref: str = "",
    liquidation: int = 0,
    last_liquidity: int = 1,
    *,
    server_version: int,
) -> Fields:
    """EXECUTION_DATA: no version field since v136; reqId is -1 for live fills."""
    f: Fields = [Out.EXECUTION_DATA, req_id, order_id]
    f += contract_fields(contract)
    f += [
        exec_id,
        time,
        account,
        exchange,
        side,
        shares,
        price,
        perm_id,
        client_id,
        liquidation,
        cum_qty,
        avg_price,
        order_ref,
        "",  # evRule
        "",  # evMultiplier
        "",  # modelCode
        last_liquidity,
    ]
    if server_version >= 178:
        f.append(False)  # pendingPriceRevision
    return f


def commission_report(exec_id: str, commission: float, currency: str, realized_pnl: float | None = None) -> Fields:
    return [
        Out.COMMISSION_REPORT,
        1,
        exec_id,
        commission,
        currency,
        UNSET_DOUBLE if realized_pnl is None else realized_pnl,
        UNSET_DOUBLE,  # yield
        "",  # yieldRedemptionDate
    ]


def position(account: str, contract: ContractSpec, qty: float, avg_cost: float) -> Fields:
    return [Out.POSITION_DATA, 3, account, *contract_fields(contract), qty, avg_cost]


def next_valid_id(order_id: int) -> Fields:
    return [Out.NEXT_VALID_ID, 1, order_id]


def managed_accounts(accounts: Sequence[str]) -> Fields:
    return [Out.MANAGED_ACCTS, 1, ",".join(accounts)]


def current_time(epoch_seconds: int) -> Fields:
    return [Out.CURRENT_TIME, 1, epoch_seconds]


def open_order_end() -> Fields:
    return [Out.OPEN_ORDER_END, 1]


def completed_orders_end() -> Fields:
    return [Out.COMPLETED_ORDERS_END]


def execution_end(req_id: int) -> Fields:
    return [Out.EXECUTION_DATA_END, 1, req_id]


def position_end() -> Fields:
    return [Out.POSITION_END, 1]


def account_download_end(account: str) -> Fields:
    return [Out.ACCT_DOWNLOAD_END, 1, account]


def account_update_time(hhmm: str) -> Fields:
    return [Out.ACCT_UPDATE_TIME, 1, hhmm]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    return [Out.ACCT_VALUE, 2, key, value, currency, account]


def account_update_multi_end(req_id: int) -> Fields:
    return [Out.ACCOUNT_UPDATE_MULTI_END, 1, req_id]


def account_summary_end(req_id: int) -> Fields:
    return [Out.ACCOUNT_SUMMARY_END, 1, req_id]
