"""The writer in its own process: commits never wait for the IB loop's GIL.

Why (measured with ``tests/benchmarks/bench_recorder.py``, store on tmpfs so the disk is out of the way):
the in-process :class:`ledger.store.writer.Writer` thread needs the GIL for every step of a commit (wake-up,
encoding, each SQLite call's return), and the IB loop thread holds it while it decodes callbacks -- and
keeps holding it whenever the operating system preempts it on a busy machine, or while it collects
garbage. That, not the disk, made the commit p99 at 5k callbacks/s 20-30 ms. A child interpreter has its
own GIL: here the IB loop only encodes each envelope (msgpack, ~1 us) and copies it into a ring in shared
memory (:mod:`ledger.store.ring`, ~2 us); it makes a system call only to wake the child when the child has
said it is asleep (once per sleep, not once per event), and that call is a signal (``os.kill`` keeps the
GIL, where a pipe write would let another thread take it in the middle of a callback). The child runs
the very same commit code as the thread writer (:meth:`Writer._commit`: retries with back-off,
``SeqConflict`` / ``StoreFileLost`` stop it, unencodable events become ``RecorderFault``), on its own
store connection, one thread, batching whatever arrived while it was committing.

Batches: each commit takes everything that arrived while the previous one ran (``max_batch`` is the thread
writer's bound on how long one commit holds the IB loop's GIL; the child holds only its own, so it is not
applied here). Measured with ``bench_recorder.py --trace`` on disk (SQLite ``synchronous=FULL``), a burst
event's commit latency is the commit in flight when it arrived, then its own commit (each about one
fsync), plus -- when the loop thread delivered a backlog at once, after a stall -- one more commit per
``max_batch`` events ahead of it; taking the whole backlog at once removes that last part.

Channels: the ring (envelopes) and SIGUSR1 (the wake, blocked in the child and taken only by its
``sigtimedwait``); the child's stdin (the configuration, the close request -- and the envelopes themselves
on machines where the ring is not safe, see ``ring.SUPPORTED``); the child's stdout (acknowledgements:
each commit's last seq, position and commit time on the shared monotonic clock,
every error with its type, the final ``closed``). A thread here reads the acknowledgements and turns them
into the same public state, listener calls and exceptions as the thread writer's, so the IB loop never
handles them. Nothing crosses as pickle: envelopes are msgpack, control messages msgpack arrays.

Robustness:

* ``committed_seq`` only moves after the child's append returned; events sent and never acknowledged --
  the child died, could not commit, or was abandoned at ``close(timeout)`` -- are counted in ``lost``;
* a child that dies is a writer error (``on_error``) and makes the writer ``dead``: never a silent loss;
* the child ignores SIGINT / SIGTERM (a Ctrl-C in the terminal reaches the whole process group): its
  lifetime is its parent's. When the parent goes away without closing it (``kill -9``), the child sees
  its stdin close, finishes at most the commit in progress and exits without taking anything more: the
  store stops changing with the recorder, and what ``kill -9`` loses is exactly what was not
  acknowledged, as with the thread writer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import msgspec

from ledger.core import codec
from ledger.core.events import Envelope
from ledger.store.base import EventStore, SeqConflict, StoreError, StoreFileLost
from ledger.store.ring import SUPPORTED as RING_SUPPORTED
from ledger.store.ring import Ring
from ledger.store.writer import RESERVE, CommitListener, Writer, WriterError, fault_for, wait_for_room

log = logging.getLogger("ledger.store.writer")

__all__ = ["ProcessWriter", "make_writer", "reopenable"]

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder()

# frames on the child's stdin start with one of these bytes
_ENV, _CLOSE = b"E", b"C"
# The wake is a signal the child keeps blocked and waits for: ``os.kill`` is the one system call Python
# makes without releasing the GIL, so waking the child never hands this process's GIL to another thread
# (a pipe write does, and the acknowledgement thread would then hold the IB loop up).
_WAKE_SIGNAL = signal.SIGUSR1
_RING_OK = RING_SUPPORTED and hasattr(signal, "sigtimedwait")  # the wake needs sigtimedwait (not on macOS)
_IDLE_POLL_S = 0.05  # the child's longest sleep with the ring: a missed wake costs at most this


def _store_url(store: EventStore) -> str:
    """The store's URL with its password, for the child only (never logged, never stored)."""
    password = getattr(store, "_password", None)
    url = store.url
    if password and "***@" in url:
        url = url.replace("***@", f"{password}@", 1)
    return url


_REOPENABLE = {("ledger.store.sqlite", "SQLiteEventStore"), ("ledger.store.postgres", "PostgresEventStore")}


