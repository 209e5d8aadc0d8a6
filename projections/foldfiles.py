"""The projection's fold files: the compact fold's persistent archive and its checkpoints, beside the DuckDB file.

Why files and not DuckDB tables: DuckDB reads and writes large BLOBs slowly (measured here with duckdb 2.0:
about 130 ms to read back one 16 MB value, 260 ms to fetch one 1 MB value by key out of 150), while a cold
catch-up has 100 ms in all. So the retired orders (an append-only ``log``), the archive's Bloom filter
(``bloom``) and two checkpoint slots (``ck0``, ``ck1``) live in a directory ``<duckdb file>.fold-<token>``,
and the DuckDB ``audit_fold`` row -- committed in the same transaction as the rows at its position -- names
the directory, the slot, the log length and the slot's length and CRC-32. How that is crash-safe:

* a checkpoint writes the slot the committed row does not name, and syncs it, the log and the filter
  before the DuckDB commit; a crash before the commit leaves the committed row naming the other, intact
  slot, and the log is cut back to the committed length when it is opened (what a later run appended was
  never committed); bits of such records left in the Bloom filter only cost a look-up;
* a directory named by no committed row (a crashed rebuild's, or one replaced by a newer checkpoint) is
  removed once a newer row naming another directory has been committed;
* ``rebuild`` builds a new directory (a new token) beside the live one, so replacing the DuckDB file (one
  atomic rename) switches both at once.
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

from ledger.core.fold.archive import Archive

_PREFIX = ".fold-"


class FoldFiles:
    """One directory of fold files, named after the DuckDB file it belongs to and a random token."""

    def __init__(self, base: Path, token: str) -> None:
        self.base = base
        self.token = token
        self.dir = base.with_name(f"{base.name}{_PREFIX}{token}")

    @classmethod
    def create(cls, base: Path) -> FoldFiles:
        files = cls(base, os.urandom(6).hex())  # a name, not fold input: nothing deterministic depends on it
        files.dir.mkdir()
        _sync_dir(files.dir.parent)
        return files

    def archive(self, end: int) -> Archive:
        """The persistent archive, its log cut back to ``end`` bytes (``OSError`` / ``ValueError`` if the
        directory is gone or the log is shorter)."""
        if not self.dir.is_dir():
            raise ValueError(f"fold files {self.dir.name} are missing")
        return Archive(str(self.dir), end)

    def write(self, slot: int, blob: bytes) -> int:
        """Write and sync checkpoint slot ``slot``; return the CRC-32 the committed row records."""
        path = self.dir / f"ck{slot}"
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(blob)
            done = 0
            while done < len(blob):
                done += os.write(fd, view[done:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _sync_dir(self.dir)  # the slot's directory entry, the first time it is written
        return zlib.crc32(blob)

    def read(self, slot: int, length: int, crc: int) -> bytes:
        """Checkpoint slot ``slot`` as committed (``ValueError`` if it is not: missing, short, other bytes)."""
        try:
            with open(self.dir / f"ck{slot}", "rb") as fh:
                blob = fh.read()
        except FileNotFoundError:
            raise ValueError(f"fold checkpoint {self.dir.name}/ck{slot} is missing") from None
        if len(blob) != length or zlib.crc32(blob) != crc:
            raise ValueError(f"fold checkpoint {self.dir.name}/ck{slot} is not the one committed")
        return blob

    def remove_others(self) -> None:
        """Remove every other fold directory of this DuckDB file (none of them is named by its committed row)."""
        remove_fold_files(self.base, keep=self.token)


def remove_fold_files(base: Path, keep: str | None = None) -> None:
    """Remove the fold directories of DuckDB file ``base`` but the one with token ``keep``."""
    prefix = base.name + _PREFIX
    for name in os.listdir(base.parent):
        p = base.parent / name
        if name.startswith(prefix) and name[len(prefix):] != keep and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
