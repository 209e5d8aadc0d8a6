"""The event store: one abstract interface (``base``), backends chosen by URL (``registry``: SQLite, PostgreSQL),
the recorder's group-commit writer, verification, anchors and session files."""

from ledger.store.base import *  # noqa: F403 - the package re-exports the interface
from ledger.store.base import EMPTY_CHAIN, NS_MAX, GapListener, chain_next, decode_row
from ledger.store.base import __all__ as _base_all
from ledger.store.registry import open_store, resolve_store_url

__all__ = [*_base_all, "EMPTY_CHAIN", "NS_MAX", "GapListener", "chain_next", "decode_row", "open_store",
           "resolve_store_url"]
