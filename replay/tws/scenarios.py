"""Deterministic broker-behaviour scenarios, loaded from TOML data files.

The format is documented in ``replay/tws/scenarios/README.md``. A scenario is chosen for each new order
by its ``orderRef`` (exact match on the scenario's name or ``match.order_ref``), otherwise by the
first scenario whose ``match`` keys (symbol, action, quantity, tif, order_type) all equal the order's,
otherwise the ``default`` scenario (accept → Submitted, stays working).

Validation is strict and every problem names the file, the scenario, the step and what is wrong.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUILTIN_DIR = Path(__file__).with_name("scenarios")

STEP_TYPES = ("status", "exec", "commission", "error", "open_order", "drop", "manual_order", "wait")
STEP_LISTS = ("steps", "on_cancel", "on_modify")
MATCH_KEYS = ("order_ref", "symbol", "action", "quantity", "tif", "order_type")


class ScenarioError(ValueError):
    """A scenario file is wrong; the message says where and what."""


@dataclass(frozen=True)
class Step:
    type: str
    after_ms: int = 0
    # status
    status: str = ""
    filled: float | None = None
    remaining: float | None = None
    avg_fill_price: float | None = None
    last_fill_price: float | None = None
    why_held: str | None = None
    mkt_cap_price: float = 0.0
    # exec / commission: a local name tying an execution to its commission and corrections
    exec: str = ""
    suffix: str = "01"
    qty: float | str | None = None  # a number or "remaining"
    price: float | None = None
    # commission
    commission: float = 1.0
    currency: str = "USD"
    realized_pnl: float | None = None
    unknown: bool = False
    # error
    code: int = 0
    msg: str = ""
    advanced: str = ""
    req_id: int | None = None
    # manual_order
    symbol: str = ""
    action: str = "BUY"
    quantity: float = 0.0
    fill: bool = True

    @property
    def delay(self) -> float:
        return self.after_ms / 1000.0


@dataclass(frozen=True)
class Match:
    order_ref: str = ""
    symbol: str = ""
    action: str = ""
    quantity: float | None = None
    tif: str = ""
    order_type: str = ""

    def has_criteria(self) -> bool:
        return bool(self.symbol or self.action or self.quantity is not None or self.tif or self.order_type)

    def matches(self, symbol: str, action: str, quantity: float, tif: str, order_type: str) -> bool:
        if not self.has_criteria():
            return False
        return (
            (not self.symbol or self.symbol == symbol)
            and (not self.action or self.action.upper() == action.upper())
            and (self.quantity is None or float(self.quantity) == float(quantity))
            and (not self.tif or self.tif.upper() == tif.upper())
            and (not self.order_type or self.order_type.upper() == order_type.upper())
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    match: Match = field(default_factory=Match)
    price: float | None = None
    steps: tuple[Step, ...] = ()
    on_cancel: tuple[Step, ...] | None = None  # None: the default cancel reaction
    on_modify: tuple[Step, ...] | None = None  # None: openOrder + current status
    cancel_stops_steps: bool = True
    source: str = ""
    #: exec name -> execId prefix to use verbatim (wire replay keeps the recorded execIds)
    exec_bases: Mapping[str, str] = field(default_factory=dict)


DEFAULT_SCENARIO = Scenario(
    name="default",
    description="accept: openOrder + Submitted, then stay working",
    steps=(Step("open_order", status="Submitted"), Step("status", status="Submitted")),
)

DEFAULT_ON_CANCEL: tuple[Step, ...] = (
    Step("status", status="PendingCancel"),
    Step("status", status="Cancelled"),
    Step("error", code=202, msg="Order Canceled - reason:"),
)


def default_on_modify() -> tuple[Step, ...]:
    return (Step("open_order"), Step("status"))


_STEP_FIELDS: dict[str, tuple[str, ...]] = {
    "status": (
        "status",
        "filled",
        "remaining",
        "avg_fill_price",
        "last_fill_price",
        "why_held",
        "mkt_cap_price",
    ),
    "exec": ("exec", "suffix", "qty", "price"),
    "commission": ("exec", "suffix", "commission", "currency", "realized_pnl", "unknown"),
    "error": ("code", "msg", "advanced", "req_id"),
    "open_order": ("status",),
    "drop": (),
    "manual_order": ("symbol", "action", "quantity", "price", "fill", "commission", "exec"),
    "wait": (),
}

_NUMBER = (int, float)


def _parse_step(raw: Any, where: str) -> Step:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a step must be a table, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind not in STEP_TYPES:
        raise ScenarioError(f"{where}: 'type' must be one of {', '.join(STEP_TYPES)}; got {kind!r}")
    allowed = {"type", "after_ms", *_STEP_FIELDS[kind]}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ScenarioError(
            f"{where} ({kind}): unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}"
        )
    after = raw.get("after_ms", 0)
    if not isinstance(after, _NUMBER) or isinstance(after, bool) or after < 0:
        raise ScenarioError(f"{where} ({kind}): 'after_ms' must be a number >= 0, got {after!r}")
    kw: dict[str, Any] = {"type": kind, "after_ms": int(after)}
    for key in _STEP_FIELDS[kind]:
        if key in raw:
            kw[key] = raw[key]

    def need(key: str, typ: type | tuple[type, ...], what: str) -> None:
        if key not in raw:
            raise ScenarioError(f"{where} ({kind}): missing '{key}' ({what})")
        check(key, typ, what)

    def check(key: str, typ: type | tuple[type, ...], what: str) -> None:
        if key in raw and (not isinstance(raw[key], typ) or (typ is not bool and isinstance(raw[key], bool))):
            raise ScenarioError(f"{where} ({kind}): '{key}' must be {what}, got {raw[key]!r}")

    if kind == "status":
        need("status", str, "an IB status string such as 'Submitted'")
        for key in ("filled", "remaining", "avg_fill_price", "last_fill_price", "mkt_cap_price"):
            check(key, _NUMBER, "a number")
        check("why_held", str, "a string")
    elif kind == "exec":
        qty = raw.get("qty")
        if not (qty == "remaining" or (isinstance(qty, _NUMBER) and not isinstance(qty, bool) and qty > 0)):
            raise ScenarioError(f"{where} (exec): 'qty' must be a number > 0 or \"remaining\", got {qty!r}")
        check("price", _NUMBER, "a number")
        check("exec", str, "a name for this execution")
        check("suffix", str, "a string such as '01' or '02'")
    elif kind == "commission":
        check("commission", _NUMBER, "a number")
        check("realized_pnl", _NUMBER, "a number")
        check("currency", str, "a currency code")
        check("exec", str, "the name of an exec step")
        check("suffix", str, "a string such as '01'")
        check("unknown", bool, "true or false")
    elif kind == "error":
        need("code", int, "an IB error code")
        check("msg", str, "a string")
        check("advanced", str, "a JSON string")
        check("req_id", int, "an integer (default: the order's id)")
    elif kind == "open_order":
        check("status", str, "an IB status string")
    elif kind == "manual_order":
        need("symbol", str, "a ticker")
        need("quantity", _NUMBER, "a number > 0")
        check("action", str, "BUY or SELL")
        check("price", _NUMBER, "a number")
        check("fill", bool, "true or false")
        check("commission", _NUMBER, "a number")
        check("exec", str, "a name for the execution")
    if "qty" in kw and kw["qty"] != "remaining":
        kw["qty"] = float(kw["qty"])
    for key in ("filled", "remaining", "avg_fill_price", "last_fill_price", "price", "realized_pnl"):
        if kw.get(key) is not None:
            kw[key] = float(kw[key])
    if "quantity" in kw:
        kw["quantity"] = float(kw["quantity"])
    if "commission" in kw:
        kw["commission"] = float(kw["commission"])
    return Step(**kw)


def _parse_steps(raw: Any, where: str) -> tuple[Step, ...]:
    if not isinstance(raw, list):
        raise ScenarioError(f"{where}: must be an array of tables ([[scenario.{where.rsplit('.', 1)[-1]}]])")
    return tuple(_parse_step(step, f"{where}[{i}]") for i, step in enumerate(raw))


def parse_scenario(raw: Any, where: str) -> Scenario:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: a scenario must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError(f"{where}: missing 'name' (a non-empty string)")
    where = f"{where} '{name}'"
    allowed = {"name", "description", "match", "price", "cancel_stops_steps", *STEP_LISTS}
    extra = sorted(set(raw) - allowed)
    if extra:
        raise ScenarioError(f"{where}: unknown key(s) {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")
    match_raw = raw.get("match", {})
    if not isinstance(match_raw, Mapping):
        raise ScenarioError(f"{where}: 'match' must be a table")
    bad = sorted(set(match_raw) - set(MATCH_KEYS))
    if bad:
        raise ScenarioError(f"{where}: unknown match key(s) {', '.join(bad)}; allowed: {', '.join(MATCH_KEYS)}")
    quantity = match_raw.get("quantity")
    if quantity is not None and (not isinstance(quantity, _NUMBER) or isinstance(quantity, bool)):
        raise ScenarioError(f"{where}: match.quantity must be a number, got {quantity!r}")
    for key in ("order_ref", "symbol", "action", "tif", "order_type"):
        if key in match_raw and not isinstance(match_raw[key], str):
            raise ScenarioError(f"{where}: match.{key} must be a string, got {match_raw[key]!r}")
    match = Match(
        order_ref=match_raw.get("order_ref", ""),
        symbol=match_raw.get("symbol", ""),
        action=match_raw.get("action", ""),
        quantity=float(quantity) if quantity is not None else None,
        tif=match_raw.get("tif", ""),
        order_type=match_raw.get("order_type", ""),
    )
    price = raw.get("price")
    if price is not None and (not isinstance(price, _NUMBER) or isinstance(price, bool)):
        raise ScenarioError(f"{where}: 'price' must be a number, got {price!r}")
    stops = raw.get("cancel_stops_steps", True)
    if not isinstance(stops, bool):
        raise ScenarioError(f"{where}: 'cancel_stops_steps' must be true or false")
    return Scenario(
        name=name,
        description=str(raw.get("description", "")),
        match=match,
        price=float(price) if price is not None else None,
        steps=_parse_steps(raw.get("steps", []), f"{where}.steps"),
        on_cancel=_parse_steps(raw["on_cancel"], f"{where}.on_cancel") if "on_cancel" in raw else None,
        on_modify=_parse_steps(raw["on_modify"], f"{where}.on_modify") if "on_modify" in raw else None,
        cancel_stops_steps=stops,
        source=where.split(":", 1)[0],
    )


def parse_document(doc: Mapping[str, Any], source: str) -> list[Scenario]:
    extra = sorted(set(doc) - {"scenario"})
    if extra:
        raise ScenarioError(f"{source}: unknown top-level key(s) {', '.join(extra)}; use [[scenario]] tables")
    items = doc.get("scenario", [])
    if not isinstance(items, list):
        raise ScenarioError(f"{source}: 'scenario' must be an array of tables ([[scenario]])")
    return [parse_scenario(item, f"{source}: scenario[{i}]") for i, item in enumerate(items)]


def load_file(path: str | Path) -> list[Scenario]:
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from exc
    return parse_document(doc, str(path))


def load_dir(directory: str | Path) -> list[Scenario]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(f"{directory}: not a directory of scenario files")
    out: list[Scenario] = []
    for path in sorted(directory.glob("*.toml")):
        out.extend(load_file(path))
    return out


class ScenarioBook:
    """The scenarios a simulator chooses from."""

    def __init__(self, scenarios: Iterable[Scenario] = ()) -> None:
        self._by_name: dict[str, Scenario] = {}
        self._ordered: list[Scenario] = []
        for s in scenarios:
            self.add(s)

    @classmethod
    def from_dirs(cls, dirs: Sequence[str | Path]) -> ScenarioBook:
        book = cls()
        for d in dirs:
            for s in load_dir(d):
                book.add(s, replace_existing=True)
        return book

    def add(self, scenario: Scenario, *, replace_existing: bool = False) -> None:
        if scenario.name in self._by_name:
            if not replace_existing:
                old = self._by_name[scenario.name]
                raise ScenarioError(f"{scenario.source}: scenario '{scenario.name}' is already defined in {old.source}")
            self._ordered = [s for s in self._ordered if s.name != scenario.name]
        self._by_name[scenario.name] = scenario
        self._ordered.append(scenario)

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> Scenario:
        return self._by_name[name]

    def names(self) -> list[str]:
        return [s.name for s in self._ordered]

    @property
    def default(self) -> Scenario:
        return self._by_name.get("default", DEFAULT_SCENARIO)

    def choose(self, order_ref: str, symbol: str, action: str, quantity: float, tif: str, order_type: str) -> Scenario:
        if order_ref:
            for s in self._ordered:
                if order_ref == (s.match.order_ref or s.name) or order_ref == s.name:
                    return s
        for s in self._ordered:
            if s.match.matches(symbol, action, quantity, tif, order_type):
                return s
        return self.default
