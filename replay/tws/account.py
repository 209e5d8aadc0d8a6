"""The account, from the broker's truth: cash, positions at market, realized / unrealized P&L, margin.

Everything is recomputed from the executions and commissions the broker holds, marked at the market's
current mid, so account values, portfolio lines, the account summary and P&L all agree with the fills
a strategy saw. ``AccountService`` answers reqAccountUpdates / reqAccountSummary /
reqAccountUpdatesMulti / reqPositionsMulti / reqPnL / reqPnLSingle and pushes updates after fills.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from replay.tws import messages as M
from replay.tws import protocol as P
from replay.tws.protocol import ContractSpec, Fields

START_CASH = 1_000_000.0
PNL_EVERY_SECONDS = 5


@dataclass
class Holding:
    contract: ContractSpec
    qty: float = 0.0
    avg_price: float = 0.0  # per unit of price (TWS reports avgCost = avg_price * multiplier)
    multiplier: float = 1.0
    realized: float = 0.0
    mark: float = 0.0

    @property
    def market_value(self) -> float:
        return self.qty * self.mark * self.multiplier

    @property
    def unrealized(self) -> float:
        return (self.mark - self.avg_price) * self.qty * self.multiplier

    @property
    def avg_cost(self) -> float:
        return self.avg_price * self.multiplier


@dataclass
class AccountState:
    account: str
    cash: float
    holdings: list[Holding] = field(default_factory=list)
    commissions: float = 0.0

    @property
    def realized(self) -> float:
        return sum(h.realized for h in self.holdings) - self.commissions

    @property
    def unrealized(self) -> float:
        return sum(h.unrealized for h in self.holdings)

    @property
    def gross_position_value(self) -> float:
        return sum(abs(h.market_value) for h in self.holdings if h.contract.secType != "FUT")

    @property
    def net_liquidation(self) -> float:
        futures = sum(h.unrealized for h in self.holdings if h.contract.secType == "FUT")
        others = sum(h.market_value for h in self.holdings if h.contract.secType != "FUT")
        return self.cash + others + futures

    @property
    def init_margin(self) -> float:
        rates = {"FUT": 0.06, "OPT": 1.0, "CASH": 0.03}
        return sum(abs(h.qty * h.mark * h.multiplier) * rates.get(h.contract.secType, 0.25) for h in self.holdings)

    def values(self) -> list[tuple[str, str, str]]:
        """(tag, value, currency) as reqAccountUpdates / reqAccountSummary report them."""
        nlv = self.net_liquidation
        init = self.init_margin
        maint = init * 0.8
        money = {
            "NetLiquidation": nlv,
            "TotalCashValue": self.cash,
            "SettledCash": self.cash,
            "AccruedCash": 0.0,
            "BuyingPower": max(nlv - init, 0.0) * 4,
            "EquityWithLoanValue": nlv,
            "GrossPositionValue": self.gross_position_value,
            "InitMarginReq": init,
            "MaintMarginReq": maint,
            "AvailableFunds": nlv - init,
            "ExcessLiquidity": nlv - maint,
            "FullInitMarginReq": init,
            "FullMaintMarginReq": maint,
            "FullAvailableFunds": nlv - init,
            "FullExcessLiquidity": nlv - maint,
            "LookAheadInitMarginReq": init,
            "LookAheadMaintMarginReq": maint,
            "LookAheadAvailableFunds": nlv - init,
            "LookAheadExcessLiquidity": nlv - maint,
            "RealizedPnL": self.realized,
            "UnrealizedPnL": self.unrealized,
            "CashBalance": self.cash,
        }
        out = [(k, f"{v:.2f}", "USD") for k, v in money.items()]
        out += [
            ("AccountType", "INDIVIDUAL", ""),
            ("Cushion", f"{(nlv - maint) / nlv if nlv else 0:.6f}", ""),
            ("DayTradesRemaining", "-1", ""),
            ("Leverage", f"{self.gross_position_value / nlv if nlv else 0:.4f}", ""),
            ("Currency", "USD", "USD"),
        ]
        return out

    def holding(self, con_id: int) -> Holding | None:
        for h in self.holdings:
            if h.contract.conId == con_id:
                return h
        return None


def _multiplier(c: ContractSpec) -> float:
    try:
        return float(c.multiplier) if c.multiplier else 1.0
    except ValueError:
        return 1.0


def account_state(broker: Any, account: str, mark: Callable[[ContractSpec, float], float], start_cash: float):
    """Replay the account's executions in order: average-price positions, realized P&L, cash."""
    holdings: dict[int, Holding] = {}
    cash = start_cash
    for e in broker.executions():
        if e.account != account:
            continue
        h = holdings.get(e.contract.conId)
        if h is None:
            h = holdings[e.contract.conId] = Holding(e.contract, multiplier=_multiplier(e.contract))
        signed = e.shares if e.side == "BOT" else -e.shares
        if h.contract.secType != "FUT":
            cash -= signed * e.price * h.multiplier
        if h.qty == 0 or (h.qty > 0) == (signed > 0):
            total = abs(h.qty) + abs(signed)
            h.avg_price = (abs(h.qty) * h.avg_price + abs(signed) * e.price) / total
            h.qty += signed
        else:
            closed = min(abs(signed), abs(h.qty))
            direction = 1 if h.qty > 0 else -1
            pnl = (e.price - h.avg_price) * closed * direction * h.multiplier
            h.realized += pnl
            if h.contract.secType == "FUT":
                cash += pnl
            h.qty += signed
            if abs(h.qty) < 1e-9:
                h.qty, h.avg_price = 0.0, 0.0
            elif (h.qty > 0) != (direction > 0):
                h.avg_price = e.price  # flipped through zero
    exec_ids = {e.exec_id for e in broker.executions() if e.account == account}
    seen: set[str] = set()
    commissions = 0.0
    for c in broker.commissions():
        if c.exec_id in exec_ids and c.exec_id not in seen:
            seen.add(c.exec_id)
            commissions += c.commission
    cash -= commissions
    for h in holdings.values():
        h.mark = mark(h.contract, h.avg_price)
    return AccountState(account, cash, list(holdings.values()), commissions)


