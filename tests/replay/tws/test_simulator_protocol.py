"""Protocol, scenario-file and broker units, checked against the client library's own encoder/decoder."""

from __future__ import annotations

import importlib
import struct
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest

from ledger.ib.library import ExecutionFilter, LimitOrder, MarketOrder, Stock, ib
from replay.tws import protocol as P
from replay.tws.broker import Broker
from replay.tws.scenarios import ScenarioBook, ScenarioError, load_dir, load_file

# ----------------------------------------------------------------------------- framing, handshake


def test_frame_roundtrip_across_partial_buffers():
    data = P.frame([3, 1, "Submitted", 0.0, 100.0, 1.5, None, True]) + P.frame([53, 1])
    msgs, rest = P.split_frames(data[:7])
    assert msgs == [] and rest == data[:7]
    msgs, rest = P.split_frames(data)
    assert msgs == [["3", "1", "Submitted", "0", "100", "1.5", "", "1"], ["53", "1"]] and rest == b""


def test_handshake_parse_and_negotiate():
    hello = b"API\0" + struct.pack(">I", 9) + b"v157..178"
    assert P.parse_handshake(hello[:6]) == (None, hello[:6])
    hs, rest = P.parse_handshake(hello + b"more")
    assert (hs.min_version, hs.max_version, rest) == (157, 178, b"more")
    assert hs.negotiate() == 176
    text = b"v157..176 +PACEAPI"
    hs2, _ = P.parse_handshake(b"API\0" + struct.pack(">I", len(text)) + text)
    assert hs2.max_version == 176 and hs2.options == "+PACEAPI"
    with pytest.raises(P.ProtocolError):
        P.parse_handshake(b"GET / HTTP/1.1\r\n")
    old, _ = P.parse_handshake(b"API\0" + struct.pack(">I", 9) + b"v100..150")
    with pytest.raises(P.ProtocolError):
        old.negotiate()
    msgs, _ = P.split_frames(P.handshake_reply(176, "20240102 09:30:00 US/Eastern"))
    assert msgs == [["176", "20240102 09:30:00 US/Eastern"]]  # exactly two fields


# ------------------------------------------------------------------ requests, as the client encodes them


class _Capture:
    """The library's real Client with its socket replaced: what it would send, as field lists."""

    def __init__(self) -> None:
        self.client = ib.Client(ib.Wrapper(None))
        self.client._serverVersion = 176
        self.client.connState = ib.Client.CONNECTED
        self.sent: list[list[str]] = []
        self.client.sendMsg = lambda msg: self.sent.append(msg.split("\0")[:-1])

    def last(self) -> P.Request:
        return P.decode_request(self.sent[-1], 176)


