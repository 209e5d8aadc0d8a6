"""Helpers for the simulator tests: record the client's raw wrapper callbacks, wait on the loop.

The client library is imported only through ``ledger.ib.library`` so the same tests run with ib_insync
and ib_async (``IBLEDGER_IB_LIB=ib_async``).
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ledger.ib.library import IB

ORDER_KINDS = ("open", "status", "exec", "comm", "error")


def _r(x: float) -> float:
    return round(float(x), 6)


class Recorder:
    """Wraps the bound wrapper methods on one IB instance; the library still processes every call.

    ``events`` holds normalized tuples; execIds are replaced by symbols in order of first appearance
    of their prefix (``A.01``, ``A.02`` is its correction, ``B.01`` the next execution), so
    expectations can be written from the scenario's meaning without knowing the simulator's ids.
    ``raw`` keeps (kind, args) for id checks.
    """

    def __init__(self, ib: Any) -> None:
        self.ib = ib
        self.events: list[tuple] = []
        self.raw: list[tuple[str, tuple]] = []
        self._bases: dict[str, str] = {}
        for method, kind in (
            ("openOrder", "open"),
            ("orderStatus", "status"),
            ("execDetails", "exec"),
            ("commissionReport", "comm"),
            ("error", "error"),
            ("completedOrder", "completed"),
            ("position", "position"),
        ):
            original = getattr(ib.wrapper, method)
            setattr(ib.wrapper, method, self._wrap(kind, original))

    def sym(self, exec_id: str) -> str:
        base, _, suffix = exec_id.rpartition(".")
        if base not in self._bases:
            self._bases[base] = chr(ord("A") + len(self._bases))
        return f"{self._bases[base]}.{suffix}"

    def _wrap(self, kind: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any) -> Any:
            self.raw.append((kind, args))
            self.events.append(self._normalize(kind, args))
            return original(*args)

        return recorded

    def _normalize(self, kind: str, a: tuple) -> tuple:
        if kind == "open":
            _order_id, _contract, order, state = a
            return ("open", state.status)
        if kind == "status":
            _oid, status, filled, remaining, avg, _perm, _parent, last, _cid, why = a[:10]
            return ("status", status, _r(filled), _r(remaining), _r(avg), _r(last), why)
        if kind == "exec":
            _req, _contract, ex = a
            return ("exec", self.sym(ex.execId), _r(ex.shares), _r(ex.price), _r(ex.cumQty), _r(ex.avgPrice))
        if kind == "comm":
            (report,) = a
            return ("comm", self.sym(report.execId), _r(report.commission))
        if kind == "error":
            return ("error", a[1])
        if kind == "completed":
            contract, order, state = a
            return ("completed", contract.symbol, order.orderId, state.status, _r(order.filledQuantity))
        if kind == "position":
            account, contract, qty, avg_cost = a
            return ("position", contract.symbol, _r(qty), _r(avg_cost))
        return (kind, *a)

    def of(self, *kinds: str) -> list[tuple]:
        kinds = kinds or ORDER_KINDS
        return [e for e in self.events if e[0] in kinds]

    def raw_of(self, kind: str) -> list[tuple]:
        return [args for k, args in self.raw if k == kind]

    def clear(self) -> None:
        self.events.clear()
        self.raw.clear()


def wait_until(ib: Any, predicate: Callable[[], bool], timeout: float = 2.0, *, across_drops: bool = False) -> bool:
    """Run the client's loop until ``predicate()`` holds (True) or the timeout passes (False).

    A dropped connection ends the wait (the server dropped us as scripted; what arrived is recorded),
    unless ``across_drops``: reconnect tests wait across it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        try:
            ib.sleep(0.005)
        except ConnectionError:
            if not across_drops:
                break
    return predicate()


def wait_events(ib: Any, rec: Recorder, count: int, timeout: float = 2.5, settle: float = 0.06) -> list[tuple]:
    """Wait for ``count`` order events, then a little longer to catch any unexpected extra ones."""
    wait_until(ib, lambda: len(rec.of()) >= count, timeout)
    if ib.isConnected():
        with contextlib.suppress(ConnectionError):
            ib.sleep(settle)
    return rec.of()


def connect(port: int, client_id: int = 1, timeout: float = 2.0) -> Any:
    ib = IB()
    ib.connect("127.0.0.1", port, clientId=client_id, timeout=timeout)
    return ib


@contextlib.contextmanager
def connected(port: int, client_id: int = 1, timeout: float = 2.0) -> Iterator[Any]:
    """A client connected for the ``with`` block, disconnected after it whatever the test did."""
    ib = connect(port, client_id, timeout)
    try:
        yield ib
    finally:
        ib.disconnect()


def advance_until_done(ib: Any, sim: Any, trades: Iterable[Any], *, steps: int = 5000, timeout: float = 5.0) -> bool:
    """Move the simulated clock 5 s at a time (at most ``steps`` times) until every trade is done, then
    give the client ``timeout`` seconds to see it; True when it did. Resting orders (a bracket's
    children) only fill or cancel as the market moves, and the market moves only with the clock."""
    trades = tuple(trades)
    for _ in range(steps):
        if all(t.isDone() for t in trades):
            break
        sim.advance(5)
        ib.sleep(0)
    return wait_until(ib, lambda: all(t.isDone() for t in trades), timeout=timeout)


def ibledger_command() -> list[str]:
    """The ``ibledger`` entry point of this interpreter's environment (or the module, when not installed)."""
    exe = Path(sys.executable).with_name("ibledger")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "from ledger.cli import main; main()"]


@contextlib.contextmanager
def simulate_cli(*args: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``ibledger simulate --port 0 *args`` in a child process: yields it and the port it says it listens
    on; a child the test did not stop is killed afterwards."""
    proc = subprocess.Popen(
        [*ibledger_command(), "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line + proc.stderr.read()  # type: ignore[union-attr]
        yield proc, int(m.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
