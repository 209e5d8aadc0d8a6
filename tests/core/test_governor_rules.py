"""The governor's rule table mirrors the README's "Rules" table, and the first refusing rule decides."""

from __future__ import annotations

import re
from pathlib import Path

from ledger.core.governor import BLOCK_REASONS
from ledger.core.governor.rules import RULES
from tests.support.governor import Session, blocked

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_rows() -> list[tuple[str, ...]]:
    """The reason codes of each row of the README's rules table, in order."""
    text = README.read_text(encoding="utf-8")
    after = text.split("### Rules, in the order they are checked", 1)[1].splitlines()
    start = next(i for i, line in enumerate(after) if line.startswith("|"))
    rows = []
    for line in after[start:]:
        if not line.startswith("|"):
            break  # the end of the table
        codes = tuple(re.findall(r"`([A-Z_]+)`", line.split("|")[1]))
        if codes:
            rows.append(codes)
    return rows


def test_rule_table_is_the_readme_table_row_by_row() -> None:
    assert [codes for codes, _ in RULES] == _readme_rows()


def test_rule_table_covers_every_block_reason_in_order() -> None:
    assert tuple(code for codes, _ in RULES for code in codes) == BLOCK_REASONS


def test_each_rule_has_a_docstring_saying_when_it_refuses() -> None:
    assert all((rule.__doc__ or "").strip() for _, rule in RULES)


def test_the_first_refusing_rule_decides() -> None:
    s = Session("[limits]\nmax_qty = 5\nmax_notional = 100\n[symbols]\ndeny = ['GME']\n")
    blocked(s.place(1, qty=10, price=100.0), "MAX_QTY")  # also over max_notional: the earlier row wins
    blocked(s.place(2, qty=10, price=100.0, symbol="GME"), "SYMBOL_DENIED")  # also over both limits
    blocked(s.place(3, qty=-1, price=100.0, symbol="GME"), "SYMBOL_DENIED")  # also an invalid quantity
    blocked(s.place(4, qty=-1, price=100.0), "INVALID_ORDER")
    for d in s.engine.halt("test", s.ns):
        s.event(d)
    blocked(s.place(5, qty=10, price=100.0, symbol="GME"), "HALTED")  # halt comes before the symbol lists


def test_a_refusal_carries_only_the_numbers_of_the_rules_that_ran() -> None:
    s = Session("[limits]\nmax_qty = 5\nmax_notional = 100\n")
    d = s.place(1, qty=10, price=100.0)
    blocked(d, "MAX_QTY")
    assert "notional" not in d.details and "price" not in d.details  # the notional rule never ran
    d = s.place(2, qty=2, price=100.0)
    blocked(d, "MAX_NOTIONAL")
    assert list(d.details) == [
        "at_ns", "qty", "side", "order_type", "price", "price_source", "multiplier", "notional", "limit", "value",
    ]  # fmt: skip
