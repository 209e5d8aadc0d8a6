"""Finished orders out of memory: a compact fold keeps only open and recently finished orders resident.

Why: a replay or projection of millions of events would otherwise hold every order it ever saw (about 3 KB
each) to the end. In a compact fold (``LedgerFold(compact=True)``) an order that has been done for a while
is *retired*: its whole state is encoded once (msgspec) into an anonymous temporary file, and the index
entries that point to it (its permId, its (session, client, order) bindings, its execIds, its key) move
from the in-memory dicts to a small on-disk-backed index here. A later event about it (a late commission,
a correction, a re-delivered execution, a reused orderId) finds it again through that index and the order
is re-inflated, exactly as it was, before the event is applied -- so the fold's output does not change.

What stays in memory per retired order: 8 bytes of file offset and 12 bytes per index key, plus a
fixed-size Bloom filter that answers "never retired" for the keys of new orders without touching the index
(a false positive only costs a look-up). Index look-ups check every candidate against the record itself
(the hash is not trusted), and the latest record holding a key wins (file offsets grow with time).

A *persistent* archive (``Archive(directory, end)``, what the audit projection uses so that a new process
resumes from a checkpoint instead of re-folding everything) keeps the same records in an append-only file
``log`` in that directory, together with every sealed index chunk, and its Bloom filter in a memory-mapped
file ``bloom``. A checkpoint (:meth:`Archive.snapshot`, after :meth:`Archive.sync`) is the log's length and
the small in-memory part of the index; reopening at that length cuts off whatever a later run appended
(records of a run that never committed), and the Bloom filter may keep bits of such records, which only
costs a look-up (bits are only ever set). Its key hashes are stable across processes (:func:`stable_hash`),
where a temporary archive uses Python's process-salted ``hash``.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from array import array
from bisect import bisect_left
from typing import Any
from zlib import crc32

import msgspec
from msgspec import Struct

_BITS = 27  # one-hash Bloom filter of 2**27 bits (16 MB): ~3 % false positives at 4.4M keys (10M events)
MASK = (1 << _BITS) - 1
_CHUNK = 65_536  # index keys per sorted chunk
_WRITE = 1 << 22  # records are written 4 MB at a time
BLOOM_BYTES = 1 << (_BITS - 3)


class ArchiveState(Struct, array_like=True):
    """A persistent archive's index at a checkpoint (its records and sealed chunks are in the log)."""

    end: int  # the log's length
    count: int
    accts: int
    off: bytes  # the idx -> record arrays, as machine bytes
    size: bytes
    rowlen: bytes
    chunks: list[tuple[int, int]]  # (log offset, keys) of each sealed chunk: its hashes, then its idxs
    buf: bytes  # the keys not sealed yet: their hashes (8 bytes each), then their idxs (4 bytes each)
    more: list[tuple[int, list[int]]]
    nbuf: int


