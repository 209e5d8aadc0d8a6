"""A bounded queue drained by one writer thread that group-commits to the store.

The IB event loop only ever appends to an in-memory deque (a few microseconds); one thread takes
everything queued (up to ``max_batch``) and writes it with a single :meth:`EventStore.append` — one
transaction, one fsync — so the commit rate follows the arrival rate without one fsync per event.
``max_batch`` (default 100) bounds how long one append holds the GIL (~20 us per event of encoding and
bookkeeping), i.e. how long the IB loop can wait for it; a larger backlog is several appends.

Invariants:

* Queue order is seq order (the recorder assigns seqs and enqueues under one lock), and batches are
  committed in queue order, so the store's gapless-seq check holds by construction.
* ``committed_seq`` only moves after ``append`` returned: it is exactly what a ``kill -9`` cannot lose.
* A failed batch is never skipped (a skipped batch would leave a seq gap that makes every later append
  fail): transient store errors are retried with backoff until they succeed or the writer is closed;
  :class:`SeqConflict` (another writer owns the session) and :class:`StoreFileLost` (the store file was
  deleted or replaced) stop the writer (``fatal``). Every event that could not be committed is counted in
  ``lost``; nothing disappears without being counted.
* An event that cannot be encoded is replaced, under the same seq, by a ``RecorderFault`` that carries
  its kind and ``repr`` — the stream stays gapless and the fact stays readable.
* Capacity: ``capacity`` events for normal puts plus a small reserve only fault reports may use, so a
  ``RecorderFault`` can still be queued when the queue is full.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence, Sized
from typing import Any

import msgspec

from ledger.core.events import Envelope, RecorderFault, kind_of
from ledger.store.base import EventStore, SeqConflict, StoreError, StoreFileLost

log = logging.getLogger("ledger.store.writer")

__all__ = ["Writer", "WriterError"]

RESERVE = 256  # queue slots only fault reports, governor decisions and session_ended may use

CommitListener = Callable[[Sequence[Envelope], int], None]



def wait_for_room(w: Any, pending: Sized, limit: int, timeout: float) -> bool:
    """With ``w._lock`` held: wait up to ``timeout`` s (on ``w._not_full``) until fewer than ``limit`` items are
    pending. False when still full, or once the writer ``w`` is dead or closing: the caller counts a loss."""
    if len(pending) < limit:
        return True
    if timeout <= 0:
        return False
    deadline = time.monotonic() + timeout
    while len(pending) >= limit:
        left = deadline - time.monotonic()
        if left <= 0 or w.dead or w._closing:
            return False
        w._not_full.wait(left)
    return True

class WriterError(StoreError):
    """The writer could not commit (store failure, seq conflict, lost events, timeout)."""


class Writer:
    """One thread, one store, group commit. ``put`` from any thread; ``flush``/``close`` from any other."""

    def __init__(
        self,
        store: EventStore,
        *,
        capacity: int = 10_000,
        max_batch: int = 100,  # bounds the GIL time of one commit (~20 us/event): <= ~2 ms of IB-loop wait
        retry_initial: float = 0.01,
        retry_max: float = 1.0,
        on_commit: CommitListener | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "ibledger-writer",
    ) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be >= 1")
        self.store = store
        self.capacity = capacity
        self.max_batch = max(1, max_batch)
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._listeners: list[CommitListener] = [on_commit] if on_commit else []
        self._on_error = on_error
        self._items: deque[Envelope] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._committed = threading.Condition(self._lock)
        self._writer_waiting = False
        self._closing = False
        self._abandon_at: float | None = None  # monotonic deadline after which a failing batch is given up
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        # public, read from any thread
        self.enqueued_seq = 0  # highest seq put
        self.committed_seq = 0  # highest seq committed (acknowledged)
        self.committed = 0  # events committed
        self.batches = 0
        self.position = 0  # store position of the last committed event
        self.lost = 0  # events that were queued but could not be committed
        self.error: BaseException | None = None  # first error seen (sticky)
        self.dead = False  # the writer stopped for good (nothing more will be committed)
        self.failing = False  # the last append failed and is being retried
        self.fatal: BaseException | None = None  # the error that stopped the writer for good, if any

    # --- producer side ---------------------------------------------------------------------------

    def start(self) -> Writer:
        self._thread.start()
        return self

    def add_listener(self, fn: CommitListener) -> None:
        """``fn(batch, commit_mono_ns)`` in the writer thread after each commit (keep it short)."""
        self._listeners.append(fn)

    def free(self) -> int:
        return self.capacity - len(self._items)

    def put(self, env: Envelope, timeout: float = 0.0, *, reserve: bool = False) -> bool:
        """Queue one envelope; wait up to ``timeout`` s for room. False: full (or writer gone)."""
        with self._lock:
            if self.dead or self._closing:
                return False
            if not wait_for_room(self, self._items, self.capacity + (RESERVE if reserve else 0), timeout):
                return False
            self._items.append(env)
            self.enqueued_seq = env.seq
            if self._writer_waiting:
                self._not_empty.notify()
            return True

    def wait_committed(self, seq: int, timeout: float | None) -> bool:
        """Wait until ``committed_seq >= seq``; False on timeout or when the writer is dead."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self.committed_seq < seq:
                if self.dead:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._committed.wait(left if left is None else min(left, 0.5))
            return True

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what is queued (retrying a failing store until ``timeout``), stop the thread.

        True when everything queued was committed. Events given up are counted in ``lost``.
        """
        with self._lock:
            self._closing = True
            self._abandon_at = time.monotonic() + timeout
            self._not_empty.notify_all()
            self._not_full.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout + 1.0)
        if self._thread.is_alive():  # the store hangs inside append: nothing more we can do here
            with self._lock:
                self.lost += len(self._items)
                self._items.clear()
                self.dead = True
            self._fail(WriterError(f"writer did not finish within {timeout:.1f}s (store hangs)"))
            return False
        return self.committed_seq >= self.enqueued_seq

    # --- writer thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        items = self._items
        while True:
            with self._lock:
                while not items and not self._closing:
                    self._writer_waiting = True
                    self._not_empty.wait()
                    self._writer_waiting = False
                if not items:
                    self.dead = True
                    self._committed.notify_all()
                    return
                n = min(len(items), self.max_batch)
                batch = [items.popleft() for _ in range(n)]
                self._not_full.notify_all()
            if not self._commit(batch):
                with self._lock:
                    self.lost += len(batch) + len(items)
                    items.clear()
                    self.dead = True
                    self._committed.notify_all()
                    self._not_full.notify_all()
                return

    def _commit(self, batch: list[Envelope]) -> bool:
        delay = self.retry_initial
        while True:
            try:
                position = self.store.append(batch)
            except (SeqConflict, StoreFileLost) as exc:  # retrying cannot help: stop for good, loudly
                self.fatal = exc
                self._fail(exc)
                return False
            except (msgspec.EncodeError, TypeError, OverflowError, ValueError) as exc:
                if not _replace_unencodable(batch):
                    self._fail(exc)
                    return False
                # a bug upstream (the adapter must produce plain data): loud, sticky, but nothing lost
                self._fail(WriterError(f"unencodable event(s) stored as RecorderFault: {exc}"))
                continue
            except Exception as exc:  # noqa: BLE001 - store down, lock timeout, connection lost: retry
                self.failing = True
                self._fail(exc)
                with self._lock:
                    if self._abandon_at is not None and time.monotonic() >= self._abandon_at:
                        return False
                self._pause(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            now = time.monotonic_ns()
            if self.failing:
                self.failing = False
                log.error("recorder: store append succeeded again after a failure (fault stays set)")
            with self._lock:
                self.committed_seq = batch[-1].seq
                self.committed += len(batch)
                self.batches += 1
                self.position = position
                self._committed.notify_all()
            for fn in self._listeners:
                try:
                    fn(batch, now)
                except Exception:  # noqa: BLE001 - a listener never stops the writer
                    log.exception("commit listener failed")
            return True

    def _pause(self, seconds: float) -> None:
        """The back-off between retries of a failing append (the writer process also listens for its
        parent's close request here, which sets ``_abandon_at``)."""
        time.sleep(seconds)

    def _fail(self, exc: BaseException) -> None:
        first = self.error is None
        if first:
            self.error = exc
        if self._on_error is not None:
            try:
                self._on_error(exc)
            except Exception:  # noqa: BLE001
                log.exception("writer error callback failed")
        elif first:
            log.error("recorder writer: %s: %s", type(exc).__name__, exc)


def _replace_unencodable(batch: list[Envelope]) -> bool:
    """Swap each envelope that msgspec cannot encode for a RecorderFault with the same seq."""
    from ledger.core import codec

    replaced = False
    for i, env in enumerate(batch):
        try:
            codec.to_msgpack(env)
        except Exception as exc:  # noqa: BLE001
            batch[i] = fault_for(env, exc)
            replaced = True
    return replaced


def fault_for(env: Envelope, exc: BaseException) -> Envelope:
    """The RecorderFault stored under ``env``'s seq when ``env`` itself cannot be: its kind and ``repr``."""
    text = _safe_repr(env.payload)
    fault = RecorderFault(message=f"event of kind {kind_of(env.payload)!r} could not be encoded ({exc}); repr: {text}")
    return msgspec.structs.replace(env, payload=fault, v=RecorderFault.SCHEMA_VERSION)


def _safe_repr(obj: Any, limit: int = 4000) -> str:
    try:
        text = repr(obj)
    except Exception as exc:  # noqa: BLE001
        text = f"<repr failed: {exc}>"
    return text[:limit]
