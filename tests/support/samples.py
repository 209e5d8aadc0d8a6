"""One realistic sample payload of every event kind, for round-trip and store contract tests."""

from __future__ import annotations

from ledger.core import events as ev

UNSET_DOUBLE = 1.7976931348623157e308


def sample_payloads() -> list[ev.Event]:
    contract = {"secType": "STK", "conId": 265598, "symbol": "AAPL", "exchange": "SMART", "currency": "USD"}
    order = {"orderId": 7, "clientId": 3, "permId": 91001, "action": "BUY", "totalQuantity": 100.0,
             "orderType": "LMT", "lmtPrice": 187.5, "auxPrice": UNSET_DOUBLE, "tif": "DAY", "orderRef": "r1"}
    samples: list[ev.Event] = [
        ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=3, host="127.0.0.1",
                          port=7497, account="DU1234567", server_version=176, config_hash="abc"),
        ev.Connected(host="127.0.0.1", port=7497, client_id=3, server_version=176,
                     connection_time="20261125 12:00:00 UTC"),
        ev.ManagedAccounts(accounts="DU1234567"),
        ev.NextValidId(order_id=7),
        ev.CurrentTime(time=1764072000),
        ev.PlaceOrder(order_id=7, client_id=3, account="DU1234567", symbol="AAPL", sec_type="STK", con_id=265598,
                      action="BUY", total_qty=100.0, order_type="LMT", lmt_price=187.5, tif="DAY",
                      order_ref="r1", contract=contract, order=order),
        ev.ModifyOrder(order_id=7, client_id=3, symbol="AAPL", action="BUY", total_qty=100.0, order_type="LMT",
                       lmt_price=188.0, contract=contract, order=order),
        ev.GovernorDecision(decision="ALLOW", reason="OK", action="place", order_id=7, client_id=3,
                            symbol="AAPL", details={"notional": 18750.0, "limit": 100000.0}),
        ev.OrderStatus(order_id=7, status="PreSubmitted", filled=0.0, remaining=100.0, perm_id=91001,
                       client_id=3),
        ev.OpenOrder(order_id=7, perm_id=91001, client_id=3, account="DU1234567", symbol="AAPL", sec_type="STK",
                     con_id=265598, action="BUY", total_qty=100.0, order_type="LMT", lmt_price=187.5,
                     aux_price=UNSET_DOUBLE, tif="DAY", order_ref="r1", status="PreSubmitted",
                     contract=contract, order=order,
                     order_state={"status": "PreSubmitted", "commission": UNSET_DOUBLE}),
        ev.OpenOrderEnd(),
        ev.ExecDetails(exec_id="0000e0d5.6745a1b2.01.01", req_id=-1, order_id=7, perm_id=91001, client_id=3,
                       time="20261125 12:00:01 UTC", account="DU1234567", exchange="ISLAND", side="BOT",
                       shares=40.0, price=187.49, cum_qty=40.0, avg_price=187.49, order_ref="r1", symbol="AAPL",
                       sec_type="STK", con_id=265598, contract=contract,
                       execution={"execId": "0000e0d5.6745a1b2.01.01", "shares": 40.0}),
        ev.ExecDetailsEnd(req_id=12),
        ev.CommissionReport(exec_id="0000e0d5.6745a1b2.01.01", commission=1.0, currency="USD",
                            realized_pnl=UNSET_DOUBLE),
        ev.Error(req_id=7, code=399, message="Order message: Warning: your order will not be placed at the "
                 "exchange until 2026-11-25 09:30:00 US/Eastern",
                 advanced_order_reject_json='{"rejectReason":"x"}'),
        ev.Error(req_id=-1, code=1102, message="Connectivity between IB and TWS has been restored - data maintained."),
        ev.CompletedOrder(order_id=0, perm_id=91001, client_id=3, symbol="AAPL", action="BUY", total_qty=100.0,
                          order_type="LMT", lmt_price=187.5, status="Filled", contract=contract, order=order),
        ev.CompletedOrdersEnd(),
        ev.Position(account="DU1234567", con_id=265598, symbol="AAPL", sec_type="STK", position=100.0,
                    avg_cost=187.49, contract=contract),
        ev.PositionEnd(),
        ev.CancelOrder(order_id=7, client_id=3, perm_id=91001, reason="user"),
        ev.GlobalCancel(reason="kill switch"),
        ev.ReconcileStarted(reason="reconnect"),
        ev.ReconcileEnded(ok=False, unknown=["completed_orders"], open_orders=1, executions=2, positions=1),
        ev.PriceObserved(con_id=265598, symbol="AAPL", sec_type="STK", price=187.52, tick="last", tick_type=68,
                         market_data_type=3, origin="snapshot"),
        ev.RecorderFault(message="store unavailable", lost=0),
        ev.Disconnected(reason="server closed the connection"),
        ev.SessionEnded(reason="normal", events=28),
    ]
    return samples