def reopenable(store: EventStore) -> bool:
    """Whether a child process can open the same store from its URL: one of our own backends (a SQLite
    file or PostgreSQL), not a subclass or a wrapper that may hold state the URL does not carry. Checked
    by name, so asking never imports a backend's driver."""
    return (type(store).__module__, type(store).__qualname__) in _REOPENABLE


def make_writer(kind: str, store: EventStore, **options: Any) -> Writer | ProcessWriter:
    """The writer for ``Recorder.attach(..., writer=kind)``: ``"process"`` (:class:`ProcessWriter`),
    ``"thread"`` (:class:`ledger.store.writer.Writer`) or ``"auto"`` -- the process writer when the store
    can be reopened by a child and the shared-memory ring is safe on this machine, else the thread."""
    if kind not in ("auto", "thread", "process"):
        raise ValueError(f"writer must be 'auto', 'thread' or 'process', not {kind!r}")
    if kind == "process" or (kind == "auto" and _RING_OK and reopenable(store)):
        return ProcessWriter(store, **options)
    return Writer(store, **options)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


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


# --- the child ------------------------------------------------------------------------------------------


class _Frames:
    """Length-prefixed frames from a raw fd, without blocking longer than asked."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()
        self.eof = False

    def read(self, timeout: float | None) -> list[bytes]:
        if not self.eof:
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if ready:
                chunk = os.read(self.fd, 1 << 20)
                if chunk:
                    self.buf += chunk
                else:
                    self.eof = True
        out = []
        buf = self.buf
        while len(buf) >= 4:
            n = int.from_bytes(buf[:4], "big")
            if len(buf) < 4 + n:
                break
            out.append(bytes(buf[4 : 4 + n]))
            del buf[: 4 + n]
        return out


#: Diagnostics: when this environment variable names a file, the child records when it takes frames from
#: the ring, when it sleeps and wakes, and when each commit starts and ends (``time.monotonic_ns``, the clock
#: the receipt stamps use), and writes them there as msgpack when it exits. ``bench_recorder.py --trace``
#: uses it to split the commit latency into its parts. Off (nothing recorded) unless set.
TRACE_ENV = "IBLEDGER_WRITER_TRACE"


class _ChildWriter(Writer):
    """The thread writer's commit code driven by one loop in the child (its thread is never started)."""

    def __init__(self, store: EventStore, frames: _Frames, ring: Ring | None, **options: Any) -> None:
        super().__init__(store, **options)
        self.frames = frames
        self.ring = ring
        self.pending: deque[Envelope] = deque()
        self.orphaned = False  # the parent went away without closing: take nothing more
        self.trace: list[list[Any]] | None = [] if os.environ.get(TRACE_ENV) else None

    def _request_close(self, timeout: float) -> None:
        if not self._closing:
            self._closing = True
            self._abandon_at = time.monotonic() + timeout

    def _gather(self, timeout: float | None) -> None:
        """Take what the parent sent: control frames (and envelopes) on stdin, envelopes in the ring."""
        pending = self.pending
        decode = codec.from_msgpack
        for f in self.frames.read(timeout):
            tag = f[:1]
            if tag == _ENV:
                pending.append(decode(f[1:]))
            elif tag == _CLOSE:
                self._request_close(float(_dec.decode(f[1:])))
        if self.frames.eof and not self._closing:
            self.orphaned = True
            pending.clear()
            self._request_close(0.0)
            return
        if self.ring is not None and not self.orphaned:
            got = self.ring.pop_all()
            if got:
                if self.trace is not None:
                    self.trace.append(["pop", time.monotonic_ns(), len(got)])
                pending.extend(decode(f) for f in got)

    def _pause(self, seconds: float) -> None:
        # a failing store: keep taking frames (the ring keeps room; a close request sets the deadline)
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._gather(min(left, 0.02))
            if self._closing and self._abandon_at is not None and time.monotonic() >= self._abandon_at:
                return

    def run(self) -> None:
        pending = self.pending
        ring = self.ring
        while True:
            self._gather(0)
            if self.orphaned:
                return
            if pending:
                # everything taken, in one transaction: one fsync however deep the backlog (see the module
                # docstring, "Batches"); the thread writer's max_batch bounds its GIL time, which is not ours
                batch = list(pending)
                pending.clear()
                t0 = time.monotonic_ns() if self.trace is not None else 0
                if not self._commit(batch):
                    return  # fatal or abandoned: the parent counts everything unacknowledged as lost
                if self.trace is not None:
                    self.trace.append(["commit", t0, time.monotonic_ns(), batch[0].seq, batch[-1].seq])
                continue
            if self._closing:
                return
            if ring is None:
                self._gather(None)
                continue
            ring.set_asleep(True)
            ring.fence()
            if not ring.pending():
                t0 = time.monotonic_ns() if self.trace is not None else 0
                woke = signal.sigtimedwait((_WAKE_SIGNAL,), _IDLE_POLL_S)  # stdin is polled right after
                if self.trace is not None:
                    self.trace.append(["sleep", t0, time.monotonic_ns(), woke is not None])
            ring.set_asleep(False)


