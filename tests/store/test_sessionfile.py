"""Session files: atomic write, streaming validated read, precise errors."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from ledger.core import events as ev
from ledger.core.codec import to_json
from ledger.store.sessionfile import SessionFileError, iter_session, read_header, validate, write_session
from tests.support.samples import sample_payloads


def _envs(sid: str = "sess-a") -> list[ev.Envelope]:
    return [ev.envelope(sid, i, p, recv_ns=1000 + i) for i, p in enumerate(sample_payloads(), start=1)]


def _write(tmp_path: Path, lines: list[bytes]) -> Path:
    p = tmp_path / "s.jsonl"
    p.write_bytes(b"\n".join(lines) + b"\n")
    return p


def _good_lines(n: int | None = None) -> list[bytes]:
    envs = _envs()
    header = {"format": "ibledger-session", "version": 1, "session_id": "sess-a", "events": n or len(envs)}
    return [msgspec.json.encode(header)] + [to_json(e) for e in envs]


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    envs = _envs()
    out = tmp_path / "x.jsonl"
    assert write_session(out, iter(envs), "sess-a", len(envs)) == len(envs)
    assert read_header(out).events == len(envs)
    assert list(iter_session(out)) == envs
    assert not (tmp_path / "x.jsonl.tmp").exists()


@pytest.mark.parametrize("sid", ["sess-a", "ü" * 200])
def test_a_stream_of_unknown_length_gets_its_count_at_the_end(tmp_path: Path, sid: str) -> None:
    envs = [ev.envelope(sid, e.seq, e.payload, recv_ns=e.recv_ns) for e in _envs()]
    out = tmp_path / "x.jsonl"
    assert write_session(out, (e for e in envs), sid, None) == len(envs)
    assert read_header(out).events == len(envs) and validate(out).events == len(envs)
    assert list(iter_session(out)) == envs


def test_a_failing_stream_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"

    def broken():
        yield from _envs()[:3]
        raise OSError("store went away")

    for count in (None, 10):
        with pytest.raises(OSError, match="store went away"):
            write_session(out, broken(), "sess-a", count)
        assert list(tmp_path.iterdir()) == []


def test_write_is_atomic_on_a_count_mismatch(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    with pytest.raises(ValueError):
        write_session(out, iter(_envs()[:3]), "sess-a", 5)
    assert not out.exists() and not (tmp_path / "x.jsonl.tmp").exists()


@pytest.mark.parametrize(
    ("mutate", "line", "problem"),
    [
        (lambda ls: ls.__setitem__(0, b'{"format": "csv"}'), 1, "bad header"),
        (lambda ls: ls.__setitem__(0, ls[0].replace(b'"version":1', b'"version":9')), 1, "newer"),
        (lambda ls: ls.__setitem__(3, b"{not json"), 4, "not valid JSON"),
        (lambda ls: ls.__setitem__(3, ls[3].replace(b'"seq":3', b'"seq":4')), 4, "seq 4, expected 3"),
        (lambda ls: ls.__setitem__(2, ls[2].replace(b'"sess-a"', b'"sess-b"')), 3, "belongs to session"),
        (lambda ls: ls.__setitem__(5, ls[5].replace(b'"kind":"', b'"kind":"x')), 6, "schema"),
        (lambda ls: ls.pop(), None, "header promises"),
        (lambda ls: ls.insert(2, b""), 3, "blank line"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, mutate, line, problem) -> None:
    lines = _good_lines()
    mutate(lines)
    p = _write(tmp_path, lines)
    with pytest.raises(SessionFileError, match=problem) as info:
        validate(p)
    if line is not None:
        assert info.value.line == line
        assert str(info.value).startswith(f"{p}:{line}:")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SessionFileError, match="cannot open"):
        validate(tmp_path / "nope.jsonl")


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"")
    with pytest.raises(SessionFileError, match="empty file"):
        validate(p)
