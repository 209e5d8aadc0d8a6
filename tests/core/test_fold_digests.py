"""Pins the fold's output: a digest of ``LedgerFold.snapshot()`` per fixture and per seeded stream.

A change to the fold that alters any output shows up here as a changed digest, so it is a decision
(made and explained in the commit) rather than an accident. To accept intended changes, run with
``IBLEDGER_UPDATE_DIGESTS=1`` and commit the data file with a note on which digests moved and why.

The streams: every shipped fixture on its own, all fixtures folded together (one store holding many
recorded sessions), seeded realistic synthetic streams, and seeded "garbage" streams — realistic
streams whose numbers are replaced by the values live clients and broken feeds produce (IB's unset
sentinels, NaN, ±inf, negatives, zero) and whose events are partly shuffled.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
from pathlib import Path

import msgspec
import pytest

from ledger.core import events as ev
from ledger.core.events import Envelope
from ledger.core.fold import fold
from ledger.store.sessionfile import iter_session
from replay.strategies import generate_stream

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
DATA = Path(__file__).with_name("fold_digests.json")

UNSET_DOUBLE = sys.float_info.max
UNSET_INTEGER = 2**31 - 1
_BAD_FLOATS = (math.nan, math.inf, -math.inf, UNSET_DOUBLE, -1.0, -100.0, 0.0, 1e-12)
_BAD_INTS = (0, -1, UNSET_INTEGER, 2**62)
_NUMERIC = {
    ev.ExecDetails: ("shares", "price", "cum_qty", "avg_price"),
    ev.OrderStatus: ("filled", "remaining", "avg_fill_price", "last_fill_price", "mkt_cap_price"),
    ev.CommissionReport: ("commission", "realized_pnl", "yield_"),
    ev.OpenOrder: ("total_qty", "lmt_price", "aux_price"),
    ev.CompletedOrder: ("total_qty", "lmt_price", "aux_price"),
    ev.PlaceOrder: ("total_qty", "lmt_price", "aux_price"),
    ev.ModifyOrder: ("total_qty", "lmt_price", "aux_price"),
    ev.Position: ("position", "avg_cost"),
}
_IDS = ("perm_id", "order_id", "client_id")


def garbage_stream(seed: int, n_events: int = 3_000) -> list[Envelope]:
    """A seeded realistic stream with a share of its numbers and ids replaced by adversarial values."""
    r = random.Random(seed)
    base = generate_stream(seed=seed, n_events=n_events, orders_per_session=60)
    payloads: list[tuple[str, ev.Event, int]] = []
    for env in base:
        p = env.payload
        names = _NUMERIC.get(type(p))
        if names and r.random() < 0.25:
            name = r.choice(names)
            p = msgspec.structs.replace(p, **{name: r.choice(_BAD_FLOATS)})
        if hasattr(p, "perm_id") and r.random() < 0.05:
            name = r.choice([n for n in _IDS if hasattr(p, n)])
            p = msgspec.structs.replace(p, **{name: r.choice(_BAD_INTS)})
        payloads.append((env.session_id, p, env.recv_ns))
    # local reordering: swap a few neighbours (late / early messages)
    for _ in range(len(payloads) // 20):
        i = r.randrange(len(payloads) - 1)
        payloads[i], payloads[i + 1] = payloads[i + 1], payloads[i]
    seqs: dict[str, int] = {}
    out = []
    for sid, p, ns in payloads:
        seqs[sid] = seqs.get(sid, 0) + 1
        out.append(Envelope(session_id=sid, seq=seqs[sid], recv_ns=ns, mono_ns=0, source="synthetic", payload=p))
    return out


def streams() -> dict[str, list[Envelope]]:
    out: dict[str, list[Envelope]] = {}
    every: list[Envelope] = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        envs = list(iter_session(path))
        out[f"fixture:{path.stem}"] = envs
        every += envs
    out["fixtures:all"] = every
    for seed in (1, 2, 3):
        out[f"synthetic:{seed}"] = generate_stream(seed=seed, n_events=4_000, orders_per_session=80)
    for seed in (11, 12, 13):
        out[f"garbage:{seed}"] = garbage_stream(seed)
    return out


def digests() -> dict[str, str]:
    return {name: hashlib.sha256(fold(envs).snapshot()).hexdigest()[:16] for name, envs in streams().items()}


def test_fold_digests_are_pinned() -> None:
    got = digests()
    if os.environ.get("IBLEDGER_UPDATE_DIGESTS"):
        DATA.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        pytest.skip("digests rewritten")
    want = json.loads(DATA.read_text())
    assert sorted(got) == sorted(want), "the set of pinned streams changed: rerun with IBLEDGER_UPDATE_DIGESTS=1"
    changed = {k: (want[k], got[k]) for k in got if got[k] != want[k]}
    assert not changed, f"fold output changed for {sorted(changed)}"


def test_fold_digests_are_deterministic() -> None:
    """The same stream folded twice gives the same digest (so a pinned digest is meaningful)."""
    envs = garbage_stream(11)
    assert fold(envs).snapshot() == fold(envs).snapshot()