def _child_main() -> None:
    """The writer process: configuration on stdin, then commits until closed (or orphaned)."""
    from ledger.store.registry import open_store

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, (_WAKE_SIGNAL,))  # only ever taken by sigtimedwait
    out = os.dup(sys.stdout.fileno())
    sys.stdout = sys.stderr  # nothing else may write into the report pipe
    send_lock = threading.Lock()

    def send(msg: list[Any]) -> None:
        with send_lock, contextlib.suppress(OSError):  # a parent that went away reads nothing more
            _write_all(out, _frame(_enc.encode(msg)))

    frames = _Frames(sys.stdin.fileno())
    got: list[bytes] = []
    while not got and not frames.eof:
        got = frames.read(None)
    if not got:
        return
    url, capacity, max_batch, retry_initial, retry_max, ring_fd, ring_size = _dec.decode(got[0])
    try:
        store = open_store(url)
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails loudly
        send(["fatal", type(exc).__name__, str(exc)])
        return
    ring = Ring(ring_fd, ring_size) if ring_fd is not None else None

    def on_error(exc: BaseException) -> None:
        extra = [exc.session_id, exc.expected, exc.got] if isinstance(exc, SeqConflict) else []
        send(["error", type(exc).__name__, str(exc), writer.failing, extra])

    writer = _ChildWriter(store, frames, ring, capacity=capacity + RESERVE, max_batch=max_batch,
                          retry_initial=retry_initial, retry_max=retry_max, on_error=on_error,
                          on_commit=lambda batch, ns: send(["commit", batch[-1].seq, len(batch), writer.position, ns]))
    for f in got[1:]:  # frames that came with the configuration
        frames.buf[:0] = _frame(f)
    send(["ready"])
    try:
        writer.run()
    finally:
        send(["closed", writer.committed_seq])
        store.close()
        if writer.trace is not None:
            with contextlib.suppress(OSError):
                Path(os.environ[TRACE_ENV]).write_bytes(_enc.encode(writer.trace))
        if ring is not None:
            ring.close()


# --- the parent -----------------------------------------------------------------------------------------


def _remote_error(kind: str, text: str, extra: list[Any]) -> BaseException:
    """The child's error as the same exception type the thread writer would raise (what the recorder
    tells apart: a conflict or a lost file stops the session, anything else is retried)."""
    if kind == "SeqConflict" and len(extra) == 3:
        exc = SeqConflict(*extra)
        exc.args = (text,)
        return exc
    if kind == "StoreFileLost":
        return StoreFileLost(text)
    return WriterError(f"{kind}: {text}")


