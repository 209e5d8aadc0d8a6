"""Options and error handling shared by every command."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from ledger.store.registry import resolve_store_url

if TYPE_CHECKING:
    from ledger.store import EventStore

# Piped output (CI logs, `| less`) would otherwise be squeezed to 80 columns and truncate ids.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

store_url = resolve_store_url


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a clear error (what, where, how to fix) and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


@contextmanager
def opened_store(url: str | None) -> Iterator[EventStore]:
    """Open the store named by --store / $IBLEDGER_STORE / the default, with a clear error if it can't."""
    from ledger.store import StoreError, open_store

    resolved = store_url(url)
    try:
        store = open_store(resolved)
    except StoreError as exc:
        fail(f"cannot open store {redact(resolved)}: {exc}")
    with store:
        yield store


def redact(url: str) -> str:
    """Hide a password in a URL before it is printed anywhere."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
