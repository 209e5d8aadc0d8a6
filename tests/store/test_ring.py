"""The shared-memory ring between the recorder and its writer process: frames come out in order and
whole, wrap-around included, and a full ring refuses a frame instead of overwriting unread ones."""

from __future__ import annotations

import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.store.ring import Ring


def pair(size: int) -> tuple[Ring, Ring]:
    producer = Ring.create(size)
    return producer, Ring(os.dup(producer.fd), size)


def test_frames_come_out_in_order_across_the_wrap() -> None:
    p, c = pair(64)
    try:
        got: list[bytes] = []
        sent = [bytes([i]) * (i % 23) for i in range(200)]
        for data in sent:
            if not p.push(data):
                got += c.pop_all()
                assert p.push(data)
        got += c.pop_all()
        assert got == sent
        assert not c.pending() and c.pop_all() == []
    finally:
        p.close()
        c.close()


def test_a_full_ring_refuses_and_keeps_what_is_unread() -> None:
    p, c = pair(32)
    try:
        assert p.push(b"a" * 10) and p.push(b"b" * 10)
        assert not p.push(b"c" * 10)  # 28 of 32 bytes used: refused, nothing overwritten
        assert c.pop_all() == [b"a" * 10, b"b" * 10]
        assert p.push(b"c" * 10)
        assert c.pop_all() == [b"c" * 10]
    finally:
        p.close()
        c.close()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(16, 200), frames=st.lists(st.binary(max_size=40), max_size=120),
       pops=st.lists(st.booleans(), max_size=120))
def test_any_interleaving_of_pushes_and_pops_delivers_every_frame_once_in_order(size, frames, pops) -> None:
    p, c = pair(size)
    try:
        got: list[bytes] = []
        accepted: list[bytes] = []
        for i, data in enumerate(frames):
            if i < len(pops) and pops[i]:
                got += c.pop_all()
            if p.push(data):
                accepted.append(data)
                continue
            got += c.pop_all()  # refused: after the reader caught up, a frame of up to half the ring fits
            if p.push(data):
                accepted.append(data)
            else:
                assert len(data) + 4 > size // 2
        got += c.pop_all()
        assert got == accepted
    finally:
        p.close()
        c.close()


def test_the_ring_is_shared_with_a_child_process() -> None:
    p = Ring.create(4096)
    try:
        for i in range(50):
            assert p.push(f"frame {i}".encode())
        code = (
            "import sys; from ledger.store.ring import Ring; r = Ring(int(sys.argv[1]), 4096); "
            "print('|'.join(f.decode() for f in r.pop_all()))"
        )
        out = subprocess.run([sys.executable, "-c", code, str(p.fd)], pass_fds=(p.fd,), capture_output=True,
                             text=True, check=True, timeout=60)
        assert out.stdout.strip().split("|") == [f"frame {i}" for i in range(50)]
        assert p.push(b"x" * 3000)  # the child's reads freed the room
    finally:
        p.close()
