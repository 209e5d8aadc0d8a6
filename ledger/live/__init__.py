"""Live recording and trading: the recorder, the order monitor, safe placement, health checks."""
