"""The adapter's raw copy (``to_raw``) of the client library's objects is exact: same keys, same order, same
values of the same types (compared as encoded bytes, so 0 / 0.0 / False and -0.0 / 0.0 differ), whatever
mix of defaults, parsed values, sentinels and nested objects an object holds.

The per-class template path (default objects found with a C-level map) is checked against the plain per-field
definition below, which is what the adapter computed before the template path existed. Runs under
ib_insync and ib_async (marker ``ibclient``): both libraries' dataclasses go through it.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import math
import sys

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import events as ev
from ledger.ib import adapter
from ledger.ib.library import ib

pytestmark = pytest.mark.ibclient

UNSET_DOUBLE = sys.float_info.max
UNSET = frozenset({ev.UNSET_DOUBLE, -ev.UNSET_DOUBLE, ev.UNSET_INTEGER, ev.UNSET_LONG, *ev._UNSET_TEXT})
SCALARS = frozenset({str, int, float, bool, type(None)})
KEPT = (datetime.datetime, datetime.date, datetime.time, decimal.Decimal, bytes)


def reference(obj, depth: int = 0):
    """``to_raw`` as a definition: one step per field, no template."""
    if type(obj) in SCALARS:
        return None if obj in UNSET else obj
    if isinstance(obj, KEPT):
        return None if ev.is_unset(obj) else obj
    if depth > 12:
        return repr(obj)
    if dataclasses.is_dataclass(obj):
        return {
            n: (None if v in UNSET and n != "orderId" else v) if type(v) in SCALARS else reference(v, depth + 1)
            for n, v in vars(obj).items()
        }
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return {str(n): reference(v, depth + 1) for n, v in zip(obj._fields, obj, strict=False)}
    if isinstance(obj, list | tuple):
        return [reference(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {str(n): reference(v, depth + 1) for n, v in obj.items()}
    if isinstance(obj, set | frozenset):
        return sorted((reference(v, depth + 1) for v in obj), key=repr)
    return repr(obj)


def exact(a) -> bytes:
    return msgspec.msgpack.encode(a)


scalars = st.one_of(
    st.sampled_from([0, 0.0, -0.0, False, True, None, "", UNSET_DOUBLE, -UNSET_DOUBLE, ev.UNSET_INTEGER,
                     ev.UNSET_LONG, repr(UNSET_DOUBLE), "1.7976931348623157E308", 1, 1.0, "BUY", 2**31 - 1]),
    st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True), st.text(max_size=5),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.builds(lambda t, v: ib.TagValue(t, v), st.text(max_size=3), st.text(max_size=3)).map(lambda tv: [tv]),
    st.builds(lambda s: ib.Contract(symbol=s), st.text(max_size=3)),
)
CLASSES = [ib.Order, ib.Contract, ib.Execution, ib.OrderState, ib.CommissionReport]


def fresh(v):
    """A new object equal to ``v`` (as a decoder parses a value), not the dataclass's default object."""
    if type(v) is float:
        return float(repr(v)) if not math.isnan(v) else float("nan")
    if type(v) is str and v:
        return v.encode().decode()
    if type(v) is int:
        return int(str(v))
    return v


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CLASSES), st.data(), st.booleans())
def test_to_raw_equals_the_per_field_definition(cls, data, parsed):
    obj = cls()
    names = [f.name for f in dataclasses.fields(cls)]
    if parsed:  # every field set again, as new objects: what the library's decoder hands over
        for n in names:
            setattr(obj, n, fresh(getattr(obj, n)))
    for n in data.draw(st.lists(st.sampled_from(names), max_size=12, unique=True)):
        setattr(obj, n, data.draw(values))
    got, want = adapter.to_raw(obj), reference(obj)
    assert list(got) == list(want)
    assert exact(got) == exact(want)


def test_defaults_are_not_shared_between_copies():
    a, b = adapter.to_raw(ib.Order()), adapter.to_raw(ib.Order())
    assert a == b and a is not b
    a["algoParams"].append("x")
    assert b["algoParams"] == []


def test_an_attribute_set_out_of_field_order_keeps_its_own_order():
    o = ib.Order(lmtPrice=1.5)
    del o.lmtPrice
    o.lmtPrice = 2.5  # now the last key of the instance dict
    got = adapter.to_raw(o)
    assert list(got) == list(vars(o)) and got["lmtPrice"] == 2.5
    assert exact(got) == exact(reference(o))


def test_an_extra_instance_attribute_is_kept():
    o = ib.Order(totalQuantity=3.0)
    o.note = "mine"
    got = adapter.to_raw(o)
    assert got["note"] == "mine" and exact(got) == exact(reference(o))


def test_an_object_without_a_plain_comparison_is_copied_by_its_repr():
    class Odd:
        def __ne__(self, other):
            raise TypeError("no")

        def __repr__(self):
            return "Odd()"

    o = ib.Order(orderRef="x")
    o.lmtPrice = Odd()
    got = adapter.to_raw(o)
    assert got["lmtPrice"] == "Odd()" and got["orderRef"] == "x"
    assert exact(got) == exact(reference(o))
