"""ibledger's core: events, store, order fold, governor, IB adapter and recorder."""

from __future__ import annotations

from typing import Any

from ledger.version import __version__

__all__ = ["OrderBlocked", "Recorder", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy so that importing the pure parts (events, fold) never pulls in an IB client library.
    if name == "Recorder":
        from ledger.live.recorder import Recorder

        return Recorder
    if name == "OrderBlocked":
        from ledger.live.guard import OrderBlocked

        return OrderBlocked
    raise AttributeError(f"module 'ledger' has no attribute {name!r}")