class ProcessWriter:
    """Same surface as :class:`ledger.store.writer.Writer` (``put``/``wait_committed``/``close``/listeners and
    the public counters); the commits happen in a child process, each taking everything that arrived
    (``max_batch`` is accepted for the same signature and not applied: see "Batches" above)."""

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
        ring: bool | None = None,
        ring_bytes: int | None = None,
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
        self._use_ring = _RING_OK if ring is None else ring
        # ~1 KiB per queue slot (a typical event is 250-600 bytes), within 1..64 MiB
        self._ring_bytes = ring_bytes or min(64 << 20, max(1 << 20, (capacity + RESERVE) * 1024))
        self._ring: Ring | None = None
        self._woken = 0  # the child's sleep epoch we last woke
        self._inflight: deque[Envelope] = deque()  # sent, not yet acknowledged, in seq order
        self._lock = threading.Lock()
        self._committed = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closing = False
        self._proc: Any = None
        self._ctl = -1  # the child's stdin (raw fd)
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
        self.fatal: BaseException | None = None

    # --- producer side ---------------------------------------------------------------------------

    def start(self) -> ProcessWriter:
        # a plain child interpreter (not multiprocessing): nothing of the parent's __main__ is re-imported,
        # and the configuration (the URL may carry a password) goes through the pipe, never argv
        ring = self._ring = Ring.create(self._ring_bytes) if self._use_ring else None
        # the child imports this very package, wherever it was imported from here (an installed copy, a
        # source checkout put on sys.path by a script)
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ledger.store.writer_process"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, bufsize=0, pass_fds=(ring.fd,) if ring is not None else (), env=env,
            )
        except BaseException:
            if ring is not None:
                ring.close()
            raise
        self._ctl = self._proc.stdin.fileno()
        self._from_child = self._proc.stdout
        config = [self._url, self.capacity, self.max_batch, *self._retry,
                  ring.fd if ring is not None else None, ring.size if ring is not None else 0]
        with contextlib.suppress(OSError):  # a child that already exited: told below, with its exit code
            _write_all(self._ctl, _frame(_enc.encode(config)))
        first: list[Any] = []

        def read_first() -> None:
            try:
                first.append(_dec.decode(_read_frame(self._from_child)))
            except (EOFError, OSError, msgspec.DecodeError):
                first.append(["exited"])

        reader = threading.Thread(target=read_first, daemon=True)
        reader.start()
        reader.join(self._start_timeout)
        if not first or first[0][0] != "ready":
            if not first:
                self._proc.kill()
            try:
                code = self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                code = self._proc.wait(5)
            self._release()
            if not first:
                raise WriterError(f"writer process did not start within {self._start_timeout:.0f}s")
            if first[0][0] == "exited":
                raise WriterError(f"writer process exited while starting (exit code {code}); its error is above")
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
        """Hand one envelope to the writer process; wait up to ``timeout`` s for room. False: full or gone."""
        with self._lock:
            if self.dead or self._closing:
                return False
            if not wait_for_room(self, self._inflight, self.capacity + (RESERVE if reserve else 0), timeout):
                return False
            try:
                data = codec.to_msgpack(env)
            except Exception as exc:  # noqa: BLE001 - stored as a RecorderFault under the same seq
                env, data = self._unencodable(env, exc)
            ring = self._ring
            try:
                if ring is None:
                    _write_all(self._ctl, _frame(_ENV + data))
                else:
                    if len(data) > ring.max_frame():
                        env, data = self._unencodable(env, ValueError(
                            f"{len(data)} bytes encoded, more than the writer ring's {ring.max_frame()}"))
                    if not ring.push(data) and not self._wait_ring(ring, data, timeout):
                        return False
                    ring.fence()
                    epoch = ring.asleep()
                    if epoch and epoch != self._woken:
                        self._woken = epoch
                        os.kill(self._proc.pid, _WAKE_SIGNAL)
            except (OSError, ValueError):
                self.dead = True
                return False
            self._inflight.append(env)
            self.enqueued_seq = env.seq
            return True

    def _unencodable(self, env: Envelope, exc: BaseException) -> tuple[Envelope, bytes]:
        env = fault_for(env, exc)
        self._fail(WriterError(f"unencodable event(s) stored as RecorderFault: {exc}"))
        return env, codec.to_msgpack(env)

    def _wait_ring(self, ring: Ring, data: bytes, timeout: float) -> bool:
        """With the lock held: the ring is full (the child is behind); the child frees room as it reads,
        before it acknowledges anything, so poll in short waits."""
        deadline = time.monotonic() + timeout
        while not ring.push(data):
            left = deadline - time.monotonic()
            if left <= 0 or self.dead or self._closing:
                return False
            self._not_full.wait(min(left, 0.005))
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
                _write_all(self._ctl, _frame(_CLOSE + _enc.encode(timeout)))
                if self._ring is not None and self._proc.returncode is None:  # not reaped: still our child
                    os.kill(self._proc.pid, _WAKE_SIGNAL)
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
        self._release()
        return self.committed_seq >= self.enqueued_seq

    def _release(self) -> None:
        for conn in (getattr(self._proc, "stdin", None), self._from_child):
            if conn is not None:
                conn.close()
        if self._ring is not None:
            self._ring.close()
            self._ring = None

    # --- acknowledgement thread -----------------------------------------------------------------------

    def _read_acks(self) -> None:
        conn = self._from_child
        while True:
            try:
                msg = _dec.decode(_read_frame(conn))
            except (EOFError, OSError, ValueError, msgspec.DecodeError):
                with self._lock:
                    died = not self.dead
                if died:
                    self._fail(WriterError("the writer process died; events in flight are counted as lost"))
                self._finish()
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
                    self.failing = False
                    self._committed.notify_all()
                    self._not_full.notify_all()
                for fn in self._listeners:
                    try:
                        fn(batch, ns)
                    except Exception:  # noqa: BLE001 - a listener never stops the writer
                        log.exception("commit listener failed")
            elif tag == "error":
                _tag, kind, text, failing, extra = msg
                exc = _remote_error(kind, text, extra)
                if isinstance(exc, (SeqConflict, StoreFileLost)):
                    self.fatal = exc
                self.failing = bool(failing)
                self._fail(exc)
            elif tag == "closed":
                # every commit was acknowledged before this message (one FIFO pipe): what is still in
                # flight is exactly what was not committed (the child gave up, or never read it)
                self._finish()
                return

    def _finish(self) -> None:
        with self._lock:
            self.lost += len(self._inflight)
            self._inflight.clear()
            self.dead = True
            self._committed.notify_all()
            self._not_full.notify_all()

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
