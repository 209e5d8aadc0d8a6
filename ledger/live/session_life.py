"""How a recording session begins and ends: ``session_started``, the governor's carry-over, ``session_ended``.

Kept apart from the recorder's hot path because all run once per session and all only read: the
payloads are built from what the connected client reports and what was recorded (nothing is recorded
here), and the carry-over folds the account's previous session into the engine, whose decisions are
facts already and so are not recorded again. A session without ``session_ended`` is a crashed one.
"""

from __future__ import annotations

import logging
from typing import Any

from ledger.core import events as ev
from ledger.core.governor_config import dump_config
from ledger.store import EventStore
from ledger.version import __version__ as IBLEDGER_VERSION

log = logging.getLogger(__name__)


def library() -> tuple[str, str]:
    """Name and version of the IB client library in use (imported late: only ledger.ib loads it)."""
    from ledger.ib.library import LIBRARY_NAME, LIBRARY_VERSION

    return LIBRARY_NAME, LIBRARY_VERSION


def started_payload(client: Any, *, account: str, config_hash: str, mode: str, engine_config: Any) -> ev.SessionStarted:
    """The first fact of a session. A disconnected client (attached before connect) gives no id, host,
    port or server version: zeros, never what it was last given, so the fact says what was true."""
    connected = bool(client.isConnected())
    try:
        server_version = int(client.serverVersion()) if connected else 0
    except Exception:  # noqa: BLE001 - a library that cannot tell still lets the session start
        server_version = 0
    name, version = library()
    return ev.SessionStarted(
        library=name,
        library_version=version,
        client_id=int(getattr(client, "clientId", 0) or 0) if connected else 0,
        host=str(getattr(client, "host", "") or "") if connected else "",
        port=max(int(getattr(client, "port", 0) or 0), 0) if connected else 0,
        account=account,
        server_version=server_version,
        config_hash=config_hash,
        ibledger_version=IBLEDGER_VERSION,
        mode=mode,
        governor_config=dump_config(engine_config),
    )


def carry_over(store: EventStore, engine: Any, *, session_id: str, account: str, look_back: int = 50) -> str | None:
    """Fold the account's previous recording session into ``engine`` so the trading state (a halt stays
    a halt: ``CARRIED_OVER``) and the breaker windows carry over. Only the latest earlier session of the
    same account among the last ``look_back`` is read. Returns its id, or None when there is none or it
    cannot be read (then the governor starts afresh, with its configured initial state)."""
    try:
        for info in reversed(store.sessions()[-look_back:]):
            if info.session_id == session_id or not info.has_start:
                continue
            first = next(iter(store.read_session(info.session_id)), None)
            p = first.payload if first is not None else None
            if not isinstance(p, ev.SessionStarted) or p.account != account:
                continue
            last_state = None
            for env in store.read_session(info.session_id):
                engine.step(env)
                if type(env.payload) is ev.GovernorDecision:
                    last_state = env.payload.trading_state
            if last_state is not None:
                # the state it ended in, even where it was derived from events of still earlier sessions
                engine.governor.carry_state(last_state)
            log.info("governor state carried over from session %s (account %s): %s",
                     info.session_id, account, engine.trading_state)
            return info.session_id
    except Exception:  # noqa: BLE001 - a new session still starts, with the configured initial state
        log.exception("could not read the previous session of account %s: the governor starts afresh", account)
    return None


def ended_payload(reason: str, last_seq: int) -> ev.SessionEnded:
    """The last fact of a session; ``events`` counts it too (it takes seq ``last_seq + 1``)."""
    return ev.SessionEnded(reason=reason, events=last_seq + 1)
