"""No tracebacks: every bad input or fault a user can meet is one `error: ...` line and a non-zero exit.

Each case checks the exit code, the message, that no traceback is printed, and what the store holds
before and after (nothing half-written).
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.core.session import MAX_SESSION_ID
from ledger.store import open_store
from ledger.store.sessionfile import write_session
from replay.synthetic import synthetic_session
from tests.support.disk import small_tmpfs
from tests.support.samples import sample_payloads

IBLEDGER = [sys.executable, "-m", "ledger.cli"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([*IBLEDGER, *args], capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.returncode != 0 or "error:" not in r.stderr
    return subprocess.CompletedProcess(r.args, r.returncode, " ".join(r.stdout.split()), " ".join(r.stderr.split()))


def _events(sid: str = "s1") -> list[ev.Envelope]:
    return [ev.envelope(sid, i, p, recv_ns=1_000 + i) for i, p in enumerate(sample_payloads(), start=1)]


def _count(url: str) -> int:
    with open_store(url, create=False) as st:
        return st.max_position()


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with open_store(url) as st:
        st.append(_events("existing"))
    return url


def test_disk_full_during_import_imports_nothing(tmp_path: Path) -> None:
    envs = list(synthetic_session(4, 400))
    f = tmp_path / "big.jsonl"
    write_session(f, envs, envs[0].session_id, len(envs))
    with small_tmpfs(tmp_path / "full", "400k") as mnt:
        url = f"sqlite:///{mnt / 'ledger.db'}"
        with open_store(url) as st:
            st.append(_events("before"))
        before = _count(url)
        r = run("import", str(f), "--store", url)
        assert r.returncode == 1
        assert "full" in r.stderr and "Nothing was imported" in r.stderr and envs[0].session_id in r.stderr
        assert _count(url) == before
        with open_store(url, create=False) as st:
            assert st.last_seq(envs[0].session_id) == 0


def test_export_to_a_missing_directory(store: str, tmp_path: Path) -> None:
    out = tmp_path / "no" / "such" / "dir" / "x.jsonl"
    r = run("export", "existing", "--out", str(out), "--store", store)
    assert r.returncode == 2 and "does not exist" in r.stderr and str(out.parent) in r.stderr
    assert not (tmp_path / "no").exists()


def test_record_session_id_reuse_and_empty_session_id(store: str) -> None:
    before = _count(store)
    r = run("record", "--simulate", "--session-id", "existing", "--store", store)
    assert r.returncode == 2 and "session existing already has events" in r.stderr
    r = run("record", "--simulate", "--session-id", "", "--store", store)
    assert r.returncode == 2 and "session id is empty" in r.stderr
    assert _count(store) == before


@pytest.mark.parametrize("oid", [None, "not-a-uuid"])
def test_verify_on_a_null_or_non_uuid_row(store: str, tmp_path: Path, oid: str | None) -> None:
    with sqlite3.connect(tmp_path / "ledger.db") as c:
        c.execute("INSERT INTO ibledger_events VALUES (?, 99, 'x', NULL)", (oid,))
    r = run("verify", "--store", store)
    assert r.returncode == 1 and "TAMPERED" in r.stdout and "not a UUID" in r.stdout


def _write_lines(path: Path, header: str, lines: list[bytes]) -> None:
    path.write_bytes(header.encode() + b"\n" + b"".join(x + b"\n" for x in lines))


def test_empty_session_id_in_a_session_file(store: str, tmp_path: Path) -> None:
    f = tmp_path / "s.jsonl"
    _write_lines(f, '{"format": "ibledger-session", "version": 1, "session_id": "", "events": 0}', [])
    r = run("import", str(f), "--store", store)
    assert r.returncode == 2 and f"{f}:1: header: session id is empty" in r.stderr
    assert _count(store) == len(_events())


def test_recv_ns_beyond_64_bits(store: str, tmp_path: Path) -> None:
    envs = _events("big-ns")
    f = tmp_path / "s.jsonl"
    write_session(f, envs, "big-ns", len(envs))
    lines = f.read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"recv_ns":1003', f'"recv_ns":{2**63}'.encode())
    f.write_bytes(b"\n".join(lines) + b"\n")
    r = run("import", str(f), "--store", store)
    assert r.returncode == 2 and f"{f}:4: recv_ns / mono_ns out of range" in r.stderr
    assert _count(store) == len(_events())
    with open_store(store) as st, pytest.raises(Exception, match="signed 64-bit"):
        st.append([ev.envelope("big-ns", 1, sample_payloads()[0], recv_ns=2**63)])


def test_huge_session_id_is_refused_quickly(store: str, tmp_path: Path) -> None:
    sid = "x" * 100_000
    f = tmp_path / "s.jsonl"
    _write_lines(f, f'{{"format": "ibledger-session", "version": 1, "session_id": "{sid}", "events": 0}}', [])
    r = run("import", str(f), "--store", store, timeout=30)  # longer than a header line may be
    assert r.returncode == 2 and "line longer than 65536 bytes" in r.stderr and len(r.stderr) < 2000
    _write_lines(f, f'{{"format": "ibledger-session", "version": 1, "session_id": "{sid[:10_000]}", "events": 0}}',
                 [])
    r = run("import", str(f), "--store", store, timeout=30)
    assert r.returncode == 2 and f"10000 characters long; the limit is {MAX_SESSION_ID}" in r.stderr
    assert len(r.stderr) < 2000
    r = run("orders", "--session", sid, "--store", store, timeout=30)
    assert r.returncode == 2 and "100000 characters" in r.stderr and len(r.stderr) < 2000
    assert _count(store) == len(_events())


@pytest.mark.parametrize("cmd", ["import", "replay"])
def test_dev_zero_as_a_session_file(store: str, cmd: str) -> None:
    r = run(cmd, "/dev/zero", "--store", store, timeout=30)
    assert r.returncode == 2 and "not a regular file" in r.stderr
    assert _count(store) == len(_events())


def test_a_line_longer_than_the_limit(store: str, tmp_path: Path) -> None:
    f = tmp_path / "long.jsonl"
    f.write_bytes(b"x" * (70 * 1024) + b"\n")
    r = run("import", str(f), "--store", store)
    assert r.returncode == 2 and "line longer than 65536 bytes" in r.stderr


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung server / black-holed route)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


def test_postgres_connection_errors_name_the_cause(pg_database_url: str, silent_port: int) -> None:
    base = pg_database_url.rsplit("/", 1)[0]  # postgresql://user@host:port
    host = base.split("@", 1)[1]
    cases = {
        "postgresql://postgres@127.0.0.1:1/x?connect_timeout=1": "connection refused by 127.0.0.1:1",
        f"{base}/no_such_db_zz?connect_timeout=2": "unknown database 'no_such_db_zz'",
        f"postgresql://no_such_role_zz@{host}/postgres?connect_timeout=2": "unknown role 'no_such_role_zz'",
        f"postgresql://postgres@127.0.0.1:{silent_port}/x?connect_timeout=1": "timeout: 127.0.0.1",
    }
    for url, cause in cases.items():
        r = run("sessions", "--store", url, timeout=90)
        assert r.returncode == 2, url
        assert cause in r.stderr, (url, r.stderr)
        assert "pool initialization incomplete" not in r.stderr


def test_an_unexpected_error_is_one_line_not_a_traceback(tmp_path: Path, capsys) -> None:
    """The backstop under every command: what escaped a command still gives `error:` and an exit code."""
    from ledger.cli.common import run_guarded

    def reads_a_missing_file() -> None:
        (tmp_path / "missing" / "f").read_text()

    def divides() -> None:
        print(1 / len([]))

    with pytest.raises(SystemExit) as info:
        run_guarded(reads_a_missing_file)
    assert info.value.code == 1
    assert "No such file or directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run_guarded(divides)
    err = " ".join(capsys.readouterr().err.split())
    assert info.value.code == 70 and "internal error (ZeroDivisionError" in err and "Traceback" not in err


@pytest.mark.parametrize(("args", "msg"), [
    (["1e400", "--limit", "1"], "quantity must be a finite number > 0, got inf"),
    (["nan", "--limit", "1"], "quantity must be a finite number > 0, got nan"),
    (["1", "--limit", "nan"], "--limit must be a finite price > 0, got nan"),
    (["1", "--limit", "-2"], "--limit must be a finite price > 0, got -2"),
    (["1", "--limit", "1", "--timeout", "inf"], "--timeout must be a finite number of seconds"),
])
def test_order_refuses_non_finite_numbers_before_anything(store: str, args: list[str], msg: str) -> None:
    before = _count(store)
    r = run("order", "BUY", "AAPL", *args, "--simulate", "--store", store)
    assert r.returncode == 2 and msg in r.stderr
    assert _count(store) == before  # nothing recorded, nothing sent
