"""Replay a recorded, file or synthetic stream through the same :class:`~ledger.core.engine.Engine` as live.

Sources (:func:`open_source`): a session file (``path.jsonl``), a session in the store (``store:PREFIX``,
or a bare session-id prefix, with ``--store URL``), or a seeded synthetic recording session
(``synthetic:SEED[:N_ORDERS]``, :mod:`replay.synthetic`). A source is one recording session, because the
live recorder runs one engine per session (an in-memory stream given to :func:`replay` may hold several:
they then share one engine, in stream order).

What a replay does, event by event, streaming (memory does not grow with the session's length beyond the
fold's own per-order state):

* every recorded envelope goes through ``Engine.process`` -- exactly what the live recorder does;
* for every recorded intent (place / modify / cancel), ``Engine.pre_check`` runs again on the state
  before it, at the time the live recorder used (the intent's ``recv_ns``, or the recorded decision's
  ``details["at_ns"]``). The replayed decision is compared with the recorded one and *replaces* it in
  the stream the engine sees: the replay shows what *this* governor would have done (``--governor``);
  broker events that follow are facts and are folded as recorded;
* decisions the engine makes by itself (circuit breakers) are compared with the recorded derived ones
  (matched by ``causation_id``); recorded operator decisions (halt / resume / reducing / carried over)
  are inputs, applied and not compared;
* with ``check=True`` a second, plain fold runs over the recorded stream (recorded decisions) and every
  order whose derived state differs from the engine's is reported, at the first event where it differs.

A :class:`Divergence` names the event (session, seq), the subject, and recorded vs replayed. The result's
``digest`` is the sha256 of the canonical output (replayed decisions, divergences, the final orders,
anomalies and positions, trading state, config digest): two replays of one source with one config print
the same digest.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct

from ledger.core import events as ev
from ledger.core.engine import Engine, event_id
from ledger.core.events import Envelope, GovernorDecision
from ledger.core.fold import LedgerFold
from ledger.core.governor import INPUT_REASONS, is_precheck
from ledger.core.governor_config import GovernorConfig, GovernorConfigError, load_config, parse_config
from ledger.core.rows import anomaly_row, order_row
from ledger.store.registry import resolve_store_url

__all__ = [
    "DecisionRow",
    "Divergence",
    "ReplayResult",
    "Replayer",
    "Source",
    "SourceError",
    "open_source",
    "replay",
]

SIDECAR_SUFFIX = ".governor.toml"  # fixtures/day.jsonl -> fixtures/day.governor.toml
KEEP = 10_000  # decision rows / divergences kept in memory (counts stay exact beyond)
REACTIVE_LAG = 1_000  # events after which a replayed breaker decision with no recorded twin is reported
PROGRESS_EVERY = 16_384
KEEP_DONE = 1_000  # finished orders kept in memory before they are retired (late events still find them)

_INTENTS = frozenset({ev.PlaceOrder, ev.ModifyOrder, ev.CancelOrder})
_INPUT = frozenset(INPUT_REASONS)
_encoder = msgspec.msgpack.Encoder()


class SourceError(ValueError):
    """A replay source that cannot be opened (bad spec, missing file, unknown session)."""


# --- results -----------------------------------------------------------------------------------------


class Divergence(Struct, frozen=True, kw_only=True):
    session_id: str
    seq: int  # the recorded event where replay and recording part (0: only visible at the end)
    kind: str  # "decision" | "order_state"
    subject: str  # "place 1:12 AAPL", an order key...
    recorded: str
    replayed: str

    def describe(self) -> str:
        where = f"{self.session_id}#{self.seq}" if self.seq else f"{self.session_id} (end)"
        return f"{where} {self.kind} {self.subject}: recorded {self.recorded}, replayed {self.replayed}"


class DecisionRow(Struct, frozen=True, kw_only=True):
    """One decision of the replay, next to the recorded one (``origin``: pre_check | reactive | input)."""

    session_id: str
    seq: int
    origin: str
    replayed: GovernorDecision | None
    recorded: GovernorDecision | None


def summary(d: GovernorDecision | None) -> str:
    if d is None:
        return "(none)"
    if d.decision == "STATE_CHANGE":
        return f"STATE_CHANGE {d.reason} -> {d.trading_state}"
    return f"{d.decision} {d.reason}"


def _same(a: GovernorDecision, b: GovernorDecision) -> bool:
    return (
        a.decision == b.decision
        and a.reason == b.reason
        and a.action == b.action
        and a.order_id == b.order_id
        and a.client_id == b.client_id
        and a.trading_state == b.trading_state
    )


def _subject(d: GovernorDecision) -> str:
    if d.decision == "STATE_CHANGE" or d.action == "state":
        return "trading state"
    s = f"{d.action or d.decision.lower()} {d.client_id}:{d.order_id}"
    return f"{s} {d.symbol}" if d.symbol else s


class ReplayResult:
    """What a replay produced: the engine (orders, anomalies, positions), decisions, divergences, digest."""

    def __init__(self, source: str, engine: Engine, checked: bool) -> None:
        self.source = source
        self.engine = engine
        self.checked = checked
        self.config_digest = engine.config.digest()
        self.events = 0
        self.sessions: list[str] = []
        self.decisions: list[DecisionRow] = []  # non-ALLOW or divergent rows, at most KEEP
        self.decision_counts: dict[str, int] = {}  # replayed "DECISION REASON" -> n (exact)
        self.divergences: list[Divergence] = []  # at most KEEP
        self.n_divergences = 0
        self.unchecked_intents = 0  # intents with no recorded decision (replayed decision not compared)
        self.digest = ""
        self.config_origin = "default"  # "given" | "default" | the sidecar file it was read from
        self.recorded_config_hash = ""  # session_started.config_hash of the (first) session

    @property
    def config_note(self) -> str:
        """A warning when the session was recorded under another governor config (empty if not / unknown)."""
        rec = self.recorded_config_hash
        if not rec or self.config_digest.startswith(rec) or rec.startswith(self.config_digest):
            return ""
        return (
            f"the session was recorded under governor config {rec[:12]}, replayed under {self.config_digest[:12]} "
            f"({self.config_origin}): decisions may differ for that reason alone; pass --governor with the "
            f"recorded config, or keep it next to the session file as NAME{SIDECAR_SUFFIX}"
        )

    @property
    def fold(self) -> LedgerFold:
        return self.engine.fold

    @property
    def orders(self) -> list[Any]:
        return list(self.engine.fold.iter_orders())

    @property
    def anomalies(self) -> list[Any]:
        return self.engine.fold.anomalies

    @property
    def trading_state(self) -> str:
        return self.engine.trading_state

    @property
    def ok(self) -> bool:
        return self.n_divergences == 0

    def report(self, limit: int = 50) -> str:
        lines = [f"{self.n_divergences} divergence(s) replaying {self.source} ({self.events} events):"]
        lines += [f"  {d.describe()}" for d in self.divergences[:limit]]
        if self.n_divergences > limit:
            lines.append(f"  ... and {self.n_divergences - limit} more")
        return "\n".join(lines)

    def assert_no_divergence(self) -> ReplayResult:
        """Raise ``AssertionError`` listing each divergence (event seq, recorded vs replayed)."""
        if self.n_divergences:
            raise AssertionError(self.report())
        return self

    def to_json(self) -> dict[str, Any]:
        """Canonical JSON-able output (what ``ibledger replay --json`` prints)."""
        return {
            "source": self.source,
            "config_digest": self.config_digest,
            "events": self.events,
            "sessions": self.sessions,
            "trading_state": self.trading_state,
            "orders": [order_row(o) for o in self.engine.fold.iter_orders()],
            "anomalies": [anomaly_row(a) for a in self.engine.fold.anomalies],
            "decision_counts": dict(sorted(self.decision_counts.items())),
            "decisions": msgspec.to_builtins(self.decisions),
            "checked": self.checked,
            "n_divergences": self.n_divergences,
            "divergences": msgspec.to_builtins(self.divergences),
            "unchecked_intents": self.unchecked_intents,
            "config_origin": self.config_origin,
            "recorded_config_hash": self.recorded_config_hash,
            "config_note": self.config_note,
            "digest": self.digest,
        }


# --- sources -----------------------------------------------------------------------------------------


class Source:
    """A re-iterable stream of envelopes (each iteration starts over) with a name and, if known, a size."""

    def __init__(self, name: str, factory: Callable[[], Iterator[Envelope]], total: int | None) -> None:
        self.name = name
        self.total = total
        self.governor: Path | None = None  # the governor config recorded next to the session, if any
        self._factory = factory

    def __iter__(self) -> Iterator[Envelope]:
        return self._factory()

    def __repr__(self) -> str:
        return f"<Source {self.name}>"


def file_source(path: str | Path) -> Source:
    from ledger.store.sessionfile import SessionFileError, iter_session, read_header

    path = Path(path)
    try:
        header = read_header(path)
    except SessionFileError as exc:
        raise SourceError(str(exc)) from exc
    src = Source(str(path), lambda: iter_session(path), header.events)
    sidecar = path.with_name(path.name.removesuffix(".jsonl") + SIDECAR_SUFFIX)
    if sidecar.is_file():
        src.governor = sidecar
    return src


def store_source(url: str, prefix: str = "", *, on_gap: Callable[[Any], None] | None = None) -> Source:
    from ledger.store import StoreError, open_store, redact_url

    if not prefix.strip():
        raise SourceError(
            "store: give a session id or a unique prefix (store:7f3a); a replay is one recording session, "
            "as the live recorder runs one engine per session (`ibledger sessions` lists them)"
        )
    try:
        with open_store(url, create=False) as store:
            sid = store.find_session(prefix)
            total = next((s.last_seq for s in store.sessions() if s.session_id == sid), None)
    except StoreError as exc:
        raise SourceError(str(exc)) from exc

    def stream() -> Iterator[Envelope]:
        with open_store(url, create=False) as store:
            yield from store.read_session(sid, allow_gaps=on_gap is not None, on_gap=on_gap)

    name = f"store:{sid} ({redact_url(url)})"
    return Source(name, stream, total)


def synthetic_source(spec: str, config: GovernorConfig | None = None) -> Source:
    """``synthetic:SEED[:N]``: recorded under ``config`` (default: the default governor config)."""
    from replay.synthetic import parse_synthetic, synthetic_session

    try:
        seed, n = parse_synthetic(spec)
    except ValueError as exc:
        raise SourceError(str(exc)) from exc
    return Source(f"synthetic:{seed}:{n}", lambda: synthetic_session(seed, n, config=config), None)


def open_source(
    spec: str | Path, store_url: str | None = None, *, on_gap: Callable[[Any], None] | None = None
) -> Source:
    """Resolve a SOURCE argument: an existing file, ``synthetic:...``, ``store:PREFIX`` or a session prefix.

    ``on_gap``: for store sources, read on past missing events (``--allow-gaps``), telling ``on_gap``.
    """
    text = str(spec)
    if text.startswith("synthetic:"):
        return synthetic_source(text)
    if text.startswith("store:"):
        return store_source(resolve_store_url(store_url), text.removeprefix("store:"), on_gap=on_gap)
    path = Path(text)
    if path.exists() and not path.is_file():
        raise SourceError(f"{text}: not a regular file (a device, FIFO or directory): give a session file")
    if path.is_file() or text.endswith(".jsonl"):
        if not path.is_file():
            raise SourceError(f"{text}: no such session file")
        return file_source(path)
    return store_source(resolve_store_url(store_url), text, on_gap=on_gap)


def as_source(source: Source | Iterable[Envelope] | str | Path, store_url: str | None = None) -> Source:
    if isinstance(source, Source):
        return source
    if isinstance(source, str | Path):
        return open_source(source, store_url)
    total = len(source) if hasattr(source, "__len__") else None  # type: ignore[arg-type]
    return Source("<stream>", lambda: iter(source), total)


# --- the replayer ------------------------------------------------------------------------------------


class Replayer:
    """Runs sources through a fresh :class:`Engine` per run (see the module docstring)."""

    def __init__(
        self,
        config: GovernorConfig | None = None,
        *,
        check: bool = False,
        progress: Callable[[int], None] | None = None,
        progress_every: int = PROGRESS_EVERY,
    ) -> None:
        self.config = config
        self.check = check
        self.progress = progress
        self.progress_every = max(1, progress_every)

    def run(self, source: Source | Iterable[Envelope] | str | Path, store_url: str | None = None) -> ReplayResult:
        """Replay ``source``. Governor config: the Replayer's; if None, the one recorded next to a session
        file (``NAME.governor.toml``, see :func:`ledger.core.governor_config.dump_config`); else the default."""
        src = as_source(source, store_url)
        stream = iter(src)
        config, origin = self.config, "given"
        if config is None:
            origin = "default"
            if src.governor is not None:
                try:
                    config = load_config(src.governor)
                except GovernorConfigError as exc:
                    raise SourceError(f"governor config next to the session: {exc}") from exc
                origin = str(src.governor)
            else:
                # one pass over the source: the peeked first event is put back in front of the stream
                first = next(stream, None)
                config, origin = _recorded_config(src.name, first)
                stream = itertools.chain((first,) if first is not None else (), stream)
        run = _Run(self, src.name, config)
        run.result.config_origin = origin
        return run.run(stream)


def _recorded_config(name: str, first: Envelope | None) -> tuple[GovernorConfig | None, str]:
    """The governor config the session was recorded under (its session_started), else the default."""
    if first is None or not isinstance(first.payload, ev.SessionStarted) or not first.payload.governor_config:
        return None, "default"
    try:
        return parse_config(first.payload.governor_config, "session_started"), "recorded in the session"
    except GovernorConfigError as exc:
        raise SourceError(f"governor config recorded in {name}: {exc}") from exc


class _Run:
    """State of one replay (kept off the Replayer so a Replayer can be reused)."""

    def __init__(self, replayer: Replayer, name: str, config: GovernorConfig | None) -> None:
        # finished orders leave memory (retired to a temporary file) and no status timeline is kept: the
        # output (orders, anomalies, positions, digest) is that of a full fold, in flat memory
        self.engine = Engine(config, compact=True, timeline=False, keep=KEEP_DONE)
        self.ref = LedgerFold(compact=True, timeline=False, keep=KEEP_DONE) if replayer.check else None
        self.progress = replayer.progress
        self.progress_every = replayer.progress_every
        self.result = ReplayResult(name, self.engine, replayer.check)
        self.hash = hashlib.sha256()
        self.hash.update(self.result.config_digest.encode())
        self._hashbuf: list[Any] = []  # rows and divergences, hashed in batches (one encode per batch)
        # intents awaiting their recorded decision: intent id -> (event count, intent envelope, replayed decision)
        self.pending: dict[str, tuple[int, Envelope, GovernorDecision]] = {}
        self.prechecked: dict[str, GovernorDecision] = {}  # intent id -> decision (decision recorded first)
        self.reactive: dict[str, list[tuple[int, Envelope, GovernorDecision]]] = {}  # cause id -> replayed
        self.diverged: dict[str, bool] = {}  # order keys already reported
        self.counts: dict[tuple[str, str], int] = {}
        self.quiet: dict[tuple[str, str], int] = {}  # recorded ALLOWs with no replayed twin, by origin and reason
        self.n = 0

    # recording output

    def _row(
        self,
        env: Envelope,
        origin: str,
        replayed: GovernorDecision | None,
        recorded: GovernorDecision | None,
        seq: int | None = None,
    ) -> None:
        r = self.result
        seq = env.seq if seq is None else seq
        buf = self._hashbuf
        boring = (replayed is None or replayed.decision == "ALLOW") and (
            recorded is None or recorded.decision == "ALLOW"
        )
        if replayed is not None:
            counts = self.counts
            k = (replayed.decision, replayed.reason)
            counts[k] = counts.get(k, 0) + 1
        if boring:
            # an ALLOW shows in the output only through its counts (the JSON rows list the others): it is
            # counted, and the counts are hashed at the end -- no row is built or hashed per decision
            if replayed is None:
                q = (origin, recorded.reason)  # type: ignore[union-attr]
                self.quiet[q] = self.quiet.get(q, 0) + 1
        else:
            row = DecisionRow(session_id=env.session_id, seq=seq, origin=origin, replayed=replayed, recorded=recorded)
            buf.append(row)
            if len(r.decisions) < KEEP:
                r.decisions.append(row)
        if len(buf) >= 4096:
            self.hash.update(_encoder.encode(buf))
            buf.clear()

    def _diverge(self, sid: str, seq: int, kind: str, subject: str, recorded: str, replayed: str) -> None:
        d = Divergence(session_id=sid, seq=seq, kind=kind, subject=subject, recorded=recorded, replayed=replayed)
        self._hashbuf.append(d)
        r = self.result
        r.n_divergences += 1
        if len(r.divergences) < KEEP:
            r.divergences.append(d)

    def _compare(
        self, env: Envelope, origin: str, replayed: GovernorDecision | None, recorded: GovernorDecision | None
    ) -> None:
        if replayed is not None and recorded is not None and _same(replayed, recorded):
            self._row(env, origin, replayed, recorded)
            return
        self._row(env, origin, replayed, recorded)
        subj = _subject(recorded if recorded is not None else replayed)  # type: ignore[arg-type]
        rs, ps = summary(recorded), summary(replayed)
        if rs == ps and recorded is not None and replayed is not None:  # same answer, other state or order
            rs += f" [{recorded.trading_state} {recorded.client_id}:{recorded.order_id}]"
            ps += f" [{replayed.trading_state} {replayed.client_id}:{replayed.order_id}]"
        self._diverge(env.session_id, env.seq, "decision", subj, rs, ps)

    # the loop

    def run(self, stream: Iterable[Envelope]) -> ReplayResult:
        engine, ref = self.engine, self.ref
        step = engine.step
        pre_check = engine.pre_check
        pending = self.pending
        sessions: dict[str, bool] = {}
        last_sid = None
        reactive = self.reactive  # (the dict is never replaced: looked up once)
        it = iter(stream)
        nxt = next(it, None)
        n = 0
        progress = self.progress
        every = self.progress_every
        prechecked = self.prechecked
        decision_t, started_t, intents = ev.GovernorDecision, ev.SessionStarted, _INTENTS  # per-event names, local
        while nxt is not None:
            env = nxt
            nxt = next(it, None)
            n += 1
            sid = env.session_id
            if sid != last_sid:  # (a stream is one session, or long runs of one)
                last_sid = sid
                if sid not in sessions:
                    sessions[sid] = True
            p = env.payload
            typ = type(p)
            feed = env
            if typ is decision_t:
                feed = self._on_decision(env, p, nxt)
            elif typ is started_t and not self.result.recorded_config_hash:
                self.result.recorded_config_hash = p.config_hash
            elif typ in intents:
                eid = f"{sid}#{env.seq}"  # event_id(env)
                if not prechecked or prechecked.pop(eid, None) is None:
                    at = env.recv_ns
                    if nxt is not None and type(nxt.payload) is decision_t and nxt.causation_id == eid:
                        at = _at_ns(nxt.payload, at)
                    pending[eid] = (n, env, pre_check(p, at, sid))  # type: ignore[arg-type]
                    if len(pending) > 1:
                        self._flush_pending(n - REACTIVE_LAG)
            if ref is not None:
                tr_ref = ref.apply(env)
                tr, out = step(feed)
                if tr != tr_ref:
                    self._compare_states(env, tr_ref, tr)
            else:
                tr, out = step(feed)
            if out:
                eid = event_id(env)
                for d in out:
                    if d.reason in _INPUT:
                        self._row(env, "input", d, None)
                    else:
                        reactive.setdefault(eid, []).append((n, env, d))
            if reactive:
                self._flush_reactive(n - REACTIVE_LAG)
            if progress is not None and n % every == 0:
                progress(n)
        self.n = n
        return self._finish(list(sessions))

    def _on_decision(self, env: Envelope, p: GovernorDecision, nxt: Envelope | None) -> Envelope:
        sid = env.session_id
        if is_precheck(p):
            cause = env.causation_id
            key = (cause if cause in self.pending else None) if cause else self._answered(env, p)  # (_answered)
            if key is not None:
                replayed = self.pending.pop(key)[2]
                if replayed == p:  # the common case: the same decision, byte for byte
                    if replayed.decision == "ALLOW":  # counted only (see _row)
                        k = ("ALLOW", replayed.reason)
                        self.counts[k] = self.counts.get(k, 0) + 1
                    else:
                        self._row(env, "pre_check", replayed, p)
                    return env
                self._compare(env, "pre_check", replayed, p)
                return msgspec.structs.replace(env, payload=replayed)
            if (
                nxt is not None
                and nxt.session_id == sid
                and type(nxt.payload) in _INTENTS
                and _answered_by(env, p, nxt)
            ):
                replayed = self.engine.pre_check(nxt.payload, _at_ns(p, env.recv_ns), sid)  # type: ignore[arg-type]
                self.prechecked[event_id(nxt)] = replayed
                self._compare(env, "pre_check", replayed, p)
                return env if replayed == p else msgspec.structs.replace(env, payload=replayed)
            self._row(env, "pre_check", None, p)
            self._diverge(sid, env.seq, "decision", _subject(p), summary(p), "(no recorded intent to re-check)")
            return env
        if p.reason in _INPUT:
            self._row(env, "input", None, p)
            return env
        # a derived decision (circuit breaker): the replay must have made the same one
        cause = env.causation_id
        queue = self.reactive.get(cause) if cause else None
        if queue is None and not cause and self.reactive:
            cause = next(iter(self.reactive))
            queue = self.reactive[cause]
        if queue:
            _n, _cenv, replayed = queue.pop(0)
            if not queue:
                del self.reactive[cause]  # type: ignore[arg-type]
            self._compare(env, "reactive", replayed, p)
        else:
            self._compare(env, "reactive", None, p)
        return env

    def _answered(self, denv: Envelope, d: GovernorDecision) -> str | None:
        """The pending intent the recorded decision answers: by causation_id, else the latest intent of the
        same session for the same order (older recorders)."""
        pending = self.pending
        if denv.causation_id:
            return denv.causation_id if denv.causation_id in pending else None
        for key in reversed(pending):
            ienv = pending[key][1]
            if ienv.session_id == denv.session_id and _answers(denv, d, ienv):
                return key
        return None

    def _flush_pending(self, before: int) -> None:
        """Intents whose decision never came (a session recorded without the governor): counted, not compared."""
        pending = self.pending
        while pending:
            key = next(iter(pending))
            n, ienv, replayed = pending[key]
            if n > before:
                break
            del pending[key]
            self.result.unchecked_intents += 1
            self._row(ienv, "pre_check", replayed, None)

    def _flush_reactive(self, before: int) -> None:
        reactive = self.reactive
        while reactive:
            cause = next(iter(reactive))
            queue = reactive[cause]
            if queue[0][0] > before:
                break
            for _n, cenv, d in queue:
                self._compare(cenv, "reactive", d, None)
            del self.reactive[cause]

    def _compare_states(self, env: Envelope, tr_ref: list[Any], tr: list[Any]) -> None:
        ref, eng = self.ref, self.engine.fold
        keys = [t.key for t in tr_ref] + [t.key for t in tr]
        for key in dict.fromkeys(keys):
            if key in self.diverged:
                continue
            a, b = ref.order(key), eng.order(key)  # type: ignore[union-attr]
            sa = f"{a.state}{'/' + a.overlay if a.overlay else ''}" if a is not None else "(no order)"
            sb = f"{b.state}{'/' + b.overlay if b.overlay else ''}" if b is not None else "(no order)"
            if sa != sb:
                self.diverged[key] = True
                self._diverge(env.session_id, env.seq, "order_state", key, sa, sb)

    def _compare_final(self, ref: LedgerFold, eng: LedgerFold) -> None:
        """Every order of the reference fold (then those only the engine has) whose final state differs,
        in that order; streamed in creation order while both folds hold the same keys."""
        ita, itb = ref.iter_orders(), eng.iter_orders()
        for a in ita:
            b = next(itb, None)
            if b is not None and a.key == b.key:
                self._final_pair(a.key, a, b)
                continue
            rest_a = {a.key: a, **{o.key: o for o in ita}}
            rest_b = {} if b is None else {b.key: b}
            rest_b.update((o.key, o) for o in itb)
            for key in list(rest_a) + [k for k in rest_b if k not in rest_a]:
                self._final_pair(key, rest_a.get(key), rest_b.get(key))
            return
        for b in itb:
            self._final_pair(b.key, None, b)

    def _final_pair(self, key: str, a: Any, b: Any) -> None:
        if key in self.diverged:
            return
        ta = (a.state, a.overlay, a.filled) if a is not None else None
        tb = (b.state, b.overlay, b.filled) if b is not None else None
        if ta != tb:
            v = a if a is not None else b
            self.diverged[key] = True
            self._diverge(v.session_id, 0, "order_state", key, _state_text(a), _state_text(b))

    def _hash_output(self) -> None:
        """Hash the final orders (the fields the output shows), anomalies and positions, in chunks: the
        canonical output without building one big snapshot (memory and time on millions of orders)."""
        fold = self.engine.fold
        h, enc = self.hash, _encoder.encode
        # enc([order_values(o) for o in chunk]) == array header + the rows' encodings, concatenated
        for n, rows in fold.iter_order_rows(4096):
            h.update(_array_header(n))
            h.update(rows)
        anomalies = fold.anomalies
        for i in range(0, len(anomalies), 4096):
            h.update(enc(anomalies[i : i + 4096]))
        h.update(enc(list(fold.positions.values())))

    def _finish(self, sessions: list[str]) -> ReplayResult:
        result = self.result
        self._flush_pending(self.n + 1)
        self._flush_reactive(self.n + 1)
        if self.ref is not None:
            self._compare_final(self.ref, self.engine.fold)
        result.events = self.n
        result.decision_counts = {f"{d} {r}": n for (d, r), n in self.counts.items()}
        result.sessions = sessions
        if self._hashbuf:
            self.hash.update(_encoder.encode(self._hashbuf))
            self._hashbuf.clear()
        self._hash_output()
        self.hash.update(
            _encoder.encode([self.engine.trading_state, self.n, result.n_divergences, result.unchecked_intents])
        )
        self.hash.update(_encoder.encode([sorted(self.counts.items()), sorted(self.quiet.items())]))
        result.digest = self.hash.hexdigest()
        return result


def _array_header(n: int) -> bytes:
    """The msgpack array header of ``n`` elements (what ``encode(list)`` puts before them)."""
    if n < 16:
        return bytes((0x90 | n,))
    if n < 65536:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def _state_text(v: Any) -> str:
    if v is None:
        return "(no order)"
    return f"{v.state}{'/' + v.overlay if v.overlay else ''} filled {v.filled:g}"


def _at_ns(d: GovernorDecision, default: int) -> int:
    at = d.details.get("at_ns") if d.details else None
    return at if isinstance(at, int) and not isinstance(at, bool) else default


def _is_cancel(p: Any) -> bool:
    return type(p) is ev.CancelOrder


def _answers(denv: Envelope, d: GovernorDecision, ienv: Envelope) -> bool:
    """Is decision ``d`` the recorded answer to the intent in ``ienv`` (recorded before it)?"""
    if denv.causation_id:
        return denv.causation_id == event_id(ienv)
    ip = ienv.payload
    return d.order_id == ip.order_id and (d.action == "cancel") == _is_cancel(ip)  # type: ignore[union-attr]


def _answered_by(denv: Envelope, d: GovernorDecision, ienv: Envelope) -> bool:
    """Decision recorded *before* its intent (allowed, though the engine's protocol is intent first)."""
    if ienv.causation_id:
        return ienv.causation_id == event_id(denv)
    if denv.causation_id:
        return False
    ip = ienv.payload
    return d.order_id == ip.order_id and (d.action == "cancel") == _is_cancel(ip)  # type: ignore[union-attr]


def replay(
    source: Source | Iterable[Envelope] | str | Path,
    config: GovernorConfig | None = None,
    *,
    check: bool = False,
    store_url: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay ``source`` (see :func:`open_source`) under ``config`` (None: the config recorded next to a
    session file, else the default)."""
    return Replayer(config, check=check, progress=progress).run(source, store_url)
