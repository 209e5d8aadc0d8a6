"""Instruments: qualifyContracts / reqContractDetails / reqMatchingSymbols / reqSecDefOptParams from the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.ib.library import ib as iblib
from replay.tws.catalogue import BUILTIN, Catalogue, CatalogueError, load_instruments
from replay.tws.simulator import Simulator
from tests.support.simulator import connected, wait_until

pytestmark = pytest.mark.ibclient


@pytest.fixture(scope="module")
def sim():
    with Simulator() as s:
        yield s


@pytest.fixture
def ib(sim: Simulator):
    with connected(sim.port, client_id=21) as client:
        yield client


def test_qualify_fills_in_stocks_futures_options_and_fx(ib):
    stock = iblib.Stock("AAPL", "SMART", "USD")
    future = iblib.Future("ES", "202403", "CME")
    option = iblib.Option("AAPL", "20240119", 185, "C", "SMART")
    fx = iblib.Forex("EURUSD")
    qualified = ib.qualifyContracts(stock, future, option, fx)
    assert [c.conId for c in qualified] == [265598, 495512563, 671111113, 12087792]
    assert (stock.primaryExchange, stock.localSymbol) == ("NASDAQ", "AAPL")
    assert (future.multiplier, future.localSymbol, future.lastTradeDateOrContractMonth) == ("50", "ESH4", "20240315")
    assert (option.multiplier, option.right, option.strike) == ("100", "C", 185.0)
    assert (fx.localSymbol, fx.exchange) == ("EUR.USD", "IDEALPRO")


def test_contract_details_look_like_tws(ib):
    [cd] = ib.reqContractDetails(iblib.Future("ES", "20240315", "CME"))
    assert cd.minTick == 0.25
    assert cd.contract.multiplier == "50"
    assert cd.timeZoneId == "US/Central"
    assert "1700" in cd.tradingHours and cd.liquidHours
    assert "LMT" in cd.orderTypes.split(",") and cd.validExchanges == "CME"
    [stk] = ib.reqContractDetails(iblib.Stock("MSFT", "SMART", "USD"))
    assert stk.longName == "MICROSOFT CORP" and "NASDAQ" in stk.validExchanges
    # an expiry-less future request lists every listed expiry, as TWS does
    assert len(ib.reqContractDetails(iblib.Future("ES", exchange="CME"))) == 2


def test_unknown_contract_is_refused_with_error_200(ib):
    errors: list[tuple] = []
    ib.errorEvent += lambda *a: errors.append(a)
    assert ib.reqContractDetails(iblib.Stock("NOSUCH", "SMART", "USD")) == []
    assert wait_until(ib, lambda: any(e[1] == 200 for e in errors))
    [err] = [e for e in errors if e[1] == 200]
    assert "No security definition has been found" in err[2] and "NOSUCH" in err[2]


def test_matching_symbols_and_option_chain(ib):
    found = ib.reqMatchingSymbols("AA")
    assert found and found[0].contract.symbol == "AAPL"
    assert "OPT" in found[0].derivativeSecTypes
    chains = ib.reqSecDefOptParams("AAPL", "", "STK", 265598)
    smart = [c for c in chains if c.exchange == "SMART"]
    assert smart and smart[0].multiplier == "100"
    assert list(smart[0].expirations) == ["20240119", "20240216"]
    assert list(smart[0].strikes) == [180.0, 185.0, 190.0]


def test_a_future_order_echoes_its_multiplier(sim: Simulator, ib):
    future = iblib.Future("ES", "202403", "CME")
    ib.qualifyContracts(future)
    trade = ib.placeOrder(future, iblib.LimitOrder("BUY", 1, 4700.0))
    assert wait_until(ib, lambda: trade.orderStatus.status == "Submitted")
    order = [o for o in sim.broker.all_orders() if o.order_id == trade.order.orderId][0]
    assert order.contract.multiplier == "50"
    ib.cancelOrder(trade.order)
    assert wait_until(ib, lambda: trade.isDone())


def test_user_instruments_from_toml_and_csv(tmp_path: Path):
    toml = tmp_path / "mine.toml"
    toml.write_text('[[instrument]]\ncon_id = 999001\nsymbol = "ACME"\nprimary_exchange = "NYSE"\nprice = 12.5\n')
    csv = tmp_path / "mine.csv"
    csv.write_text("con_id,symbol,sec_type,exchange,multiplier,last_trade,min_tick\n999002,ZZ,FUT,CME,10,20240315,0.5\n")
    cat = Catalogue([*BUILTIN, *load_instruments(toml), *load_instruments(csv)])
    with Simulator(catalogue=cat) as s:
        with connected(s.port, client_id=22) as client:
            [acme] = client.qualifyContracts(iblib.Stock("ACME", "SMART", "USD"))
            assert acme.conId == 999001
            [cd] = client.reqContractDetails(iblib.Future("ZZ", "202403", "CME"))
            assert (cd.contract.conId, cd.minTick, cd.contract.multiplier) == (999002, 0.5, "10")


def test_bad_instrument_files_say_where_and_what(tmp_path: Path):
    bad = tmp_path / "bad.csv"
    bad.write_text("con_id,symbol,colour\n1,X,red\n")
    with pytest.raises(CatalogueError, match=r"bad.csv instrument #1: unknown column 'colour'"):
        load_instruments(bad)
    nan = tmp_path / "nan.toml"
    nan.write_text('[[instrument]]\ncon_id = "x"\nsymbol = "X"\n')
    with pytest.raises(CatalogueError, match=r"con_id='x' is not a number"):
        load_instruments(nan)
    with pytest.raises(CatalogueError, match="cannot read"):
        load_instruments(tmp_path / "missing.toml")