def test_decode_requests_from_the_real_client_encoder():
    cap = _Capture()
    c = cap.client
    order = LimitOrder("SELL", 250, 12.34, orderRef="my-ref", tif="GTC", account="DU9", outsideRth=True)
    c.placeOrder(42, Stock("AAPL", "SMART", "USD", primaryExchange="NASDAQ"), order)
    req = cap.last()
    assert isinstance(req, P.PlaceOrder) and req.order_id == 42
    assert (
        req.contract.symbol,
        req.contract.secType,
        req.contract.exchange,
        req.contract.primaryExchange,
    ) == (
        "AAPL",
        "STK",
        "SMART",
        "NASDAQ",
    )
    o = req.order
    assert (o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.auxPrice, o.tif) == (
        "SELL",
        250.0,
        "LMT",
        12.34,
        None,
        "GTC",
    )
    assert (o.account, o.orderRef, o.transmit, o.outsideRth) == ("DU9", "my-ref", True, True)
    c.placeOrder(43, Stock("MSFT", "SMART", "USD"), MarketOrder("BUY", 1))
    assert cap.last().order.orderType == "MKT" and cap.last().order.lmtPrice is None

    c.cancelOrder(42)
    assert cap.last() == P.CancelOrder(P.In.CANCEL_ORDER, order_id=42, manual_cancel_time="")
    c.reqGlobalCancel()
    assert isinstance(cap.last(), P.GlobalCancel)
    c.reqExecutions(7, ExecutionFilter(clientId=3, symbol="AAPL", side="BUY"))
    req = cap.last()
    assert isinstance(req, P.ReqExecutions) and req.req_id == 7
    assert (req.filter.clientId, req.filter.symbol, req.filter.side) == (3, "AAPL", "BUY")
    c.reqCompletedOrders(True)
    assert cap.last() == P.ReqCompletedOrders(P.In.REQ_COMPLETED_ORDERS, api_only=True)
    c.reqAccountUpdatesMulti(9, "DU1", "", False)
    assert cap.last() == P.ReqAccountUpdatesMulti(P.In.REQ_ACCOUNT_UPDATES_MULTI, 9, "DU1", "", False)
    c.reqAccountUpdates(True, "DU1")
    assert cap.last() == P.ReqAccountUpdates(P.In.REQ_ACCOUNT_UPDATES, True, "DU1")
    c.clientId = 5
    c.startApi()
    assert cap.last() == P.StartApi(P.In.START_API, client_id=5, optional_capabilities="")
    for call, typ in (
        (c.reqOpenOrders, P.ReqOpenOrders),
        (c.reqAllOpenOrders, P.ReqOpenOrders),
        (c.reqPositions, P.ReqPositions),
        (c.reqCurrentTime, P.ReqCurrentTime),
    ):
        call()
        assert isinstance(cap.last(), typ)
    assert cap.last() == P.ReqCurrentTime(P.In.REQ_CURRENT_TIME)
    c.reqAutoOpenOrders(True)
    assert cap.last() == P.ReqAutoOpenOrders(P.In.REQ_AUTO_OPEN_ORDERS, auto_bind=True)
    c.reqIds(1)
    assert cap.last() == P.ReqIds(P.In.REQ_IDS, 1)
    c.reqMktData(1, Stock("AAPL", "SMART", "USD"), "", False, False, [])
    assert isinstance(cap.last(), P.Unknown)
    with pytest.raises(P.ProtocolError):
        P.decode_request(["3", "1", "0"])


# ------------------------------------------------------------------ encoders, through the client's decoder


class _Calls:
    defaultTimezone = UTC  # ib_async converts execution times to the wrapper's zone

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


def _decode(fields: P.Fields, server_version: int = 176) -> list[tuple[str, tuple]]:
    wrapper = _Calls()
    decoder = importlib.import_module(f"{ib.__name__}.decoder").Decoder(wrapper, server_version)
    msgs, _ = P.split_frames(P.frame(fields))
    decoder.interpret(msgs[0])
    return wrapper.calls


VIEW = P.OpenOrderView(
    order_id=5,
    client_id=2,
    perm_id=1100000009,
    contract=P.ContractSpec(conId=265598, symbol="AAPL", localSymbol="AAPL", tradingClass="NMS"),
    order=P.OrderSpec(action="BUY", totalQuantity=100, orderType="LMT", lmtPrice=150.5, tif="DAY", orderRef="r1"),
    status="Submitted",
    filled=40,
    completed_time="20240102 09:30:05 US/Eastern",
    completed_status="Cancelled",
)


@pytest.mark.parametrize("sv", [176, 170, 162, 157])
def test_open_order_decodes_field_by_field(sv: int):
    ((name, (order_id, contract, order, state)),) = _decode(P.open_order(VIEW, server_version=sv), sv)
    assert name == "openOrder" and order_id == 5
    assert (contract.conId, contract.symbol, contract.tradingClass) == (265598, "AAPL", "NMS")
    assert (order.orderId, order.clientId, order.permId, order.action, order.totalQuantity) == (
        5,
        2,
        1100000009,
        "BUY",
        100.0,
    )
    assert (order.lmtPrice, order.orderType, order.orderRef, order.tif) == (150.5, "LMT", "r1", "DAY")
    assert order.auxPrice == ib.util.UNSET_DOUBLE and state.status == "Submitted"


def test_completed_order_has_no_order_id_on_the_wire():
    ((name, (contract, order, state)),) = _decode(P.completed_order(VIEW, server_version=176))
    assert name == "completedOrder"
    assert (order.orderId, order.clientId, order.permId, order.filledQuantity) == (0, 0, 1100000009, 40.0)
    assert (state.status, state.completedStatus, state.completedTime) == (
        "Submitted",
        "Cancelled",
        "20240102 09:30:05 US/Eastern",
    )
    assert contract.symbol == "AAPL"


