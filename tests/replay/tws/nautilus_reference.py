"""NautilusTrader's Interactive Brokers adapter against the simulator: connect, start the engines, place an order.

Run by ``tests/replay/tws/test_simulator_nautilus.py`` with the Python of ``.venv-nautilus`` (NautilusTrader
1.221.0, the newest for Python 3.11, with the ibapi it pins, ``nautilus-ibapi==10.30.1``, and ``protobuf``):

    .venv-nautilus/bin/python tests/replay/tws/nautilus_reference.py PORT

A ``TradingNode`` with the adapter's data and execution clients (one IB client id) loads AAPL through
``reqContractDetails`` (simplified symbology: ``AAPL.NASDAQ``), reconciles, waits for the account summary,
starts a strategy that submits a market order for 10 and stops once it is filled. Prints one JSON line:
whether the strategy started, the instrument, the order events and the fill.
"""

from __future__ import annotations

import json
import sys
import threading

from nautilus_trader.adapters.interactive_brokers.common import IB, IBContract
from nautilus_trader.adapters.interactive_brokers.config import (
    IBMarketDataTypeEnum,
    InteractiveBrokersDataClientConfig,
    InteractiveBrokersExecClientConfig,
    InteractiveBrokersInstrumentProviderConfig,
    SymbologyMethod,
)
from nautilus_trader.adapters.interactive_brokers.factories import (
    InteractiveBrokersLiveDataClientFactory,
    InteractiveBrokersLiveExecClientFactory,
)
from nautilus_trader.config import (
    LiveExecEngineConfig,
    LoggingConfig,
    RoutingConfig,
    StrategyConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy

ACCOUNT = "DU1234567"
CLIENT_ID = 91
DEADLINE_S = 60.0

seen: dict = {"started": False, "instrument": None, "events": [], "filled": None, "account": None}


class OneOrderConfig(StrategyConfig, frozen=True):
    instrument_id: str


class OneOrder(Strategy):
    """Submit one market order at start; stop the node once it is filled."""

    def __init__(self, config: OneOrderConfig) -> None:
        super().__init__(config)
        self.iid = InstrumentId.from_str(config.instrument_id)

    def on_start(self) -> None:
        seen["started"] = True
        inst = self.cache.instrument(self.iid)
        seen["instrument"] = str(inst.id) if inst is not None else None
        accounts = self.cache.accounts()
        seen["account"] = str(accounts[0].id) if accounts else None
        if inst is not None:
            self.submit_order(self.order_factory.market(self.iid, OrderSide.BUY, Quantity.from_int(10)))

    def on_order_event(self, event) -> None:
        name = type(event).__name__
        seen["events"].append(name)
        if name == "OrderFilled":
            seen["filled"] = [float(event.last_qty), float(event.last_px)]
            threading.Timer(0.2, node.stop).start()

    def on_stop(self) -> None:
        pass


def build(port: int) -> TradingNode:
    aapl = IBContract(secType="STK", symbol="AAPL", exchange="SMART", primaryExchange="NASDAQ", currency="USD")
    provider = InteractiveBrokersInstrumentProviderConfig(
        symbology_method=SymbologyMethod.IB_SIMPLIFIED, load_contracts=frozenset([aapl])
    )
    config = TradingNodeConfig(
        trader_id="SIM-001",
        logging=LoggingConfig(log_level="ERROR"),
        data_clients={
            IB: InteractiveBrokersDataClientConfig(
                ibg_host="127.0.0.1", ibg_port=port, ibg_client_id=CLIENT_ID, instrument_provider=provider,
                market_data_type=IBMarketDataTypeEnum.REALTIME, connection_timeout=20,
            )
        },
        exec_clients={
            IB: InteractiveBrokersExecClientConfig(
                ibg_host="127.0.0.1", ibg_port=port, ibg_client_id=CLIENT_ID, account_id=ACCOUNT,
                instrument_provider=provider, connection_timeout=20, routing=RoutingConfig(default=True),
            )
        },
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        timeout_connection=20.0,
        timeout_reconciliation=10.0,
        timeout_portfolio=10.0,
        timeout_disconnection=5.0,
        timeout_post_stop=1.0,
    )
    n = TradingNode(config=config)
    n.trader.add_strategy(OneOrder(OneOrderConfig(instrument_id="AAPL.NASDAQ")))
    n.add_data_client_factory(IB, InteractiveBrokersLiveDataClientFactory)
    n.add_exec_client_factory(IB, InteractiveBrokersLiveExecClientFactory)
    n.build()
    return n


if __name__ == "__main__":
    node = build(int(sys.argv[1]))
    deadline = threading.Timer(DEADLINE_S, node.stop)  # never hang: a missing answer ends the run, unfilled
    deadline.start()
    try:
        node.run()
    finally:
        deadline.cancel()
        node.dispose()
    print(json.dumps(seen))
