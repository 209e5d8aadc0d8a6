"""The simulated broker's truth: orders, executions, commissions and positions.

It lives in the simulator, not in a connection, so it survives client disconnects: fills that happen
while a client is away are there when it reconnects and asks (reqOpenOrders, reqCompletedOrders,
reqExecutions, reqPositions). Everything is deterministic: permIds and execIds come from counters,
times from a simulated clock that advances one second per timestamped fact. No I/O here.

All public methods take the broker's lock, so tests may inspect it from another thread while the
simulator's loop thread is changing it.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from replay.tws.protocol import MANUAL_EXEC_ORDER_ID, ContractSpec, ExecFilter, OpenOrderView, OrderSpec

#: statuses after which an order is no longer open (it moves to the completed orders)
DONE_STATUSES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})

#: well-known conIds so contracts look familiar; anything else gets a stable derived id
KNOWN_CON_IDS = {
    "AAPL": 265598,
    "MSFT": 272093,
    "IBM": 8314,
    "SPY": 756733,
    "AMZN": 3691937,
    "NVDA": 4815747,
    "TSLA": 76792991,
    "QQQ": 320227571,
}

DEFAULT_START = datetime(2024, 1, 2, 14, 30, 0, tzinfo=UTC)


def con_id_for(contract: ContractSpec) -> int:
    if contract.conId:
        return contract.conId
    if contract.secType in ("", "STK") and contract.symbol in KNOWN_CON_IDS:
        return KNOWN_CON_IDS[contract.symbol]
    key = f"{contract.symbol}|{contract.secType}|{contract.currency}|{contract.lastTradeDateOrContractMonth}"
    return 10_000_000 + zlib.crc32(key.encode()) % 890_000_000


def normalize_contract(contract: ContractSpec) -> ContractSpec:
    """What TWS echoes back: the conId filled in, local symbol and trading class set."""
    return replace(
        contract,
        conId=con_id_for(contract),
        secType=contract.secType or "STK",
        currency=contract.currency or "USD",
        exchange=contract.exchange or "SMART",
        localSymbol=contract.localSymbol or contract.symbol,
        tradingClass=contract.tradingClass or ("NMS" if contract.secType in ("", "STK") else contract.symbol),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class SimClock:
    """Simulated wall clock: starts at a fixed instant, moves only when told."""

    def __init__(self, start: datetime = DEFAULT_START, tz: str = "US/Eastern") -> None:
        self._now = start
        try:
            self._zone = ZoneInfo(tz)
            self.tz_name = tz
        except Exception:  # pragma: no cover - no tz database on the machine
            self._zone = ZoneInfo("UTC")
            self.tz_name = "UTC"

    def now(self) -> datetime:
        return self._now

    def tick(self, seconds: float = 1.0) -> datetime:
        self._now = self._now + timedelta(seconds=seconds)
        return self._now

    def ib_format(self, when: datetime | None = None) -> str:
        """``20240102 09:30:01 US/Eastern`` — the form TWS uses for execution and completion times."""
        local = (when or self._now).astimezone(self._zone)
        return f"{local:%Y%m%d %H:%M:%S} {self.tz_name}"

    def epoch(self) -> int:
        return int(self._now.timestamp())

    def epoch_ns(self) -> int:
        """The simulated instant in integer nanoseconds since the epoch (exact: no float on the way)."""
        return (self._now - _EPOCH) // timedelta(microseconds=1) * 1_000


@dataclass
class BrokerOrder:
    order_id: int
    client_id: int
    perm_id: int
    contract: ContractSpec
    spec: OrderSpec
    status: str = ""
    filled: float = 0.0
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    why_held: str = ""
    manual: bool = False
    scenario: str = "default"
    completed_time: str = ""
    completed_status: str = ""
    completed_seq: int = 0
    modifications: int = 0

    @property
    def remaining(self) -> float:
        return max(self.spec.totalQuantity - self.filled, 0.0)

    @property
    def is_done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def wire_order_id(self) -> int:
        """The orderId clients see on openOrder/orderStatus (manual TWS orders: 0)."""
        return 0 if self.manual else self.order_id

    @property
    def exec_order_id(self) -> int:
        """The orderId on executions (manual TWS orders: 2147483647)."""
        return MANUAL_EXEC_ORDER_ID if self.manual else self.order_id

    def view(self, status: str | None = None) -> OpenOrderView:
        return OpenOrderView(
            order_id=self.wire_order_id,
            client_id=self.client_id,
            perm_id=self.perm_id,
            contract=self.contract,
            order=self.spec,
            status=status or self.status or "PreSubmitted",
            filled=self.filled,
            completed_time=self.completed_time,
            completed_status=self.completed_status,
        )


@dataclass(frozen=True)
class Execution:
    exec_id: str
    perm_id: int
    order_id: int  # as on the wire: 2147483647 for manual orders
    client_id: int
    contract: ContractSpec
    time: str
    account: str
    exchange: str
    side: str  # BOT / SLD
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    order_ref: str = ""
    seq: int = 0

    @property
    def base(self) -> str:
        """Corrections share everything before the last '.'."""
        return self.exec_id.rsplit(".", 1)[0]


@dataclass(frozen=True)
class Commission:
    exec_id: str
    commission: float
    currency: str = "USD"
    realized_pnl: float | None = None


@dataclass
class Position:
    account: str
    contract: ContractSpec
    qty: float = 0.0
    avg_cost: float = 0.0


@dataclass
class _Counters:
    perm_id: int = 1_100_000_000
    exec_base: int = 0x65930000
    exec_seq: int = 0
    completed_seq: int = 0


@dataclass
class BrokerSnapshot:
    """A copy of the truth for inspection (tests, CLI)."""

    orders: list[BrokerOrder] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    superseded: list[Execution] = field(default_factory=list)
    commissions: list[Commission] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)


class Broker:
    """Orders, fills, commissions and positions, keyed the way TWS keys them."""

    def __init__(
        self, accounts: Iterable[str] = ("DU1234567",), clock: SimClock | None = None, seed: int | None = None
    ) -> None:
        self.accounts: tuple[str, ...] = tuple(accounts) or ("DU1234567",)
        self.clock = clock or SimClock()
        self.lock = threading.RLock()
        self._c = _Counters()
        #: the execId prefix; with a seed, permIds and execIds start from a per-run base so that
        #: independent runs recorded into one ledger never reuse an id
        self._exec_prefix = "0000e0d5"
        if seed is not None:
            self._c.perm_id = 1_000_000_000 + (seed % 100_000) * 10_000
            self._exec_prefix = f"{seed % 0xFFFFFFFF:08x}"
        self._orders: dict[int, BrokerOrder] = {}  # permId -> order, in placement order
        self._by_client: dict[tuple[int, int], int] = {}  # (clientId, orderId) -> permId
        self._next_id: dict[int, int] = {}  # clientId -> next valid order id
        self._executions: dict[str, Execution] = {}  # execId -> active execution
        self._superseded: list[Execution] = []
        self._commissions: list[Commission] = []  # every report sent, duplicates included
        self._positions: dict[tuple[str, int], Position] = {}
        #: a ``replay.tws.catalogue.Catalogue``: derivative contracts echo their definition from it
        self.catalogue: Any = None

    # ------------------------------------------------------------------ ids

    def next_valid_id(self, client_id: int) -> int:
        with self.lock:
            return self._next_id.get(client_id, 1)

    def reserve_ids(self, client_id: int, upto: int) -> None:
        with self.lock:
            self._next_id[client_id] = max(self._next_id.get(client_id, 1), upto)

    def _new_perm_id(self) -> int:
        self._c.perm_id += 1
        return self._c.perm_id

    def new_exec_base(self) -> str:
        """A fresh execId prefix; the full id is ``<base>.<suffix>`` (suffix ``01``, a correction ``02``)."""
        with self.lock:
            self._c.exec_base += 1
            return f"{self._exec_prefix}.{self._c.exec_base:08x}.01"

    # ------------------------------------------------------------------ orders

    def place(
        self,
        client_id: int,
        order_id: int,
        contract: ContractSpec,
        spec: OrderSpec,
        scenario: str = "default",
    ) -> BrokerOrder:
        with self.lock:
            key = (client_id, order_id)
            if key in self._by_client:
                raise KeyError(f"order {key} exists: placing it again is a modification")
            account = spec.account or self.accounts[0]
            order = BrokerOrder(
                order_id=order_id,
                client_id=client_id,
                perm_id=self._new_perm_id(),
                contract=normalize_contract(self._defined(contract)),
                spec=replace(spec, account=account),
                scenario=scenario,
            )
            self._orders[order.perm_id] = order
            self._by_client[key] = order.perm_id
            self._next_id[client_id] = max(self._next_id.get(client_id, 1), order_id + 1)
            return order

    def _defined(self, contract: ContractSpec) -> ContractSpec:
        """A futures/option/FX contract filled in from the catalogue (multiplier, local symbol, expiry).

        Stocks are left as they came so the echoes recorded before the catalogue existed stay the same.
        """
        if self.catalogue is None or contract.secType in ("", "STK"):
            return contract
        inst = self.catalogue.resolve(contract)
        if inst is None:
            return contract
        d = inst.contract()
        return replace(
            contract,
            conId=contract.conId or d.conId,
            lastTradeDateOrContractMonth=d.lastTradeDateOrContractMonth,
            multiplier=contract.multiplier or d.multiplier,
            localSymbol=contract.localSymbol or d.localSymbol,
            tradingClass=contract.tradingClass or d.tradingClass,
        )

    def place_manual(self, contract: ContractSpec, spec: OrderSpec, scenario: str = "manual") -> BrokerOrder:
        """An order typed into TWS by hand: orderId 0 on the wire, known by permId only."""
        with self.lock:
            account = spec.account or self.accounts[0]
            order = BrokerOrder(
                order_id=0,
                client_id=0,
                perm_id=self._new_perm_id(),
                contract=normalize_contract(contract),
                spec=replace(spec, account=account),
                manual=True,
                scenario=scenario,
            )
            self._orders[order.perm_id] = order
            return order

    def modify(self, order: BrokerOrder, spec: OrderSpec) -> BrokerOrder:
        with self.lock:
            order.spec = replace(spec, account=spec.account or order.spec.account)
            order.modifications += 1
            return order

    def find(self, client_id: int, order_id: int) -> BrokerOrder | None:
        with self.lock:
            perm_id = self._by_client.get((client_id, order_id))
            return self._orders.get(perm_id) if perm_id is not None else None

    def by_perm_id(self, perm_id: int) -> BrokerOrder | None:
        with self.lock:
            return self._orders.get(perm_id)

    def set_status(self, order: BrokerOrder, status: str, why_held: str | None = None) -> None:
        with self.lock:
            order.status = status
            if why_held is not None:
                order.why_held = why_held
            if order.is_done:
                if not order.completed_time:
                    self._c.completed_seq += 1
                    order.completed_seq = self._c.completed_seq
                    order.completed_time = self.clock.ib_format(self.clock.tick())
                order.completed_status = status
            else:
                # an Inactive order that comes back to life is open again
                order.completed_time = ""
                order.completed_status = ""
                order.completed_seq = 0

    def open_orders(self, client_id: int | None = None, *, include_manual: bool = False) -> list[BrokerOrder]:
        """Working orders; ``client_id=None`` means every client's (reqAllOpenOrders)."""
        with self.lock:
            return [
                o
                for o in self._orders.values()
                if not o.is_done
                and (client_id is None or o.client_id == client_id and (include_manual or not o.manual))
            ]

    def completed_orders(self, *, api_only: bool = False) -> list[BrokerOrder]:
        with self.lock:
            done = [o for o in self._orders.values() if o.is_done and not (api_only and o.manual)]
            return sorted(done, key=lambda o: o.completed_seq)

    def all_orders(self) -> list[BrokerOrder]:
        with self.lock:
            return list(self._orders.values())

    # ------------------------------------------------------------------ fills

    def add_execution(self, order: BrokerOrder, shares: float, price: float, exec_id: str) -> Execution:
        """Record a fill. An execId sharing its prefix with an earlier one is a correction: it replaces it."""
        with self.lock:
            base = exec_id.rsplit(".", 1)[0]
            for old in list(self._executions.values()):
                if old.base == base and old.exec_id != exec_id:
                    del self._executions[old.exec_id]
                    self._superseded.append(old)
            active = [e for e in self._executions.values() if e.perm_id == order.perm_id and e.base != base]
            cum = sum(e.shares for e in active) + shares
            notional = sum(e.shares * e.price for e in active) + shares * price
            avg = notional / cum if cum else 0.0
            self._c.exec_seq += 1
            execution = Execution(
                exec_id=exec_id,
                perm_id=order.perm_id,
                order_id=order.exec_order_id,
                client_id=order.client_id,
                contract=order.contract,
                time=self.clock.ib_format(self.clock.tick()),
                account=order.spec.account,
                exchange="ISLAND" if order.contract.exchange == "SMART" else order.contract.exchange,
                side="BOT" if order.spec.action.upper() == "BUY" else "SLD",
                shares=shares,
                price=price,
                cum_qty=cum,
                avg_price=round(avg, 10),
                order_ref=order.spec.orderRef,
                seq=self._c.exec_seq,
            )
            self._executions[exec_id] = execution
            order.filled = cum
            order.avg_fill_price = execution.avg_price
            order.last_fill_price = price
            self._rebuild_positions()
            return execution

    def add_commission(
        self, exec_id: str, commission: float, currency: str = "USD", realized_pnl: float | None = None
    ) -> Commission:
        with self.lock:
            report = Commission(exec_id, commission, currency, realized_pnl)
            self._commissions.append(report)
            return report

    def commission_for(self, exec_id: str) -> Commission | None:
        with self.lock:
            for report in reversed(self._commissions):
                if report.exec_id == exec_id:
                    return report
            return None

    def executions(self, client_id: int | None = None, flt: ExecFilter | None = None) -> list[Execution]:
        """Active executions (corrections replace what they correct), oldest first."""
        with self.lock:
            out = sorted(self._executions.values(), key=lambda e: e.seq)
        if client_id is not None:
            out = [e for e in out if e.client_id == client_id]
        if flt is not None:
            out = [e for e in out if _matches(e, flt)]
        return out

    def superseded_executions(self) -> list[Execution]:
        with self.lock:
            return list(self._superseded)

    def commissions(self) -> list[Commission]:
        with self.lock:
            return list(self._commissions)

    # ------------------------------------------------------------------ positions

    def _rebuild_positions(self) -> None:
        positions: dict[tuple[str, int], Position] = {
            k: Position(p.account, p.contract) for k, p in self._positions.items()
        }
        for e in sorted(self._executions.values(), key=lambda e: e.seq):
            key = (e.account, e.contract.conId)
            pos = positions.setdefault(key, Position(e.account, e.contract))
            signed = e.shares if e.side == "BOT" else -e.shares
            new_qty = pos.qty + signed
            if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
                total = abs(pos.qty) + abs(signed)
                pos.avg_cost = (abs(pos.qty) * pos.avg_cost + abs(signed) * e.price) / total if total else 0.0
            elif (new_qty > 0) != (pos.qty > 0) and new_qty != 0:
                pos.avg_cost = e.price  # flipped through zero
            elif new_qty == 0:
                pos.avg_cost = 0.0
            pos.qty = new_qty
        self._positions = positions

    def positions(self) -> list[Position]:
        with self.lock:
            return [Position(p.account, p.contract, p.qty, p.avg_cost) for p in self._positions.values()]

    def position_of(self, account: str, con_id: int) -> Position | None:
        with self.lock:
            p = self._positions.get((account, con_id))
            return Position(p.account, p.contract, p.qty, p.avg_cost) if p else None

    # ------------------------------------------------------------------ inspection

    def snapshot(self) -> BrokerSnapshot:
        with self.lock:
            return BrokerSnapshot(
                orders=[replace(o) for o in self._orders.values()],
                executions=self.executions(),
                superseded=list(self._superseded),
                commissions=list(self._commissions),
                positions=self.positions(),
            )


def _matches(e: Execution, f: ExecFilter) -> bool:
    if f.clientId and e.client_id != f.clientId:
        return False
    if f.acctCode and e.account != f.acctCode:
        return False
    if f.symbol and e.contract.symbol != f.symbol:
        return False
    if f.secType and e.contract.secType != f.secType:
        return False
    if f.exchange and e.exchange != f.exchange:
        return False
    if (
        f.side
        and e.side != f.side.upper()
        and not ((f.side.upper() == "BUY" and e.side == "BOT") or (f.side.upper() == "SELL" and e.side == "SLD"))
    ):
        return False
    if f.time:
        # "yyyymmdd hh:mm:ss[ tz]": compare the date-time part textually (same clock format)
        if e.time[:17] < f.time.strip()[:17]:
            return False
    return True
