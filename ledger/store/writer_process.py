"""The writer in its own process: commits never wait for the IB loop's GIL.

With the in-process :class:`ledger.store.writer.Writer`, every commit needs the writer thread to re-take the
GIL several times (wake-up, each SQLite step, the fsync's return) while the IB loop thread is busy
decoding callbacks; under Python's default 5 ms switch interval that hand-off, not the disk, is most of
the commit p99 at a few thousand callbacks/s. Here the IB loop only encodes each envelope (msgpack, a
microsecond or two) and writes it to a pipe; a child process runs the very same :class:`Writer` on its
own store connection, so retries, ``SeqConflict``, unencodable events and loss accounting keep their
exact semantics. The child reports each commit (last seq, position, commit time on the shared monotonic
clock) and every error back on a second pipe; a thread here turns them into the same public state and
listener calls as the thread writer's. Nothing crosses the pipes as pickle: envelopes are msgpack, control
messages are msgpack arrays, each a length-prefixed frame on the child's stdin / stdout.

Invariants kept: queue order is seq order (``put`` is called under the recorder's lock and the pipe is
FIFO); ``committed_seq`` only moves after the child's ``append`` returned; events the child could not
commit (or that were in flight when it died) are counted in ``lost``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

import msgspec

from ledger.core import codec
from ledger.core.events import Envelope
from ledger.store.base import EventStore, StoreError
from ledger.store.writer import RESERVE, CommitListener, WriterError, _replace_unencodable, wait_for_room

log = logging.getLogger("ledger.store.writer")

__all__ = ["ProcessWriter"]

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()

# control frames start with one of these bytes; an envelope frame is b"E" + its msgpack
_ENV, _CLOSE = b"E", b"C"


def _store_url(store: EventStore) -> str:
    """The store's URL with its password, for the child only (never logged, never stored)."""
    password = getattr(store, "_password", None)
    url = store.url
    if password and "***@" in url:
        url = url.replace("***@", f"{password}@", 1)
    return url


def _write_frame(out: IO[bytes], data: bytes) -> None:
    view = memoryview(len(data).to_bytes(4, "big") + data)
    while view:
        n = out.write(view)
        view = view[n:] if n else view


def _read_exactly(inp: IO[bytes], n: int) -> bytes:
    data = inp.read(n)
    if data is None or len(data) < n:  # a raw pipe may return less than asked for
        parts = [data or b""]
        got = len(parts[0])
        while got < n:
            more = inp.read(n - got)
            if not more:
                raise EOFError
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


def _read_frame(inp: IO[bytes]) -> bytes:
    return _read_exactly(inp, int.from_bytes(_read_exactly(inp, 4), "big"))


def _child_main() -> None:
    """The writer process: a Writer on its own store, fed from stdin, reporting on stdout."""
    from ledger.store.registry import open_store
    from ledger.store.writer import Writer

    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr  # nothing else may write into the report pipe
    send_lock = threading.Lock()

    def send(msg: list[Any]) -> None:
        with send_lock:
            _write_frame(out, _enc.encode(msg))

    url, capacity, max_batch, retry_initial, retry_max = _dec.decode(_read_frame(inp))
    try:
        store = open_store(url)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        send(["fatal", type(exc).__name__, str(exc)])
        return
    writer = Writer(store, capacity=capacity + RESERVE, max_batch=max_batch, retry_initial=retry_initial,
                    retry_max=retry_max,
                    on_error=lambda exc: send(["error", type(exc).__name__, str(exc), writer.failing]),
                    on_commit=lambda batch, ns: send(["commit", batch[-1].seq, len(batch), writer.position, ns]))
    writer.start()
    send(["ready"])
    close_timeout = 10.0
    try:
        while True:
            try:
                frame = _read_frame(inp)
            except EOFError:
                break
            if frame[:1] == _ENV:
                env = codec.from_msgpack(frame[1:])
                if not writer.put(env, timeout=3600.0, reserve=True):
                    break  # dead writer: the parent counts everything not committed as lost
            elif frame[:1] == _CLOSE:
                close_timeout = float(_dec.decode(frame[1:]))
                break
    finally:
        writer.close(close_timeout)
        send(["closed", writer.committed_seq])
        store.close()


