"""The NautilusTrader anchor's stream (``tests/benchmarks/anchor.py``) is the synthetic session it claims to
be: every IB callback of the session becomes a record, and the record, rebuilt as the library's objects
and translated by the adapter, gives back the session's own payload (its typed fields). With
``.venv-nautilus`` present, NautilusTrader's side runs over the same small stream and creates every order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec
import pytest

from ledger.core import events as ev
from replay.synthetic import synthetic_session

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import anchor  # noqa: E402

pytestmark = pytest.mark.ibclient

RAW = ("contract", "order", "order_state", "execution")


def typed(p: ev.Event) -> dict:
    d = msgspec.structs.asdict(p)
    for k in RAW:
        d.pop(k, None)
    return d


def test_records_translate_back_to_the_sessions_payloads(tmp_path):
    path = tmp_path / "anchor.msgpack"
    n = anchor.write_stream(path, 3, 300)
    payloads = [e.payload for e in synthetic_session(3, 300) if anchor.record(e.payload) is not None]
    records = anchor.read_stream(path)
    assert n == len(records) == len(payloads) > 1000
    calls = anchor.library_calls(records)
    kinds = set()
    for (builder, args, _ns), rec, want in zip(calls, records, payloads, strict=True):
        got = builder(*args)
        kinds.add(type(got).__name__)
        assert type(got) is type(want), rec[0]
        g, w = typed(got), typed(want)
        if type(want) in (ev.OpenOrder, ev.CompletedOrder, ev.PlaceOrder, ev.ModifyOrder):
            g.pop("client_id"), w.pop("client_id")  # the raw order's clientId is the session's, not the template's
        assert g == w, rec[0]
    assert {"OrderStatus", "ExecDetails", "CommissionReport", "PlaceOrder", "ModifyOrder", "CancelOrder",
            "OpenOrder", "Error"} <= kinds
    fold = anchor.run_ledger(calls)
    assert len(fold.orders) >= 300


def test_nautilus_side_runs_over_the_stream(tmp_path):
    if not anchor.NAUTILUS_PYTHON.exists():
        pytest.skip(anchor.missing_line())
    path = tmp_path / "anchor.msgpack"
    n = anchor.write_stream(path, 3, 300)
    got = anchor.side_n(path)
    assert got["callbacks"] == n
    assert got["orders"] >= 300 and got["events"] > 2 * got["orders"]
    assert got["refused"] < got["events"] // 20
