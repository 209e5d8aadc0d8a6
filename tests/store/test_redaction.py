"""Passwords never reach a message: one redaction function, one test per URL form."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ledger.cli.common import redact
from ledger.store import StoreError, open_store, parse_url, redact_url

SECRET = "s3cr3t-Pw"

FORMS = {
    "userinfo": f"postgresql://alice:{SECRET}@127.0.0.1:5432/ledger",
    "raw_at_in_password": f"postgresql://alice:{SECRET}@x@127.0.0.1:5432/ledger",
    "slash_in_password": f"postgresql://alice:{SECRET}/x@127.0.0.1:5432/ledger",
    "query_parameter": f"postgresql://alice@127.0.0.1:5432/ledger?password={SECRET}",
    "query_parameter_second": f"postgresql://alice@127.0.0.1/ledger?sslmode=disable&PASSWORD={SECRET}",
    "no_double_slash": f"postgresql:alice:{SECRET}@127.0.0.1:5432/ledger",
    "libpq_keywords": f"host=127.0.0.1 user=alice password={SECRET} dbname=ledger",
    "libpq_quoted": f"host=127.0.0.1 password='{SECRET} x' dbname=ledger",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_redact_hides_the_password(form: str) -> None:
    out = redact_url(FORMS[form])
    assert SECRET not in out
    assert "***" in out
    assert redact(FORMS[form]) == out  # the CLI uses the same function


def test_redact_keeps_what_is_not_a_password() -> None:
    assert redact_url("postgresql://alice@h:5432/db") == "postgresql://alice@h:5432/db"
    assert redact_url("sqlite:////tmp/a:b@c.db") == "sqlite:////tmp/a:b@c.db"
    assert redact_url("postgresql://alice:pw@h/db") == "postgresql://alice:***@h/db"


@pytest.mark.parametrize("form", sorted(FORMS))
def test_parse_and_open_errors_never_carry_the_password(form: str) -> None:
    try:
        parsed = parse_url(FORMS[form])
    except StoreError as exc:
        assert SECRET not in str(exc)
        return
    assert SECRET not in parsed.redacted
    with pytest.raises(StoreError) as info:  # nothing listens on port 1
        open_store(FORMS[form].replace("5432", "1").replace("127.0.0.1/", "127.0.0.1:1/")
                   + ("&" if "?" in FORMS[form] else "?") + "connect_timeout=1")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("form", ["userinfo", "raw_at_in_password", "query_parameter", "no_double_slash"])
def test_cli_error_never_prints_the_password(form: str) -> None:
    url = FORMS[form].replace("5432", "1")
    r = subprocess.run([sys.executable, "-m", "ledger.cli", "sessions", "--store", url],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert SECRET not in r.stdout + r.stderr
    assert "Traceback" not in r.stderr
