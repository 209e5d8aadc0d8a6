"""A single-producer, single-consumer byte ring in memory shared with the writer process.

Why: handing each event to the writer process through a pipe costs one ``write`` system call per event
on the IB loop thread, and each one wakes the child (a context switch on a small machine): about 13 us
per event measured here, against under 2 us to copy the encoded event into shared memory. With the ring
the loop thread copies the frame and publishes the new head; it makes a system call (a wake signal) only
when the child has said it is going to sleep, at most once per sleep.

Layout: a 64-byte header -- ``head`` (bytes ever written, producer only), ``tail`` (bytes ever consumed,
consumer only), ``sleep`` (an epoch counter the consumer makes odd before it sleeps and even when it
wakes) -- then ``size`` data bytes. A frame is a native ``uint32`` length and that many bytes, never
split at the end of the buffer: when it does not fit there, the producer writes the ``SKIP`` marker (or
leaves fewer than 4 bytes) and the frame starts again at offset 0.

Ordering: the producer writes the frame, then ``head``; the consumer reads ``head``, then the frames
below it, then writes ``tail``. That is safe where stores are seen in program order by other cores
(x86-64, "TSO"): :data:`SUPPORTED` says whether this machine is one; elsewhere the writer process sends
frames through its pipe instead. The sleep handshake (producer: publish head, then read ``sleep``;
consumer: make ``sleep`` odd, then read ``head``) needs a full barrier between the store and the load
on each side: :meth:`Ring.fence` (an uncontended lock round trip, i.e. an atomic read-modify-write); the
consumer's sleep also has a short timeout, so even a missed wake costs milliseconds, never a stall.
"""

from __future__ import annotations

import mmap
import os
import platform
import struct
import tempfile
import threading

__all__ = ["Ring", "SUPPORTED"]

SUPPORTED = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

_HEADER = 64
_HEAD, _TAIL, _SLEEP = 0, 8, 16
_U64 = struct.Struct("@Q")  # native: one aligned 8-byte copy, never torn on x86-64
_U32 = struct.Struct("@I")
SKIP = 0xFFFFFFFF


class Ring:
    """One side of the ring (the producer in the recorder's process, the consumer in the writer's)."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self._mm = mmap.mmap(fd, _HEADER + size)
        self._view = memoryview(self._mm)
        self._data = self._view[_HEADER:]
        self._fence = threading.Lock()
        # each side keeps its own copy of the counter it owns (the shared one is only ever written)
        self._head = _U64.unpack_from(self._mm, _HEAD)[0]
        self._tail = _U64.unpack_from(self._mm, _TAIL)[0]

    @classmethod
    def create(cls, size: int) -> Ring:
        """A new zeroed ring in an anonymous file (memfd on Linux), whose fd the child inherits."""
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("ibledger-ring", 0)  # no name in any file system, freed with the last fd
        else:  # pragma: no cover - other POSIX systems
            fd, path = tempfile.mkstemp(prefix="ibledger-ring-")
            os.unlink(path)
        os.ftruncate(fd, _HEADER + size)
        return cls(fd, size)

    def fence(self) -> None:
        """A full memory barrier (see the module docstring)."""
        self._fence.acquire()
        self._fence.release()

    # --- producer ---------------------------------------------------------------------------------

    def push(self, data: bytes) -> bool:
        """Copy one frame in and publish it; False when there is no room (nothing written)."""
        n = len(data)
        size = self.size
        head = self._head
        at = head % size
        room_to_end = size - at
        need = 4 + n
        pad = room_to_end if room_to_end < need else 0
        tail = _U64.unpack_from(self._mm, _TAIL)[0]
        if head + pad + need - tail > size:
            return False
        buf = self._data
        if pad:
            if pad >= 4:
                _U32.pack_into(buf, at, SKIP)
            at = 0
        _U32.pack_into(buf, at, n)
        buf[at + 4 : at + 4 + n] = data
        self._head = head = head + pad + need
        _U64.pack_into(self._mm, _HEAD, head)
        return True

    def asleep(self) -> int:
        """The consumer's sleep epoch when it is asleep (odd), else 0. Call after :meth:`fence`."""
        epoch: int = _U64.unpack_from(self._mm, _SLEEP)[0]
        return epoch if epoch & 1 else 0

    def max_frame(self) -> int:
        return self.size // 2 - 4

    # --- consumer ---------------------------------------------------------------------------------

    def pending(self) -> bool:
        return _U64.unpack_from(self._mm, _HEAD)[0] != self._tail

    def pop_all(self) -> list[bytes]:
        """Every frame published so far, in order; frees their room."""
        head = _U64.unpack_from(self._mm, _HEAD)[0]
        tail = self._tail
        if head == tail:
            return []
        out = []
        size = self.size
        buf = self._data
        while tail < head:
            at = tail % size
            if size - at < 4:
                tail += size - at
                continue
            n = _U32.unpack_from(buf, at)[0]
            if n == SKIP:
                tail += size - at
                continue
            out.append(bytes(buf[at + 4 : at + 4 + n]))
            tail += 4 + n
        self._tail = tail
        _U64.pack_into(self._mm, _TAIL, tail)
        return out

    def set_asleep(self, asleep: bool) -> None:
        epoch = _U64.unpack_from(self._mm, _SLEEP)[0]
        if bool(epoch & 1) != asleep:
            _U64.pack_into(self._mm, _SLEEP, epoch + 1)

    def close(self) -> None:
        self._data.release()
        self._view.release()
        self._mm.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