def test_status_execution_commission_error_position_decode():
    ((name, args),) = _decode(P.order_status(5, "Filled", 100, 0, 10.5, 77, 0, 10.5, 2, "", 0.0))
    assert name == "orderStatus" and args == (5, "Filled", 100.0, 0.0, 10.5, 77, 0, 10.5, 2, "", 0.0)
    ex_fields = P.execution(
        -1, P.MANUAL_EXEC_ORDER_ID, VIEW.contract, "0000e0d5.00000001.01.01", "20240102 09:30:01 US/Eastern",
        "DU1", "ISLAND", "BOT", 100, 10.5, 77, 0, 100, 10.5, "r1", server_version=176,
    )  # fmt: skip
    assert len(ex_fields) == 31  # ib_insync unpacks exactly this many
    ((name, (req_id, contract, ex)),) = _decode(ex_fields)
    assert name == "execDetails" and req_id == -1
    assert (ex.orderId, ex.execId, ex.shares, ex.price, ex.permId, ex.cumQty, ex.side) == (
        P.MANUAL_EXEC_ORDER_ID,
        "0000e0d5.00000001.01.01",
        100.0,
        10.5,
        77,
        100.0,
        "BOT",
    )
    assert ex.time.isoformat() == "2024-01-02T14:30:01+00:00"
    ((name, (report,)),) = _decode(P.commission_report("x.01", 1.25, "USD"))
    assert name == "commissionReport" and (report.execId, report.commission, report.currency) == (
        "x.01",
        1.25,
        "USD",
    )
    ((name, args),) = _decode(P.error(5, 202, "Order Canceled - reason:", '{"x":1}', server_version=176))
    assert name == "error" and args == (5, 202, "Order Canceled - reason:", '{"x":1}')
    ((name, args),) = _decode(P.error(5, 202, "gone", "ignored", server_version=165), 165)
    assert args == (5, 202, "gone", "")
    ((name, (account, contract, qty, cost)),) = _decode(P.position("DU1", VIEW.contract, -20, 10.25))
    assert (name, account, contract.symbol, qty, cost) == ("position", "DU1", "AAPL", -20.0, 10.25)


@pytest.mark.parametrize(
    ("fields", "call"),
    [
        (P.next_valid_id(12), ("nextValidId", (12,))),
        (P.managed_accounts(["DU1", "DU2"]), ("managedAccounts", ("DU1,DU2",))),
        (P.current_time(1704205800), ("currentTime", (1704205800,))),
        (P.open_order_end(), ("openOrderEnd", ())),
        (P.completed_orders_end(), ("completedOrdersEnd", ())),
        (P.execution_end(4), ("execDetailsEnd", (4,))),
        (P.position_end(), ("positionEnd", ())),
        (P.account_download_end("DU1"), ("accountDownloadEnd", ("DU1",))),
        (P.account_update_multi_end(3), ("accountUpdateMultiEnd", (3,))),
        (P.account_summary_end(8), ("accountSummaryEnd", (8,))),
        (P.account_update_time("09:30"), ("updateAccountTime", ("09:30",))),
        (P.account_value("NetLiq", "1", "USD", "DU1"), ("updateAccountValue", ("NetLiq", "1", "USD", "DU1"))),
    ],
)  # fmt: skip
def test_small_messages_decode(fields: P.Fields, call: tuple):
    assert _decode(fields) == [call]


# ----------------------------------------------------------------------------- scenario files


def test_builtin_scenarios_load_and_are_unique():
    scenarios = load_dir(Path(__file__).resolve().parents[3] / "replay" / "tws" / "scenarios")
    names = [s.name for s in scenarios]
    assert len(names) == len(set(names)) >= 20


def _bad(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_file(path)
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "[[scenario]]\nname = 'x'\n[[scenario.steps]]\ntype = 'teleport'\n",
            ["steps[0]", "teleport", "'x'"],
        ),
        ("[[scenario]]\nname = 'x'\n[[scenario.steps]]\ntype = 'status'\n", ["steps[0]", "missing 'status'"]),
        (
            "[[scenario]]\nname = 'x'\n[[scenario.steps]]\ntype = 'status'\nstatus = 'Submitted'\n"
            "[[scenario.steps]]\ntype = 'exec'\nqty = 0\n",
            ["steps[1]", "'qty'"],
        ),
        (
            "[[scenario]]\nname = 'x'\n[[scenario.on_cancel]]\ntype = 'error'\ncod = 202\n",
            ["on_cancel[0]", "cod"],
        ),
        ("[[scenario]]\nname = 'x'\n[[scenario.steps]]\ntype = 'drop'\nafter_ms = -5\n", ["after_ms"]),
        ("[[scenario]]\nname = 'x'\nsteps = 3\n", ["steps", "array"]),
        ("[[scenario]]\ndescription = 'no name'\n", ["scenario[0]", "name"]),
        ("[[scenario]]\nname = 'x'\n[scenario.match]\ncolour = 'red'\n", ["colour"]),
        ("[[scenario]\nname = 'x'\n", ["not valid TOML"]),
        ("scenarios = []\n", ["unknown top-level"]),
    ],
)
def test_bad_scenario_files_say_where_and_what(tmp_path: Path, text: str, needles: list[str]):
    message = _bad(tmp_path, text)
    assert "bad.toml" in message
    for needle in needles:
        assert needle in message, message


