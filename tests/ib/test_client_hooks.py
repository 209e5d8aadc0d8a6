"""The client hooks on a real IB client over a real socket to the simulator, with a port that only lists
what it is handed: the hooks convert and hand over first, the library still sees everything, a refusal
stops a placement before the wire, and undo leaves the client as it was."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from ledger.core import events as ev
from ledger.core.prices import PriceSampler
from ledger.ib import client_hooks
from ledger.ib.hooks import Patches
from ledger.ib.library import IB, LimitOrder
from ledger.live.stamp import wall_clock
from tests.support.recording import AAPL, buy_filled, wait_for

pytestmark = pytest.mark.ibclient


class ListPort:
    """A :class:`~ledger.ib.client_hooks.HookPort` that lists every call (and can refuse placements)."""

    def __init__(self, *, refuse: bool = False, fail_on: str = "") -> None:
        self.calls: list[tuple] = []
        self.errors: list[tuple[str, str]] = []
        self.closed = False
        self.governed = False
        self.prices = PriceSampler(1.0, 0.0005)
        self.clock = wall_clock
        self.stamps: list[tuple[int, int]] = []  # the (recv_ns, mono_ns) each callback was handed over with
        self.refuse = refuse
        self.fail_on = fail_on
        self.placed: set[tuple[int, int]] = set()
        self.library_saw: list[str] = []  # the library's own trade status when each order status arrived

    def on_callback(self, name: str, payload: ev.Event, args: tuple, recv_ns: int, mono_ns: int) -> None:
        if name == self.fail_on:
            raise RuntimeError(f"cannot record {name}")
        assert recv_ns > 0 and mono_ns > 0
        self.calls.append((name, payload))
        self.stamps.append((recv_ns, mono_ns))

    def on_connect_ack(self, payload: ev.Connected, recv_ns: int, mono_ns: int) -> None:
        self.calls.append(("connectAck", payload))

    def on_connection_closed(self) -> None:
        self.calls.append(("connectionClosed",))

    def on_disconnect(self) -> None:
        self.calls.append(("disconnect",))

    def on_api_error(self, msg: Any) -> None:
        self.calls.append(("apiError", str(msg)))

    def on_synchronized(self, *args: Any) -> None:
        self.calls.append(("synchronized",))

    def was_placed(self, key: tuple[int, int]) -> bool:
        return key in self.placed

    def on_place(self, payload: ev.PlaceOrder, key: tuple[int, int]) -> BaseException | None:
        self.calls.append(("place", payload))
        if self.refuse:
            return PermissionError(f"refused {key}")
        self.placed.add(key)
        return None

    def on_unchecked_place(self, exc: BaseException, order_id: int, symbol: str, args: tuple) -> BaseException | None:
        self.errors.append(("placeOrder", str(exc)))
        return None

    def on_cancel(self, payload: ev.CancelOrder) -> None:
        self.calls.append(("cancel", payload))

    def on_global_cancel(self, payload: ev.GlobalCancel) -> None:
        self.calls.append(("global_cancel", payload))

    def on_price(self, obs: ev.PriceObserved, recv_ns: int, mono_ns: int) -> None:
        self.calls.append(("price", obs))

    def internal_error(self, where: str, exc: BaseException, args: tuple = ()) -> None:
        self.errors.append((where, str(exc)))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def payloads(self, name: str) -> list[Any]:
        return [c[1] for c in self.calls if c[0] == name]


def _attached(port: ListPort) -> tuple[IB, Patches]:
    ib = IB()
    patches = Patches()
    client_hooks.install(port, ib, patches)
    return ib, patches


def test_callbacks_are_converted_and_handed_over_before_the_library_handles_them(sim):
    port = ListPort()
    ib, patches = _attached(port)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=5, timeout=3)
        assert port.names()[0] == "connectAck" and port.payloads("connectAck")[0].client_id == 5
        assert "managedAccounts" in port.names() and "synchronized" in port.names()
        trade = buy_filled(ib, 10)
        (place,) = port.payloads("place")
        assert (place.order_id, place.client_id, place.symbol, place.total_qty) == (trade.order.orderId, 5, "AAPL", 10)
        assert type(place) is ev.PlaceOrder  # a first placement, not a modify
        statuses = port.payloads("orderStatus")
        assert statuses and statuses[-1].status == "Filled" and statuses[-1].order_id == trade.order.orderId
        assert port.payloads("execDetails")[0].shares == 10
        with contextlib.suppress(AssertionError):  # the library refuses a finished trade after sending
            ib.placeOrder(AAPL, trade.order)  # the same order id again: a modify
    finally:
        ib.disconnect()
        patches.undo()
    assert isinstance(port.payloads("place")[-1], ev.ModifyOrder)
    assert port.names()[-1] == "disconnect" and port.errors == []


def test_callbacks_are_stamped_from_the_ports_clock(sim):
    """A simulated session's clock, not the machine's, stamps every callback (byte-identical recordings)."""
    port = ListPort()
    ticks = iter(range(1, 1_000_000))

    def clock() -> tuple[int, int]:
        n = next(ticks)
        return 1_700_000_000_000_000_000 + n * 1000, n

    port.clock = clock
    ib, patches = _attached(port)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=6, timeout=3)
    finally:
        ib.disconnect()
        patches.undo()
    assert port.stamps, "no callback was handed over"
    monos = [m for _, m in port.stamps]
    assert monos == sorted(monos) and len(set(monos)) == len(monos) and monos[-1] < 1_000_000
    assert all(r == 1_700_000_000_000_000_000 + m * 1000 for r, m in port.stamps)


def test_a_recording_error_is_a_fault_and_the_library_still_sees_the_callback(sim):
    port = ListPort(fail_on="orderStatus")
    ib, patches = _attached(port)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=6, timeout=3)
        trade = ib.placeOrder(AAPL, LimitOrder("BUY", 10, 100.0, orderRef="fill_simple"))
        assert wait_for(ib, lambda: trade.orderStatus.status == "Filled")  # the library saw every status
    finally:
        ib.disconnect()
        patches.undo()
    assert port.errors and all(where == "orderStatus" for where, _ in port.errors)
    assert "orderStatus" not in port.names() and "execDetails" in port.names()


def test_a_refused_placement_never_reaches_the_wire(sim):
    port = ListPort(refuse=True)
    ib, patches = _attached(port)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=7, timeout=3)
        order = LimitOrder("BUY", 10, 100.0)
        with pytest.raises(PermissionError, match="refused"):
            ib.placeOrder(AAPL, order)
        assert order.orderId > 0  # the id the library would have used was assigned first: the intent has it
        ib.sleep(0.2)
        assert sim.broker.find(7, order.orderId) is None and ib.trades() == []
    finally:
        ib.disconnect()
        patches.undo()


def test_cancels_and_global_cancels_are_handed_over_and_sent(sim):
    port = ListPort()
    port.governed = True  # governed: cancels jump the client's throttle
    ib, patches = _attached(port)
    try:
        ib.connect("127.0.0.1", sim.port, clientId=8, timeout=3)
        trade = ib.placeOrder(AAPL, LimitOrder("BUY", 10, 1.0))
        assert wait_for(ib, lambda: trade.orderStatus.status == "Submitted")
        ib.cancelOrder(trade.order)
        assert wait_for(ib, lambda: trade.orderStatus.status == "Cancelled")
        ib.reqGlobalCancel()
    finally:
        ib.disconnect()
        patches.undo()
    (cancel,) = port.payloads("cancel")
    assert (cancel.order_id, cancel.client_id) == (trade.order.orderId, 8)
    assert len(port.payloads("global_cancel")) == 1


def test_undo_leaves_the_client_as_it_was():
    port = ListPort()
    ib, patches = _attached(port)
    assert "placeOrder" in ib.__dict__ and "orderStatus" in ib.wrapper.__dict__
    patches.undo()
    assert not {"placeOrder", "cancelOrder", "reqGlobalCancel", "disconnect"} & set(ib.__dict__)
    assert not {"orderStatus", "execDetails", "connectAck", client_hooks.PRICE_TICK} & set(ib.wrapper.__dict__)


def test_client_id_prefers_the_connected_wrappers():
    ib = IB()
    assert client_hooks.client_id(ib) == ib.client.clientId or client_hooks.client_id(ib) == 0
    ib.wrapper.clientId = 42
    assert client_hooks.client_id(ib) == 42
