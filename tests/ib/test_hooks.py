"""Patches on a real IB client: hooks shadow methods, undo restores them, a wrapper over ours survives."""

from __future__ import annotations

from ledger.ib.hooks import Patches
from ledger.ib.library import IB


def test_undo_restores_the_methods_and_disconnects_the_handlers():
    ib = IB()
    seen: list[str] = []
    p = Patches()
    p.hook(ib, "placeOrder", lambda *a: "hooked")
    p.listen(ib.connectedEvent, lambda: seen.append("connected"))
    assert ib.placeOrder() == "hooked"
    ib.connectedEvent.emit()
    assert seen == ["connected"]
    p.undo()
    assert "placeOrder" not in ib.__dict__ and ib.placeOrder.__func__ is type(ib).placeOrder
    ib.connectedEvent.emit()
    assert seen == ["connected"]
    p.undo()  # twice is harmless


def test_a_wrapper_installed_over_our_hook_is_left_in_place():
    ib = IB()
    p = Patches()
    p.hook(ib, "cancelOrder", lambda *a: "ours")
    ours = ib.cancelOrder
    ib.cancelOrder = lambda *a: ("theirs", ours(*a))
    p.undo()
    assert ib.cancelOrder() == ("theirs", "ours")
