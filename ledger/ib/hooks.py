"""Patching the IB client's methods and events, and undoing exactly that patching.

A hook is an instance attribute shadowing the class's method, so undoing it is deleting the
attribute; a hook someone else wrapped over since is left in place (it then only passes through),
because deleting it would silently drop their wrapper too.
"""

from __future__ import annotations

from typing import Any


class Patches:
    """The hooks and event handlers one recorder installed, in order, so ``undo`` removes only those."""

    __slots__ = ("_attrs", "_events")

    def __init__(self) -> None:
        self._attrs: list[tuple[Any, str, Any]] = []  # (object, attribute, our hook)
        self._events: list[tuple[Any, Any]] = []  # (eventkit Event, handler)

    def hook(self, obj: Any, name: str, hook: Any) -> None:
        """Shadow ``obj.name`` with ``hook``."""
        setattr(obj, name, hook)
        self._attrs.append((obj, name, hook))

    def listen(self, event: Any, handler: Any) -> None:
        """Connect ``handler`` to an eventkit ``event``."""
        event += handler
        self._events.append((event, handler))

    def undo(self) -> None:
        """Remove every hook still ours (newest first) and disconnect every handler; never raises."""
        for obj, name, hook in reversed(self._attrs):
            try:
                if obj.__dict__.get(name) is hook:
                    delattr(obj, name)
            except Exception:  # noqa: BLE001
                pass  # someone wrapped over us: our hook stays, as a pass-through (closed)
        self._attrs.clear()
        for event, handler in self._events:
            try:
                event -= handler
            except Exception:  # noqa: BLE001
                pass
        self._events.clear()