class AccountService:
    def __init__(self, sim: Any, start_cash: float = START_CASH) -> None:
        self.sim = sim
        self.start_cash = start_cash
        self._updates: dict[int, tuple[Any, str]] = {}  # id(conn) -> (conn, account) for reqAccountUpdates
        self._pnl: dict[tuple[int, int], tuple[Any, str, int]] = {}  # (id(conn), reqId) -> (conn, account, conId)

    def _mark(self, c: ContractSpec, fallback: float) -> float:
        inst = self.sim.catalogue.by_con_id(c.conId) or self.sim.catalogue.resolve(
            ContractSpec(symbol=c.symbol, secType=c.secType, currency=c.currency)
        )
        if inst is None:
            return fallback
        return round(self.sim.market.quote(inst, self.sim.broker.clock.epoch()).mid, 6)

    def state(self, account: str) -> AccountState:
        with self.sim.broker.lock:
            return account_state(self.sim.broker, account, self._mark, self.start_cash)

    def _send(self, conn: Any, fields: Fields) -> None:
        conn.send(fields, self.sim.wire_log)

    def _time(self) -> str:
        clock = self.sim.broker.clock
        return clock.ib_format()[9:14]  # HH:MM in the clock's zone

    # ------------------------------------------------------------------ reqAccountUpdates

    def updates(self, conn: Any, subscribe: bool, account: str) -> None:
        if not subscribe:
            self._updates.pop(id(conn), None)
            return
        self._updates[id(conn)] = (conn, account)
        self._push_updates(conn, account)
        self._send(conn, P.account_download_end(account))

    def _push_updates(self, conn: Any, account: str) -> None:
        s = self.state(account)
        for key, value, currency in s.values():
            self._send(conn, P.account_value(key, value, currency, account))
        for h in s.holdings:
            self._send(
                conn,
                M.portfolio_value(
                    h.contract, h.qty, h.mark, round(h.market_value, 2), h.avg_cost,
                    round(h.unrealized, 2), round(h.realized, 2), account,
                ),
            )  # fmt: skip
        self._send(conn, P.account_update_time(self._time()))

    # ------------------------------------------------------------------ summary, multi

    def summary(self, conn: Any, req_id: int, tags: str) -> None:
        wanted = {t.strip() for t in tags.split(",") if t.strip()}
        for account in self.sim.accounts:
            for key, value, currency in self.state(account).values():
                if key in wanted or "All" in wanted:
                    self._send(conn, M.account_summary(req_id, account, key, value, currency))
        self._send(conn, P.account_summary_end(req_id))

    def updates_multi(self, conn: Any, req_id: int, account: str, model: str) -> None:
        for acct in [account] if account and account != "All" else list(self.sim.accounts):
            for key, value, currency in self.state(acct).values():
                self._send(conn, M.account_update_multi(req_id, acct, model, key, value, currency))
        self._send(conn, P.account_update_multi_end(req_id))

    def positions_multi(self, conn: Any, fields: Sequence[str]) -> None:
        """reqPositionsMulti: ``74, 1, reqId, account, modelCode``."""
        req_id, account, model = int(fields[2]), fields[3], fields[4] if len(fields) > 4 else ""
        for acct in [account] if account and account != "All" else list(self.sim.accounts):
            for p in self.sim.broker.positions():
                if p.account == acct:
                    self._send(conn, M.position_multi(req_id, acct, p.contract, p.qty, p.avg_cost, model))
        self._send(conn, M.position_multi_end(req_id))

    # ------------------------------------------------------------------ P&L

    def pnl(self, conn: Any, fields: Sequence[str]) -> None:
        """reqPnL: ``92, reqId, account, modelCode``."""
        req_id, account = int(fields[1]), fields[2] or self.sim.accounts[0]
        self._pnl[(id(conn), req_id)] = (conn, account, 0)
        self._push_pnl(conn, req_id, account, 0)

    def pnl_single(self, conn: Any, fields: Sequence[str]) -> None:
        """reqPnLSingle: ``94, reqId, account, modelCode, conId``."""
        req_id, account, con_id = int(fields[1]), fields[2] or self.sim.accounts[0], int(fields[4] or 0)
        self._pnl[(id(conn), req_id)] = (conn, account, con_id)
        self._push_pnl(conn, req_id, account, con_id)

    def cancel_pnl(self, conn: Any, fields: Sequence[str]) -> None:
        try:
            self._pnl.pop((id(conn), int(fields[1])), None)
        except (IndexError, ValueError):
            pass

    def _push_pnl(self, conn: Any, req_id: int, account: str, con_id: int) -> None:
        s = self.state(account)
        if not con_id:
            daily = s.realized + s.unrealized
            self._send(conn, M.pnl(req_id, round(daily, 2), round(s.unrealized, 2), round(s.realized, 2)))
            return
        h = s.holding(con_id)
        if h is None:
            self._send(conn, M.pnl_single(req_id, 0, 0.0, 0.0, 0.0, 0.0))
            return
        daily = h.realized + h.unrealized
        self._send(
            conn,
            M.pnl_single(
                req_id, h.qty, round(daily, 2), round(h.unrealized, 2), round(h.realized, 2), round(h.market_value, 2)
            ),
        )

    # ------------------------------------------------------------------ pushes

    def drop(self, conn: Any) -> None:
        self._updates.pop(id(conn), None)
        for key in [k for k in self._pnl if k[0] == id(conn)]:
            del self._pnl[key]

    def after_fill(self) -> None:
        for conn, account in list(self._updates.values()):
            if not conn.closed:
                self._push_updates(conn, account)
        self._push_all_pnl()

    def _push_all_pnl(self) -> None:
        for (_cid, req_id), (conn, account, con_id) in list(self._pnl.items()):
            if not conn.closed:
                self._push_pnl(conn, req_id, account, con_id)

    def step(self) -> None:
        if self._pnl and self.sim.broker.clock.epoch() % PNL_EVERY_SECONDS == 0:
            self._push_all_pnl()