class Archive:
    """Retired order records by order ``idx``, and a key -> candidate ``idx`` index (see the module doc)."""

    def __init__(self, directory: str | None = None, end: int = 0) -> None:
        """``directory`` None: an anonymous temporary file. Else the persistent archive in that directory,
        its log cut back to ``end`` bytes (the length its checkpoint recorded; 0 for a new one)."""
        self.stable = directory is not None  # key hashes stable across processes (the index is persisted)
        self._file: Any = None
        self._chunk_at: list[tuple[int, int]] = []  # persistent: where each sealed chunk is in the log
        if directory is None:
            self._file = tempfile.TemporaryFile(prefix="ibledger-fold-", buffering=0)  # noqa: SIM115 - closed in close()
            self._fd = self._file.fileno()
            self.bloom: bytearray | mmap.mmap = bytearray(BLOOM_BYTES)
        else:
            fd = os.open(os.path.join(directory, "log"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size < end:
                    raise ValueError(f"fold archive log in {directory} is shorter than its checkpoint says")
                os.ftruncate(fd, end)  # what a run after the checkpoint appended was never committed
                bfd = os.open(os.path.join(directory, "bloom"), os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    if os.fstat(bfd).st_size != BLOOM_BYTES:
                        os.ftruncate(bfd, BLOOM_BYTES)
                    self.bloom = mmap.mmap(bfd, BLOOM_BYTES)
                finally:
                    os.close(bfd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
        self._pos = end  # logical end of the file (written + buffered)
        self._wbuf = bytearray()  # records not yet written (reads flush it first)
        self.off = array("q", [-1])  # idx -> file offset of its current record (-1: resident or gone)
        self.size = array("i", [0])
        self.rowlen = array("i", [0])  # the record starts with the order's encoded public row
        self.count = 0  # records written
        self.accts = 0  # records that held an (account, permId) key (permIds shared across accounts)
        # the newest keys, not yet sealed into a sorted chunk: hash -> idx (one int, no list per key), and
        # the rare second and later records under one hash (a re-retired order's keys, a hash collision)
        self._buf: dict[int, int] = {}
        self._more: dict[int, list[int]] = {}
        self._enc = msgspec.msgpack.Encoder()
        self._nbuf = 0
        self._chunks: list[tuple[Any, Any]] = []  # (sorted hashes, their order idx): arrays, or views of the log
        self._map: mmap.mmap | None = None  # a restored archive's log, mapped: its chunks are read in place

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            return
        if self._map is not None:
            for hs, ids in self._chunks:
                if isinstance(hs, memoryview):
                    hs.release()
                    ids.release()
            self._chunks = []
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self.bloom.close()  # type: ignore[union-attr]

    # --- persistence (a persistent archive) ------------------------------------------------------------

    def sync(self) -> None:
        """Make everything written so far durable: the log's records and chunks, the Bloom filter's bits."""
        if self._wbuf:
            self._flush()
        os.fsync(self._fd)
        if isinstance(self.bloom, mmap.mmap):
            self.bloom.flush()

    def snapshot(self) -> ArchiveState:
        """The index as it stands (call :meth:`sync` first: the log must hold everything it refers to)."""
        if not self.stable:
            raise ValueError("a compact fold with a temporary archive cannot be checkpointed")
        if self._wbuf:
            self._flush()
        return ArchiveState(end=self._pos, count=self.count, accts=self.accts, off=self.off.tobytes(),
                            size=self.size.tobytes(), rowlen=self.rowlen.tobytes(), chunks=list(self._chunk_at),
                            buf=array("q", self._buf).tobytes() + array("i", self._buf.values()).tobytes(),
                            more=list(self._more.items()), nbuf=self._nbuf)

    def restore(self, st: ArchiveState) -> None:
        """Take the index of :meth:`snapshot` back (into an archive opened at ``st.end``)."""
        if st.end != self._pos:
            raise ValueError(f"fold archive checkpoint is for a log of {st.end} bytes, not {self._pos}")
        self.count, self.accts = st.count, st.accts
        for name, raw in (("off", st.off), ("size", st.size), ("rowlen", st.rowlen)):
            arr = array(getattr(self, name).typecode)
            arr.frombytes(raw)
            setattr(self, name, arr)
        if not len(self.off) == len(self.size) == len(self.rowlen):
            raise ValueError("fold archive checkpoint: index arrays of different lengths")
        self._chunks, self._chunk_at = [], list(st.chunks)
        if st.chunks:  # sealed chunks are read in place from the mapped log (pages load as look-ups touch them)
            if any(at + 12 * n > st.end for at, n in st.chunks):
                raise ValueError("fold archive log ends inside an index chunk")
            self._map = mmap.mmap(self._fd, st.end, prot=mmap.PROT_READ)
            whole = memoryview(self._map)
            for at, n in st.chunks:
                self._chunks.append((whole[at : at + 8 * n].cast("q"), whole[at + 8 * n : at + 12 * n].cast("i")))
            whole.release()
        n = len(st.buf) // 12
        hs, ids = array("q"), array("i")
        hs.frombytes(st.buf[: 8 * n])
        ids.frombytes(st.buf[8 * n :])
        self._buf, self._more, self._nbuf = dict(zip(hs, ids, strict=True)), dict(st.more), st.nbuf

    def grow(self, idx: int) -> None:
        """Make room for order ``idx`` (orders are numbered from 1 as they are created)."""
        off = self.off
        while len(off) <= idx:
            off.append(-1)
            self.size.append(0)
            self.rowlen.append(0)

    # --- records -----------------------------------------------------------------------------------------

    def put(self, idx: int, row: Any, state: Any, hashes: list[int]) -> None:
        """Write order ``idx``'s record (its public ``row``, then its full ``state``, msgpack-encoded straight
        into the write buffer: no intermediate bytes) and index its key hashes."""
        wbuf = self._wbuf
        start = len(wbuf)
        enc = self._enc.encode_into
        enc(row, wbuf, -1)
        mid = len(wbuf)
        enc(state, wbuf, -1)
        n = len(wbuf) - start
        self.off[idx] = self._pos
        self.size[idx] = n
        self.rowlen[idx] = mid - start
        self._pos += n
        if len(wbuf) >= _WRITE:
            self._flush()
        self.count += 1
        bloom = self.bloom
        setdefault = self._buf.setdefault
        for h in hashes:
            a = h & MASK
            bloom[a >> 3] |= 1 << (a & 7)
            got = setdefault(h, idx)
            if got != idx:
                more = self._more.get(h)
                if more is None:
                    self._more[h] = [idx]
                elif idx not in more:
                    more.append(idx)
        self._nbuf += len(hashes)
        if self._nbuf >= _CHUNK:
            self._seal()

    def state(self, idx: int) -> bytes:
        if self._wbuf:
            self._flush()
        o = self.off[idx]
        n = self.rowlen[idx]
        return os.pread(self._fd, self.size[idx] - n, o + n)

    def row(self, idx: int) -> bytes:
        if self._wbuf:
            self._flush()
        return os.pread(self._fd, self.rowlen[idx], self.off[idx])

    def rows(self, idxs: list[int]) -> bytes:
        """The encoded public rows of archived orders ``idxs``, concatenated (one read per contiguous run)."""
        if self._wbuf:
            self._flush()
        off, rl, size = self.off, self.rowlen, self.size
        out: list[bytes] = []
        i = 0
        n = len(idxs)
        while i < n:
            start = off[idxs[i]]
            end = start + size[idxs[i]]
            j = i + 1
            while j < n and off[idxs[j]] == end:
                end += size[idxs[j]]
                j += 1
            blob = os.pread(self._fd, end - start, start)
            base = start
            for k in range(i, j):
                o = off[idxs[k]] - base
                out.append(blob[o : o + rl[idxs[k]]])
            i = j
        return b"".join(out)

    def _flush(self) -> None:
        buf = self._wbuf
        view = memoryview(buf)
        at = self._pos - len(buf)
        done = 0
        while done < len(buf):
            done += os.pwrite(self._fd, view[done:], at + done)
        view.release()
        buf.clear()

    def drop(self, idx: int) -> None:
        """Order ``idx`` is resident again (re-inflated) or gone: its record is no longer current."""
        self.off[idx] = -1

    # --- index -------------------------------------------------------------------------------------------

    def maybe(self, h: int) -> bool:
        """False: no record was ever indexed under hash ``h`` (the common answer, from the Bloom filter)."""
        a = h & MASK
        return bool(self.bloom[a >> 3] & (1 << (a & 7)))

    def candidates(self, h: int) -> list[int]:
        """Current records indexed under hash ``h``, latest first (the caller checks each one)."""
        i = self._buf.get(h)
        found = [] if i is None else [i]
        if self._more:
            found += self._more.get(h, ())
        for hs, ids in self._chunks:
            j = bisect_left(hs, h)
            while j < len(hs) and hs[j] == h:
                found.append(ids[j])
                j += 1
        off = self.off
        live = {i for i in found if off[i] >= 0}
        return sorted(live, key=lambda i: off[i], reverse=True)

    def _seal(self) -> None:
        buf, more = self._buf, self._more
        if more:  # rare: some hashes hold several records (their order among themselves does not matter)
            pairs = sorted([*buf.items(), *((h, i) for h, ids in more.items() for i in ids)])
            hs, ids = array("q", [h for h, _ in pairs]), array("i", [i for _, i in pairs])
        else:  # ints sort fast; one record per hash
            keys = sorted(buf)
            hs, ids = array("q", keys), array("i", map(buf.__getitem__, keys))
        self._chunks.append((hs, ids))
        if self.stable:  # sealed chunks never change: written once, to the log (a checkpoint names them)
            self._chunk_at.append((self._pos, len(hs)))
            self._wbuf += hs.tobytes()
            self._wbuf += ids.tobytes()
            self._pos += 12 * len(hs)
        self._buf, self._more, self._nbuf = {}, {}, 0


# index hash of a key = hash(key) ^ the salt of its kind: ``p`` permId, ``a`` (account, permId), ``b`` binding,
# ``e`` execId, ``k`` order key. Process-local (str hashes are salted): it never leaves this process. A permId
# hashes to itself (xor a constant), so the filter maps the permIds of one run without collisions. A
# persistent archive uses :func:`stable_hash` instead (the same salts).
SALT_P = 0x5DEECE66D
SALT_A = 0x4F1BBCDCBFA53E0A
SALT_B = 0x12A2FA48A7B66E8E
SALT_E = 0
SALT_K = 0x13EA75978B2B33E2
SALTS = {"p": SALT_P, "a": SALT_A, "b": SALT_B, "e": SALT_E, "k": SALT_K}


_G = 0x9E3779B97F4A7C15  # an odd 64-bit multiplier: mixes the parts of a tuple key
_M62 = (1 << 62) - 1


def _sh(s: str) -> int:
    return crc32(s.encode())


def stable_hash(kind: str, key: Any) -> int:
    """The index hash of a key in a persistent archive: the same in every process (CRC-32 of strings, ints as
    they are), 63 bits at most (the index arrays are signed 64-bit). Collisions only cost a look-up."""
    if kind == "p":
        h = key & _M62
    elif kind == "a":
        h = (_sh(key[0]) * _G + key[1]) & _M62
    elif kind == "b":
        h = ((_sh(key[0]) * _G + key[1]) * _G + key[2]) & _M62
    else:  # "e", "k": strings
        h = _sh(key)
    return h ^ SALTS[kind]
