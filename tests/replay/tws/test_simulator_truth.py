"""The broker keeps the truth across disconnects; reconnect shows what really happened."""

from __future__ import annotations

import pytest

from ledger.ib.library import ExecutionFilter, LimitOrder, Stock
from replay.tws.simulator import Simulator
from tests.support.simulator import Recorder, connected, wait_events, wait_until


def test_fills_while_disconnected_show_up_after_reconnect(sim: Simulator):
    with connected(sim.port, client_id=7) as ib:
        rec = Recorder(ib)
        trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 100, 90.0, orderRef="drop_mid_fill"))
        order_id = trade.order.orderId
        # the scenario drops us after the first half fills
        assert wait_until(ib, lambda: not ib.isConnected(), 2.0)
        assert [e for e in rec.of("exec")] == [("exec", "A.01", 50.0, 90.0, 50.0, 90.0)]
        assert sim.wait_idle(2.0)
        truth = sim.broker.find(7, order_id)
        assert truth is not None and truth.status == "Filled" and truth.filled == 100
        perm_id = truth.perm_id

        rec.clear()
        ib.connect("127.0.0.1", sim.port, clientId=7, timeout=2)
        # what connect() synchronized, at the wrapper level
        assert ("position", "AAPL", 100.0, 90.25) in rec.of("position")
        assert rec.of("completed") == [("completed", "AAPL", 0, "Filled", 100.0)]
        _c, order, state = rec.raw_of("completed")[0]
        assert order.permId == perm_id and order.orderId == 0
        execs = rec.raw_of("exec")
        assert [(ex.shares, ex.price, ex.permId) for _r, _c, ex in execs] == [
            (50.0, 90.0, perm_id),
            (50.0, 90.5, perm_id),
        ]
        assert all(req_id >= 0 for req_id, _c, _ex in execs)  # answers to reqExecutions, not live
        assert [e[0] for e in rec.of("comm")] == ["comm", "comm"]
        assert ib.client.getReqId() > order_id  # nextValidId moved past the orders of this client

        # and through the library's own requests
        fills = ib.reqExecutions()
        assert sorted((f.execution.shares, f.execution.price) for f in fills) == [(50.0, 90.0), (50.0, 90.5)]
        assert {f.execution.orderId for f in fills} == {order_id}
        completed = ib.reqCompletedOrders(apiOnly=False)
        assert [(t.order.orderId, t.order.permId, t.orderStatus.status) for t in completed] == [(0, perm_id, "Filled")]
        positions = ib.reqPositions()
        assert [(p.contract.symbol, p.position, p.avgCost) for p in positions] == [("AAPL", 100.0, 90.25)]
        assert ib.openTrades() == []


def test_working_order_survives_disconnect(sim: Simulator):
    with connected(sim.port, client_id=3) as ib:
        rec = Recorder(ib)
        trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 5, 10.0, orderRef="stuck_presubmitted"))
        wait_events(ib, rec, 2)
        assert sim.drop_connections() == 1
        assert wait_until(ib, lambda: not ib.isConnected(), 2.0)
        ib.connect("127.0.0.1", sim.port, clientId=3, timeout=2)
        open_trades = ib.openTrades()
        assert [(t.order.orderId, t.order.permId, t.orderStatus.status) for t in open_trades] == [
            (trade.order.orderId, sim.broker.find(3, trade.order.orderId).perm_id, "PreSubmitted")
        ]
        # another client's orders are not in its reqOpenOrders, but are in reqAllOpenOrders
        with connected(sim.port, client_id=4) as other:
            assert other.reqOpenOrders() == []
            assert [t.order.orderId for t in other.reqAllOpenOrders()] == [trade.order.orderId]


def test_global_cancel_cancels_every_working_order(sim: Simulator):
    with connected(sim.port, client_id=1) as ib, connected(sim.port, client_id=2) as other:
        rec = Recorder(ib)
        other_rec = Recorder(other)
        stock = Stock("IBM", "SMART", "USD")
        t1 = ib.placeOrder(stock, LimitOrder("BUY", 10, 100.0))  # default scenario
        t2 = ib.placeOrder(stock, LimitOrder("SELL", 10, 100.0, orderRef="stuck_presubmitted"))
        t3 = other.placeOrder(stock, LimitOrder("BUY", 3, 100.0))
        t4 = ib.placeOrder(stock, LimitOrder("BUY", 10, 100.0, orderRef="fill_simple"))
        wait_until(ib, lambda: ("status", "Filled", 10.0, 0.0, 100.0, 100.0, "") in rec.of("status"))
        wait_until(other, lambda: len(other_rec.of("status")) >= 1)
        ib.reqGlobalCancel()

        def final(order_id: int, client_id: int) -> str:
            return sim.broker.find(client_id, order_id).status

        wait_until(
            ib,
            lambda: final(t1.order.orderId, 1) == "Cancelled" and final(t2.order.orderId, 1) == "Cancelled",
        )
        wait_until(other, lambda: final(t3.order.orderId, 2) == "Cancelled")
        ib.sleep(0.05)
        assert final(t4.order.orderId, 1) == "Filled"  # already done: untouched
        for trade in (t1, t2):
            statuses = [a[1] for a in rec.raw_of("status") if a[0] == trade.order.orderId]
            assert statuses[-2:] == ["PendingCancel", "Cancelled"]
            assert (trade.order.orderId, 202) in [(a[0], a[1]) for a in rec.raw_of("error")]
        assert [a[1] for a in other_rec.raw_of("status")][-2:] == ["PendingCancel", "Cancelled"]
        # nothing of client 2's order reached client 1 and vice versa
        assert t3.order.orderId not in {a[0] for a in rec.raw_of("status")} - {
            t1.order.orderId,
            t2.order.orderId,
            t4.order.orderId,
        }
        assert {a[5] for a in other_rec.raw_of("status")} == {sim.broker.find(2, t3.order.orderId).perm_id}


