"""Options shared by several commands, defined once.

The seven connection options (``--host --port --client-id --account --config --live --simulate``) are
added to a command by :func:`with_connection`: the command declares one ``conn: ConnectionOptions``
parameter and the decorator rewrites its signature, so every command that connects offers the same flags
with the same help and the same environment variables.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import msgspec
import typer

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL (sqlite:///path.db or postgresql://...). Default: $IBLEDGER_STORE "
                 "or sqlite:///ibledger.db", show_default=False),
]
GovernorOpt = Annotated[
    Path | None, typer.Option("--governor", help="Governor config (TOML). Default: built-in limits.")
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print JSON (one object; see 'JSON output' in the README).")
]


class ConnectionOptions(msgspec.Struct, frozen=True):
    """What the user typed for the connection; ``ledger.ib.settings.resolve`` fills the rest."""

    host: str | None = None
    port: int | None = None
    client_id: int | None = None
    account: str | None = None
    config: Path | None = None
    live: bool = False
    simulate: bool = False


NO_CONNECTION = ConnectionOptions()  # the declared default of ``conn``; the decorator always passes one

_CONNECTION_PARAMS = (
    ("host", Annotated[str | None, typer.Option("--host", help="TWS / Gateway host. Env: IBKR_HOST.",
                                                 rich_help_panel="Connection")], None),
    ("port", Annotated[int | None, typer.Option(
        "--port", help="API port (7497 TWS paper, 4002 Gateway paper). Env: IBKR_PORT.",
        rich_help_panel="Connection")], None),
    ("client_id", Annotated[int | None, typer.Option("--client-id", help="API client id. Env: IBKR_CLIENT_ID.",
                                                      rich_help_panel="Connection")], None),
    ("account", Annotated[str | None, typer.Option(
        "--account", help="Account the server must report (DU.../DF... paper). Env: IBKR_ACCOUNT.",
        rich_help_panel="Connection")], None),
    ("config", Annotated[Path | None, typer.Option(
        "--config", help="TOML file with an \\[ibkr] table (host, port, client_id, account). Env: IBLEDGER_CONFIG.",
        rich_help_panel="Connection")], None),
    ("live", Annotated[bool, typer.Option(
        "--live", help="Allow live ports/accounts (also needs IBLEDGER_ALLOW_LIVE=yes).",
        rich_help_panel="Connection")], False),
    ("simulate", Annotated[bool, typer.Option(
        "--simulate", help="Run against the built-in TWS simulator on a free port (no broker).",
        rich_help_panel="Connection")], False),
)

F = TypeVar("F", bound=Callable[..., Any])


def with_connection(func: F | None = None, *, endpoint_only: bool = False) -> Any:
    """Replace the command's ``conn`` parameter by the seven connection options (typer reads the signature).

    ``endpoint_only=True`` offers only host, port, client id, account and config (``doctor`` probes, it
    never trades, so ``--live`` / ``--simulate`` mean nothing there).
    """
    if func is None:
        return functools.partial(with_connection, endpoint_only=endpoint_only)
    chosen = [c for c in _CONNECTION_PARAMS if not (endpoint_only and c[0] in ("live", "simulate"))]
    sig = inspect.signature(func, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "conn"]
    if len(params) == len(sig.parameters):
        raise TypeError(f"{func.__name__} has no 'conn' parameter")
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
             for name, annotation, default in chosen]
    kinds = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind == p.POSITIONAL_OR_KEYWORD else p
             for p in params]
    names = [n for n, _, _ in chosen]

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        conn = ConnectionOptions(**{n: kwargs.pop(n) for n in names if n in kwargs})
        return func(conn=conn, **kwargs)

    # typer builds the command from this signature; keep positional arguments (typer.Argument) first
    positional = [p for p in kinds if p.kind == p.POSITIONAL_ONLY]
    rest = [p for p in kinds if p.kind != p.POSITIONAL_ONLY]
    wrapper.__signature__ = sig.replace(parameters=[*positional, *rest, *extra])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {}
    return wrapper  # type: ignore[return-value]
