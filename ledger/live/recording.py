"""``ibledger record``: connect, record everything, stay connected, stop cleanly on SIGINT / SIGTERM.

:func:`run_recording` owns its own ``IB`` instance and event loop: it attaches a
:class:`~ledger.live.recorder.Recorder`, keeps the connection up with backoff and jitter
(:func:`ledger.ib.reconcile.keep_connected`; every connect and reconnect is reconciled by the recorder),
and on a stop signal disconnects, writes ``session_ended`` and commits everything before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from typing import Any

from msgspec import Struct

from ledger.ib.reconcile import keep_connected
from ledger.live.recorder import Recorder

log = logging.getLogger("ledger.live.recording")

__all__ = ["RecordingResult", "record_async", "run_recording"]


class RecordingResult(Struct, kw_only=True):
    session_id: str
    store: str  # the store URL, password redacted
    reason: str  # why it stopped: "SIGINT", "SIGTERM", "stop", "account mismatch: ...", "error: ..."
    events: int  # last seq recorded
    committed_seq: int  # last seq acknowledged by the store
    connects: int
    lost: int = 0
    fault: str = ""  # the recorder's fault, if any (then some events may be missing: see `lost`)

    @property
    def ok(self) -> bool:
        return not self.fault and self.committed_seq == self.events


def run_recording(*args: Any, switch_interval: float | None = None, **kwargs: Any) -> RecordingResult:
    """:func:`record_async` run to completion on its own event loop (same arguments). Blocks; run it in
    the main thread to get the signal handling. ``switch_interval``: ``sys.setswitchinterval`` for this
    process (default: untouched; the default writer commits in its own process, so no GIL hand-off is on
    the commit path)."""
    return asyncio.run(record_async(*args, switch_interval=switch_interval, **kwargs))


async def record_async(
    host: str,
    port: int,
    client_id: int,
    store_url: str,
    account: str | None = None,
    *,
    mode: str = "paper",
    config_hash: str = "",
    governor_config: Any = None,
    session_id: str | None = None,
    readonly: bool = False,
    timeout: float = 4.0,
    queue_size: int = 10_000,
    max_delay: float = 30.0,
    stop: threading.Event | asyncio.Event | None = None,
    handle_signals: bool = True,
    on_event: Callable[[Any, list, list], None] | None = None,
    on_state: Callable[[str, str], None] | None = None,
    on_ready: Callable[[Recorder], None] | None = None,
    switch_interval: float | None = None,
) -> RecordingResult:
    """Record until SIGINT/SIGTERM (or ``stop`` is set), then close the session cleanly.

    ``account``: when given, the server must report it (``managedAccounts``), else recording stops
    with reason ``"account mismatch: ..."``; it is also written into ``session_started``.
    ``on_event(env, transitions, decisions)`` is the recorder subscription (IB loop thread);
    ``on_state(state, detail)`` hears "connecting" / "connected" / "failed" / "disconnected";
    ``on_ready(recorder)`` runs once the recorder is attached (before the first connect).
    ``switch_interval``: see :class:`~ledger.live.recorder.Recorder` (not touched by default here).
    """
    from ledger.core.engine import Engine
    from ledger.ib.library import IB

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    reason = ["stop"]

    def finish(why: str) -> None:
        if not done.is_set():
            reason[0] = why
            done.set()

    ib = IB()
    engine = Engine(governor_config) if governor_config is not None else None
    rec = Recorder.attach(ib, store_url, engine=engine, session_id=session_id, config_hash=config_hash,
                          mode=mode, queue_size=queue_size, account=account or "", switch_interval=switch_interval)
    rec.on_fatal.append(lambda why: finish(f"fault: {why}"))  # seq conflict, store file lost: stop now
    try:
        if on_event is not None:
            rec.subscribe(on_event)
        if on_ready is not None:
            on_ready(rec)
    except BaseException:
        rec.close("error: on_ready failed")
        raise

    installed: list[int] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, finish, sig.name)
                installed.append(sig)

    def state(s: str, detail: str) -> None:
        if s == "connected":
            from ledger.ib.settings import live_login_problem

            problem = live_login_problem(mode, list(getattr(ib.wrapper, "accounts", []) or []), f"{host}:{port}")
            if problem is not None:
                log.error("%s: stopping", problem)
                finish(f"live login: {problem}")
        if s == "connected" and account:
            reported = list(getattr(ib.wrapper, "accounts", []) or [])
            if account not in reported:
                log.error("account %s is not among the accounts the server reports (%s): stopping",
                          account, ", ".join(reported) or "none")
                finish(f"account mismatch: {account} not in {','.join(reported) or 'none'}")
        if on_state is not None:
            on_state(s, detail)

    watcher: asyncio.Task | None = None
    if isinstance(stop, asyncio.Event):
        watcher = loop.create_task(_wait_async(stop, finish))
    elif stop is not None:
        watcher = loop.create_task(_wait_thread_event(stop, finish))

    stop_connecting = asyncio.Event()
    keeper = loop.create_task(
        keep_connected(ib, host, port, client_id, timeout=timeout, readonly=readonly, account=account or "",
                       max_delay=max_delay, stop=stop_connecting, on_state=state)
    )
    keeper.add_done_callback(lambda t: finish(_task_reason(t)) if not done.is_set() else None)
    try:
        await done.wait()
    finally:
        stop_connecting.set()
        keeper.cancel()
        if watcher is not None:
            watcher.cancel()
        with contextlib.suppress(BaseException):
            await keeper
        for sig in installed:
            loop.remove_signal_handler(sig)
        with contextlib.suppress(Exception):
            ib.disconnect()
        fault = ""
        try:
            rec.close(reason[0])
        except Exception as exc:  # noqa: BLE001 - reported in the result (and logged by the recorder)
            fault = f"{type(exc).__name__}: {exc}"
    return RecordingResult(
        session_id=rec.session_id,
        store=rec.store.url,
        reason=reason[0],
        events=rec.last_seq,
        committed_seq=rec.committed_seq,
        connects=rec.connects,
        lost=rec.lost,
        fault=fault,
    )


def _task_reason(task: asyncio.Task) -> str:
    if task.cancelled():
        return "stop"
    exc = task.exception()
    return f"error: {type(exc).__name__}: {exc}" if exc is not None else "stop"


async def _wait_async(ev: asyncio.Event, finish: Callable[[str], None]) -> None:
    await ev.wait()
    finish("stop")


async def _wait_thread_event(ev: threading.Event, finish: Callable[[str], None]) -> None:
    while not ev.is_set():
        await asyncio.sleep(0.05)
    finish("stop")
