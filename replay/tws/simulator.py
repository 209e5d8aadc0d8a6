"""A TWS stand-in on a real socket: the unmodified ib_insync / ib_async client connects to it.

``Simulator`` runs an asyncio server (in a background thread with its own loop via ``start()``/``stop()``
or a ``with`` block, or on the caller's loop via ``start_async()``/``stop_async()``). Each new order is
driven by a scenario (``replay.tws.scenarios``); the truth lives in ``replay.tws.broker.Broker`` and survives
client disconnects. Messages about an order go to the connection(s) of the clientId that placed it
(manual TWS orders belong to clientId 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from replay.tws import contracts as C
from replay.tws import protocol as P
from replay.tws import requests as R
from replay.tws.account import AccountService
from replay.tws.broker import Broker, BrokerOrder, Execution
from replay.tws.catalogue import Catalogue
from replay.tws.feeds import Feeds
from replay.tws.market import Market
from replay.tws.matching import order_extras
from replay.tws.paper import Paper
from replay.tws.scenarios import (
    BUILTIN_DIR,
    DEFAULT_ON_CANCEL,
    Scenario,
    ScenarioBook,
    Step,
    default_on_modify,
)

log = logging.getLogger("replay.tws.simulator")

ERROR_TEXT = {
    103: "Duplicate order id",
    104: "Can't modify a filled order.",
    110: "The price does not conform to the minimum price variation for this contract.",
    135: "Can't find order with id =",
    161: "Cancel attempted when order is not in a cancellable state.",
    201: "Order rejected - reason:",
    202: "Order Canceled - reason:",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    399: "Order Message:\nWarning: your order will not be placed at the exchange until 2024-01-02 09:30:00 US/Eastern.",
    404: "Order held while securities are located.",
    10147: "OrderId {order_id} that needs to be cancelled is not found.",
    10148: "OrderId {order_id} that needs to be cancelled cannot be cancelled, state: {status}.",
    10349: "Order TIF was set to DAY based on order preset.",
}


SEEDED_PORTS = (20_000, 30_000)  # below Linux's ephemeral range, so no outgoing connection holds one


def seeded_ports(seed: int, n: int = 64) -> list[int]:
    """The ports a simulator with ``port_seed=seed`` tries, in order (the first free one is used)."""
    lo, hi = SEEDED_PORTS
    base = zlib.crc32(f"port:{seed}".encode()) % (hi - lo)
    return [lo + (base + i) % (hi - lo) for i in range(n)]


def error_text(code: int, order_id: int = 0, status: str = "") -> str:
    text = ERROR_TEXT.get(code, f"Error {code}")
    return text.format(order_id=order_id, status=status)


@dataclass(eq=False)
class _Conn:
    """One client connection."""

    writer: asyncio.StreamWriter
    peer: str
    number: int
    server_version: int = 0
    client_id: int | None = None
    positions_subscribed: bool = False
    auto_bind: bool = False
    closed: bool = False
    #: this connection's own copy of the recorded session (``--session``), handed out at START_API
    playback: Any = None

    def send(self, fields: P.Fields, wire_log: deque | None = None) -> None:
        if self.closed or self.writer.is_closing():
            return
        self.writer.write(P.frame(fields))
        if wire_log is not None:
            wire_log.append(("out", self.client_id, tuple(P.fmt(f) for f in fields)))


@dataclass(eq=False)
class _Run:
    """A scenario running for one order."""

    order: BrokerOrder
    scenario: Scenario
    exec_bases: dict[str, str] = field(default_factory=dict)
    exec_count: int = 0
    last_exec: str = ""
    tasks: list[asyncio.Task] = field(default_factory=list)
    main: asyncio.Task | None = None
    cancelling: asyncio.Task | None = None


class Simulator:
    """The TWS stand-in. ``port=0`` binds a free port; read ``.port`` after ``start()``."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        scenarios_dir: str | Path | Sequence[str | Path] | None = None,
        trusted_ips: Iterable[str] = ("127.0.0.1",),
        accounts: Iterable[str] = ("DU1234567",),
        *,
        scenarios: Iterable[Scenario] = (),
        time_scale: float = 1.0,
        server_version: int = P.SERVER_VERSION,
        master_client_id: int = 0,
        broker: Broker | None = None,
        playback: Any = None,
        catalogue: Catalogue | None = None,
        seed: int | None = None,
        market_speed: float = 0.0,
        bars: dict[str, list[tuple[int, float, float, float, float, float]]] | None = None,
        slippage_ticks: int = 0,
        port_seed: int | None = None,
        market_seed: int | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        #: with ``port=0``: bind the first free port of a sequence fixed by this seed instead of any free
        #: port, so a recording of the run (which names the port it connected to) is the same every time
        self.port_seed = port_seed
        self.trusted_ips = frozenset(trusted_ips)
        self.accounts = tuple(accounts) or ("DU1234567",)
        #: None keeps the historical id bases (fixtures); a number gives per-run permId/execId bases
        self.seed = seed
        self.broker = broker or Broker(self.accounts, seed=seed)
        #: simulated seconds per wall second the market clock runs at; 0: it moves only via ``advance``
        self.market_speed = market_speed
        if scenarios_dir is None:
            dirs: list[str | Path] = [BUILTIN_DIR]
        elif isinstance(scenarios_dir, str | Path):
            dirs = [scenarios_dir]
        else:
            dirs = list(scenarios_dir)
        self.book = ScenarioBook.from_dirs(dirs)
        for s in scenarios:
            self.book.add(s, replace_existing=True)
        self.time_scale = time_scale
        self.server_version = server_version
        self.master_client_id = master_client_id
        #: a ``replay.tws.wire_replay.Playback``: recorded orders scripted onto new orders first
        self.playback = playback
        self.wire_log: deque[tuple[str, int | None, tuple[str, ...]]] = deque(maxlen=50_000)
        self.refused_peers: list[str] = []
        self._conns: list[_Conn] = []
        self._conn_counter = 0
        self._runs: dict[int, _Run] = {}  # permId -> run
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self._background: set[asyncio.Task] = set()
        #: message id -> handler(conn, raw fields) for requests served outside the order flow
        self._handlers: dict[int, Callable[[_Conn, list[str]], None]] = {}
        #: the instruments reqContractDetails & co. answer from; orders on them echo their definition
        self.catalogue = catalogue or Catalogue()
        self.broker.catalogue = self.catalogue
        # the price paths follow ``seed`` unless ``market_seed`` fixes them apart from the id bases (the demo:
        # the same market every run, fresh permIds and execIds every run)
        mseed = market_seed if market_seed is not None else (1 if seed is None else seed)
        self.market = Market(seed=mseed, anchor=self.broker.clock.epoch(), bars=bars)
        self.feeds = Feeds(self.catalogue, self.market, self.broker.clock, lambda c, f: c.send(f, self.wire_log))
        fd = self.feeds
        #: default-scenario orders on catalogued contracts work against the market here
        self.paper = Paper(self, slippage_ticks=slippage_ticks)
        #: account values, portfolio, summary and P&L computed from the broker's truth
        self.account = AccountService(self)
        acct = self.account
        self._handlers.update(
            {
                P.In.REQ_CONTRACT_DETAILS: lambda c, f: self._reply(
                    c, C.contract_details(self.catalogue, f, c.server_version)
                ),
                81: lambda c, f: self._reply(c, C.matching_symbols(self.catalogue, f)),
                78: lambda c, f: self._reply(c, C.sec_def_opt_params(self.catalogue, f, c.server_version)),
                91: lambda c, f: self._reply(c, C.market_rule(f)),
                P.In.REQ_MKT_DATA: fd.mkt_data,
                2: lambda c, f: fd.cancel(c, f, 2),
                P.In.REQ_MARKET_DATA_TYPE: fd.market_data_type,
                20: fd.historical_data,
                25: lambda c, f: fd.cancel(c, f, 2),
                87: fd.head_timestamp,
                90: lambda c, f: fd.cancel(c, f, 1),
                50: fd.real_time_bars,
                51: lambda c, f: fd.cancel(c, f, 2),
                74: acct.positions_multi,
                92: acct.pnl,
                93: acct.cancel_pnl,
                94: acct.pnl_single,
                95: acct.cancel_pnl,
            }
        )

    # ================================================================== lifecycle

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    async def start_async(self) -> None:
        """Start serving on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._server = await self._listen()
        self._port = self._server.sockets[0].getsockname()[1]
        log.info("simulator listening on %s:%s", self.host, self._port)
        if self.market_speed > 0:
            self._spawn(self._pump())

    async def _listen(self) -> asyncio.AbstractServer:
        if self._requested_port or self.port_seed is None:
            return await asyncio.start_server(self._on_accept, self.host, self._requested_port)
        last: OSError | None = None
        for port in seeded_ports(self.port_seed):
            try:
                return await asyncio.start_server(self._on_accept, self.host, port)
            except OSError as exc:  # taken by another process: the next one of the same sequence
                if exc.errno != errno.EADDRINUSE:
                    raise
                last = exc
        assert last is not None
        raise last

    async def stop_async(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self._conns):
            self._close(conn, abort=True)
        tasks = [t for run in self._runs.values() for t in run.tasks if not t.done()]
        tasks += [t for t in self._background if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    def start(self, timeout: float = 5.0) -> Simulator:
        """Start in a background thread with its own event loop; returns once listening."""
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._thread = threading.Thread(target=main, name="tws-simulator", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("simulator did not start")
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self, timeout: float = 5.0) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self.stop_async(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _call(self, fn: Callable[..., Any], *args: Any, timeout: float = 5.0, **kwargs: Any) -> Any:
        """Run ``fn`` on the simulator's loop (directly when already there) and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator not started")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return fn(*args, **kwargs)

        async def call() -> Any:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout)

    # ================================================================== the market clock

    async def _pump(self) -> None:
        """Run the market clock at ``market_speed`` simulated seconds per wall second."""
        interval = 1.0 / self.market_speed
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += interval
            await asyncio.sleep(max(due - loop.time(), 0.0))
            self._advance(1)

    def _advance(self, seconds: int) -> int:
        sent = 0
        for _ in range(seconds):
            with self.broker.lock:
                self.broker.clock.tick(1)
            sent += self.feeds.step()
            self.paper.step()
            self.account.step()
        return sent

    def advance(self, seconds: int = 1) -> int:
        """Move the market clock ``seconds`` forward (one second at a time); returns messages pushed."""
        return self._call(self._advance, int(seconds))

    # ================================================================== public hooks

    def playbacks(self) -> dict[int, Any]:
        """clientId -> that connection's copy of the recorded session."""
        return self._call(
            lambda: {c.client_id: c.playback for c in self._conns if c.client_id is not None and c.playback}
        )

    def connected_clients(self) -> list[int]:
        return self._call(lambda: sorted(c.client_id for c in self._conns if c.client_id is not None))

    def drop_connections(self, client_id: int | None = None) -> int:
        """Close client connections now (all, or one clientId's); the broker keeps running."""
        return self._call(self._drop, client_id)

    drop_all_connections = drop_connections

    def inject_manual_order(
        self,
        symbol: str,
        action: str = "BUY",
        quantity: float = 100,
        price: float = 100.0,
        *,
        fill: bool = True,
        commission: float = 1.0,
    ) -> int:
        """A manual TWS order (orderId 0, permId only; fills carry orderId 2147483647). Returns its permId."""
        step = Step(
            "manual_order",
            symbol=symbol,
            action=action,
            quantity=float(quantity),
            price=price,
            fill=fill,
            commission=commission,
        )
        return self._call(self._manual_order, step)

    def inject_unsolicited_cancel(self, perm_id: int, reason: str = "") -> None:
        """TWS cancels a working order on its own: Cancelled + error 202."""

        def cancel() -> None:
            order = self.broker.by_perm_id(perm_id)
            if order is None:
                raise KeyError(f"no order with permId {perm_id}")
            run = self._run_for(order)
            self._stop_steps(run)
            self._apply(run, Step("status", status="Cancelled"))
            self._apply(run, Step("error", code=202, msg=f"Order Canceled - reason:{reason}"))

        self._call(cancel)

    def inject_message(self, fields: Sequence[object], client_id: int | None = None) -> int:
        """Send raw fields to one clientId's connections (or all); returns how many got it."""

        def send() -> int:
            targets = [c for c in self._conns if client_id is None or c.client_id == client_id]
            for c in targets:
                c.send(list(fields), self.wire_log)
            return len(targets)

        return self._call(send)

    def run_steps(self, perm_id: int, steps: Sequence[Step]) -> None:
        """Script extra steps for an existing order (runs concurrently with its scenario)."""

        def go() -> None:
            order = self.broker.by_perm_id(perm_id)
            if order is None:
                raise KeyError(f"no order with permId {perm_id}")
            run = self._run_for(order)
            run.tasks.append(self._spawn(self._run_steps(run, tuple(steps))))

        self._call(go)

    def idle(self) -> bool:
        """True when no scenario step is pending."""
        return self._call(lambda: all(t.done() for run in self._runs.values() for t in run.tasks))

    def wait_idle(self, timeout: float = 5.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.01)
        return False

    def recording_clock(self) -> Any:
        """A stamp source for recording a session against this simulator (:class:`replay.tws.stamps.SimStamps`):
        receipt times from the simulated clock, so the recording depends on the seed and the requests only."""
        from replay.tws.stamps import SimStamps

        return SimStamps(self.broker.clock)

    def scenario_names(self) -> list[str]:
        return self.book.names()

    # ================================================================== connections

    async def _on_accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        peer = str(peername[0])
        if peer not in self.trusted_ips:
            # TWS refuses untrusted peers by resetting the connection right after accept
            self.refused_peers.append(peer)
            log.warning("refusing untrusted peer %s (trusted: %s)", peer, ", ".join(sorted(self.trusted_ips)))
            # like TWS: the peer's connect succeeds and its first bytes are answered by a reset
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader.read(1), 0.25)
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return
        self._conn_counter += 1
        conn = _Conn(writer=writer, peer=peer, number=self._conn_counter)
        self._conns.append(conn)
        try:
            await self._serve(conn, reader)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except P.ProtocolError as exc:
            log.warning("connection %s: %s", conn.number, exc)
        except asyncio.CancelledError:
            pass
        finally:
            self._close(conn)

    async def _serve(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        buffer = b""
        handshake = None
        while handshake is None:
            data = await reader.read(65536)
            if not data:
                return
            buffer += data
            handshake, buffer = P.parse_handshake(buffer)
        conn.server_version = handshake.negotiate(self.server_version)
        conn.writer.write(P.handshake_reply(conn.server_version, self.broker.clock.ib_format()))
        log.info(
            "connection %s from %s: client v%s..%s, speaking v%s",
            conn.number,
            conn.peer,
            handshake.min_version,
            handshake.max_version,
            conn.server_version,
        )
        while not conn.closed:
            messages, buffer = P.split_frames(buffer)
            for fields in messages:
                self.wire_log.append(("in", conn.client_id, tuple(fields)))
                try:
                    self._dispatch(conn, P.decode_request(fields, conn.server_version))
                except P.ProtocolError as exc:
                    log.warning("connection %s: %s", conn.number, exc)
                except Exception:
                    log.exception("connection %s: failed to handle %s", conn.number, fields[:3])
                if conn.closed:
                    return
            data = await reader.read(65536)
            if not data:
                return
            buffer += data

    def _close(self, conn: _Conn, abort: bool = False) -> None:
        if conn in self._conns:
            self._conns.remove(conn)
        self.feeds.drop(conn)
        self.account.drop(conn)
        if not conn.closed:
            conn.closed = True
            log.info("connection %s (clientId %s) closed", conn.number, conn.client_id)
        if abort:
            conn.writer.transport.abort()
        elif not conn.writer.is_closing():
            conn.writer.close()

    def _drop(self, client_id: int | None = None) -> int:
        targets = [c for c in self._conns if client_id is None or c.client_id == client_id]
        for c in targets:
            self._close(c)
        return len(targets)

    def _targets(self, client_id: int) -> list[_Conn]:
        return [c for c in self._conns if c.client_id == client_id and not c.closed]

    def _send_client(self, client_id: int, fields: P.Fields) -> None:
        for c in self._targets(client_id):
            c.send(fields, self.wire_log)

    def _send_order(self, order: BrokerOrder, builder: Callable[[int], P.Fields]) -> None:
        """Send to the connections of the clientId that owns the order (manual orders: clientId 0)."""
        for c in self._targets(order.client_id):
            c.send(builder(c.server_version), self.wire_log)

    # ================================================================== requests

    def _dispatch(self, conn: _Conn, req: P.Request) -> None:
        sv = conn.server_version
        if isinstance(req, P.StartApi):
            if any(c.client_id == req.client_id for c in self._conns if c is not conn):
                conn.send(P.error(-1, 326, error_text(326), server_version=sv), self.wire_log)
                self._close(conn)
                return
            conn.client_id = req.client_id
            if self.playback is not None:
                conn.playback = self.playback.fresh()
            conn.send(P.managed_accounts(self.accounts), self.wire_log)
            conn.send(P.next_valid_id(self.broker.next_valid_id(req.client_id)), self.wire_log)
            return
        if conn.client_id is None:
            log.warning("connection %s: %s before START_API ignored", conn.number, type(req).__name__)
            return
        cid = conn.client_id
        if isinstance(req, P.PlaceOrder):
            self._place(conn, req)
        elif isinstance(req, P.CancelOrder):
            self._cancel(conn, req.order_id)
        elif isinstance(req, P.GlobalCancel):
            for order in self.broker.open_orders(None):
                self._start_cancel(order)
        elif isinstance(req, P.ReqIds):
            conn.send(P.next_valid_id(self.broker.next_valid_id(cid)), self.wire_log)
        elif isinstance(req, P.ReqOpenOrders):
            if req.all_clients:
                orders = self.broker.open_orders(None)
            else:
                orders = self.broker.open_orders(cid, include_manual=cid == 0)
            for o in orders:
                conn.send(P.open_order(o.view(), server_version=sv), self.wire_log)
                conn.send(self._status_fields(o, o.status or "PreSubmitted"), self.wire_log)
            conn.send(P.open_order_end(), self.wire_log)
        elif isinstance(req, P.ReqAutoOpenOrders):
            conn.auto_bind = req.auto_bind
        elif isinstance(req, P.ReqCompletedOrders):
            for o in self.broker.completed_orders(api_only=req.api_only):
                conn.send(P.completed_order(o.view(), server_version=sv), self.wire_log)
            conn.send(P.completed_orders_end(), self.wire_log)
        elif isinstance(req, P.ReqExecutions):
            visible = None if cid == self.master_client_id else cid
            for e in self.broker.executions(visible, req.filter):
                conn.send(self._exec_fields(e, req.req_id, sv), self.wire_log)
                report = self.broker.commission_for(e.exec_id)
                if report is not None:
                    conn.send(
                        P.commission_report(report.exec_id, report.commission, report.currency, report.realized_pnl),
                        self.wire_log,
                    )
            conn.send(P.execution_end(req.req_id), self.wire_log)
        elif isinstance(req, P.ReqPositions):
            conn.positions_subscribed = True
            for p in self.broker.positions():
                conn.send(P.position(p.account, p.contract, p.qty, p.avg_cost), self.wire_log)
            conn.send(P.position_end(), self.wire_log)
        elif isinstance(req, P.CancelPositions):
            conn.positions_subscribed = False
        elif isinstance(req, P.ReqCurrentTime):
            conn.send(P.current_time(self.broker.clock.epoch()), self.wire_log)
        elif isinstance(req, P.ReqAccountUpdates):
            self.account.updates(conn, req.subscribe, req.account or self.accounts[0])
        elif isinstance(req, P.ReqAccountUpdatesMulti):
            self.account.updates_multi(conn, req.req_id, req.account, req.model_code)
        elif isinstance(req, P.ReqAccountSummary):
            self.account.summary(conn, req.req_id, req.tags)
        elif isinstance(req, P.ReqManagedAccounts):
            conn.send(P.managed_accounts(self.accounts), self.wire_log)
        else:
            self._unserved(conn, req)

    def _reply(self, conn: _Conn, messages: Iterable[P.Fields]) -> None:
        for fields in messages:
            conn.send(fields, self.wire_log)

    def _unserved(self, conn: _Conn, req: P.Request) -> None:
        """A request outside the order flow: a registered handler, an empty reply, or a TWS-like error."""
        fields = list(req.fields) if isinstance(req, P.Unknown) else [str(req.msg_id)]
        handler = self._handlers.get(req.msg_id)
        if handler is not None:
            handler(conn, fields)
            return
        kind = R.kind_of(req.msg_id)
        if kind.handling == R.NO_REPLY:
            log.debug("connection %s: %s needs no reply", conn.number, kind.name)
        elif kind.handling == R.EMPTY:
            log.warning("connection %s: %s is not simulated; sending an empty reply", conn.number, kind.name)
            conn.send(R.empty_reply(kind, fields), self.wire_log)
        else:
            req_id, code, text = R.refusal(kind, fields)
            log.warning("connection %s: %s is not simulated; answering error %s", conn.number, kind.name, code)
            conn.send(P.error(req_id, code, text, server_version=conn.server_version), self.wire_log)

    def _place(self, conn: _Conn, req: P.PlaceOrder) -> None:
        cid = conn.client_id or 0
        extras = order_extras(req.raw)
        if extras.what_if:
            self.paper.what_if(conn, req)
            return
        existing = self.broker.find(cid, req.order_id)
        if existing is not None:
            self._modify(existing, req)
            return
        o = req.order
        playback = conn.playback if conn.playback is not None else self.playback
        scenario = playback.next_scenario(o.orderRef) if playback is not None else None
        scenario = scenario or self.book.choose(
            o.orderRef, req.contract.symbol, o.action, o.totalQuantity, o.tif, o.orderType
        )
        order = self.broker.place(cid, req.order_id, req.contract, o, scenario=scenario.name)
        log.info("order %s/%s permId %s -> scenario %s", cid, req.order_id, order.perm_id, scenario.name)
        run = _Run(order=order, scenario=scenario, exec_bases=dict(scenario.exec_bases))
        self._runs[order.perm_id] = run
        inst = self.paper.instrument_for(order, scenario)
        if inst is not None:
            self.paper.place(run, inst, extras)
            return
        run.main = self._spawn(self._run_steps(run, scenario.steps))
        run.tasks.append(run.main)

    def _modify(self, order: BrokerOrder, req: P.PlaceOrder) -> None:
        run = self._run_for(order)
        if order.is_done:
            text = error_text(104) if order.status == "Filled" else f"Can't modify an order in state {order.status}."
            self._apply(run, Step("error", code=104, msg=text))
            return
        self.broker.modify(order, req.order)
        if self.paper.owns(order):
            self.paper.modified(order, order_extras(req.raw))
            self._apply(run, Step("open_order"))
            self._apply(run, Step("status"))
            self.paper.after_modify(order)
            return
        steps = run.scenario.on_modify if run.scenario.on_modify is not None else default_on_modify()
        run.tasks.append(self._spawn(self._run_steps(run, steps)))

    def _cancel(self, conn: _Conn, order_id: int) -> None:
        cid = conn.client_id or 0
        order = self.broker.find(cid, order_id)
        sv = conn.server_version
        if order is None:
            conn.send(P.error(order_id, 10147, error_text(10147, order_id), server_version=sv), self.wire_log)
            return
        if order.is_done:
            text = error_text(10148, order_id, order.status)
            conn.send(P.error(order_id, 10148, text, server_version=sv), self.wire_log)
            return
        self._start_cancel(order)

    def _start_cancel(self, order: BrokerOrder) -> None:
        if self.paper.owns(order):
            for child in self.paper.cancelling(order):
                self._start_cancel(child)
        run = self._run_for(order)
        if run.cancelling is not None and not run.cancelling.done():
            log.info("order permId %s: cancel already in progress", order.perm_id)
            return
        if run.scenario.cancel_stops_steps:
            self._stop_steps(run)
        steps = run.scenario.on_cancel if run.scenario.on_cancel is not None else DEFAULT_ON_CANCEL
        run.cancelling = self._spawn(self._run_steps(run, steps))
        run.tasks.append(run.cancelling)

    def _stop_steps(self, run: _Run) -> None:
        for t in run.tasks:
            if t is not asyncio.current_task() and not t.done():
                t.cancel()

    def _run_for(self, order: BrokerOrder) -> _Run:
        run = self._runs.get(order.perm_id)
        if run is None:
            run = self._runs[order.perm_id] = _Run(order=order, scenario=self.book.default)
        return run

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    # ================================================================== scenario steps

    async def _run_steps(self, run: _Run, steps: Sequence[Step]) -> None:
        for i, step in enumerate(steps):
            if step.after_ms:
                await asyncio.sleep(step.delay * self.time_scale)
            try:
                self._apply(run, step)
            except Exception:
                log.exception("scenario %s step %s (%s) failed", run.scenario.name, i, step.type)

    def _status_fields(self, o: BrokerOrder, status: str, step: Step | None = None) -> P.Fields:
        filled = o.filled
        remaining = o.remaining
        avg, last, why, cap = o.avg_fill_price, o.last_fill_price, o.why_held, 0.0
        if step is not None:
            if step.filled is not None:
                filled = step.filled
                remaining = max(o.spec.totalQuantity - filled, 0.0)
            if step.remaining is not None:
                remaining = step.remaining
            if step.avg_fill_price is not None:
                avg = step.avg_fill_price
            if step.last_fill_price is not None:
                last = step.last_fill_price
            cap = step.mkt_cap_price
        return P.order_status(
            o.wire_order_id,
            status,
            filled,
            remaining,
            avg,
            o.perm_id,
            o.spec.parentId,
            last,
            o.client_id,
            why,
            cap,
        )

    def _price(self, run: _Run, step: Step) -> float:
        if step.price is not None:
            return step.price
        if run.scenario.price is not None:
            return run.scenario.price
        if run.order.spec.lmtPrice is not None:
            return run.order.spec.lmtPrice
        return 100.0

    def _exec_id(self, run: _Run, name: str, suffix: str) -> str:
        base = run.exec_bases.get(name)
        if base is None:
            base = run.exec_bases[name] = self.broker.new_exec_base()
        return f"{base}.{suffix}"

    def _exec_fields(self, e: Execution, req_id: int, sv: int) -> P.Fields:
        return P.execution(
            req_id,
            e.order_id,
            e.contract,
            e.exec_id,
            e.time,
            e.account,
            e.exchange,
            e.side,
            e.shares,
            e.price,
            e.perm_id,
            e.client_id,
            e.cum_qty,
            e.avg_price,
            e.order_ref,
            server_version=sv,
        )

    def _apply(self, run: _Run, step: Step) -> None:
        o = run.order
        kind = step.type
        if kind == "status":
            # a status step without one repeats the order's current status (never an empty status)
            status = step.status or o.status or "PreSubmitted"
            self.broker.set_status(o, status, step.why_held or "")
            fields = self._status_fields(o, status, step)
            self._send_order(o, lambda sv: fields)
        elif kind == "open_order":
            if step.status:
                self.broker.set_status(o, step.status)
            view = o.view(step.status or None)
            self._send_order(o, lambda sv: P.open_order(view, server_version=sv))
        elif kind == "exec":
            if step.exec:
                name = step.exec
            else:
                run.exec_count += 1
                name = f"#{run.exec_count}"
            exec_id = self._exec_id(run, name, step.suffix)
            if step.qty == "remaining":
                # a correction replaces its predecessor, so what it replaced is available again
                base = exec_id.rsplit(".", 1)[0]
                qty = o.remaining + sum(e.shares for e in self.broker.executions() if e.base == base)
            else:
                qty = float(step.qty or 0)
            if qty <= 0:
                log.warning("scenario %s: exec with nothing left to fill", run.scenario.name)
                return
            execution = self.broker.add_execution(o, qty, self._price(run, step), exec_id)
            run.last_exec = name
            self._send_order(o, lambda sv: self._exec_fields(execution, -1, sv))
            self._send_positions(execution)
        elif kind == "commission":
            if step.unknown:
                exec_id = f"{self.broker.new_exec_base()}.{step.suffix}"
            else:
                name = step.exec or run.last_exec
                if not name:
                    raise ValueError("commission step before any exec: name the exec it belongs to")
                exec_id = self._exec_id(run, name, step.suffix)
            report = self.broker.add_commission(exec_id, step.commission, step.currency, step.realized_pnl)
            self._send_order(
                o,
                lambda sv: P.commission_report(report.exec_id, report.commission, report.currency, report.realized_pnl),
            )
            self.account.after_fill()  # once per fill: its execution and commission are both known now
        elif kind == "error":
            req_id = step.req_id if step.req_id is not None else o.wire_order_id
            text = step.msg or error_text(step.code, o.wire_order_id, o.status)
            self._send_order(o, lambda sv: P.error(req_id, step.code, text, step.advanced, server_version=sv))
        elif kind == "drop":
            self._drop(o.client_id)
        elif kind == "manual_order":
            self._manual_order(step)
        elif kind == "wait":
            pass
        else:  # pragma: no cover - the loader rejects unknown types
            raise ValueError(f"unknown step type {kind!r}")

    def _send_positions(self, execution: Execution) -> None:
        pos = self.broker.position_of(execution.account, execution.contract.conId)
        if pos is None:
            return
        for c in self._conns:
            if c.positions_subscribed and not c.closed:
                c.send(P.position(pos.account, pos.contract, pos.qty, pos.avg_cost), self.wire_log)

    def _manual_order(self, step: Step) -> int:
        contract = P.ContractSpec(symbol=step.symbol, secType="STK", exchange="SMART", currency="USD")
        price = step.price if step.price is not None else 100.0
        spec = P.OrderSpec(
            action=step.action.upper(),
            totalQuantity=step.quantity,
            orderType="LMT",
            lmtPrice=price,
            tif="DAY",
        )
        order = self.broker.place_manual(contract, spec)
        scenario = Scenario(name="manual", description="manual TWS order", price=price)
        run = _Run(order=order, scenario=scenario)
        self._runs[order.perm_id] = run
        self._apply(run, Step("open_order", status="Submitted"))
        self._apply(run, Step("status", status="Submitted"))
        if step.fill:
            self._apply(run, Step("exec", qty="remaining", exec=step.exec or "manual", price=price))
            self._apply(run, Step("commission", exec=step.exec or "manual", commission=step.commission))
            self._apply(run, Step("open_order", status="Filled"))
            self._apply(run, Step("status", status="Filled"))
        return order.perm_id


async def serve(
    sim: Simulator,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Simulator], None] | None = None,
    handle_signals: bool = True,
) -> None:
    """Serve on the running loop until ``stop`` is set (or SIGINT/SIGTERM when ``handle_signals``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[int] = []
    if handle_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    await sim.start_async()
    try:
        if on_ready is not None:
            on_ready(sim)
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await sim.stop_async()


def serve_forever(sim: Simulator, on_ready: Callable[[Simulator], None] | None = None) -> None:
    """Blocking entry point for the CLI: serve until SIGINT/SIGTERM, then stop cleanly."""
    asyncio.run(serve(sim, on_ready=on_ready))


__all__ = ["Simulator", "serve", "serve_forever", "error_text"]
