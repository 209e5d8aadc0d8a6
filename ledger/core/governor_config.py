"""Governor configuration: a TOML file, validated strictly, turned into a frozen :class:`GovernorConfig`.

The shipped default is ``ledger/core/governor_default.toml`` (every key, documented in its comments and in
``docs/governor.md``). A user's file is complete on its own: a key it leaves out takes the built-in
default, which is the value in the shipped file (a test keeps the two equal).

A bad file is refused as a whole with :class:`GovernorConfigError`, naming the dotted key and the reason:
an unknown key (typos must not silently disable a limit), a wrong type, a negative limit, an unknown
trading state. ``0`` means "no limit" for every numeric limit.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct, field

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "BreakerConfig",
    "GovernorConfig",
    "GovernorConfigError",
    "LimitsConfig",
    "StateConfig",
    "SymbolLimit",
    "default_config",
    "default_config_text",
    "dump_config",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_NAME = "governor_default.toml"
TRADING_STATES = ("ACTIVE", "HALTED", "REDUCING")


class GovernorConfigError(ValueError):
    """A governor config that cannot be used: ``key`` (dotted) and ``reason``, plus the file if known."""

    def __init__(self, key: str, reason: str, source: str = "") -> None:
        self.key = key
        self.reason = reason
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {reason}" if key else f"{where}{reason}")


class LimitsConfig(Struct, frozen=True, kw_only=True):
    max_qty: float = 1000.0
    max_notional: float = 100_000.0
    max_open_orders: int = 50
    max_orders_per_sec: int = 5
    max_orders_per_min: int = 60


class SymbolLimit(Struct, frozen=True, kw_only=True):
    max_qty: float | None = None
    max_notional: float | None = None


class StateConfig(Struct, frozen=True, kw_only=True):
    initial: str = "ACTIVE"
    block_while_reconciling: bool = True
    block_after_recorder_fault: bool = True
    # false = shadow mode: a BLOCK is recorded (action shadow_place / shadow_modify) but nothing is refused
    enforce: bool = True


_DEFAULT_IGNORED_ERRORS = (
    162, 165, 202, 300, 354, 366, 399, 404, 10147, 10148, 10149, 10167, 10197, 10349, 161,
)  # fmt: skip
_DEFAULT_IGNORED_ANOMALIES = ("identity_merged", "blocked_order_at_broker", "block_after_ack")


class BreakerConfig(Struct, frozen=True, kw_only=True):
    window_s: float = 60.0
    max_rejections: int = 5
    max_errors: int = 20
    max_anomalies: int = 10
    emergency_cancel: bool = False
    ignore_error_codes: tuple[int, ...] = _DEFAULT_IGNORED_ERRORS
    ignore_anomalies: tuple[str, ...] = _DEFAULT_IGNORED_ANOMALIES


class GovernorConfig(Struct, frozen=True, kw_only=True):
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    symbol_limits: dict[str, SymbolLimit] = field(default_factory=dict)
    allow_symbols: tuple[str, ...] = ()
    deny_symbols: tuple[str, ...] = ()
    reference_prices: dict[str, float] = field(default_factory=dict)
    multipliers: dict[str, float] = field(default_factory=dict)
    # price observations the recorder keeps from the strategy's market data: at most one per contract
    # per ``observe_interval_s``, and only when the price moved by more than ``observe_move`` (a fraction)
    observe_interval_s: float = 1.0
    observe_move: float = 0.0005
    state: StateConfig = field(default_factory=StateConfig)
    breakers: BreakerConfig = field(default_factory=BreakerConfig)

    def digest(self) -> str:
        """sha256 of the canonical encoding: names the config in replay output and session metadata."""
        return hashlib.sha256(msgspec.msgpack.encode(self)).hexdigest()


# --- validation ------------------------------------------------------------------------------------
# Spec per table: key -> (kind, nonneg). Kinds: "num" (int or float), "int", "bool", "str",
# "state", "int_list", "str_list", "symbol_list", "num_map", "symbol_limits".

_SPEC: dict[str, dict[str, str]] = {
    "limits": {
        "max_qty": "num",
        "max_notional": "num",
        "max_open_orders": "int",
        "max_orders_per_sec": "int",
        "max_orders_per_min": "int",
    },
    "symbols": {"allow": "symbol_list", "deny": "symbol_list"},
    "symbol_limits": {},  # symbol -> {max_qty, max_notional}
    "prices": {"reference": "num_map", "multipliers": "num_map", "observe_interval_s": "num", "observe_move": "num"},
    "state": {
        "initial": "state", "block_while_reconciling": "bool", "block_after_recorder_fault": "bool", "enforce": "bool",
    },
    "breakers": {
        "window_s": "num",
        "max_rejections": "int",
        "max_errors": "int",
        "max_anomalies": "int",
        "emergency_cancel": "bool",
        "ignore_error_codes": "int_list",
        "ignore_anomalies": "str_list",
    },
}


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(v), type(v).__name__
    )


# TOML integers are 64-bit signed (Python's parser accepts any size): anything outside is refused here, so
# a typo never reaches the governor or the encoder (which would overflow) as a number.
INT_MAX = 2**63 - 1
MAX_FILE_BYTES = 1_000_000  # a governor config is a few hundred bytes; refuse anything that could not be one


def _num(key: str, v: Any, *, integer: bool = False, positive: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        want = "an integer" if integer else "a number"
        raise GovernorConfigError(key, f"expected {want}, got {_type_name(v)} {v!r:.80}")
    if isinstance(v, int) and not -INT_MAX - 1 <= v <= INT_MAX:
        raise GovernorConfigError(key, f"integer out of range (TOML integers are 64-bit: at most {INT_MAX})")
    if integer and not isinstance(v, int):
        raise GovernorConfigError(key, f"expected an integer, got float {v!r}")
    if isinstance(v, float) and not math.isfinite(v):
        raise GovernorConfigError(key, f"must be a finite number, got {v!r}")
    if v < 0:
        raise GovernorConfigError(key, f"must not be negative (0 means no limit), got {v!r}")
    if positive and v == 0:
        raise GovernorConfigError(key, "must be greater than 0")
    return v


def _value(key: str, kind: str, v: Any) -> Any:
    if kind == "num":
        return float(_num(key, v))
    if kind == "int":
        return int(_num(key, v, integer=True))
    if kind == "bool":
        if not isinstance(v, bool):
            raise GovernorConfigError(key, f"expected true or false, got {_type_name(v)} {v!r}")
        return v
    if kind == "state":
        if not isinstance(v, str) or v.upper() not in TRADING_STATES:
            raise GovernorConfigError(key, f"expected one of {', '.join(TRADING_STATES)}, got {v!r}")
        return v.upper()
    if kind in ("int_list", "str_list", "symbol_list"):
        if not isinstance(v, list):
            raise GovernorConfigError(key, f"expected an array, got {_type_name(v)} {v!r}")
        out = []
        for i, item in enumerate(v):
            ik = f"{key}[{i}]"
            if kind == "int_list":
                out.append(int(_num(ik, item, integer=True)))
            else:
                if not isinstance(item, str) or not item.strip():
                    raise GovernorConfigError(ik, f"expected a non-empty string, got {_type_name(item)} {item!r}")
                out.append(item.strip().upper() if kind == "symbol_list" else item.strip())
                if kind == "symbol_list" and out[-1] in out[:-1]:
                    first = out.index(out[-1])
                    raise GovernorConfigError(
                        ik, f"duplicate of {key}[{first}] ({out[-1]}; symbols are case-insensitive): list it once"
                    )
        return tuple(out)
    if kind == "num_map":
        if not isinstance(v, dict):
            raise GovernorConfigError(key, f"expected a table of SYMBOL = number, got {_type_name(v)} {v!r}")
        return {sym: float(_num(f"{key}.{raw}", x, positive=True)) for sym, raw, x in _symbol_items(key, v)}
    raise AssertionError(kind)  # pragma: no cover


def _symbol_items(key: str, table: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """``(SYMBOL, key as written, value)`` per entry of a per-symbol table.

    Symbols are case-insensitive (IB reports them upper case): ``ES`` and ``es`` in one file would be two
    entries of which one silently wins, so a duplicate after normalisation is refused instead.
    """
    out: list[tuple[str, str, Any]] = []
    seen: dict[str, str] = {}
    for raw, value in table.items():
        sym = str(raw).strip().upper()
        if not sym:
            raise GovernorConfigError(f"{key}.{raw!r}", "empty symbol")
        if sym in seen:
            raise GovernorConfigError(
                f"{key}.{raw}",
                f"duplicate of {key}.{seen[sym]} (symbols are case-insensitive, both mean {sym}): keep one",
            )
        seen[sym] = str(raw)
        out.append((sym, str(raw), value))
    return out


def _table(key: str, v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise GovernorConfigError(key, f"expected a table, got {_type_name(v)} {v!r}")
    return v


def _check_keys(prefix: str, data: dict[str, Any], allowed: dict[str, str] | tuple[str, ...]) -> None:
    for k in data:
        if k not in allowed:
            known = ", ".join(sorted(allowed))
            raise GovernorConfigError(f"{prefix}{k}", f"unknown key (known here: {known})")


def parse_config(data: dict[str, Any] | str, source: str = "") -> GovernorConfig:
    """Validate a parsed TOML document (or its text) into a :class:`GovernorConfig`."""
    try:
        if isinstance(data, str):
            try:
                data = tomllib.loads(data)
            except tomllib.TOMLDecodeError as exc:
                raise GovernorConfigError("", f"not valid TOML: {exc}") from exc
        return _parse(data)
    except GovernorConfigError as exc:
        if source and not exc.source:
            raise GovernorConfigError(exc.key, exc.reason, source) from None
        raise


def _parse(data: dict[str, Any]) -> GovernorConfig:
    _check_keys("", data, tuple(_SPEC))
    parsed: dict[str, dict[str, Any]] = {}
    for section, spec in _SPEC.items():
        if section == "symbol_limits":
            continue
        tbl = _table(section, data.get(section, {}))
        _check_keys(f"{section}.", tbl, spec)
        parsed[section] = {k: _value(f"{section}.{k}", spec[k], v) for k, v in tbl.items()}
    symbol_limits: dict[str, SymbolLimit] = {}
    for sym, raw, tbl in _symbol_items("symbol_limits", _table("symbol_limits", data.get("symbol_limits", {}))):
        key = f"symbol_limits.{raw}"
        tbl = _table(key, tbl)
        _check_keys(f"{key}.", tbl, ("max_qty", "max_notional"))
        symbol_limits[sym] = SymbolLimit(**{k: float(_num(f"{key}.{k}", v)) for k, v in tbl.items()})
    breakers = parsed["breakers"]
    if "window_s" in breakers and breakers["window_s"] <= 0:
        raise GovernorConfigError("breakers.window_s", "must be greater than 0")
    symbols = parsed["symbols"]
    overlap = sorted(set(symbols.get("allow", ())) & set(symbols.get("deny", ())))
    if overlap:
        raise GovernorConfigError("symbols.deny", f"symbols both allowed and denied: {', '.join(overlap)}")
    prices = parsed["prices"]
    return GovernorConfig(
        limits=LimitsConfig(**parsed["limits"]),
        symbol_limits=symbol_limits,
        allow_symbols=symbols.get("allow", ()),
        deny_symbols=symbols.get("deny", ()),
        reference_prices=prices.get("reference", {}),
        multipliers=prices.get("multipliers", {}),
        **{k: prices[k] for k in ("observe_interval_s", "observe_move") if k in prices},
        state=StateConfig(**parsed["state"]),
        breakers=BreakerConfig(**breakers),
    )


def load_config(path: str | Path) -> GovernorConfig:
    """Read and validate a governor TOML file; :class:`GovernorConfigError` names the key and the reason."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():
            raise GovernorConfigError("", "not a regular file (a governor config is a TOML text file)", str(path))
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise GovernorConfigError("", f"cannot read: {exc.strerror or exc}", str(path)) from exc
    if len(raw) > MAX_FILE_BYTES:
        raise GovernorConfigError("", f"larger than {MAX_FILE_BYTES} bytes: not a governor config", str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GovernorConfigError(
            "", f"not a UTF-8 text file (byte {exc.start} is {raw[exc.start:exc.start + 1]!r}): a governor config "
            "is TOML text", str(path)
        ) from None
    if "\x00" in text:
        raise GovernorConfigError("", f"binary data (a NUL byte at offset {text.index(chr(0))}): not TOML text",
                                  str(path))
    return parse_config(text, str(path))


def default_config_text() -> str:
    """The shipped default file (package data), with its comments."""
    return resources.files("ledger.core").joinpath(DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


def default_config() -> GovernorConfig:
    """The built-in defaults (identical to the shipped ``governor_default.toml``)."""
    return GovernorConfig()


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(type(v))


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def dump_config(config: GovernorConfig) -> str:
    """The config as a complete TOML file: ``parse_config(dump_config(c)) == c`` (same digest).

    Written next to a session file as ``<name>.governor.toml`` it is the config the replayer uses for that
    session when no ``--governor`` is given."""
    lim, st, br = config.limits, config.state, config.breakers
    lines = [f"# ibledger governor config, digest {config.digest()}", "", "[limits]"]
    lines += [f"{k} = {_toml_value(getattr(lim, k))}" for k in lim.__struct_fields__]
    lines += [
        "",
        "[symbols]",
        f"allow = {_toml_value(config.allow_symbols)}",
        f"deny = {_toml_value(config.deny_symbols)}",
    ]
    lines += ["", "[prices]", f"reference = {_toml_value(config.reference_prices)}"]
    lines += [f"multipliers = {_toml_value(config.multipliers)}"]
    lines += [f"observe_interval_s = {_toml_value(config.observe_interval_s)}"]
    lines += [f"observe_move = {_toml_value(config.observe_move)}", "", "[state]"]
    lines += [f"{k} = {_toml_value(getattr(st, k))}" for k in st.__struct_fields__]
    lines += ["", "[breakers]"]
    lines += [f"{k} = {_toml_value(getattr(br, k))}" for k in br.__struct_fields__]
    for sym, sl in config.symbol_limits.items():
        lines += ["", f"[symbol_limits.{_toml_key(sym)}]"]
        lines += [f"{k} = {_toml_value(getattr(sl, k))}" for k in sl.__struct_fields__ if getattr(sl, k) is not None]
    return "\n".join(lines) + "\n"
