"""The backend registry: a store URL names its backend; nothing else chooses one.

The base module knows no backend, and each backend imports only the base, so adding one is a new module
and one line here."""

from __future__ import annotations

import os

from ledger.store.base import EventStore, StoreURLError, parse_url

DEFAULT_STORE_URL = "sqlite:///ibledger.db"
"""The embedded default: one SQLite file in the current directory."""


def resolve_store_url(url: str | None) -> str:
    """--store wins, then IBLEDGER_STORE, then the embedded default file in the current directory.

    An empty value is a mistake (an unset shell variable, ``--store "$STORE"``), never "the default":
    :class:`~ledger.store.base.StoreURLError`.
    """
    if url is not None:
        if not url.strip():
            raise StoreURLError("--store is empty: give a store URL, e.g. --store sqlite:///ledger.db, or leave "
                                "the option out to use $IBLEDGER_STORE or sqlite:///ibledger.db")
        return url
    env = os.environ.get("IBLEDGER_STORE")
    if env is not None:
        if not env.strip():
            raise StoreURLError("$IBLEDGER_STORE is set but empty: set it to a store URL (sqlite:///ledger.db) "
                                "or unset it")
        return env
    return DEFAULT_STORE_URL


def open_store(url: str, *, create: bool = True, init: bool = False) -> EventStore:
    """Open the store named by ``url``; see :mod:`ledger.store.base` for URLs.

    ``create``: a writer may create a missing store; a reader (``create=False``) refuses a path that
    holds no ibledger store, so a mistyped path never turns into a new, empty, "verified" store.
    ``init``: allow adding ibledger's tables to an existing SQLite database that holds other tables
    (without it such a foreign file is refused, so ibledger never writes into someone else's database).
    """
    parsed = parse_url(url)
    if parsed.scheme == "sqlite":
        from ledger.store.sqlite import SQLiteEventStore

        return SQLiteEventStore(parsed, create=create, init=init)
    from ledger.store.postgres import PostgresEventStore

    return PostgresEventStore(parsed, create=create)
