"""The recording session's connection state: when ``session_started`` is written, and how ``connected``
and ``disconnected`` follow it.

A state machine of its own because these rules decide what the first lines of every session say, and
they depend on when the recorder was attached:

* ``session_started`` is written once, before anything else: on the first callback, on attach to a
  client that is already connected, or on a disconnect of a client that connected before any callback.
* The handshake's ``connectAck`` arrives before ``managedAccounts``, the message that names the account.
  Before the session started, the ack is held (*pending*); the next message starts the session, and
  ``session_started`` and then ``connected`` are written with the handshake's stamp.
* ``connected`` and ``disconnected`` alternate: a disconnect with no connection open records nothing.
* A close by the server gives the client's last ``apiError`` as its reason (the libraries report a
  reset by the peer only there).
* Every connection after the first is a reconnect for the reconciler.

Locking and stamping stay with the recorder, which calls every method here under its lock; what is
to be recorded goes back through the callables given at construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ledger.core import events as ev

#: ``start(accounts, stamp)``: write ``session_started`` (``stamp``: the held handshake's, or None for now)
Start = Callable[[Sequence[str] | None, tuple[int, int] | None], None]
#: ``record_connected(payload, recv_ns, mono_ns)``: write ``connected`` with the handshake's stamp
RecordConnected = Callable[[ev.Connected, int, int], None]


class ConnectionState:
    """Started or not, connection open or not, how many connections, the held handshake, the last
    ``apiError``: see the module docstring for the rules."""

    def __init__(
        self,
        *,
        start: Start,
        record_connected: RecordConnected,
        record: Callable[[ev.Event], Any],
        reconciler: Any,
        client_connected: Callable[[], bool],
    ) -> None:
        self._start = start
        self._record_connected = record_connected
        self._record = record
        self._reconciler = reconciler
        self._client_connected = client_connected
        self.started = False
        self.open = False  # a ``connected`` is recorded and no ``disconnected`` since
        self.connects = 0
        self.pending: tuple[ev.Connected, int, int] | None = None  # a handshake held until the session starts
        self.last_api_error = ""

    def ensure_started(self, accounts: Sequence[str] | None = None) -> None:
        """Write ``session_started`` unless it is written; then a held handshake's ``connected``."""
        if self.started:
            return
        self.started = True
        pending, self.pending = self.pending, None
        self._start(accounts, (pending[1], pending[2]) if pending else None)
        if pending is not None:
            self.connected(*pending, sync=True)

    def acknowledged(self, payload: ev.Connected, recv_ns: int, mono_ns: int) -> None:
        """The handshake completed: held until the session starts, recorded at once after that."""
        if not self.started:
            self.pending = (payload, recv_ns, mono_ns)
        else:
            self.connected(payload, recv_ns, mono_ns, sync=True)

    def connected(self, payload: ev.Connected, recv_ns: int, mono_ns: int, *, sync: bool) -> None:
        """Record ``connected``. ``sync``: the client is synchronizing now, so the reconciler learns of
        it; False when attached to a client that connected earlier (the recorder reconciles then)."""
        self._record_connected(payload, recv_ns, mono_ns)
        self.open = True
        self.connects += 1
        if sync:
            self._reconciler.on_connect(reconnect=self.connects > 1)

    def api_error(self, message: str) -> None:
        self.last_api_error = message

    def closed_by_server(self) -> None:
        self.disconnected(self.last_api_error or "connection closed by the server")

    def disconnected(self, reason: str) -> None:
        """Record ``disconnected`` once per open connection (starting the session first if the client
        connected before anything was recorded)."""
        if self.pending is not None or (not self.started and self._client_connected()):
            self.ensure_started()
        if not self.open:
            return
        self.open = False
        self._reconciler.on_disconnect()
        self._record(ev.Disconnected(reason=reason))
        self.last_api_error = ""
