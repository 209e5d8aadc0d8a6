"""How the recorder hands envelopes to the store's writer: seqs, the bounded queue, the wait for room, losses.

Everything the recorder does with a writer (:mod:`ledger.store.writer_process` by default, the thread of
:mod:`ledger.store.writer` where a child cannot reopen the store or with ``writer="thread"``) sits here,
so tuning the writers changes one small module: numbering each envelope (a seq is consumed only when the
envelope is queued, so the stream stays gapless whatever is lost), queueing it (the reserve slots for
faults, decisions and the session end), waiting for room while the writer makes progress and within the
burst's budget, counting what could not be queued, waiting for commits and closing.

The IB loop must never freeze for long whatever the store does: a callback waits at most
``full_block_s`` for room, all waiting in one loss burst adds up to at most ``max_block_s``, and a writer
that is failing (disk full, database down) or dead is not waited for at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from ledger.core import events as ev
from ledger.core.events import Envelope, envelope
from ledger.live.journal import LossCount
from ledger.store import EventStore
from ledger.store.writer import Writer as ThreadWriter
from ledger.store.writer_process import ProcessWriter, make_writer

log = logging.getLogger("ledger.live.recorder")

__all__ = ["WRITERS", "Handoff", "Writer"]

#: the store writer a recorder commits through: a thread of this process or a child process (one interface)
Writer = ThreadWriter | ProcessWriter

#: where commits run: "auto" (a child process fed through shared memory when the store can be reopened by
#: one, else a thread), a child "process", or a "thread" of this process
WRITERS = ("auto", "thread", "process")

#: ``on_lost(kind, burst_started)``: one event of ``kind`` could not be queued (already counted)
LostListener = Callable[[str, bool], None]


class Handoff:
    """The recorder's side of the writer queue for one session (call with the recorder's lock held)."""

    def __init__(
        self,
        store: EventStore,
        session_id: str,
        *,
        writer: str = "auto",
        queue_size: int = 10_000,
        max_batch: int = 100,
        full_block_s: float = 1.0,
        max_block_s: float = 5.0,
        on_error: Callable[[BaseException], None],
        on_lost: LostListener,
    ) -> None:
        self.session_id = session_id
        self.full_block_s = full_block_s
        self.max_block_s = max_block_s  # total IB-loop blocking allowed per loss burst
        self.blocked_s = 0.0  # IB-loop time spent waiting for queue room in the current burst
        self.seq = 0  # the highest seq queued
        self.losses = LossCount()  # events lost (queue full, or given up by the writer): counted, never silent
        self.stopped = ""  # why the session stopped for good; "" = still queueing
        self._on_lost = on_lost
        self._full_warned_at = 0.0
        self.writer = make_writer(
            writer, store, capacity=queue_size, max_batch=max_batch, on_error=on_error,
            name=f"ibledger-writer-{session_id[:8]}",
        )

    def start(self) -> None:
        self.writer.start()

    def add_listener(self, callback: Callable[[Sequence[Envelope], int], None]) -> None:
        """``callback(batch, commit_mono_ns)`` in the writer after each commit."""
        self.writer.add_listener(callback)

    @property
    def committed_seq(self) -> int:
        return self.writer.committed_seq

    @property
    def enqueued_seq(self) -> int:
        return self.writer.enqueued_seq

    def has_room(self) -> bool:
        """The store takes events again (room in the queue, the writer not failing): a burst is over."""
        return self.writer.free() > 0 and not self.writer.failing

    def end_burst(self) -> None:
        """The losses of a burst were reported: the next burst gets a new waiting budget."""
        self.losses.burst = False
        self.blocked_s = 0.0

    def put(
        self, payload: ev.Event, source: ev.Source, correlation_id: str | None, causation_id: str | None,
        recv_ns: int, mono_ns: int, reserve: bool = False,
    ) -> Envelope | None:
        """Number ``payload`` and queue it; None when it could not be queued (counted as lost, ``on_lost``
        told; the seq is not consumed)."""
        if self.stopped:  # the session is over for good: count, do not retry, do not report again
            self.losses.count(ev.kind_of(payload), report=False)
            return None
        seq = self.seq + 1
        env = envelope(self.session_id, seq, payload, recv_ns=recv_ns, mono_ns=mono_ns, source=source,
                       correlation_id=correlation_id, causation_id=causation_id)
        if not self.writer.put(env, 0.0, reserve=reserve) and not self._wait_for_room(env, reserve):
            kind = ev.kind_of(payload)
            self._on_lost(kind, self.losses.count(kind))
            return None
        self.seq = seq
        return env

    def _wait_for_room(self, env: Envelope, reserve: bool) -> bool:
        """Wait for room only while the writer is making progress (behind, not failing: a full disk or a
        dead database will not drain in a second) and within the burst's total budget."""
        w = self.writer
        budget = min(self.full_block_s, self.max_block_s - self.blocked_s)
        if w.dead or w.failing or budget <= 0:
            return False
        now = time.monotonic()
        if now - self._full_warned_at > 5.0:
            self._full_warned_at = now
            log.warning(
                "recorder queue FULL (%d events waiting, writer behind): blocking the IB loop up to "
                "%.1fs (%.1fs left of %.1fs per burst) so nothing is lost", w.capacity - w.free(),
                budget, self.max_block_s - self.blocked_s, self.max_block_s,
            )
        ok = w.put(env, budget, reserve=reserve)
        self.blocked_s += time.monotonic() - now
        return bool(ok)

    def wait_committed(self, target: int, timeout: float) -> bool:
        """Wait until seq ``target`` (e.g. the ``seq`` at the time of asking) is committed."""
        return bool(self.writer.wait_committed(target, timeout))

    def close(self, timeout: float) -> bool:
        """Stop the writer after it committed what it can within ``timeout``; what it gave up on is
        counted as lost. True when everything queued was committed."""
        complete = self.writer.close(timeout)
        self.losses.total += self.writer.lost
        return bool(complete)
