"""Bytes in and out: msgpack for the store, JSON for session files and exports.

Decoding is typed (one msgspec decoder for the whole tagged union), which is both the fast path and
the validation: an unknown kind or a malformed field becomes a :class:`SchemaError` naming the problem.
"""

from __future__ import annotations

import msgspec

from ledger.core.events import Envelope, SchemaError, check_version

_mp_encoder = msgspec.msgpack.Encoder()
_mp_decoder = msgspec.msgpack.Decoder(Envelope)
_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(Envelope)


def to_msgpack(env: Envelope) -> bytes:
    return _mp_encoder.encode(env)


def _decode_stored(data: bytes) -> Envelope:
    """The envelope as stored, before any upcast; undecodable bytes become a :class:`SchemaError`."""
    try:
        return _mp_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise SchemaError(f"stored event does not match this ibledger's schema: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise SchemaError(f"stored event is not valid msgpack (corrupt bytes?): {exc}") from exc


def from_msgpack(data: bytes) -> Envelope:
    return check_version(_decode_stored(data))


def from_msgpack_stored(data: bytes) -> tuple[int, Envelope]:
    """The schema version the event was stored under, and the event upcast to the current one.

    Verification compares the row's topic with what was written, not with what reading made of it, so an
    old session stays untampered after an upgrade bumped a kind's schema.
    """
    env = _decode_stored(data)
    return env.v, check_version(env)


def to_json(env: Envelope) -> bytes:
    return _json_encoder.encode(env)


def from_json(data: bytes | str) -> Envelope:
    try:
        env = _json_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise SchemaError(f"event does not match this ibledger's schema: {exc}") from exc
    return check_version(env)