def test_cancel_of_filled_and_unknown_orders(sim: Simulator):
    with connected(sim.port, client_id=1) as ib:
        rec = Recorder(ib)
        trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0, orderRef="fill_simple"))
        wait_until(ib, lambda: trade.orderStatus.status == "Filled")
        ib.client.cancelOrder(trade.order.orderId)
        ib.client.cancelOrder(9999)
        wait_until(ib, lambda: len(rec.of("error")) >= 2)
        assert [(a[0], a[1]) for a in rec.raw_of("error")] == [(trade.order.orderId, 10148), (9999, 10147)]
        assert "state: Filled" in rec.raw_of("error")[0][2]
        # modifying a filled order is refused with 104 (the library raises locally after sending it)
        with pytest.raises(AssertionError):
            ib.placeOrder(trade.contract, trade.order)
        wait_until(ib, lambda: len(rec.of("error")) >= 3)
        assert rec.raw_of("error")[2][:2] == (trade.order.orderId, 104)


def test_manual_order_and_unsolicited_cancel_hooks(sim: Simulator):
    with connected(sim.port, client_id=0) as master, connected(sim.port, client_id=5) as api:
        rec0 = Recorder(master)
        rec5 = Recorder(api)
        perm_id = sim.inject_manual_order("TSLA", "BUY", 7, 250.0, commission=0.5)
        wait_until(master, lambda: len(rec0.of()) >= 6)
        assert rec0.of() == [
            ("open", "Submitted"),
            ("status", "Submitted", 0.0, 7.0, 0.0, 0.0, ""),
            ("exec", "A.01", 7.0, 250.0, 7.0, 250.0),
            ("comm", "A.01", 0.5),
            ("open", "Filled"),
            ("status", "Filled", 7.0, 0.0, 250.0, 250.0, ""),
        ]
        assert all(a[0] == 0 and a[5] == perm_id for a in rec0.raw_of("status"))
        out_execs = [f for d, _c, f in sim.wire_log if d == "out" and f[0] == "11"]
        assert out_execs and out_execs[-1][2] == "2147483647"  # orderId of a manual order's execution
        api.sleep(0.05)
        assert rec5.of() == []  # manual orders go to clientId 0 only

        trade = api.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 1, 1.0))
        wait_until(api, lambda: trade.orderStatus.status == "Submitted")
        sim.inject_unsolicited_cancel(sim.broker.find(5, trade.order.orderId).perm_id, "halted")
        wait_until(api, lambda: len(rec5.of()) >= 4)
        assert rec5.of()[-2:] == [("status", "Cancelled", 0.0, 1.0, 0.0, 0.0, ""), ("error", 202)]


def test_positions_stream_and_execution_filter(sim: Simulator):
    with connected(sim.port, client_id=1) as ib:
        rec = Recorder(ib)
        for symbol, action, price in (("AAPL", "BUY", 10.0), ("MSFT", "BUY", 20.0), ("AAPL", "SELL", 12.0)):
            t = ib.placeOrder(Stock(symbol, "SMART", "USD"), LimitOrder(action, 10, price, orderRef="fill_simple"))
            wait_until(ib, lambda t=t: t.orderStatus.status == "Filled")
        # scenario price 100 overrides the limit price
        assert rec.of("position") == [
            ("position", "AAPL", 10.0, 100.0),
            ("position", "MSFT", 10.0, 100.0),
            ("position", "AAPL", 0.0, 0.0),
        ]
        fills = ib.reqExecutions(ExecutionFilter(symbol="AAPL"))
        assert sorted(f.execution.side for f in fills) == ["BOT", "SLD"]
        fills = ib.reqExecutions(ExecutionFilter(side="SELL"))
        assert [f.contract.symbol for f in fills] == ["AAPL"]
        assert ib.reqCurrentTime().timestamp() == sim.broker.clock.epoch()
