"""Connection settings: where TWS / IB Gateway listens, which client id and account, paper or live.

Every value comes from, in order of precedence:

1. a command-line flag: ``--host``, ``--port``, ``--client-id``, ``--account``;
2. the environment: ``IBKR_HOST``, ``IBKR_PORT``, ``IBKR_CLIENT_ID``, ``IBKR_ACCOUNT``;
3. a TOML config file (``--config PATH`` or ``$IBLEDGER_CONFIG``), table ``[ibkr]``::

       [ibkr]
       host = "172.28.96.1"     # TWS / Gateway address (from WSL: the Windows host, see `ibledger doctor`)
       port = 7497              # 7497 TWS paper, 4002 Gateway paper (7496 / 4001 are live)
       client_id = 17           # unique per connected program
       account = "DU1234567"    # the account the server must report (managedAccounts)

   Other tables in the same file (e.g. the governor's) are ignored here; unknown keys inside
   ``[ibkr]`` are an error (a typo must not silently fall back to something else).

Nothing has a default: a missing value is a :class:`SettingsError` naming the flag, the variable and the
config key that would set it. There is no silent fallback to the simulator: simulation happens only
with ``--simulate`` (the in-process simulator on a free port; client id defaults to 1 and the account to
the simulator's paper account, or the ones given).

**Paper by default.** Refused unless live trading is switched on deliberately:

* the live ports 7496 (TWS) and 4001 (IB Gateway);
* accounts that are not paper accounts. IB paper account ids start with ``DU`` (individual paper
  account) or ``DF`` (paper advisor / master account); live ones start with ``U``, ``F``, ``I`` ....
  ``PAPER_ACCOUNT_PREFIXES`` is the rule.

Live mode needs both ``--live`` *and* ``IBLEDGER_ALLOW_LIVE=yes`` in the environment: one flag typed by
habit or copied from shell history is not enough.

After connecting, :func:`check_account` compares the configured account with the accounts the server
reports (``managedAccounts``); a mismatch is a hard error and the caller disconnects.

:func:`connect_client` connects an ``IB`` client and turns the libraries' bare ``TimeoutError`` into
the real cause (refused, reset by an untrusted-peer check, client id in use, no API handshake).

Credentials: IB's API has none on the socket (TWS authenticates the user); these settings hold none and
nothing here logs or stores anything but host, port, client id and account.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from ledger.core.events import SIMULATOR_ACCOUNT, SIMULATOR_CLIENT_ID

ENV_HOST = "IBKR_HOST"
ENV_PORT = "IBKR_PORT"
ENV_CLIENT_ID = "IBKR_CLIENT_ID"
ENV_ACCOUNT = "IBKR_ACCOUNT"
ENV_CONFIG = "IBLEDGER_CONFIG"
ENV_ALLOW_LIVE = "IBLEDGER_ALLOW_LIVE"
ALLOW_LIVE_VALUE = "yes"

CONFIG_TABLE = "ibkr"
CONFIG_KEYS = ("host", "port", "client_id", "account")

LIVE_PORTS: dict[int, str] = {7496: "TWS live", 4001: "IB Gateway live"}
PAPER_PORTS: dict[int, str] = {7497: "TWS paper", 4002: "IB Gateway paper"}
PAPER_ACCOUNT_PREFIXES = ("DU", "DF")


Mode = Literal["paper", "live", "simulation"]

_FLAG = {"host": "--host", "port": "--port", "client_id": "--client-id", "account": "--account"}
_ENV = {"host": ENV_HOST, "port": ENV_PORT, "client_id": ENV_CLIENT_ID, "account": ENV_ACCOUNT}
_WHAT = {
    "host": "the TWS / IB Gateway host address",
    "port": "the TWS / IB Gateway API port (7497 TWS paper, 4002 Gateway paper)",
    "client_id": "the API client id (an integer unique among connected programs)",
    "account": "the IB account id (paper accounts start with DU or DF)",
}


class SettingsError(ValueError):
    """A setting is missing, malformed or refused; the message says which and where to set it."""


class ConnectionSettings(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    client_id: int
    account: str
    mode: Mode = "paper"
    config_path: str = ""
    # where each value came from ("flag --host", "env IBKR_HOST", "config x.toml [ibkr].host", "simulator")
    origin: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def live(self) -> bool:
        return self.mode == "live"

    @property
    def simulate(self) -> bool:
        return self.mode == "simulation"

    def with_endpoint(self, host: str, port: int) -> ConnectionSettings:
        """The same settings pointed at the simulator once it listens."""
        origin = dict(self.origin) | {"host": "simulator", "port": "simulator"}
        return msgspec.structs.replace(self, host=host, port=port, origin=origin)

    def describe(self) -> str:
        return f"{self.host}:{self.port} client id {self.client_id} account {self.account} ({self.mode})"


def is_paper_account(account: str) -> bool:
    return account.upper().startswith(PAPER_ACCOUNT_PREFIXES)


def how_to_set(name: str) -> str:
    return f"{_FLAG[name]}, ${_ENV[name]} or `{name} = ...` in the [{CONFIG_TABLE}] table of the --config file"


def load_config(path: str | Path) -> dict[str, Any]:
    """The ``[ibkr]`` table of a TOML file (empty if the file has none)."""
    p = Path(path)
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SettingsError(f"config file {p} does not exist (given by --config or ${ENV_CONFIG})") from exc
    except OSError as exc:
        raise SettingsError(f"cannot read config file {p}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {p} is not valid TOML: {exc}") from exc
    table = doc.get(CONFIG_TABLE, {})
    if not isinstance(table, dict):
        raise SettingsError(f"config file {p}: [{CONFIG_TABLE}] must be a table")
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise SettingsError(
            f"config file {p}: unknown key(s) {', '.join(unknown)} in [{CONFIG_TABLE}]; "
            f"known keys: {', '.join(CONFIG_KEYS)}"
        )
    return table


def _as_int(name: str, value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"{_WHAT[name]} from {where} must be an integer, got {value!r}")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise SettingsError(f"{_WHAT[name]} from {where} must be an integer, got {value!r}") from None


def _as_str(name: str, value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{_WHAT[name]} from {where} must be a string, got {value!r}")
    return value.strip()


def lookup(
    flags: Mapping[str, Any], env: Mapping[str, str], file_values: Mapping[str, Any], config: str = ""
) -> tuple[dict[str, Any], dict[str, str]]:
    """The values that are set (flags > environment > file), typed, and where each came from."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name in CONFIG_KEYS:
        raw: Any = None
        where = ""
        if flags.get(name) is not None and flags.get(name) != "":
            raw, where = flags[name], f"flag {_FLAG[name]}"
        elif env.get(_ENV[name], "").strip():
            raw, where = env[_ENV[name]], f"environment ${_ENV[name]}"
        elif name in file_values:
            raw, where = file_values[name], f"config file {config} [{CONFIG_TABLE}].{name}"
        if raw is None:
            continue
        values[name] = _as_int(name, raw, where) if name in ("port", "client_id") else _as_str(name, raw, where)
        origin[name] = where
    return values, origin


