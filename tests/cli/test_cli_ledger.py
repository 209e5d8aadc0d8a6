"""The store-level CLI as a user runs it: a real subprocess, real SQLite file and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.core.fold import fold
from ledger.store import open_store
from ledger.store.sessionfile import iter_session, write_session
from tests.support.samples import sample_payloads

IBLEDGER = [sys.executable, "-m", "ledger.cli"]


def run(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IBLEDGER, *args, "--store", store], capture_output=True, text=True, timeout=60)


def _session_file(tmp_path: Path, sid: str = "cli-sess") -> tuple[Path, list[ev.Envelope]]:
    envs = [ev.envelope(sid, i, p, recv_ns=1_000 + i) for i, p in enumerate(sample_payloads(), start=1)]
    path = tmp_path / f"{sid}.jsonl"
    write_session(path, envs, sid, len(envs))
    return path, envs


def test_import_export_round_trip_is_byte_identical(tmp_path: Path, store_url: str) -> None:
    path, envs = _session_file(tmp_path)
    r = run("import", str(path), store=store_url)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "back.jsonl"
    r = run("export", "cli-", "--out", str(out), store=store_url)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == path.read_bytes()
    assert list(iter_session(out)) == envs


def test_bad_file_imports_nothing(tmp_path: Path, store_url: str) -> None:
    path, _ = _session_file(tmp_path)
    lines = path.read_bytes().splitlines()
    lines[10] = lines[10].replace(b'"seq":10', b'"seq":12')
    path.write_bytes(b"\n".join(lines) + b"\n")
    r = run("import", str(path), store=store_url)
    assert r.returncode != 0
    assert f"{path}:11:" in r.stderr and "Nothing was imported" in r.stderr
    with open_store(store_url) as st:
        assert st.max_position() == 0


def test_second_import_of_a_session_is_refused(tmp_path: Path, store_url: str) -> None:
    path, envs = _session_file(tmp_path)
    assert run("import", str(path), store=store_url).returncode == 0
    r = run("import", str(path), store=store_url)
    assert r.returncode != 0 and "already in" in r.stderr
    with open_store(store_url) as st:
        assert st.last_seq("cli-sess") == len(envs)


def test_orders_json_equals_the_fold(tmp_path: Path, sqlite_url: str) -> None:
    path, envs = _session_file(tmp_path)
    assert run("import", str(path), store=sqlite_url).returncode == 0
    r = run("orders", "--json", store=sqlite_url)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    expected = fold(envs)
    assert [o["key"] for o in doc["orders"]] == list(expected.orders)
    o = doc["orders"][0]
    view = next(iter(expected.orders.values()))
    assert (o["filled"], o["commission"], o["state"]) == (view.filled, view.commission, view.state)
    assert len(doc["anomalies"]) == len(expected.anomalies)


def test_verify_flags_a_crashed_session(tmp_path: Path, sqlite_url: str) -> None:
    path, envs = _session_file(tmp_path)
    assert run("import", str(path), store=sqlite_url).returncode == 0
    crashed = [ev.envelope("crashed-sess", 1, sample_payloads()[0], recv_ns=5)]
    with open_store(sqlite_url) as st:
        st.append(crashed)
    r = run("verify", "--json", store=sqlite_url)
    assert r.returncode == 0, r.stderr  # a crashed session is a fact, not store damage
    report = json.loads(r.stdout)
    assert report["crashed"] == ["crashed-sess"]
    assert report["events"] == len(envs) + 1


def test_bad_store_url_is_a_clear_error(tmp_path: Path) -> None:
    r = run("orders", store="mysql://x")
    assert r.returncode != 0
    assert "mysql" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("cmd", [["export", "nosuch", "--out", "x.jsonl"], ["orders", "--session", "nosuch"]])
def test_unknown_session_is_a_clear_error(sqlite_url: str, cmd: list[str]) -> None:
    open_store(sqlite_url).close()  # an existing, empty store
    r = run(*cmd, store=sqlite_url)
    assert r.returncode != 0 and "nosuch" in r.stderr and "Traceback" not in r.stderr
