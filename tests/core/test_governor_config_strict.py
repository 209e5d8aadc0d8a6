"""Governor config strictness: one `file: key: reason` error for every mistake, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ledger.core.governor_config import GovernorConfigError, load_config, parse_config


def _load_error(tmp_path: Path, data: bytes) -> GovernorConfigError:
    f = tmp_path / "gov.toml"
    f.write_bytes(data)
    with pytest.raises(GovernorConfigError) as info:
        load_config(f)
    assert str(info.value).startswith(f"{f}: ")
    return info.value


def test_symbol_limit_tables_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    err = _load_error(tmp_path, b"[symbol_limits.ES]\nmax_qty = 1\n\n[symbol_limits.es]\nmax_qty = 1000\n")
    assert err.key == "symbol_limits.es" and "duplicate of symbol_limits.ES" in err.reason


def test_symbol_keys_are_normalised() -> None:
    cfg = parse_config('[symbol_limits." es "]\nmax_qty = 3\n[prices]\nreference = { aapl = 150.0 }\n'
                       '[symbols]\nallow = ["msft"]\n')
    assert set(cfg.symbol_limits) == {"ES"} and cfg.symbol_limits["ES"].max_qty == 3
    assert cfg.reference_prices == {"AAPL": 150.0} and cfg.allow_symbols == ("MSFT",)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[prices]\nreference = { ES = 1.0, es = 2.0 }\n", "prices.reference.es"),
        ("[prices]\nmultipliers = { Es = 50.0, ES = 5.0 }\n", "prices.multipliers.ES"),
        ('[symbols]\ndeny = ["es", "ES"]\n', "symbols.deny[1]"),
    ],
)
def test_duplicates_in_other_symbol_tables(text: str, key: str) -> None:
    with pytest.raises(GovernorConfigError) as info:
        parse_config(text, "g.toml")
    assert info.value.key == key and "duplicate" in info.value.reason
    assert str(info.value).startswith(f"g.toml: {key}: ")


@pytest.mark.parametrize("value", [str(2**64 + 1), str(2**63), "-" + str(2**63 + 1), "9" * 400])
def test_out_of_range_integers(tmp_path: Path, value: str) -> None:
    err = _load_error(tmp_path, f"[limits]\nmax_open_orders = {value}\n".encode())
    assert err.key == "limits.max_open_orders" and "out of range" in err.reason


def test_out_of_range_integer_in_a_float_field(tmp_path: Path) -> None:
    err = _load_error(tmp_path, f"[symbol_limits.ES]\nmax_qty = {2**70}\n".encode())
    assert err.key == "symbol_limits.ES.max_qty" and "out of range" in err.reason


def test_non_utf8_and_binary_files(tmp_path: Path) -> None:
    err = _load_error(tmp_path, b"[limits]\nmax_qty = 1\n\xff\xfe garbage")
    assert err.key == "" and "not a UTF-8 text file" in err.reason
    err = _load_error(tmp_path, b"\x00\x01\x02binary\x00")
    assert "NUL byte" in err.reason
    err = _load_error(tmp_path, b"x" * 1_000_001)
    assert "larger than 1000000 bytes" in err.reason


def test_non_regular_file_is_refused() -> None:
    with pytest.raises(GovernorConfigError, match="/dev/zero: not a regular file"):
        load_config("/dev/zero")


@pytest.mark.parametrize("data", [b"\xff\xfe\x00binary", f"[limits]\nmax_open_orders = {2**65}\n".encode(),
                                  b"[symbol_limits.ES]\nmax_qty=1\n[symbol_limits.es]\nmax_qty=2\n"])
def test_cli_prints_one_error_line_and_no_traceback(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "gov.toml"
    f.write_bytes(data)
    r = subprocess.run([sys.executable, "-m", "ledger.cli", "replay", "synthetic:1:5", "--governor", str(f)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and str(f) in " ".join(r.stderr.split())
