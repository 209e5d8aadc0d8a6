"""What runs in place of the IB client's methods while a recorder is attached: the hooks themselves.

Each hook knows the library (wrapper callback names and signatures, ``client.isReady`` /
``getReqId``, ``wrapper.trades``, ``reqId2Ticker``, the request throttle) and nothing of recording: it
stamps the call on arrival, converts it (:mod:`ledger.ib.adapter`), hands the payload to the recorder
through :class:`HookPort`, and then lets the library's original run -- always, unless the governor
refused an order. Whatever the recorder does, the library still sees every callback: recording errors
are caught here and handed back to the recorder as faults (:meth:`HookPort.internal_error`).

The recorder implements :class:`HookPort` publicly, so this layer never reaches into the live layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ledger.core import events as ev
from ledger.core.prices import PRICE_TICKS, PriceSampler, observation
from ledger.ib import adapter
from ledger.ib.hooks import Patches
from ledger.ib.request_queue import send_ahead

__all__ = ["PRICE_TICK", "HookPort", "client_id", "install"]

PRICE_TICK = "priceSizeTick"  # both libraries' wrapper method for TICK_PRICE

Original = Callable[..., Any]


class HookPort(Protocol):
    """What the hooks hand to the recorder, and the little they read of it."""

    closed: bool  # the session ended: hooks only pass through (an attribute: read on every callback)
    governed: bool  # a governor checks placeOrder; cancels then jump the client's throttle
    prices: PriceSampler  # which ticks become price observations
    clock: Callable[[], tuple[int, int]]  # the receipt stamp (recv_ns, mono_ns): the machine's or a simulated session's

    def on_callback(self, name: str, payload: ev.Event, args: tuple, recv_ns: int, mono_ns: int) -> None:
        """A wrapper callback, converted; ``args`` as the library passed them (positional)."""

    def on_connect_ack(self, payload: ev.Connected, recv_ns: int, mono_ns: int) -> None: ...

    def on_connection_closed(self) -> None:
        """The server side closed the connection (the recorder knows the reason the client reported)."""

    def on_disconnect(self) -> None:
        """The strategy called ``ib.disconnect()``."""

    def on_api_error(self, msg: Any) -> None: ...

    def on_synchronized(self, *args: Any) -> None:
        """The library reports the connection synchronized (``connectedEvent``)."""

    def was_placed(self, key: tuple[int, int]) -> bool:
        """This recorder saw (client id, order id) placed before: another placeOrder is a modify."""

    def on_place(self, payload: ev.PlaceOrder, key: tuple[int, int]) -> BaseException | None:
        """A placement about to be sent: the exception to raise instead of sending it, or None."""

    def on_unchecked_place(self, exc: BaseException, order_id: int, symbol: str, args: tuple) -> BaseException | None:
        """A placement that could not be converted or recorded: the exception to raise (fail closed), or None."""

    def on_cancel(self, payload: ev.CancelOrder) -> None: ...

    def on_global_cancel(self, payload: ev.GlobalCancel) -> None: ...

    def on_price(self, obs: ev.PriceObserved, recv_ns: int, mono_ns: int) -> None: ...

    def internal_error(self, where: str, exc: BaseException, args: tuple = ()) -> None: ...


def client_id(ib: Any) -> int:
    """The client id of ``ib``'s connection (the wrapper's once connected, else the client's; 0 if none)."""
    cid = getattr(ib.wrapper, "clientId", None)
    if cid is None or cid == -1:
        cid = getattr(ib.client, "clientId", 0)
    try:
        return int(cid)
    except (TypeError, ValueError):
        return 0


def install(port: HookPort, ib: Any, patches: Patches) -> None:
    """Hook every wrapper callback the adapter converts, the tick callback, the connection callbacks,
    ``placeOrder`` / ``cancelOrder`` / ``reqGlobalCancel`` / ``disconnect``, and two client events."""
    w = ib.wrapper
    for name, builder in adapter.CALLBACKS.items():
        original = getattr(w, name, None)
        if original is not None:
            patches.hook(w, name, callback_hook(port, name, builder, original))
    if getattr(w, PRICE_TICK, None) is not None:
        patches.hook(w, PRICE_TICK, tick_hook(port, ib, getattr(w, PRICE_TICK)))
    patches.hook(w, adapter.CONNECT_ACK, connect_ack_hook(port, ib, getattr(w, adapter.CONNECT_ACK)))
    patches.hook(w, adapter.CONNECTION_CLOSED, _guarded(port, adapter.CONNECTION_CLOSED, port.on_connection_closed,
                                                         getattr(w, adapter.CONNECTION_CLOSED)))
    patches.hook(ib, "placeOrder", place_hook(port, ib, ib.placeOrder))
    patches.hook(ib, "cancelOrder", cancel_hook(port, ib, ib.cancelOrder))
    patches.hook(ib, "reqGlobalCancel", global_cancel_hook(port, ib, ib.reqGlobalCancel))
    patches.hook(ib, "disconnect", _guarded(port, "disconnect", port.on_disconnect, ib.disconnect))
    patches.listen(ib.client.apiError, port.on_api_error)
    patches.listen(ib.connectedEvent, port.on_synchronized)


def callback_hook(port: HookPort, name: str, builder: adapter.Builder, original: Original) -> Any:
    """A wrapper callback: stamped on arrival, converted and recorded first, then the library's original."""
    clock = port.clock
    on_callback = port.on_callback

    def hook(*args: Any, **kwargs: Any) -> Any:
        recv_ns, mono_ns = clock()
        if not port.closed:
            try:
                a = adapter.bind_args(original, args, kwargs) if kwargs else args
                on_callback(name, builder(*a), a, recv_ns, mono_ns)
            except Exception as exc:  # noqa: BLE001 - the library must still see the callback
                port.internal_error(name, exc, args)
        return original(*args, **kwargs)

    return hook


