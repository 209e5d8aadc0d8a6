"""Replay: session files, the replayer, synthetic streams, the wire-level TWS simulator and its scenarios.

* :mod:`replay.replayer` -- ``replay(source, config, check=...)``: a recorded, file or synthetic session
  through the same :class:`ledger.core.engine.Engine` (fold + governor) as live, with divergence reports and a
  deterministic digest; ``ibledger replay`` is its command line.
* :mod:`replay.synthetic` -- seeded synthetic recording sessions (``synthetic:SEED[:N_ORDERS]``).
* :mod:`replay.strategies` -- Hypothesis strategies of realistic IB event streams for your own tests.
* :mod:`replay.pytest_plugin` -- the ``ibledger_replay`` fixture (pytest entry point ``ibledger``).
"""
