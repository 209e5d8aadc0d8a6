"""IB library objects and wrapper-callback arguments → event payloads.

The only module that knows the names and argument orders of the client library's ``Wrapper`` callbacks
and the attribute names of its ``Contract`` / ``Order`` / ``OrderState`` / ``Execution`` /
``CommissionReport`` objects. ib_insync 0.9.86 and ib_async 2.1 agree on all of them (checked against
both ``wrapper.py`` / ``decoder.py``); any keyword call is bound to the library's own signature first,
so a library that passes arguments by name still lands in the right slot.

Conversion happens at receipt, before the library sees the objects (the library mutates some of them:
``commissionReport`` rewrites an unset ``yield_``/``realizedPNL`` to 0, ``placeOrder`` assigns
``orderId``/``clientId``, trades keep and update the ``Order``). Values are copied as the library
parsed them, with one exception: IB's "unset" sentinels (``UNSET_DOUBLE`` = 1.797e308,
``UNSET_INTEGER`` = 2**31-1, ``UNSET_LONG``, ``UNSET_DECIMAL``, and their text in ``OrderState``) become
None, in the typed fields and in the raw mappings alike, because they mean "no value" and would
otherwise be read as numbers (a market order's ``lmtPrice`` times its quantity is an infinite
notional). A typed number that cannot be None (a quantity, an average fill price) takes IB's own "none",
0. The one kept 2**31-1 is an execution's ``orderId``: it marks a manual TWS order. The raw mappings
(``contract``, ``order``, ``order_state``, ``execution``) hold every attribute, nested dataclasses as
mappings, lists as lists, ``datetime`` as is (msgspec writes it as RFC 3339).

Nothing here imports the IB library: it reads attributes, so it works on either library's objects.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import inspect
import math
from collections.abc import Callable
from itertools import compress as _compress
from operator import is_not as _is_not
from typing import Any

from ledger.core import events as ev

__all__ = [
    "CALLBACKS",
    "Builder",
    "bind_args",
    "cancel_order",
    "connected",
    "global_cancel",
    "place_order",
    "to_raw",
]

Builder = Callable[..., ev.Event]

# --- lossless plain-data conversion --------------------------------------------------------------

_FIELDS: dict[type, tuple[str, ...]] = {}
# every sentinel as a hashable value: one set lookup per scalar attribute keeps the copy fast
_UNSET = frozenset(
    {ev.UNSET_DOUBLE, -ev.UNSET_DOUBLE, ev.UNSET_INTEGER, ev.UNSET_LONG, *(t for t in ev._UNSET_TEXT)}
)
_MARKERS = ev._INT_MARKERS
_SCALARS = (str, int, float, bool, type(None))
_SCALAR_SET = frozenset(_SCALARS)
_KEEP = (_dt.datetime, _dt.date, _dt.time, decimal.Decimal, bytes)


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_SCALAR, _DATACLASS, _SEQUENCE, _NAMEDTUPLE, _MAPPING, _KEPT, _SET, _OTHER = range(8)
_KINDS: dict[type, int] = {t: _SCALAR for t in _SCALARS}


def _kind(t: type, obj: Any) -> int:
    k = _KINDS.get(t)
    if k is None:
        if isinstance(obj, _SCALARS):
            k = _SCALAR
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            k = _DATACLASS
            _field_names(t)
        elif isinstance(obj, tuple) and hasattr(obj, "_fields"):
            k = _NAMEDTUPLE
        elif isinstance(obj, list | tuple):
            k = _SEQUENCE
        elif isinstance(obj, dict):
            k = _MAPPING
        elif isinstance(obj, _KEEP):
            k = _KEPT
        elif isinstance(obj, set | frozenset):
            k = _SET
        else:
            k = _OTHER
        _KINDS[t] = k
    return k


def to_raw(obj: Any, _depth: int = 0) -> Any:
    """A plain-data deep copy of a library object: dataclasses → dicts, sequences → lists.

    Anything msgspec could not encode becomes its ``repr`` (a fact is never refused for its type).
    """
    t = type(obj)
    k = _KINDS.get(t)
    if k is None:
        k = _kind(t, obj)
    if k == _SCALAR:
        return None if obj in _UNSET else obj
    if k == _KEPT:
        return None if ev.is_unset(obj) else obj
    if _depth > 12:
        return repr(obj)
    d = _depth + 1
    if k == _DATACLASS:
        attrs = getattr(obj, "__dict__", None)
        if attrs is not None and len(attrs) >= len(_FIELDS[t]):
            # every field is an instance attribute (plain dataclasses, both libraries)
            tpl = _TEMPLATES.get(t, _NO_TEMPLATE)
            if tpl is _NO_TEMPLATE:
                tpl = _TEMPLATES[t] = _template(t)
            if tpl is not None and len(attrs) == len(tpl[0]) and tuple(attrs) == tpl[0]:
                keys, raw, defaults = tpl
                out = raw.copy()
                for n in _compress(keys, map(_is_not, attrs.values(), defaults)):
                    v = attrs[n]
                    tv = type(v)
                    if tv in _SCALAR_SET:
                        out[n] = None if v in _UNSET and n not in _MARKERS else v
                    elif tv is list and not v:
                        out[n] = []
                    else:
                        out[n] = to_raw(v, d)
                return out
            return {
                n: (None if v in _UNSET and n not in _MARKERS else v) if type(v) in _SCALAR_SET else to_raw(v, d)
                for n, v in attrs.items()
            }
        out = {}
        for name in _FIELDS[t]:
            v = getattr(obj, name, None)
            if type(v) in _SCALAR_SET:
                out[name] = None if v in _UNSET and name not in _MARKERS else v
            else:
                out[name] = to_raw(v, d)
        return out
    if k == _SEQUENCE:
        return [(None if v in _UNSET else v) if type(v) in _SCALAR_SET else to_raw(v, d) for v in obj]
    if k == _NAMEDTUPLE:  # TagValue: keep the names
        return {str(n): to_raw(v, d) for n, v in zip(obj._fields, obj, strict=False)}
    if k == _MAPPING:
        return {str(n): to_raw(v, d) for n, v in obj.items()}
    if k == _SET:
        return sorted((to_raw(v, d) for v in obj), key=repr)
    return repr(obj)


# Per dataclass: (field names in __init__ order, each scalar default already converted, the default objects).
# An attribute that *is* its field's default object has the converted default as its copy, so the loop in
# ``to_raw`` visits only the other attributes; ``itertools.compress`` over ``map(operator.is_not, ...)``
# finds them without a Python-level step per field. Most of an order's 139 fields are such: the ones user
# code never set, and, in an order the decoder parsed, the empty texts and small ints (CPython shares those
# objects); parsed floats are new objects and take the loop. Identity, not equality: 0 == 0.0 == False and
# -0.0 == 0.0, and the copy keeps each value's own type and sign. Fields without a scalar default (lists,
# nested dataclasses) are always converted.
_TEMPLATES: dict[type, tuple[tuple[str, ...], dict[str, Any], tuple[Any, ...]] | None] = {}
_NO_TEMPLATE = object()
_ALWAYS = object()  # the "default" of a field that is always converted: no attribute is this object


def _template(t: type) -> tuple[tuple[str, ...], dict[str, Any], tuple[Any, ...]] | None:
    keys, raw, defaults = [], {}, []
    for f in dataclasses.fields(t):
        if not f.init:
            return None
        dv = f.default
        keys.append(f.name)
        if dv is dataclasses.MISSING or type(dv) not in _SCALAR_SET:
            raw[f.name] = None  # placeholder: always converted
            defaults.append(_ALWAYS)
        else:
            raw[f.name] = None if dv in _UNSET and f.name not in _MARKERS else dv
            defaults.append(dv)
    return tuple(keys), raw, tuple(defaults)


def _raw_dict(obj: Any) -> dict[str, Any]:
    if obj is None:
        return {}
    r = to_raw(obj)
    return r if isinstance(r, dict) else {"value": r}


# --- typed-field coercion (msgspec does not validate on construction: coerce here) ---------------


def _int(v: Any) -> int:
    """An id or count; an unset sentinel (or nothing) is 0."""
    if type(v) is int:
        return 0 if v in _UNSET else v
    if v is None or v == "" or ev.is_unset(v):
        return 0
    try:
        return int(v)
    except (TypeError, ValueError):
        try:
            return int(float(v))
        except (TypeError, ValueError, OverflowError):
            return 0


def _id(v: Any) -> int:
    """An orderId: 2**31-1 is kept (an execution's marker of a manual TWS order)."""
    if type(v) is int:
        return v
    return _int(v)


def _float(v: Any) -> float:
    """A number that cannot be None (quantity, average price): unset is IB's own "none", 0."""
    if type(v) is float:
        return 0.0 if v in _UNSET else v
    if v is None or v == "" or ev.is_unset(v):
        return 0.0
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _opt_float(v: Any) -> float | None:
    """A price or amount that may be unset: every sentinel (and an empty field) is None."""
    if v is None:
        return v
    if type(v) is float:
        return None if v in _UNSET else v
    if v == "" or ev.is_unset(v):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _str(v: Any) -> str:
    if type(v) is str:
        return v
    if v is None:
        return ""
    if isinstance(v, _dt.datetime):
        return v.isoformat()
    return str(v)


# --- wrapper callbacks ---------------------------------------------------------------------------


def order_status(
    orderId: Any,
    status: Any,
    filled: Any,
    remaining: Any,
    avgFillPrice: Any,
    permId: Any,
    parentId: Any,
    lastFillPrice: Any,
    clientId: Any,
    whyHeld: Any,
    mktCapPrice: Any = 0.0,
) -> ev.OrderStatus:
    return ev.OrderStatus(
        order_id=_id(orderId),
        status=_str(status),
        filled=_float(filled),
        remaining=_float(remaining),
        avg_fill_price=_float(avgFillPrice),
        perm_id=_int(permId),
        parent_id=_int(parentId),
        last_fill_price=_float(lastFillPrice),
        client_id=_int(clientId),
        why_held=_str(whyHeld),
        mkt_cap_price=_opt_float(mktCapPrice),
    )


def _order_fields(contract: Any, order: Any) -> dict[str, Any]:
    c = _raw_dict(contract)
    o = _raw_dict(order)
    g = o.get
    return {
        "perm_id": _int(g("permId", 0)),
        "client_id": _int(g("clientId", 0)),
        "account": _str(g("account", "")),
        "symbol": _str(c.get("symbol", "")),
        "sec_type": _str(c.get("secType", "")),
        "con_id": _int(c.get("conId", 0)),
        "action": _str(g("action", "")),
        "total_qty": _float(g("totalQuantity", 0.0)),
        "order_type": _str(g("orderType", "")),
        "lmt_price": _opt_float(g("lmtPrice", None)),
        "aux_price": _opt_float(g("auxPrice", None)),
        "tif": _str(g("tif", "")),
        "order_ref": _str(g("orderRef", "")),
        "contract": c,
        "order": o,
    }


def open_order(orderId: Any, contract: Any, order: Any, orderState: Any) -> ev.OpenOrder:
    state = _raw_dict(orderState)
    return ev.OpenOrder(
        order_id=_id(orderId),
        status=_str(state.get("status", "")),
        order_state=state,
        **_order_fields(contract, order),
    )


def completed_order(contract: Any, order: Any, orderState: Any) -> ev.CompletedOrder:
    state = _raw_dict(orderState)
    fields = _order_fields(contract, order)
    return ev.CompletedOrder(
        order_id=_id(fields["order"].get("orderId", 0)),
        status=_str(state.get("status", "")),
        order_state=state,
        **fields,
    )


def exec_details(reqId: Any, contract: Any, execution: Any) -> ev.ExecDetails:
    c = _raw_dict(contract)
    x = _raw_dict(execution)
    g = x.get
    return ev.ExecDetails(
        exec_id=_str(g("execId", "")),
        req_id=_int(reqId),
        order_id=_id(g("orderId", 0)),
        perm_id=_int(g("permId", 0)),
        client_id=_int(g("clientId", 0)),
        time=_str(g("time", "")),
        account=_str(g("acctNumber", "")),
        exchange=_str(g("exchange", "")),
        side=_str(g("side", "")),
        shares=_float(g("shares", 0.0)),
        price=_float(g("price", 0.0)),
        cum_qty=_float(g("cumQty", 0.0)),
        avg_price=_float(g("avgPrice", 0.0)),
        order_ref=_str(g("orderRef", "")),
        symbol=_str(c.get("symbol", "")),
        sec_type=_str(c.get("secType", "")),
        con_id=_int(c.get("conId", 0)),
        contract=c,
        execution=x,
    )


def exec_details_end(reqId: Any) -> ev.ExecDetailsEnd:
    return ev.ExecDetailsEnd(req_id=_int(reqId))


def commission_report(commissionReport: Any) -> ev.CommissionReport:
    g = getattr
    return ev.CommissionReport(
        exec_id=_str(g(commissionReport, "execId", "")),
        commission=_opt_float(g(commissionReport, "commission", 0.0)),
        currency=_str(g(commissionReport, "currency", "")),
        realized_pnl=_opt_float(g(commissionReport, "realizedPNL", None)),
        yield_=_opt_float(g(commissionReport, "yield_", None)),
        yield_redemption_date=_int(g(commissionReport, "yieldRedemptionDate", 0)),
    )


def error(reqId: Any, errorCode: Any, errorString: Any, advancedOrderRejectJson: Any = "") -> ev.Error:
    return ev.Error(
        req_id=_int(reqId),
        code=_int(errorCode),
        message=_str(errorString),
        advanced_order_reject_json=_str(advancedOrderRejectJson),
    )


def position(account: Any, contract: Any, posSize: Any, avgCost: Any) -> ev.Position:
    c = _raw_dict(contract)
    return ev.Position(
        account=_str(account),
        con_id=_int(c.get("conId", 0)),
        symbol=_str(c.get("symbol", "")),
        sec_type=_str(c.get("secType", "")),
        position=_float(posSize),
        avg_cost=_float(avgCost),
        contract=c,
    )


def next_valid_id(reqId: Any) -> ev.NextValidId:
    return ev.NextValidId(order_id=_id(reqId))


def managed_accounts(accountsList: Any) -> ev.ManagedAccounts:
    return ev.ManagedAccounts(accounts=_str(accountsList))


def current_time(time: Any) -> ev.CurrentTime:
    return ev.CurrentTime(time=_int(time))


def open_order_end() -> ev.OpenOrderEnd:
    return ev.OpenOrderEnd()


def completed_orders_end() -> ev.CompletedOrdersEnd:
    return ev.CompletedOrdersEnd()


def position_end() -> ev.PositionEnd:
    return ev.PositionEnd()


#: wrapper method name → payload builder taking the wrapper's positional arguments.
#: ``connectAck`` and ``connectionClosed`` carry no arguments: the recorder builds
#: :func:`connected` / ``Disconnected`` from the client's state instead.
CALLBACKS: dict[str, Builder] = {
    "orderStatus": order_status,
    "openOrder": open_order,
    "openOrderEnd": open_order_end,
    "completedOrder": completed_order,
    "completedOrdersEnd": completed_orders_end,
    "execDetails": exec_details,
    "execDetailsEnd": exec_details_end,
    "commissionReport": commission_report,
    "error": error,
    "position": position,
    "positionEnd": position_end,
    "nextValidId": next_valid_id,
    "managedAccounts": managed_accounts,
    "currentTime": current_time,
}

#: the connection callbacks, wrapped like the others (no payload builder: no arguments)
CONNECT_ACK = "connectAck"
CONNECTION_CLOSED = "connectionClosed"

#: wrapper callbacks whose payloads answer the reconciliation queries, by query
RECONCILE_QUERIES: dict[str, tuple[str, ...]] = {
    "open_orders": ("openOrder", "orderStatus", "openOrderEnd"),
    "completed_orders": ("completedOrder", "completedOrdersEnd"),
    "executions": ("execDetails", "execDetailsEnd", "commissionReport"),
    "positions": ("position", "positionEnd"),
}
#: the end marker that completes each query
QUERY_END: dict[str, str] = {
    "openOrderEnd": "open_orders",
    "completedOrdersEnd": "completed_orders",
    "execDetailsEnd": "executions",
    "positionEnd": "positions",
}


def bind_args(original: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> tuple:
    """Positional arguments in the library's own order, even when it passed some by keyword."""
    if not kwargs:
        return args
    try:
        bound = inspect.signature(original).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return (*args, *kwargs.values())
    return tuple(bound.args) + tuple(bound.kwargs.values())


# --- connection ----------------------------------------------------------------------------------


def connected(client: Any) -> ev.Connected:
    """``connectAck``: the handshake is done; host, port, client id and server version are known."""
    try:
        version = int(client.serverVersion())
    except Exception:  # noqa: BLE001 - a fact is recorded even if the client is odd
        version = 0
    return ev.Connected(
        host=_str(getattr(client, "host", "")),
        port=_int(getattr(client, "port", 0)),
        client_id=_int(getattr(client, "clientId", 0)),
        server_version=version,
    )


# --- local intents -------------------------------------------------------------------------------


def place_order(contract: Any, order: Any, order_id: int, client_id: int, *, modify: bool) -> ev.PlaceOrder:
    fields = _order_fields(contract, order)
    fields["client_id"] = _int(client_id) or fields["client_id"]
    cls = ev.ModifyOrder if modify else ev.PlaceOrder
    fields.pop("perm_id", None)
    return cls(order_id=_id(order_id), **fields)


def cancel_order(order: Any, client_id: int, reason: str = "") -> ev.CancelOrder:
    return ev.CancelOrder(
        order_id=_id(getattr(order, "orderId", 0)),
        client_id=_int(getattr(order, "clientId", 0)) or _int(client_id),
        perm_id=_int(getattr(order, "permId", 0)),
        reason=reason,
    )


def global_cancel(reason: str = "") -> ev.GlobalCancel:
    return ev.GlobalCancel(reason=reason)
