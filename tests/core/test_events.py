"""Event model: lossless round trips, one sample per kind, schema versioning."""

from __future__ import annotations

import msgspec
import pytest

from ledger.core import events as ev
from ledger.core.codec import from_json, from_msgpack, to_json, to_msgpack
from tests.support.samples import sample_payloads


def _envs() -> list[ev.Envelope]:
    return [
        ev.envelope("s-1", i, p, recv_ns=1_764_072_000_000_000_000 + i, mono_ns=i, source="live")
        for i, p in enumerate(sample_payloads(), start=1)
    ]


def _stored_status() -> dict:
    """The sample order_status envelope as it is stored in JSON, as a dict to tamper with."""
    env = _envs()[8]
    assert env.kind == "order_status"
    return msgspec.json.decode(to_json(env))


def _load(data: dict) -> ev.Envelope:
    return from_json(msgspec.json.encode(data))


def test_samples_cover_every_kind() -> None:
    kinds = {ev.kind_of(p) for p in sample_payloads()}
    assert kinds == set(ev.KINDS)


@pytest.mark.parametrize("codec", [(to_msgpack, from_msgpack), (to_json, from_json)], ids=["msgpack", "json"])
def test_round_trip_is_lossless(codec) -> None:
    enc, dec = codec
    for env in _envs():
        back = dec(enc(env))
        assert back == env
        assert type(back.payload) is type(env.payload)


def test_unset_double_survives_json() -> None:
    env = _envs()[9]
    assert env.kind == "open_order"
    assert from_json(to_json(env)).payload.aux_price == 1.7976931348623157e308


def test_newer_schema_is_refused_with_a_clear_error() -> None:
    data = _stored_status()
    data["v"] = 99
    with pytest.raises(ev.SchemaError, match=r"schema v99.*upgrade ibledger"):
        _load(data)


def test_unknown_kind_is_refused() -> None:
    data = _stored_status()
    data["payload"]["kind"] = "order_teleported"
    with pytest.raises(ev.SchemaError, match="order_teleported"):
        _load(data)


def test_older_schema_is_upcast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend order_status is now at v2, which renamed nothing but added a defaulted field via upcaster.
    calls: list[dict] = []

    def up(data: dict) -> dict:
        calls.append(data)
        return data | {"why_held": "upcast"}

    monkeypatch.setattr(ev.OrderStatus, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(ev.UPCASTERS, ("order_status", 1), up)
    old = _stored_status()
    old["v"] = 1
    env = _load(old)
    assert env.v == 2 and env.payload.why_held == "upcast" and len(calls) == 1


def test_missing_upcaster_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev.OrderStatus, "SCHEMA_VERSION", 4)
    old = _stored_status()
    old["v"] = 3
    with pytest.raises(ev.SchemaError, match="no upcaster from v3"):
        _load(old)


def test_wrong_field_type_is_refused() -> None:
    data = _stored_status()
    data["payload"]["filled"] = "lots"
    with pytest.raises(ev.SchemaError, match="filled"):
        _load(data)
