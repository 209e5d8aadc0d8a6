"""``ibledger order`` refuses bad arguments before it connects: a clear message, exit 2, no traceback."""

from __future__ import annotations

import pytest

from tests.cli.test_cli_live import invoke


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["BUY", "AAPL", "10", "--limit", "0"], "--limit must be a finite price > 0"),
        (["BUY", "AAPL", "10", "--limit", "-5"], "--limit must be a finite price > 0"),
        (["BUY", "AAPL", "10", "--limit", "nan"], "--limit must be a finite price > 0"),
        (["BUY", "AAPL", "10", "--limit", "inf"], "--limit must be a finite price > 0"),
        (["BUY", "", "10"], "symbol is empty"),
        (["BUY", "   ", "10"], "symbol is empty"),
        (["BUY", "A" * 200, "10"], "is not a ticker"),
        (["BUY", "AAPL", "10", "--tif", "FOREVER"], "not a time in force"),
        (["BUY", "AAPL", "nan"], "quantity must be a finite number > 0"),
    ],
)
def test_order_refuses_bad_arguments(args: list[str], words: str) -> None:
    r = invoke("order", *args, "--simulate", "--port", "1")
    assert r.exit_code == 2, r.output
    assert words in " ".join(r.output.split()) and "Traceback" not in r.output
