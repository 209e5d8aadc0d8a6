"""Positions: the broker's reports and the fills applied on top of them."""

from __future__ import annotations

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold.state import _UNSET_LIMIT, FoldState, OrderState, record_anomaly
from ledger.core.fold.views import PositionView, Transition


def position_fill(led: FoldState, core: OrderState, p: ev.ExecDetails, qty: float, ns: int) -> None:
    """Add an execution's signed quantity to its account/contract position row."""
    src = (p.account, p.con_id, p.side)
    if src != core.pos_src:
        v = core.view
        side = p.side or v.action
        if side in ("BOT", "BUY"):
            sign = 1.0
        elif side in ("SLD", "SELL", "SSHORT"):
            sign = -1.0
        else:
            sign = 0.0
        account = p.account or v.account
        con_id = p.con_id or v.con_id
        symbol = p.symbol or v.symbol
        sec_type = p.sec_type or v.sec_type
        pos_key = _position_key(account, con_id, symbol, sec_type)
        if sign and pos_key not in led.positions:
            led.positions[pos_key] = PositionView(
                key=pos_key, account=account, con_id=con_id, symbol=symbol, sec_type=sec_type
            )
        core.pos_src, core.pos_key, core.pos_sign = src, pos_key, sign
    sign = core.pos_sign
    if sign:
        qty = sign * qty
        pv = led.positions[core.pos_key]
        pv.fills_total += qty
        pv.fills_since_report += qty
        pv.position = (pv.reported or 0.0) + pv.fills_since_report
        pv.last_update_ns = ns


def on_position(led: FoldState, env: Envelope, p: ev.Position) -> list[Transition]:
    if not (-_UNSET_LIMIT < p.position < _UNSET_LIMIT and -_UNSET_LIMIT < p.avg_cost < _UNSET_LIMIT):
        record_anomaly(
            led,
            env,
            None,
            "bad_number",
            f"position {p.account} {p.symbol or p.con_id}: {p.position!r} @ {p.avg_cost!r}: recorded, not applied",
        )
        return []
    pos_key = _position_key(p.account, p.con_id, p.symbol, p.sec_type)
    pv = led.positions.get(pos_key)
    if pv is None:
        pv = PositionView(key=pos_key, account=p.account, con_id=p.con_id, symbol=p.symbol, sec_type=p.sec_type)
        led.positions[pos_key] = pv
    pv.reported = p.position
    pv.avg_cost = p.avg_cost
    pv.fills_since_report = 0.0
    pv.position = p.position
    pv.last_update_ns = env.recv_ns
    return []


def _position_key(account: str, con_id: int, symbol: str, sec_type: str) -> str:
    if con_id:
        return f"{account}:{con_id}"
    return f"{account}:{symbol}:{sec_type}"
