"""Options and error handling shared by every command."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn

from rich.console import Console

from ledger.store.registry import resolve_store_url

if TYPE_CHECKING:
    from ledger.store import EventStore

# Piped output (CI logs, `| less`) would otherwise be squeezed to 80 columns and truncate ids.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

def store_url(url: str | None) -> str:
    """--store wins, then IBLEDGER_STORE, then the embedded default; an empty value is an error."""
    from ledger.store import StoreURLError

    try:
        return resolve_store_url(url)
    except StoreURLError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a clear error (what, where, how to fix) and exit non-zero."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False)
    sys.exit(code)


@contextmanager
def opened_store(url: str | None, *, write: bool = False, init: bool = False) -> Iterator[EventStore]:
    """Open the store named by --store / $IBLEDGER_STORE / the default, with a clear error if it can't.

    Only writers (``write=True``) may create a store; readers refuse a path that holds none.
    """
    from ledger.store import NoStore, StoreError, open_store

    resolved = store_url(url)
    try:
        store = open_store(resolved, create=write, init=init)
    except NoStore as exc:
        fail(str(exc))
    except StoreError as exc:
        text = redact(str(exc))
        fail(text if text.startswith("cannot open") else f"cannot open store {redact(resolved)}: {text}")
    with store:
        yield store


def redact(url: str) -> str:
    """Hide a password in a URL before it is printed anywhere (the store's one redaction function)."""
    from ledger.store import redact_url

    return redact_url(url)


def run_guarded(app: Callable[[], object]) -> None:
    """Call ``app()``; turn any error that escaped a command into one ``error:`` line and an exit code.

    Store, file-system and memory errors get their cause and a hint; anything else is named as a bug
    (exit 70) with the exception type and message, never a traceback unless ``IBLEDGER_DEBUG`` is set.
    """
    from ledger.store import StoreError, redact_url

    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted", highlight=False)
        sys.exit(130)
    except BrokenPipeError:  # `ibledger ... | head`: the reader left; not an error of ours
        with contextlib.suppress(Exception):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("IBLEDGER_DEBUG"):
            raise
        text = redact_url(str(exc))[:2000]
        if isinstance(exc, StoreError):
            fail(text, 1)
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            fail(f"{exc.strerror or text}{where}: check the path, permissions and free disk space", 1)
        if isinstance(exc, MemoryError):
            fail("out of memory: the input is larger than this machine can hold; split it or use a bigger host", 1)
        fail(f"internal error ({type(exc).__name__}: {text}); this is a bug in ibledger, please report it with "
             f"the command line (IBLEDGER_DEBUG=1 shows the traceback)", 70)
