"""Every request the IB clients can encode, and how the simulator answers the ones it does not serve.

TWS never leaves a request unanswered: an unsupported or refused request gets an error carrying the
request's id (322 "Error processing request", 354 "market data is not subscribed", ...), and requests
that have a natural empty reply (family codes, news providers, scanner parameters, ...) get that empty
reply. A client waiting on a future therefore always wakes up — which is why requests a client awaits
never get 321: ib_async files 321 under warnings and keeps waiting. Requests without an id, and
message ids the table does not know, are answered with error 321 and request id -1.

``req_id_index`` is where the request id sits in the client's message (after the message id and, for
the older messages, a version field); ``None`` for requests that carry none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

#: the request is served by the simulator proper (orders, account, market data, contracts)
SERVED = "served"
#: fire-and-forget: TWS sends nothing back (cancels, settings); the client waits for nothing
NO_REPLY = "no_reply"
#: answered with an error (code below) carrying the request id
ERROR = "error"
#: answered with an empty but valid reply message
EMPTY = "empty"


@dataclass(frozen=True)
class RequestKind:
    msg_id: int
    name: str
    req_id_index: int | None
    handling: str
    code: int = 321
    #: for EMPTY: the reply's fields; the string "{req}" is replaced by the request id
    reply: tuple[object, ...] = ()


def _k(msg_id: int, name: str, idx: int | None, handling: str, code: int = 321, reply: tuple = ()) -> RequestKind:
    return RequestKind(msg_id, name, idx, handling, code, reply)


_TABLE: tuple[RequestKind, ...] = (
    _k(1, "reqMktData", 2, SERVED),
    _k(2, "cancelMktData", 2, NO_REPLY),
    _k(3, "placeOrder", 1, SERVED),
    _k(4, "cancelOrder", 2, SERVED),
    _k(5, "reqOpenOrders", None, SERVED),
    _k(6, "reqAccountUpdates", None, SERVED),
    _k(7, "reqExecutions", 2, SERVED),
    _k(8, "reqIds", None, SERVED),
    _k(9, "reqContractDetails", 2, SERVED),
    _k(10, "reqMktDepth", 2, ERROR, 354),
    _k(11, "cancelMktDepth", 2, NO_REPLY),
    _k(12, "reqNewsBulletins", None, ERROR),
    _k(13, "cancelNewsBulletins", None, NO_REPLY),
    _k(14, "setServerLogLevel", None, NO_REPLY),
    _k(15, "reqAutoOpenOrders", None, SERVED),
    _k(16, "reqAllOpenOrders", None, SERVED),
    _k(17, "reqManagedAccts", None, SERVED),
    _k(18, "requestFA", None, ERROR),
    _k(19, "replaceFA", 4, ERROR, 322),
    _k(20, "reqHistoricalData", 1, SERVED),
    _k(21, "exerciseOptions", 2, ERROR, 322),
    _k(22, "reqScannerSubscription", 1, EMPTY, reply=(20, 3, "{req}", 0)),
    _k(23, "cancelScannerSubscription", 2, NO_REPLY),
    _k(24, "reqScannerParameters", None, EMPTY, reply=(19, 1, "<ScanParameterResponse/>")),
    _k(25, "cancelHistoricalData", 2, NO_REPLY),
    _k(49, "reqCurrentTime", None, SERVED),
    _k(50, "reqRealTimeBars", 2, SERVED),
    _k(51, "cancelRealTimeBars", 2, NO_REPLY),
    _k(52, "reqFundamentalData", 2, ERROR, 430),
    _k(53, "cancelFundamentalData", 2, NO_REPLY),
    _k(54, "calculateImpliedVolatility", 2, ERROR, 322),
    _k(55, "calculateOptionPrice", 2, ERROR, 322),
    _k(56, "cancelCalculateImpliedVolatility", 2, NO_REPLY),
    _k(57, "cancelCalculateOptionPrice", 2, NO_REPLY),
    _k(58, "reqGlobalCancel", None, SERVED),
    _k(59, "reqMarketDataType", None, SERVED),
    _k(61, "reqPositions", None, SERVED),
    _k(62, "reqAccountSummary", 2, SERVED),
    _k(63, "cancelAccountSummary", 2, NO_REPLY),
    _k(64, "cancelPositions", None, SERVED),
    _k(65, "verifyRequest", None, ERROR),
    _k(66, "verifyMessage", None, ERROR),
    _k(67, "queryDisplayGroups", 2, EMPTY, reply=(67, 1, "{req}", "1|2|3|4|5|6|7")),
    _k(68, "subscribeToGroupEvents", 2, EMPTY, reply=(68, 1, "{req}", "")),
    _k(69, "updateDisplayGroup", 2, EMPTY, reply=(68, 1, "{req}", "")),
    _k(70, "unsubscribeFromGroupEvents", 2, NO_REPLY),
    _k(71, "startApi", None, SERVED),
    _k(72, "verifyAndAuthRequest", None, ERROR),
    _k(73, "verifyAndAuthMessage", None, ERROR),
    _k(74, "reqPositionsMulti", 2, SERVED),
    _k(75, "cancelPositionsMulti", 2, NO_REPLY),
    _k(76, "reqAccountUpdatesMulti", 2, SERVED),
    _k(77, "cancelAccountUpdatesMulti", 2, NO_REPLY),
    _k(78, "reqSecDefOptParams", 1, SERVED),
    _k(79, "reqSoftDollarTiers", 1, EMPTY, reply=(77, "{req}", 0)),
    _k(80, "reqFamilyCodes", None, EMPTY, reply=(78, 0)),
    _k(81, "reqMatchingSymbols", 1, SERVED),
    _k(82, "reqMktDepthExchanges", None, EMPTY, reply=(80, 0)),
    _k(83, "reqSmartComponents", 1, EMPTY, reply=(82, "{req}", 0)),
    _k(84, "reqNewsArticle", 1, ERROR, 10276),
    _k(85, "reqNewsProviders", None, EMPTY, reply=(85, 0)),
    _k(86, "reqHistoricalNews", 1, ERROR, 10276),
    _k(87, "reqHeadTimeStamp", 1, SERVED),
    _k(88, "reqHistogramData", 1, ERROR, 162),
    _k(89, "cancelHistogramData", 1, NO_REPLY),
    _k(90, "cancelHeadTimeStamp", 1, NO_REPLY),
    _k(91, "reqMarketRule", None, SERVED),
    _k(92, "reqPnL", 1, SERVED),
    _k(93, "cancelPnL", 1, NO_REPLY),
    _k(94, "reqPnLSingle", 1, SERVED),
    _k(95, "cancelPnLSingle", 1, NO_REPLY),
    _k(96, "reqHistoricalTicks", 1, ERROR, 162),
    _k(97, "reqTickByTickData", 1, ERROR, 10090),
    _k(98, "cancelTickByTickData", 1, NO_REPLY),
    _k(99, "reqCompletedOrders", None, SERVED),
    _k(100, "reqWshMetaData", 1, ERROR, 10276),
    _k(101, "cancelWshMetaData", 1, NO_REPLY),
    _k(102, "reqWshEventData", 1, ERROR, 10276),
    _k(103, "cancelWshEventData", 1, NO_REPLY),
    _k(104, "reqUserInfo", 1, EMPTY, reply=(107, "{req}", "")),
)

REQUESTS: dict[int, RequestKind] = {k.msg_id: k for k in _TABLE}

ERROR_TEXT = {
    162: "Historical Market Data Service error message:{name} is not served by the ibledger simulator",
    321: "Error validating request.-'{name}' : cause - not supported by the ibledger simulator",
    322: "Error processing request.-'{name}' : cause - not supported by the ibledger simulator",
    354: "Requested market data is not subscribed.{name} is not served by the ibledger simulator",
    430: "We are sorry, but fundamentals data for the security specified is not available.",
    10090: "Part of requested market data is not subscribed. {name} is not served by the ibledger simulator",
    10276: "News feed is not allowed. {name} is not served by the ibledger simulator",
}


def kind_of(msg_id: int) -> RequestKind:
    """The table entry; an unknown message id is treated as an unsupported request without an id."""
    return REQUESTS.get(msg_id) or RequestKind(msg_id, f"request {msg_id}", None, ERROR)


def request_id(kind: RequestKind, fields: Sequence[str]) -> int:
    """The request id a reply must carry (-1 when the request has none, as TWS does)."""
    if kind.req_id_index is None or kind.req_id_index >= len(fields):
        return -1
    try:
        return int(fields[kind.req_id_index] or -1)
    except ValueError:
        return -1


def refusal(kind: RequestKind, fields: Sequence[str]) -> tuple[int, int, str]:
    """(request id, error code, text) for a request the simulator does not serve."""
    text = ERROR_TEXT.get(kind.code, ERROR_TEXT[321]).format(name=kind.name)
    return request_id(kind, fields), kind.code, text


def empty_reply(kind: RequestKind, fields: Sequence[str]) -> list[object]:
    req = request_id(kind, fields)
    return [req if f == "{req}" else f for f in kind.reply]
