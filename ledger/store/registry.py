"""The backend registry: a store URL names its backend; nothing else chooses one.

The base module knows no backend, and each backend imports only the base, so adding one is a new module
and one line here."""

from __future__ import annotations

import os

from ledger.store.base import EventStore, parse_url

DEFAULT_STORE_URL = "sqlite:///ibledger.db"
"""The embedded default: one SQLite file in the current directory."""


def resolve_store_url(url: str | None) -> str:
    """--store wins, then IBLEDGER_STORE, then the embedded default file in the current directory."""
    return url or os.environ.get("IBLEDGER_STORE") or DEFAULT_STORE_URL


def open_store(url: str) -> EventStore:
    """Open (creating tables if needed) the store named by ``url``; see the module doc for URLs."""
    parsed = parse_url(url)
    if parsed.scheme == "sqlite":
        from ledger.store.sqlite import SQLiteEventStore

        return SQLiteEventStore(parsed)
    from ledger.store.postgres import PostgresEventStore

    return PostgresEventStore(parsed)