class ProcessWriter:
    """Same surface as :class:`ledger.store.writer.Writer` (``put``/``wait_committed``/``close``/listeners and
    the public counters); the commits happen in a child process."""

    def __init__(
        self,
        store: EventStore,
        *,
        capacity: int = 10_000,
        max_batch: int = 100,
        retry_initial: float = 0.01,
        retry_max: float = 1.0,
        on_commit: CommitListener | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        name: str = "ibledger-writer",
        start_timeout: float = 60.0,
    ) -> None:
        if capacity < 1:
            raise ValueError("queue capacity must be >= 1")
        self.store = store
        self.capacity = capacity
        self.max_batch = max(1, max_batch)
        self._url = _store_url(store)
        self._retry = (retry_initial, retry_max)
        self._listeners: list[CommitListener] = [on_commit] if on_commit else []
        self._on_error = on_error
        self._name = name
        self._start_timeout = start_timeout
        self._inflight: deque[Envelope] = deque()  # sent, not yet acknowledged, in seq order
        self._lock = threading.Lock()
        self._committed = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closing = False
        self._proc: Any = None
        self._to_child: Any = None
        self._from_child: Any = None
        self._acks: threading.Thread | None = None
        self.enqueued_seq = 0
        self.committed_seq = 0
        self.committed = 0
        self.batches = 0
        self.position = 0
        self.lost = 0
        self.error: BaseException | None = None
        self.dead = False
        self.failing = False

    # --- producer side ---------------------------------------------------------------------------

    def start(self) -> ProcessWriter:
        # a plain child interpreter (not multiprocessing): nothing of the parent's __main__ is re-imported,
        # and the configuration (the URL may carry a password) goes through the pipe, never argv
        self._proc = subprocess.Popen([sys.executable, "-m", "ledger.store.writer_process"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, bufsize=0)
        self._to_child, self._from_child = self._proc.stdin, self._proc.stdout
        _write_frame(self._to_child, _enc.encode([self._url, self.capacity, self.max_batch, *self._retry]))
        first: list[Any] = []
        reader = threading.Thread(target=lambda: first.append(_dec.decode(_read_frame(self._from_child))),
                                  daemon=True)
        reader.start()
        reader.join(self._start_timeout)
        if not first:
            self._proc.kill()
            self._proc.wait(5)
            raise WriterError(f"writer process did not start within {self._start_timeout:.0f}s")
        if first[0][0] == "fatal":
            self._proc.wait(5)
            raise StoreError(f"writer process: {first[0][1]}: {first[0][2]}")
        self._acks = threading.Thread(target=self._read_acks, name=f"{self._name}-acks", daemon=True)
        self._acks.start()
        return self

    def add_listener(self, fn: CommitListener) -> None:
        """``fn(batch, commit_mono_ns)`` in the acknowledgement thread after each commit."""
        self._listeners.append(fn)

    def free(self) -> int:
        return self.capacity - len(self._inflight)

    def put(self, env: Envelope, timeout: float = 0.0, *, reserve: bool = False) -> bool:
        """Send one envelope to the writer process; wait up to ``timeout`` s for room. False: full or gone."""
        with self._lock:
            if self.dead or self._closing:
                return False
            if not wait_for_room(self, self._inflight, self.capacity + (RESERVE if reserve else 0), timeout):
                return False
            try:
                data = codec.to_msgpack(env)
            except Exception as exc:  # noqa: BLE001 - stored as a RecorderFault under the same seq
                batch = [env]
                _replace_unencodable(batch)
                env = batch[0]
                data = codec.to_msgpack(env)
                self._fail(WriterError(f"unencodable event(s) stored as RecorderFault: {exc}"))
            try:
                _write_frame(self._to_child, _ENV + data)
            except (OSError, ValueError):
                self.dead = True
                return False
            self._inflight.append(env)
            self.enqueued_seq = env.seq
            return True

    def wait_committed(self, seq: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self.committed_seq < seq:
                if self.dead:
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._committed.wait(0.5 if left is None else min(left, 0.5))
            return True

    def close(self, timeout: float = 10.0) -> bool:
        """Commit what was sent (the child retries a failing store until ``timeout``), stop the process."""
        with self._lock:
            already = self._closing
            self._closing = True
            self._not_full.notify_all()
        if not already and self._proc is not None:
            try:
                _write_frame(self._to_child, _CLOSE + _enc.encode(timeout))
            except (OSError, ValueError):
                pass
        if self._acks is not None:
            self._acks.join(timeout + 5.0)
        if self._proc is not None:
            try:
                self._proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5.0)
        with self._lock:
            if self._inflight:  # never acknowledged: counted, never silent
                self.lost += len(self._inflight)
                self._inflight.clear()
            self.dead = True
            self._committed.notify_all()
        for conn in (self._to_child, self._from_child):
            if conn is not None:
                conn.close()
        return self.committed_seq >= self.enqueued_seq

    # --- acknowledgement thread -----------------------------------------------------------------------

    def _read_acks(self) -> None:
        conn = self._from_child
        while True:
            try:
                msg = _dec.decode(_read_frame(conn))
            except (EOFError, OSError):
                with self._lock:
                    died = not self.dead and not self._closing
                if died:
                    self._fail(WriterError("the writer process died; events in flight are counted as lost"))
                with self._lock:
                    self.lost += len(self._inflight)
                    self._inflight.clear()
                    self.dead = True
                    self._committed.notify_all()
                    self._not_full.notify_all()
                return
            tag = msg[0]
            if tag == "commit":
                _tag, last_seq, n, position, ns = msg
                with self._lock:
                    batch = [self._inflight.popleft() for _ in range(min(n, len(self._inflight)))]
                    self.committed_seq = last_seq
                    self.committed += n
                    self.batches += 1
                    self.position = position
                    if self.failing:
                        self.failing = False
                    self._committed.notify_all()
                    self._not_full.notify_all()
                for fn in self._listeners:
                    try:
                        fn(batch, ns)
                    except Exception:  # noqa: BLE001 - a listener never stops the writer
                        log.exception("commit listener failed")
            elif tag == "error":
                _tag, kind, text, failing = msg
                self.failing = bool(failing)
                self._fail(WriterError(f"{kind}: {text}"))
            elif tag == "closed":
                with self._lock:
                    # every commit was acknowledged before this message (one FIFO pipe): what is still in
                    # flight is exactly what was not committed (the child's ``lost`` plus frames it never read)
                    self.lost += len(self._inflight)
                    self._inflight.clear()
                    self.dead = True
                    self._committed.notify_all()
                    self._not_full.notify_all()
                return

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


if __name__ == "__main__":
    _child_main()
