"""P&L and positions from the fold's fills: per order, per contract, and position over time.

Why here and not in the fold: P&L is a reading of facts the fold already holds (each order's executions,
corrections resolved, commissions joined), so it is computed from the public ``OrderView`` / ``Fill``
values and never changes what the fold derives. Pure: time comes from the fills' envelopes.

Rules:
- Only counted executions: a superseded revision (a ``.01`` replaced by its ``.02``) is not a fill.
- Realized P&L is the broker's, from commission reports; an unset value (IB's 1.797e308 sentinel,
  ``None``, NaN) is ignored, and a contract with no reported value has ``realized_pnl`` None, not 0.
- Average cost is the average price of the open position (commissions are kept apart); it resets when
  the position goes through zero.
- Unrealized P&L = (mark - average cost) x position, where the mark is the latest recorded price for the
  contract (the last execution, unless ``marks`` gives one); None when no price was recorded.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import msgspec

from ledger.core.fold import Fill, OrderView

_UNSET = 1e300


class OrderPnl(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    account: str
    symbol: str
    con_id: int
    bought: float
    sold: float
    avg_price: float  # volume-weighted over counted executions (0 without any)
    commission: float
    realized_pnl: float | None  # sum of reported values; None when no report carried one


class PositionPoint(msgspec.Struct, frozen=True, kw_only=True):
    """The contract's position right after one execution."""

    account: str
    symbol: str
    con_id: int
    recv_ns: int
    session_id: str
    seq: int
    order_key: str
    exec_id: str
    delta: float  # signed shares of this execution (+ bought, - sold)
    price: float
    position: float
    avg_cost: float
    realized_pnl: float | None  # cumulative reported realized P&L of the contract so far


class ContractPnl(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    symbol: str
    con_id: int
    position: float
    avg_cost: float
    bought: float
    sold: float
    fills: int
    commission: float
    realized_pnl: float | None
    mark: float | None
    mark_ns: int
    unrealized_pnl: float | None


def reported(x: float | None) -> float | None:
    """A value as reported, or None when IB left it unset."""
    if x is None or not math.isfinite(x) or abs(x) >= _UNSET:
        return None
    return x


def counted(o: OrderView) -> list[Fill]:
    return [f for f in o.fills if not f.superseded]


def signed(o: OrderView, f: Fill) -> float:
    side = (f.side or o.action).upper()
    return -f.shares if side in ("SLD", "SELL", "SSHORT") else f.shares


def order_pnl(o: OrderView) -> OrderPnl:
    fills = counted(o)
    bought = sum(f.shares for f in fills if signed(o, f) > 0)
    sold = sum(f.shares for f in fills if signed(o, f) < 0)
    qty = bought + sold
    realized = [r for f in fills if (r := reported(f.realized_pnl)) is not None]
    return OrderPnl(
        key=o.key, account=o.account, symbol=o.symbol, con_id=o.con_id, bought=bought, sold=sold,
        avg_price=sum(f.shares * f.price for f in fills) / qty if qty else 0.0,
        commission=sum(c for f in fills if (c := reported(f.commission)) is not None),
        realized_pnl=sum(realized) if realized else None,
    )


def contract_key(o: OrderView) -> tuple[str, str, int]:
    return (o.account, o.symbol, o.con_id)


def position_history(orders: Iterable[OrderView]) -> list[PositionPoint]:
    """Every counted execution in event order, with the contract's running position and average cost."""
    rows = sorted(((f.recv_ns, f.session_id, f.seq, f.exec_id, o, f) for o in orders for f in counted(o)),
                  key=lambda r: r[:4])
    state: dict[tuple[str, str, int], tuple[float, float, float | None]] = {}
    out: list[PositionPoint] = []
    for recv_ns, sid, seq, exec_id, o, f in rows:
        k = contract_key(o)
        pos, avg, realized = state.get(k, (0.0, 0.0, None))
        delta = signed(o, f)
        new = pos + delta
        if pos == 0 or (pos > 0) == (delta > 0):  # opening or adding: weighted average
            avg = (abs(pos) * avg + abs(delta) * f.price) / abs(new) if new else 0.0
        elif (new > 0) != (pos > 0) and new != 0:  # through zero: the remainder opens at this price
            avg = f.price
        elif new == 0:
            avg = 0.0
        r = reported(f.realized_pnl)
        if r is not None:
            realized = (realized or 0.0) + r
        state[k] = (new, avg, realized)
        out.append(PositionPoint(account=k[0], symbol=k[1], con_id=k[2], recv_ns=recv_ns, session_id=sid, seq=seq,
                                 order_key=o.key, exec_id=exec_id, delta=delta, price=f.price, position=new,
                                 avg_cost=avg, realized_pnl=realized))
    return out


def contract_pnl(orders: Iterable[OrderView],
                 marks: Mapping[str, float] | None = None) -> list[ContractPnl]:
    """One row per (account, symbol, conId) that has executions. ``marks``: symbol -> price to value at."""
    orders = list(orders)
    history = position_history(orders)
    last: dict[tuple[str, str, int], PositionPoint] = {}
    agg: dict[tuple[str, str, int], list[float]] = {}
    for p in history:
        k = (p.account, p.symbol, p.con_id)
        last[k] = p
        a = agg.setdefault(k, [0.0, 0.0, 0.0])
        a[0 if p.delta > 0 else 1] += abs(p.delta)
        a[2] += 1
    commission: dict[tuple[str, str, int], float] = {}
    for o in orders:
        op = order_pnl(o)
        commission[contract_key(o)] = commission.get(contract_key(o), 0.0) + op.commission
    out = []
    for k in sorted(last):
        p = last[k]
        mark = (marks or {}).get(k[1], p.price)
        unreal = (mark - p.avg_cost) * p.position if p.position else 0.0
        out.append(ContractPnl(
            account=k[0], symbol=k[1], con_id=k[2], position=p.position, avg_cost=p.avg_cost, bought=agg[k][0],
            sold=agg[k][1], fills=int(agg[k][2]), commission=commission.get(k, 0.0), realized_pnl=p.realized_pnl,
            mark=mark, mark_ns=p.recv_ns, unrealized_pnl=unreal,
        ))
    return out
