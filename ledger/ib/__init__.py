"""Everything that knows the IB client libraries: library selection, payload conversion, connection, reconcile.

This is the only package that imports ib_insync / ib_async; the rest of ibledger sees plain event payloads."""
