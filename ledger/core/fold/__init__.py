"""The order fold: envelopes in, order aggregates, fills, positions, anomalies and transitions out.

Pure and deterministic (README "Design: Principles" 2-5): no IB library, no store, no clock, no uuid4, no
unseeded randomness, no set iteration. Time comes only from ``env.recv_ns``. Every container that is
iterated is a dict or list, so iteration follows arrival order and two folds of one stream produce
byte-identical :meth:`LedgerFold.snapshot` output. The fold never raises on input: invalid input is an
:class:`Anomaly` (recorded, not applied), and a bug inside a handler becomes an ``internal_error``
anomaly rather than an exception.

``LedgerFold`` is incremental: it mutates its own state, one :meth:`LedgerFold.apply` per envelope, so
the live recorder, the replayer and the tests all run the very same code path.

Identity (README "Design: Identity")
-------------------------------
* ``permId`` is the long-term identity; ``(session_id, client_id, order_id)`` correlates before it is
  known (permId is 0 right after placeOrder; an execution may arrive before any status). The two are
  bound on the first message that carries both.
* A ``(client_id, order_id)`` binding is scoped to the recording session (orderIds repeat across TWS
  logins), and it is **superseded** when a ``place_order`` intent reuses the id after the bound order is
  done (Filled, Cancelled, Rejected, Blocked-and-placed, Inactive without whyHeld): the new intent is a
  new order. A ``place_order`` on a bound order that is not done is a *modify* (IB semantics: re-sending
  placeOrder with the same orderId modifies). A broker message whose (client, order) is bound to an
  order with a *different* non-zero permId is also a new order (the id was reused by TWS).
* Manual TWS orders (orderId 0 or negative, executions with orderId 2147483647) and completed orders
  (``completedOrder``, orderId 0) are matched by permId only. Negative ids are still bound, as aliases.
* Keys: ``perm:<permId>`` when the order is first seen with a permId, else
  ``<session_id>:<client_id>:<order_id>`` (``~2``, ``~3``... when superseded). A key never changes and
  is never reused; ``order_for`` / ``order_by_perm`` find orders by their broker ids.
* When a permId-only record and a (client, order)-only record turn out to be one order (e.g. we placed
  an order, lost the connection before any acknowledgement, and reconciliation returned it as a
  completed order with orderId 0), the later-created record is merged into the earlier one: its fills
  and its current broker status move over (the status through the table, as one observation), it
  leaves ``orders`` with a transition to ``Merged``, ``merged`` maps its key to the survivor's, and an
  ``identity_merged`` anomaly (informational) names both keys.
* A broker message in a later session about a (client, orderId) that this session never bound, while an
  order placed under that (client, orderId) in one of the last few earlier sessions was never
  acknowledged, is about that order (the recorder restarted while it was in flight) — provided nothing
  in the message contradicts it (quantity, contract, side): the two are bound, not duplicated.
* The client id of intents and of broker messages carrying client id 0 defaults to the session's
  (from ``session_started`` / ``connected``).

Ledger state (see :mod:`ledger.core.statemachine` for the names)
-----------------------------------------------------------
Derived after every event from: the accepted broker status (validated by the README's status table), the
executions and the local intents. Fills are facts: when executions cover the total quantity the order
is ``Filled`` whatever the statuses say (``Filled`` absorbs everything after it); a broker ``Filled``
status with fewer executed shares is ``AwaitingExecutions`` and ``fill_pending`` (not an error: the
executions may still come, e.g. from reqExecutions after a reconnect). ``fill_status_mismatch`` is
recorded only at a checkpoint — a successful ``reconcile_ended`` (the broker has just told us every
execution of the day) or ``session_ended`` — for orders whose broker-reported filled quantity is still
not covered by executions (once per order and reported quantity).

Governor decisions (``action="place"``): ALLOW before the ``place_order`` → ``Created``; BLOCK → ``Blocked``
whether it comes before the intent (the intent then attaches to the blocked record) or after it (an
unacknowledged order becomes Blocked; one the broker already knows is not: ``block_after_ack``). A
broker message or execution for a Blocked order wins (facts first) and is flagged.

Error codes never make an order terminal. ``201`` + ``Inactive`` (either order) → ``Rejected``.
``10148`` / ``161`` / ``10147`` refuse a pending cancel (the overlay is cleared, the state underneath is
restored). Errors do not count as an acknowledgement: an order with only errors stays ``unconfirmed``.

Overlays
--------
``PendingCancel``: set by a ``cancel_order`` / ``global_cancel`` intent or a broker ``PendingCancel``;
cleared by a terminal state, by a live status after broker ``PendingCancel`` (cancel refused), or by a
cancel-refusal error. A live status that merely repeats the status before our cancel intent does *not*
clear it (the cancel may not have reached the broker yet). A partial fill does not clear it either (the
cancel may still succeed for the remainder); a fill that completes the order does (terminal).
``PendingModify``: set by ``modify_order`` or a ``place_order`` on a live bound order; cleared by an
``openOrder`` that reflects the requested quantity / prices / type / tif, by a terminal state, or by a
non-warning error for the order (modify refused).

Fills and commissions
---------------------
Executions are keyed by execId; the same execId twice is a no-op. The *family* is the execId up to its
last ``.``; a higher revision suffix (``.02`` over ``.01``) replaces the lower one (a correction, not an
extra fill); an older revision arriving after a newer one is kept, marked superseded. ``filled``,
``avg_fill_price`` and ``commission`` are computed over the latest revision of each family.
Commission reports join executions by execId in either order. One arriving before its execution is
held pending; if the execution never shows up, an ``unknown_commission`` anomaly is recorded at
``session_ended`` (still held: a later session's reqExecutions may bring the execution). A repeated
report with the same values is a silent no-op (both libraries emit duplicates, and reconnects re-send
them); one with different values is a ``duplicate_commission`` anomaly and the first is kept.

Positions (``positions``, per account + con_id, or account + symbol + sec_type without a con_id):
``position`` = the last ``position`` event's quantity + signed executions since (corrections adjust).

Performance: ``apply`` is written for throughput (fast paths for repeated statuses and for orders
already bound in the session); see ``tests/benchmarks/bench_fold.py``.

Redelivery: the fold expects each session's envelopes in ``seq`` order. An envelope whose ``seq`` is
not above its session's high-water mark is a redelivery and is ignored (counted in ``redelivered``,
which is not part of the snapshot).


The fold is a package of plain functions over one explicit state object, the :class:`LedgerFold`:
``views`` (what readers see), ``state`` (per-order internal state, shared tables), ``status`` (the status
table and re-deriving the ledger state), ``identity`` (keys, bindings, resolve, merge), ``broker``
(orderStatus / openOrder / completedOrder / errors), ``fills`` (executions, corrections, commissions),
``positions``, ``intents`` (place / modify / cancel / decisions), ``lifecycle`` (session, connection,
reconcile, checkpoints), ``compact`` and ``archive`` (a compact fold retires finished orders to a temporary
file and re-inflates them on demand: flat memory, same output), ``checkpoint`` (the whole state as msgspec
bytes) and ``ledger`` (the class, its one dispatch table and its read API).
"""

from ledger.core.fold.ledger import LedgerFold, fold
from ledger.core.fold.views import (
    ANOMALY_KINDS,
    Anomaly,
    Fill,
    OrderView,
    PositionView,
    Snapshot,
    Transition,
    exec_family,
)

__all__ = [
    "ANOMALY_KINDS",
    "Anomaly",
    "Fill",
    "LedgerFold",
    "OrderView",
    "PositionView",
    "Snapshot",
    "Transition",
    "exec_family",
    "fold",
]
