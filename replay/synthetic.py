"""Seeded synthetic *recording sessions*: realistic IB order lifecycles, recorded as a live recorder would.

The order lifecycles (and their quirks: executions before statuses, ``.02`` corrections, duplicate
statuses / commissions, 202 before Cancelled, 10148 after a refused cancel, 201 + Inactive, whyHeld,
warnings followed by fills, late fills, IOC, modifies confirmed by openOrder, manual TWS orders,
completed orders with orderId 0...) come from :mod:`replay.strategies` (``TEMPLATES``). This module adds
what a recorder adds around them, through the very same :class:`~ledger.core.engine.Engine` and protocol
(see ``ledger/core/engine.py``):

* one recording session: session start, connect, reconciliation, the interleaved lifecycles, an
  occasional connectivity blip (1100 / 1102), session end;
* before each intent the governor's ``pre_check``; the intent and then its decision are recorded
  (``causation_id`` = the intent's id). A BLOCKed place is never "sent": the rest of that lifecycle
  is dropped. A BLOCKed modify makes the strategy cancel the order instead;
* the decisions the engine returns (circuit breakers) are recorded after their cause; an operator
  resumes a HALTED session after a while (a ``MANUAL_RESUME`` decision);
* event times: bursts (1-5 ms apart) and pauses (20-400 ms), so rate limits and breaker windows matter.

Everything is a function of ``(seed, n_orders, config)``: the same arguments give the same bytes. The
stream is generated lazily (at most ``max_open`` lifecycles in memory), so a 10M-event session
streams in flat memory. Source syntax for the replayer: ``synthetic:SEED[:N_ORDERS]``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from ledger.core import events as ev
from ledger.core.codec import to_json
from ledger.core.engine import Engine, event_id
from ledger.core.events import Envelope, Event
from ledger.core.governor_config import GovernorConfig
from ledger.core.session import derived_id
from ledger.store.sessionfile import FORMAT, VERSION, Header
from ledger.version import __version__
from replay.templates import CONTRACTS, TEMPLATES, Ids, RandomChooser

__all__ = ["DEFAULT_ORDERS", "MIX", "parse_synthetic", "synthetic_session", "write_session_stream"]

DEFAULT_ORDERS = 200
T0_NS = 1_700_000_000_000_000_000
_MS = 1_000_000

# Template mix (weights). Left out: "blocked" and "unconfirmed" carry hand-made governor decisions
# (here the governor decides), and never-acknowledged orders would pile up as open orders forever.
MIX: tuple[str, ...] = (
    ("fill",) * 10
    + ("cancel",) * 6
    + ("exec_first", "status_filled_first", "cancel_refused", "late_fill", "reject", "held", "warnings")
    + ("ioc", "modify", "manual", "completed_only", "fill", "cancel")
)

_INTENTS = (ev.PlaceOrder, ev.ModifyOrder, ev.CancelOrder)


def parse_synthetic(spec: str) -> tuple[int, int]:
    """``"synthetic:SEED[:N_ORDERS]"`` (or ``"SEED[:N]"``) -> (seed, n_orders)."""
    body = spec.removeprefix("synthetic:")
    parts = body.split(":")
    try:
        seed = int(parts[0])
        n = int(parts[1]) if len(parts) > 1 and parts[1] else DEFAULT_ORDERS
    except ValueError:
        raise ValueError(f"bad synthetic source {spec!r}: expected synthetic:SEED[:N_ORDERS]") from None
    if len(parts) > 2 or n < 0:
        raise ValueError(f"bad synthetic source {spec!r}: expected synthetic:SEED[:N_ORDERS]")
    return seed, n


class _Lane:
    __slots__ = ("events", "pos", "dead", "order_id", "client_id", "perm_id", "filled")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.pos = 0
        self.dead = False
        self.order_id = 0
        self.client_id = 0
        self.perm_id = 0
        self.filled = 0.0


def synthetic_session(
    seed: int,
    n_orders: int = DEFAULT_ORDERS,
    *,
    config: GovernorConfig | None = None,
    max_open: int = 20,
    session_id: str | None = None,
) -> Iterator[Envelope]:
    """One recording session of ``n_orders`` order lifecycles, decisions made by ``Engine(config)``."""
    c = RandomChooser(seed)
    sid = session_id or derived_id("synthetic", seed, n_orders)
    ids = Ids(client_id=1, account="DU123456", first_order_id=1)
    engine = Engine(config)
    state = {"seq": 0, "ns": T0_NS}
    out: list[Envelope] = []

    def tick() -> int:
        gap = c.integer(1, 5) if c.chance(40) else c.integer(20, 400)
        state["ns"] += gap * _MS
        return state["ns"]

    def emit(p: Event, ns: int, causation: str | None = None) -> Envelope:
        state["seq"] += 1
        env = ev.envelope(
            sid, state["seq"], p, recv_ns=ns, mono_ns=ns - T0_NS, source="synthetic", causation_id=causation
        )
        out.append(env)
        for d in engine.process(env):
            emit(d, ns, event_id(env))
        return env

    def intent(p: ev.PlaceOrder | ev.CancelOrder, ns: int) -> ev.GovernorDecision:
        d = engine.pre_check(p, ns)
        i_env = emit(p, ns)
        emit(d, ns, event_id(i_env))
        return d

    ns = tick()
    emit(
        ev.SessionStarted(
            library="synthetic",
            library_version=__version__,
            client_id=ids.client_id,
            account=ids.account,
            mode="simulation",
            config_hash=engine.config.digest()[:16],
            ibledger_version=__version__,
            note=f"synthetic:{seed}:{n_orders}",
        ),
        ns,
    )
    for p in (
        ev.Connected(host="127.0.0.1", port=7497, client_id=ids.client_id, server_version=176),
        ev.ManagedAccounts(accounts=ids.account),
        ev.NextValidId(order_id=ids.next_order_id),
        ev.ReconcileStarted(reason="connect"),
    ):
        emit(p, tick())
    sym, con, sec, _ = c.pick(CONTRACTS)
    for p in (
        ev.Position(account=ids.account, con_id=con, symbol=sym, sec_type=sec, position=float(c.integer(0, 3) * 100)),
        ev.PositionEnd(),
        ev.OpenOrderEnd(),
        ev.CompletedOrdersEnd(),
        ev.ExecDetailsEnd(req_id=1),
        ev.ReconcileEnded(ok=True, positions=1),
    ):
        emit(p, tick())
    yield from out
    out.clear()

    waiting = n_orders
    active: list[_Lane] = []
    halted_at = -1
    resume_after = 0
    while waiting or active:
        while waiting and len(active) < max_open:
            active.append(_Lane(TEMPLATES[c.pick(MIX)](c, ids)))
            waiting -= 1
        i = c.integer(0, len(active) - 1)
        lane = active[i]
        p = lane.events[lane.pos]
        lane.pos += 1
        if lane.pos >= len(lane.events):
            active[i] = active[-1]
            active.pop()
        if lane.dead or type(p) is ev.GovernorDecision:
            continue
        ns = tick()
        if isinstance(p, _INTENTS):
            if not lane.order_id:
                lane.order_id, lane.client_id = p.order_id, p.client_id
            d = intent(p, ns)  # type: ignore[arg-type]
            if d.decision == "BLOCK":
                lane.dead = True
                if type(p) is ev.ModifyOrder:  # the strategy gives up on the order: cancel it
                    intent(ev.CancelOrder(order_id=p.order_id, client_id=p.client_id), ns)
                    emit(
                        ev.OrderStatus(
                            order_id=p.order_id,
                            client_id=p.client_id,
                            perm_id=lane.perm_id,
                            status="Cancelled",
                            filled=lane.filled,
                            remaining=max(p.total_qty - lane.filled, 0.0),
                        ),
                        tick(),
                    )
        else:
            if type(p) is ev.OrderStatus and p.order_id == lane.order_id:
                lane.perm_id = p.perm_id or lane.perm_id
                lane.filled = p.filled
            emit(p, ns)
        # the operator looks at a halted session after a while and resumes it
        if engine.trading_state == "HALTED":
            if halted_at < 0:
                halted_at, resume_after = state["seq"], c.integer(30, 300)
            elif state["seq"] - halted_at >= resume_after:
                rns = tick()
                for d in engine.resume("operator resumed (synthetic session)", rns):
                    emit(d, rns)
                halted_at = -1
        yield from out
        out.clear()
    if c.chance(20):
        emit(ev.Error(req_id=-1, code=1100, message="Connectivity between IB and TWS has been lost."), tick())
        emit(ev.Error(req_id=-1, code=1102, message="Connectivity restored - data maintained."), tick())
    emit(ev.SessionEnded(reason="normal", events=state["seq"] + 1), tick())
    yield from out


_header_encoder = msgspec.json.Encoder()


def write_session_stream(
    path: str | Path, envs: Iterable[Envelope], on_event: Callable[[int], Any] | None = None
) -> int:
    """Write a one-session stream as a session file without holding it in memory (the header's count is
    only known at the end: the body goes to a side file first). Atomic: temp files + rename."""
    path = Path(path)
    body = path.with_name(path.name + ".body.tmp")
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    sid = ""
    try:
        with body.open("wb") as f:
            for env in envs:
                if not sid:
                    sid = env.session_id
                elif env.session_id != sid:
                    raise ValueError(f"a session file holds one session: got {env.session_id!r} after {sid!r}")
                f.write(to_json(env) + b"\n")
                n += 1
                if on_event is not None and n % 65536 == 0:
                    on_event(n)
        header = Header(format=FORMAT, version=VERSION, session_id=sid, events=n, ibledger_version=__version__)
        with tmp.open("wb") as out, body.open("rb") as f:
            out.write(_header_encoder.encode(header) + b"\n")
            shutil.copyfileobj(f, out, 1 << 20)
        tmp.replace(path)
    finally:
        body.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return n