def connect_ack_hook(port: HookPort, ib: Any, original: Original) -> Any:
    """The handshake completed: the connection (host, port, client id, server version) as the client has it."""

    def hook(*args: Any, **kwargs: Any) -> Any:
        recv_ns, mono_ns = port.clock()
        if not port.closed:
            try:
                port.on_connect_ack(adapter.connected(ib.client), recv_ns, mono_ns)
            except Exception as exc:  # noqa: BLE001
                port.internal_error(adapter.CONNECT_ACK, exc, args)
        return original(*args, **kwargs)

    return hook


def _guarded(port: HookPort, where: str, before: Callable[[], None], original: Original) -> Any:
    """Tell the recorder first (errors become faults), then run the library's original."""

    def hook(*args: Any, **kwargs: Any) -> Any:
        if not port.closed:
            try:
                before()
            except Exception as exc:  # noqa: BLE001
                port.internal_error(where, exc, args)
        return original(*args, **kwargs)

    return hook


def place_hook(port: HookPort, ib: Any, original: Original) -> Any:
    """``ib.placeOrder``: the intent (a modify when the order id was placed before) is handed over before
    anything is sent; an order without id gets the id the library would assign, first, so the intent
    carries it. The recorder may refuse (governor BLOCK, or an order it could not check: fail closed)."""

    def placeOrder(contract: Any, order: Any, *args: Any, **kwargs: Any) -> Any:
        refusal: BaseException | None = None
        client = ib.client
        # governed: also in the moment between the socket and the API being up (the library would send)
        if not port.closed and (client.isReady() or (port.governed and client.isConnected())):
            try:
                if not getattr(order, "orderId", 0):
                    order.orderId = client.getReqId()
                cid = client_id(ib)
                oid = int(order.orderId)
                key = (cid, oid)
                modify = port.was_placed(key) or key in getattr(ib.wrapper, "trades", {})
                refusal = port.on_place(adapter.place_order(contract, order, oid, cid, modify=modify), key)
            except Exception as exc:  # noqa: BLE001
                refusal = port.on_unchecked_place(
                    exc, int(getattr(order, "orderId", 0) or 0), str(getattr(contract, "symbol", "") or ""),
                    (contract, order),
                )
        if refusal is not None:
            raise refusal
        return original(contract, order, *args, **kwargs)

    return placeOrder


def cancel_hook(port: HookPort, ib: Any, original: Original) -> Any:
    """``ib.cancelOrder``: the intent first; governed, the cancel then goes out ahead of the throttle."""

    def cancelOrder(order: Any, *args: Any, **kwargs: Any) -> Any:
        if not port.closed and ib.client.isReady():
            try:
                port.on_cancel(adapter.cancel_order(order, client_id(ib)))
            except Exception as exc:  # noqa: BLE001
                port.internal_error("cancelOrder", exc, (order,))
        if port.governed and ib.client.isConnected():
            # a cancel reduces risk: it goes out now, not behind the client's request throttle
            return send_ahead(ib.client, lambda: original(order, *args, **kwargs))
        return original(order, *args, **kwargs)

    return cancelOrder


def global_cancel_hook(port: HookPort, ib: Any, original: Original) -> Any:
    """``ib.reqGlobalCancel``: the intent first; governed, it goes out ahead of the throttle."""

    def reqGlobalCancel(*args: Any, **kwargs: Any) -> Any:
        if not port.closed and ib.client.isReady():
            try:
                port.on_global_cancel(adapter.global_cancel())
            except Exception as exc:  # noqa: BLE001
                port.internal_error("reqGlobalCancel", exc)
        if port.governed and ib.client.isConnected():
            return send_ahead(ib.client, lambda: original(*args, **kwargs))
        return original(*args, **kwargs)

    return reqGlobalCancel


def tick_hook(port: HookPort, ib: Any, original: Original) -> Any:
    """Price ticks of the strategy's own subscriptions become ``price_observed`` (sampled, see
    :class:`~ledger.core.prices.PriceSampler`): the governor prices market orders from them."""
    sampler = port.prices
    wrapper = ib.wrapper
    interval_ns, move = sampler.interval_ns, sampler.move
    fast: dict[Any, tuple[int, float]] = {}  # reqId -> (mono_ns, price) of the last kept observation
    clock = port.clock

    def hook(reqId: Any, tickType: Any, price: Any, *args: Any, **kwargs: Any) -> Any:
        if not port.closed and tickType in PRICE_TICKS:
            try:
                recv_ns, mono_ns = clock()
                f = fast.get(reqId)
                # the common case, decided without building anything: too soon, or no move
                if f is None or (mono_ns - f[0] >= interval_ns and abs(price - f[1]) > move * f[1]):
                    ticker = getattr(wrapper, "reqId2Ticker", {}).get(reqId)
                    contract = getattr(ticker, "contract", None)
                    mdt = int(getattr(ticker, "marketDataType", 0) or 0)
                    obs = observation(contract, int(tickType), price, mdt)
                    if obs is not None and sampler.keep(obs, mono_ns):
                        fast[reqId] = (mono_ns, obs.price)
                        port.on_price(obs, recv_ns, mono_ns)
                else:
                    sampler.seen += 1
            except Exception as exc:  # noqa: BLE001 - the library must still see the tick
                port.internal_error(PRICE_TICK, exc, (reqId, tickType, price))
        return original(reqId, tickType, price, *args, **kwargs)

    return hook
