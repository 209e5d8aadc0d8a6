"""Never silent: every request the client library can encode gets a reply or a TWS-like error in time.

The requests go out through the real client's own encoder (``ib.client.reqXxx``), over the socket, and
what comes back is read at the client's decoder, so a layout the client cannot parse shows up too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from ledger.ib.library import ib as iblib
from replay.tws import requests as R
from replay.tws.simulator import Simulator
from tests.support.simulator import connected

pytestmark = pytest.mark.ibclient

AAPL = iblib.Stock("AAPL", "SMART", "USD")


def _calls(c: Any) -> list[tuple[int, int | None, Callable[[int], None]]]:
    """(message id, request id used or None, call) for every request type the client encodes."""
    sub = iblib.ScannerSubscription(instrument="STK", locationCode="STK.US.MAJOR", scanCode="TOP_PERC_GAIN")
    flt = iblib.ExecutionFilter()
    return [
        (1, 9001, lambda r: c.reqMktData(r, AAPL, "", True, False, [])),
        (3, None, lambda r: c.placeOrder(c.getReqId(), AAPL, iblib.LimitOrder("BUY", 1, 100.0))),
        (4, 9003, lambda r: c.cancelOrder(r)),
        (5, None, lambda r: c.reqOpenOrders()),
        (6, None, lambda r: c.reqAccountUpdates(True, "DU1234567")),
        (7, 9007, lambda r: c.reqExecutions(r, flt)),
        (8, None, lambda r: c.reqIds(1)),
        (9, 9009, lambda r: c.reqContractDetails(r, AAPL)),
        (10, 9010, lambda r: c.reqMktDepth(r, AAPL, 5, False, [])),
        (12, None, lambda r: c.reqNewsBulletins(True)),
        (16, None, lambda r: c.reqAllOpenOrders()),
        (17, None, lambda r: c.reqManagedAccts()),
        (18, None, lambda r: c.requestFA(1)),
        (19, 9019, lambda r: c.replaceFA(r, 1, "<xml/>")),
        (20, 9020, lambda r: c.reqHistoricalData(r, AAPL, "", "1 D", "1 hour", "TRADES", True, 1, False, [])),
        (21, 9021, lambda r: c.exerciseOptions(r, AAPL, 1, 1, "DU1234567", 0)),
        (22, 9022, lambda r: c.reqScannerSubscription(r, sub, [], [])),
        (24, None, lambda r: c.reqScannerParameters()),
        (49, None, lambda r: c.reqCurrentTime()),
        (50, 9050, lambda r: c.reqRealTimeBars(r, AAPL, 5, "TRADES", False, [])),
        (52, 9052, lambda r: c.reqFundamentalData(r, AAPL, "ReportSnapshot", [])),
        (54, 9054, lambda r: c.calculateImpliedVolatility(r, AAPL, 1.0, 100.0, [])),
        (55, 9055, lambda r: c.calculateOptionPrice(r, AAPL, 0.2, 100.0, [])),
        (61, None, lambda r: c.reqPositions()),
        (62, 9062, lambda r: c.reqAccountSummary(r, "All", "NetLiquidation")),
        (65, None, lambda r: c.verifyRequest("app", "1")),
        (66, None, lambda r: c.verifyMessage("data")),
        (67, 9067, lambda r: c.queryDisplayGroups(r)),
        (68, 9068, lambda r: c.subscribeToGroupEvents(r, 1)),
        (69, 9069, lambda r: c.updateDisplayGroup(r, "8314@SMART")),
        (72, None, lambda r: c.verifyAndAuthRequest("app", "1", "key")),
        (73, None, lambda r: c.verifyAndAuthMessage("data", "resp")),
        (74, 9074, lambda r: c.reqPositionsMulti(r, "DU1234567", "")),
        (76, 9076, lambda r: c.reqAccountUpdatesMulti(r, "DU1234567", "", False)),
        (78, 9078, lambda r: c.reqSecDefOptParams(r, "AAPL", "", "STK", 265598)),
        (79, 9079, lambda r: c.reqSoftDollarTiers(r)),
        (80, None, lambda r: c.reqFamilyCodes()),
        (81, 9081, lambda r: c.reqMatchingSymbols(r, "AA")),
        (82, None, lambda r: c.reqMktDepthExchanges()),
        (83, 9083, lambda r: c.reqSmartComponents(r, "a6")),
        (84, 9084, lambda r: c.reqNewsArticle(r, "BZ", "BZ$1", [])),
        (85, None, lambda r: c.reqNewsProviders()),
        (86, 9086, lambda r: c.reqHistoricalNews(r, 265598, "BZ", "", "", 10, [])),
        (87, 9087, lambda r: c.reqHeadTimeStamp(r, AAPL, "TRADES", True, 1)),
        (88, 9088, lambda r: c.reqHistogramData(r, AAPL, True, "1 day")),
        (91, None, lambda r: c.reqMarketRule(26)),
        (92, 9092, lambda r: c.reqPnL(r, "DU1234567", "")),
        (94, 9094, lambda r: c.reqPnLSingle(r, "DU1234567", "", 265598)),
        (96, 9096, lambda r: c.reqHistoricalTicks(r, AAPL, "20240102 10:00:00", "", 10, "TRADES", 1, True, [])),
        (97, 9097, lambda r: c.reqTickByTickData(r, AAPL, "Last", 0, False)),
        (99, None, lambda r: c.reqCompletedOrders(False)),
        (100, 9100, lambda r: c.reqWshMetaData(r)),
        (104, 9104, lambda r: c.reqUserInfo(r)),
    ]


def _mentions(fields: list[str], req_id: int) -> bool:
    return str(req_id) in fields[1:4]


def test_every_request_type_gets_a_reply_or_an_error_within_a_second(caplog: pytest.LogCaptureFixture):
    with Simulator() as sim:
        with connected(sim.port, client_id=7) as ib:
            seen: list[list[str]] = []
            decoder = ib.client.decoder
            original = decoder.interpret

            def interpret(fields: list[str]) -> None:
                seen.append(list(fields))
                try:
                    original(fields)
                except Exception as exc:  # a layout the client cannot decode fails the test
                    seen.append(["decode-error", repr(exc)])

            decoder.interpret = interpret
            calls = _calls(ib.client)
            encodable = {
                R.REQUESTS[m].name for m in R.REQUESTS if R.REQUESTS[m].handling != R.NO_REPLY
            } - {"startApi", "reqAutoOpenOrders", "reqGlobalCancel", "reqMarketDataType", "cancelPositions"}
            assert {R.REQUESTS[m].name for m, _r, _c in calls} >= encodable - {"reqWshEventData"}
            silent: list[str] = []
            for msg_id, req_id, call in calls:
                before = len(seen)
                caplog.clear()
                with caplog.at_level(logging.INFO, logger="replay.tws.simulator"):
                    call(req_id if req_id is not None else 0)
                    if msg_id == 50:  # the first 5-second bar comes once 5 simulated seconds have passed
                        ib.sleep(0.05)
                        sim.advance(5)
                    deadline = time.monotonic() + 1.0

                    def answered(before: int = before, req_id: int | None = req_id) -> bool:
                        new = seen[before:]
                        return any(req_id is None or _mentions(f, req_id) for f in new)

                    while time.monotonic() < deadline and not answered():
                        ib.sleep(0.005)
                if not answered():
                    silent.append(R.REQUESTS[msg_id].name)
                kind = R.REQUESTS[msg_id]
                if kind.handling in (R.ERROR, R.EMPTY) and not sim._handlers.get(msg_id):
                    assert any(r.levelno == logging.WARNING for r in caplog.records), kind.name
            assert silent == []
            assert not [f for f in seen if f[0] == "decode-error"]
            assert ib.isConnected()


def test_an_unknown_message_id_is_refused_with_321():
    with Simulator() as sim:
        with connected(sim.port, client_id=8) as ib:
            errors: list[tuple] = []
            ib.errorEvent += lambda *a: errors.append(a)
            ib.client.send(250, 1, 42)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and not errors:
                ib.sleep(0.01)
            assert [(e[0], e[1]) for e in errors] == [(-1, 321)]


def test_fire_and_forget_requests_leave_the_connection_working():
    with Simulator() as sim:
        with connected(sim.port, client_id=9) as ib:
            c = ib.client
            for cancel in (c.cancelMktData, c.cancelHistoricalData, c.cancelRealTimeBars, c.cancelPnL):
                cancel(4242)
            c.setServerLogLevel(5)
            assert ib.reqCurrentTime() is not None


#: codes ib_insync / ib_async file under warnings: an awaited request answered with one never completes
CLIENT_WARNING_CODES = {105, 110, 165, 202, 321, 329, 399, 404, 434, 492, 10167}


def test_refusals_of_awaitable_requests_use_codes_the_clients_treat_as_errors():
    for kind in R.REQUESTS.values():
        if kind.handling == R.ERROR and kind.req_id_index is not None:
            assert kind.code not in CLIENT_WARNING_CODES, kind.name
