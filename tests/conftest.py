"""Shared fixtures. Keep sections per area; store fixtures first."""

from __future__ import annotations

import os
import uuid

import pytest

# --- store ------------------------------------------------------------------------------------

# Server for the PostgreSQL half of the store contract tests; each test gets its own schema.
PG_SERVER = os.environ.get("IBLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
PG_DBNAME = os.environ.get("IBLEDGER_TEST_PG_DB", "ibledger_test")


def _pg_unavailable(reason: str) -> None:
    # In CI a missing PostgreSQL is a failure (the store must be tested on both backends);
    # on a developer machine it is a skip that says why.
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL needed for store tests: {reason}")
    pytest.skip(f"PostgreSQL not available ({reason}); set IBLEDGER_TEST_PG")


@pytest.fixture(scope="session")
def pg_database_url() -> str:
    """URL of the test database (created if missing); skips (fails in CI) if no server."""
    import psycopg

    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", (PG_DBNAME,)).fetchone()
            if not exists:
                try:
                    conn.execute(f'CREATE DATABASE "{PG_DBNAME}"')
                except psycopg.errors.DuplicateDatabase:
                    pass
    except psycopg.OperationalError as exc:
        _pg_unavailable(str(exc).strip().splitlines()[0])
    return f"{PG_SERVER}/{PG_DBNAME}"


@pytest.fixture
def pg_schema_url(pg_database_url: str):
    """A store URL on a fresh PostgreSQL schema, dropped after the test."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    yield f"{pg_database_url}?schema={schema}"
    with psycopg.connect(pg_database_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"  # tmp_path is absolute: four slashes


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request) -> str:
    """A fresh, empty store URL on each backend (SQLite file in tmp_path; PostgreSQL schema)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_schema_url")


@pytest.fixture
def store(store_url):
    from ledger.store import open_store

    with open_store(store_url) as s:
        yield s


# --- event loop ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _current_event_loop():
    """Give each test a current event loop on the main thread.

    Tests that use the IB client's blocking API need one, and ``asyncio.run`` (demo, placement) leaves
    the main thread without one when it ends, so test order must not decide which tests can run.
    """
    import asyncio

    try:
        usable = not asyncio.get_event_loop_policy().get_event_loop().is_closed()
    except RuntimeError:
        usable = False
    if not usable:
        asyncio.set_event_loop(asyncio.new_event_loop())
    yield


# --- simulator ----------------------------------------------------------------------------------


@pytest.fixture
def sim():
    """A default simulator on a free port (a test module may override it with its own scenario or seed)."""
    from replay.tws.simulator import Simulator

    with Simulator() as s:
        yield s


# --- markers ------------------------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The simulator suites drive the real client throughout: run them again under ib_async too."""
    for item in items:
        if item.path.name.startswith("test_simulator_"):
            item.add_marker(pytest.mark.ibclient)
