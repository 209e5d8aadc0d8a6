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
"""

from __future__ import annotations

import os
import tempfile
from array import array
from bisect import bisect_left
from typing import Any

import msgspec

_BITS = 27  # one-hash Bloom filter of 2**27 bits (16 MB): ~3 % false positives at 4.4M keys (10M events)
MASK = (1 << _BITS) - 1
_CHUNK = 65_536  # index keys per sorted chunk
_WRITE = 1 << 22  # records are written 4 MB at a time


class Archive:
    """Retired order records by order ``idx``, and a key -> candidate ``idx`` index (see the module doc)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="ibledger-fold-", buffering=0)  # noqa: SIM115 - closed in close()
        self._fd = self._file.fileno()
        self._pos = 0  # logical end of the file (written + buffered)
        self._wbuf = bytearray()  # records not yet written (reads flush it first)
        self.off = array("q", [-1])  # idx -> file offset of its current record (-1: resident or gone)
        self.size = array("i", [0])
        self.rowlen = array("i", [0])  # the record starts with the order's encoded public row
        self.count = 0  # records written
        self.accts = 0  # records that held an (account, permId) key (permIds shared across accounts)
        self.bloom = bytearray(1 << (_BITS - 3))
        # the newest keys, not yet sealed into a sorted chunk: hash -> idx (one int, no list per key), and
        # the rare second and later records under one hash (a re-retired order's keys, a hash collision)
        self._buf: dict[int, int] = {}
        self._more: dict[int, list[int]] = {}
        self._enc = msgspec.msgpack.Encoder()
        self._nbuf = 0
        self._chunks: list[tuple[array, array]] = []  # (sorted hashes, their order idx)

    def close(self) -> None:
        self._file.close()

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
        done = 0
        while done < len(buf):
            done += os.write(self._fd, view[done:])
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
        self._buf, self._more, self._nbuf = {}, {}, 0


# index hash of a key = hash(key) ^ the salt of its kind: ``p`` permId, ``a`` (account, permId), ``b`` binding,
# ``e`` execId, ``k`` order key. Process-local (str hashes are salted): it never leaves this process. A permId
# hashes to itself (xor a constant), so the filter maps the permIds of one run without collisions.
SALT_P = 0x5DEECE66D
SALT_A = 0x4F1BBCDCBFA53E0A
SALT_B = 0x12A2FA48A7B66E8E
SALT_E = 0
SALT_K = 0x13EA75978B2B33E2
SALTS = {"p": SALT_P, "a": SALT_A, "b": SALT_B, "e": SALT_E, "k": SALT_K}


def key_hash(kind: str, key: Any) -> int:
    """The index hash of one key of one kind (see ``SALTS``)."""
    return hash(key) ^ SALTS[kind]