def partial(
    *,
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    account: str | None = None,
    config: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Whatever is configured, nothing required (``ibledger doctor`` fills the gaps by probing)."""
    env = os.environ if env is None else env
    config = config if config is not None else (env.get(ENV_CONFIG) or None)
    file_values: dict[str, Any] = load_config(config) if config else {}
    flags = {"host": host, "port": port, "client_id": client_id, "account": account}
    return lookup(flags, env, file_values, str(config or ""))


def resolve(
    *,
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    account: str | None = None,
    config: str | Path | None = None,
    live: bool = False,
    simulate: bool = False,
    env: Mapping[str, str] | None = None,
    need_account: bool = True,
) -> ConnectionSettings:
    """Resolve flags > environment > config file, then apply the paper/live policy.

    ``simulate=True`` ignores the environment and the config file for host and port (the simulator
    picks a free port: call :meth:`ConnectionSettings.with_endpoint` once it listens), and defaults
    the client id and account. ``need_account=False`` (doctor) accepts a missing account.
    """
    env = os.environ if env is None else env
    config = config if config is not None else (env.get(ENV_CONFIG) or None)
    file_values: dict[str, Any] = load_config(config) if config else {}
    if simulate:
        _check_simulate_flags(host, port, live)
    flags = {"host": host, "port": port, "client_id": client_id, "account": account}
    found, origin = lookup(flags, env, file_values, str(config or ""))
    values = _complete(found, origin, simulate=simulate, need_account=need_account)
    _check_values(values, origin, simulate=simulate)
    mode: Mode = "simulation" if simulate else ("live" if live else "paper")
    settings = ConnectionSettings(
        host=values["host"],
        port=values["port"],
        client_id=values["client_id"],
        account=values["account"],
        mode=mode,
        config_path=str(config or ""),
        origin=origin,
    )
    check_policy(settings, env)
    return settings


def _check_simulate_flags(host: str | None, port: int | None, live: bool) -> None:
    """``--simulate`` runs its own simulator: never live, never at a given address."""
    if live:
        raise SettingsError("--simulate and --live exclude each other: the simulator is never a live account")
    given = [_FLAG[k] for k, v in (("host", host), ("port", port)) if v is not None]
    if given:
        raise SettingsError(
            f"--simulate starts its own simulator on a free port; drop {' and '.join(given)} "
            "(or drop --simulate to connect to TWS / IB Gateway)"
        )


def _complete(
    found: dict[str, Any], origin: dict[str, str], *, simulate: bool, need_account: bool
) -> dict[str, Any]:
    """Every connection value: what was configured, the simulator's defaults, or an error naming all
    that is missing and how to set each (``origin`` says where each value came from)."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name in CONFIG_KEYS:
        if simulate and name in ("host", "port"):
            values[name] = "127.0.0.1" if name == "host" else 0
            origin[name] = "simulator"
        elif name in found:
            values[name] = found[name]
        elif simulate and name == "client_id":
            values[name], origin[name] = SIMULATOR_CLIENT_ID, "simulator default"
        elif simulate and name == "account":
            values[name], origin[name] = SIMULATOR_ACCOUNT, "simulator default"
        elif name == "account" and not need_account:
            values[name], origin[name] = "", "not set"
        else:
            missing.append(name)
    if missing:
        raise SettingsError(_missing_message(missing, simulate))
    return values


def _missing_message(missing: list[str], simulate: bool) -> str:
    lines = [f"missing {_WHAT[n]}: set it with {how_to_set(n)}" for n in missing]
    hint = ""
    if "host" in missing:
        hint = "\n(from WSL the host is the Windows machine, not 127.0.0.1: run `ibledger doctor` to find it)"
    if not simulate:
        hint += "\n(no broker at hand? `--simulate` runs everything against the built-in simulator)"
    return "\n".join(lines) + hint


def _check_values(values: dict[str, Any], origin: dict[str, str], *, simulate: bool) -> None:
    if not values["host"] and not simulate:
        raise SettingsError(f"{_WHAT['host']} is empty (from {origin['host']}): set it with {how_to_set('host')}")
    if not simulate and not (0 < values["port"] < 65536):
        raise SettingsError(f"port {values['port']} (from {origin['port']}) is not a TCP port")
    if values["client_id"] < 0:
        raise SettingsError(f"client id {values['client_id']} (from {origin['client_id']}) must be >= 0")


def check_policy(settings: ConnectionSettings, env: Mapping[str, str] | None = None) -> None:
    """Paper unless live is switched on deliberately (``--live`` and ``IBLEDGER_ALLOW_LIVE=yes``)."""
    env = os.environ if env is None else env
    if settings.mode == "simulation":
        return
    allowed = env.get(ENV_ALLOW_LIVE, "").strip().lower() == ALLOW_LIVE_VALUE
    if settings.mode == "live":
        if not allowed:
            raise SettingsError(
                f"--live needs ${ENV_ALLOW_LIVE}={ALLOW_LIVE_VALUE} in the environment as well: live trading "
                "must be switched on deliberately, twice"
            )
        return
    if settings.port in LIVE_PORTS:
        raise SettingsError(
            f"port {settings.port} is the {LIVE_PORTS[settings.port]} port (from {settings.origin.get('port')}); "
            "ibledger trades paper by default: use 7497 (TWS paper) or 4002 (IB Gateway paper), or pass "
            f"--live with ${ENV_ALLOW_LIVE}={ALLOW_LIVE_VALUE} to trade real money"
        )
    if settings.account and not is_paper_account(settings.account):
        raise SettingsError(
            f"account {settings.account} (from {settings.origin.get('account')}) is not a paper account "
            f"(paper accounts start with {' or '.join(PAPER_ACCOUNT_PREFIXES)}); pass --live with "
            f"${ENV_ALLOW_LIVE}={ALLOW_LIVE_VALUE} to trade a live account"
        )


def parse_accounts(managed: str | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(managed, str):
        managed = managed.split(",")
    return [a.strip() for a in managed if a and a.strip()]


def check_account(settings: ConnectionSettings, managed: str | list[str] | tuple[str, ...]) -> None:
    """The configured account must be one the server reports; in paper mode they must all be paper."""
    accounts = parse_accounts(managed)
    if not accounts:
        raise SettingsError(
            f"{settings.host}:{settings.port} reported no managed accounts; cannot confirm account "
            f"{settings.account}"
        )
    if settings.account not in accounts:
        raise SettingsError(
            f"account mismatch: configured {settings.account} (from {settings.origin.get('account')}) but "
            f"{settings.host}:{settings.port} manages {', '.join(accounts)}; disconnected. Fix "
            f"{how_to_set('account')}, or connect to the right TWS / Gateway login"
        )
    problem = live_login_problem(settings.mode, accounts, f"{settings.host}:{settings.port}")
    if problem is not None:
        raise SettingsError(problem)


def live_login_problem(mode: str, managed: str | list[str] | tuple[str, ...], where: str) -> str | None:
    """Why a paper-mode session must not go on with this login (any live account in it), else None.

    One check for every command that connects (order, positions, cancel-all and record): a login that
    mixes paper and live accounts is a live login.
    """
    if mode != "paper":
        return None
    live_accounts = [a for a in parse_accounts(managed) if not is_paper_account(a)]
    if not live_accounts:
        return None
    return (
        f"{where} is logged in to live account(s) {', '.join(live_accounts)}; "
        f"ibledger trades paper by default (pass --live with ${ENV_ALLOW_LIVE}={ALLOW_LIVE_VALUE})"
    )


# --- connecting ------------------------------------------------------------------------------------


class ConnectError(ConnectionError):
    """Could not connect. ``kind``: refused | reset | client_id | timeout | disconnected; the message says
    what to do."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


async def connect_client(
    ib: Any, host: str, port: int, client_id: int, *, timeout: float = 10.0, account: str = "",
    readonly: bool = False,
) -> None:
    """``ib.connectAsync`` that says the real cause on failure.

    The libraries raise a bare ``TimeoutError`` when TWS resets an untrusted peer; the reset, a refused
    connection and "client id in use" (326) only show on ``ib.client.apiError`` / ``ib.errorEvent``,
    which are listened to here.
    """
    api_errors: list[str] = []
    codes: list[tuple[int, str]] = []

    def on_api_error(msg: Any) -> None:
        api_errors.append(str(msg))

    def on_error(req_id: int, code: int, message: str, *args: Any) -> None:
        if req_id == -1 and code < 2100 or code in (326, 502, 504):
            codes.append((code, message))

    ib.client.apiError += on_api_error
    ib.errorEvent += on_error
    where = f"{host}:{port}"
    try:
        await ib.connectAsync(host, port, clientId=client_id, timeout=timeout, readonly=readonly, account=account)
    except (TimeoutError, ConnectionError, OSError) as exc:
        with contextlib.suppress(Exception):
            ib.disconnect()
        text = " ".join(api_errors).lower()
        if any(c == 326 for c, _ in codes):
            raise ConnectError(
                f"client id {client_id} is already in use at {where}: pick another one with {how_to_set('client_id')}",
                "client_id",
            ) from exc
        if isinstance(exc, ConnectionRefusedError) or "refused" in text:
            raise ConnectError(
                f"nothing listens on {where} (connection refused): is TWS / IB Gateway running with the API "
                "enabled on that port? Run `ibledger doctor` to check",
                "refused",
            ) from exc
        if "reset" in text:
            raise ConnectError(
                f"{where} reset the connection ({'; '.join(api_errors)}): TWS does not trust this machine's "
                "address. In TWS API settings untick 'Allow connections from localhost only' and add the "
                "address to 'Trusted IPs'; `ibledger doctor` names the address",
                "reset",
            ) from exc
        cause = "; ".join(f"error {c}: {m}" for c, m in codes) or "; ".join(api_errors) or repr(exc)
        raise ConnectError(
            f"could not connect to {where} within {timeout:g}s ({cause}): API not enabled, wrong port or TWS "
            "busy with a dialog? Run `ibledger doctor`",
            "timeout",
        ) from exc
    finally:
        ib.client.apiError -= on_api_error
        ib.errorEvent -= on_error