def test_duplicate_scenario_names_across_files_are_rejected(tmp_path: Path):
    (tmp_path / "a.toml").write_text("[[scenario]]\nname = 'x'\n")
    (tmp_path / "b.toml").write_text("[[scenario]]\nname = 'x'\n")
    book = ScenarioBook()
    with pytest.raises(ScenarioError, match="already defined"):
        for s in load_dir(tmp_path):
            book.add(s)


def test_choose_by_order_ref_then_match_then_default():
    book = ScenarioBook(load_dir(Path(__file__).resolve().parents[3] / "replay" / "tws" / "scenarios"))
    assert book.choose("partial_fills", "AAPL", "BUY", 100, "DAY", "LMT").name == "partial_fills"
    assert book.choose("", "AAPL", "BUY", 100, "FOK", "LMT").name == "fok_immediate_cancel"
    assert book.choose("", "AAPL", "BUY", 100, "ioc", "LMT").name == "ioc_partial_cancel"
    assert book.choose("no-such-ref", "AAPL", "BUY", 100, "DAY", "LMT").name == "default"


# ----------------------------------------------------------------------------- broker truth


def _order(broker: Broker, order_id: int = 1, action: str = "BUY", qty: float = 100):
    return broker.place(1, order_id, P.ContractSpec(symbol="AAPL"), P.OrderSpec(action=action, totalQuantity=qty))


def test_broker_ids_are_deterministic():
    def run() -> tuple:
        b = Broker()
        o = _order(b)
        e = b.add_execution(o, 10, 5.0, b.new_exec_base() + ".01")
        b.set_status(o, "Cancelled")
        return o.perm_id, e.exec_id, e.time, o.completed_time

    assert run() == run() == (1100000001, "0000e0d5.65930001.01.01", "20240102 09:30:01 US/Eastern",
                              "20240102 09:30:02 US/Eastern")  # fmt: skip


def test_broker_correction_replaces_and_positions_follow():
    b = Broker()
    o = _order(b)
    base = b.new_exec_base()
    b.add_execution(o, 100, 10.0, base + ".01")
    b.add_execution(o, 100, 10.5, base + ".02")
    assert [e.exec_id for e in b.executions()] == [base + ".02"]
    assert [e.exec_id for e in b.superseded_executions()] == [base + ".01"]
    assert (o.filled, o.avg_fill_price) == (100, 10.5)
    (pos,) = b.positions()
    assert (pos.qty, pos.avg_cost, pos.contract.conId) == (100, 10.5, 265598)
    sell = _order(b, 2, "SELL", 150)
    b.add_execution(sell, 150, 11.0, b.new_exec_base() + ".01")
    (pos,) = b.positions()
    assert (pos.qty, pos.avg_cost) == (-50, 11.0)  # flipped through zero
    assert b.next_valid_id(1) == 3 and b.next_valid_id(2) == 1


def test_broker_open_and_completed_orders():
    b = Broker()
    o1, o2 = _order(b, 1), _order(b, 2)
    b.set_status(o2, "Filled")
    b.set_status(o1, "Inactive")
    assert [o.order_id for o in b.completed_orders()] == [2, 1]
    b.set_status(o1, "Submitted")  # Inactive with whyHeld can come back to life
    assert [o.order_id for o in b.open_orders(1)] == [1]
    assert [o.order_id for o in b.completed_orders()] == [2]
    manual = b.place_manual(P.ContractSpec(symbol="MSFT"), P.OrderSpec(totalQuantity=1))
    assert (manual.wire_order_id, manual.exec_order_id) == (0, P.MANUAL_EXEC_ORDER_ID)
    assert manual in b.open_orders(None) and manual not in b.open_orders(1)
