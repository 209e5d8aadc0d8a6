"""The NautilusTrader anchor: one order-flow stream of raw IB callbacks, processed by both sides end to end.

    python tests/benchmarks/anchor.py [--orders 20000] [--runs 3] [--seed 7]

The stream is a seeded synthetic session (``replay.synthetic``: orders placed, acknowledged, partially and
fully filled with commissions, cancelled, modified, rejected, late fills, manual orders...) turned back
into the wrapper callbacks a recorder receives, one record per callback: ``[name, recv_ns, args]``, the
arguments as plain data (the contract, order, order state and execution as attribute mappings). It is
written once, as msgpack, to a file both sides read:

* side L (this interpreter): the records become the IB library's own objects first (``Contract`` /
  ``Order`` / ``OrderState`` / ``Execution`` / ``CommissionReport`` of ib_insync, or of ib_async where that
  is the library, as user code and the decoder hand them to the wrapper; not timed), then what the
  recorder does with a callback, timed: the adapter's builder (``ledger.ib.adapter``) translates the
  arguments into an event, an envelope is stamped, and ``LedgerFold.apply`` folds it;
* side N (``.venv-nautilus``, a subprocess running ``anchor_nautilus.py``): NautilusTrader's own order
  objects, timed from the same records: ``OrderFactory`` creates an order per placement, and each callback
  becomes the order event NautilusTrader's Interactive Brokers execution client would generate
  (``OrderSubmitted``, ``OrderAccepted``, ``OrderPendingUpdate`` / ``OrderUpdated``, ``OrderPendingCancel``,
  ``OrderCanceled``, ``OrderRejected``, ``OrderCancelRejected``, ``OrderFilled`` with its commission),
  applied with ``Order.apply``.

Both print callbacks/s over the whole stream (every record counts, including the ones a side ignores);
the ratio L/N is the issue's "fold incl. adapter translation, anchor stream" row (target >= 1.5x).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ledger.core import events as ev  # noqa: E402
from ledger.core.fold import LedgerFold  # noqa: E402
from ledger.ib import adapter  # noqa: E402

NAUTILUS_PYTHON = ROOT / ".venv-nautilus" / "bin" / "python"
NAUTILUS_SCRIPT = Path(__file__).with_name("anchor_nautilus.py")
NAUTILUS_BUILD = (
    "python3 -m venv .venv-nautilus && .venv-nautilus/bin/pip install 'nautilus_trader==1.221.0' "
    "'nautilus-ibapi==10.30.1' protobuf"
)
TARGET = 1.5
_EXCHANGE = {"STK": "SMART", "FUT": "CME", "CASH": "IDEALPRO"}


# --- the stream ----------------------------------------------------------------------------------


def _contract(p: Any) -> dict[str, Any]:
    return {"symbol": p.symbol, "secType": p.sec_type, "conId": p.con_id,
            "exchange": _EXCHANGE.get(p.sec_type, "SMART"), "currency": "USD"}


def _order(p: Any, **extra: Any) -> dict[str, Any]:
    o = {"orderId": p.order_id, "clientId": p.client_id, "action": p.action, "totalQuantity": p.total_qty,
         "orderType": p.order_type, "tif": p.tif, "account": p.account, "orderRef": p.order_ref, **extra}
    if p.lmt_price is not None:
        o["lmtPrice"] = p.lmt_price
    if p.aux_price is not None:
        o["auxPrice"] = p.aux_price
    return o


def record(p: ev.Event) -> tuple[str, list] | None:
    """The wrapper callback (name, positional arguments as plain data) a payload was built from; None
    for what is not an IB callback (session, governor and reconciliation events)."""
    t = type(p)
    if t is ev.OrderStatus:
        return "orderStatus", [p.order_id, p.status, p.filled, p.remaining, p.avg_fill_price, p.perm_id,
                               p.parent_id, p.last_fill_price, p.client_id, p.why_held, p.mkt_cap_price]
    if t is ev.ExecDetails:
        x = {"execId": p.exec_id, "time": p.time, "acctNumber": p.account, "exchange": p.exchange,
             "side": p.side, "shares": p.shares, "price": p.price, "permId": p.perm_id, "clientId": p.client_id,
             "orderId": p.order_id, "cumQty": p.cum_qty, "avgPrice": p.avg_price, "orderRef": p.order_ref}
        c = {"symbol": p.symbol, "secType": p.sec_type, "conId": p.con_id}
        return "execDetails", [p.req_id, c, x]
    if t is ev.CommissionReport:
        unset = ev.UNSET_DOUBLE  # what IB sends for no P&L / yield (the library's own default is 0.0)
        r = {"execId": p.exec_id, "commission": p.commission, "currency": p.currency,
             "realizedPNL": unset if p.realized_pnl is None else p.realized_pnl,
             "yield_": unset if p.yield_ is None else p.yield_}
        return "commissionReport", [r]
    if t is ev.PlaceOrder or t is ev.ModifyOrder:
        return "placeOrder", [_contract(p), _order(p), p.order_id, p.client_id, t is ev.ModifyOrder]
    if t is ev.CancelOrder:
        return "cancelOrder", [{"orderId": p.order_id, "clientId": p.client_id, "permId": p.perm_id}, p.client_id]
    if t is ev.OpenOrder:
        return "openOrder", [p.order_id, _contract(p), _order(p, permId=p.perm_id), {"status": p.status}]
    if t is ev.CompletedOrder:
        return "completedOrder", [_contract(p), _order(p, permId=p.perm_id), {"status": p.status}]
    if t is ev.Error:
        return "error", [p.req_id, p.code, p.message, p.advanced_order_reject_json]
    if t is ev.Position:
        return "position", [p.account, {"symbol": p.symbol, "secType": p.sec_type, "conId": p.con_id},
                            p.position, p.avg_cost]
    if t is ev.NextValidId:
        return "nextValidId", [p.order_id]
    if t is ev.ManagedAccounts:
        return "managedAccounts", [p.accounts]
    if t is ev.ExecDetailsEnd:
        return "execDetailsEnd", [p.req_id]
    for cls, name in ((ev.OpenOrderEnd, "openOrderEnd"), (ev.CompletedOrdersEnd, "completedOrdersEnd"),
                      (ev.PositionEnd, "positionEnd")):
        if t is cls:
            return name, []
    return None


def write_stream(path: Path, seed: int, n_orders: int) -> int:
    """Write the anchor stream of ``synthetic:SEED:N_ORDERS`` to ``path``; returns the number of records."""
    from replay.synthetic import synthetic_session

    records = []
    for env in synthetic_session(seed, n_orders):
        r = record(env.payload)
        if r is not None:
            records.append([r[0], env.recv_ns, r[1]])
    path.write_bytes(msgspec.msgpack.encode(records))
    return len(records)


def read_stream(path: Path) -> list[list]:
    return msgspec.msgpack.decode(path.read_bytes())


# --- side L: the IB library's objects -> adapter -> envelope -> LedgerFold.apply ------------------


def _obj(cls: type, attrs: dict[str, Any]) -> Any:
    o = cls()
    for k, v in attrs.items():
        setattr(o, k, v)
    return o


def _fresh(v: Any) -> Any:
    """``v`` as a new object, the way the decoder parses it from the wire: a new float, a new non-empty
    text, a new int beyond CPython's small-int cache (empty text and small ints are shared objects)."""
    t = type(v)
    if t is float:
        return float(repr(v))
    if t is str and v:
        return v.encode().decode()
    if t is int and not -5 <= v <= 256:
        return int(str(v))
    return v


def _wire(cls: type, attrs: dict[str, Any]) -> Any:
    """An object the library's decoder made: it parses every field the message carries, so none of the
    scalar attributes is the dataclass's own default object (what a user-built ``Order`` mostly holds)."""
    o = _obj(cls, attrs)
    for k, v in list(vars(o).items()):
        setattr(o, k, _fresh(v))
    return o


def library_calls(records: list[list]) -> list[tuple]:
    """Each record as the call the recorder's hook makes: (builder, positional args, recv_ns), the
    arguments being ib_insync's own objects: a placed order as user code builds it (the library's
    defaults, then the fields it sets), a received one as the decoder builds it (every field parsed)."""
    from ledger.ib.library import ib  # ib_insync or ib_async, as the recorder would use

    out = []
    cb = adapter.CALLBACKS
    for name, ns, a in records:
        if name == "placeOrder":
            contract, order, order_id, client_id, modify = a
            o = _obj(ib.Order, order)
            out.append((_place_modify if modify else _place, (_obj(ib.Contract, contract), o, order_id, client_id), ns))
        elif name == "cancelOrder":
            out.append((adapter.cancel_order, (_obj(ib.Order, a[0]), a[1]), ns))
        elif name == "openOrder":
            out.append((cb[name], (a[0], _wire(ib.Contract, a[1]), _wire(ib.Order, a[2]), _wire(ib.OrderState, a[3])),
                        ns))
        elif name == "completedOrder":
            out.append((cb[name], (_wire(ib.Contract, a[0]), _wire(ib.Order, a[1]), _wire(ib.OrderState, a[2])), ns))
        elif name == "execDetails":
            out.append((cb[name], (a[0], _wire(ib.Contract, a[1]), _wire(ib.Execution, a[2])), ns))
        elif name == "commissionReport":
            out.append((cb[name], (_wire(ib.CommissionReport, a[0]),), ns))
        elif name == "position":
            out.append((cb[name], (a[0], _wire(ib.Contract, a[1]), a[2], a[3]), ns))
        else:
            out.append((cb[name], tuple(a), ns))
    return out


def _place(contract: Any, order: Any, order_id: int, client_id: int) -> ev.PlaceOrder:
    return adapter.place_order(contract, order, order_id, client_id, modify=False)


def _place_modify(contract: Any, order: Any, order_id: int, client_id: int) -> ev.PlaceOrder:
    return adapter.place_order(contract, order, order_id, client_id, modify=True)


def run_ledger(calls: list[tuple]) -> LedgerFold:
    """The timed part of side L: translate every callback, stamp its envelope, fold it."""
    fold = LedgerFold()
    apply = fold.apply
    envelope = ev.envelope
    t0 = calls[0][2] if calls else 0
    seq = 0
    for builder, args, ns in calls:
        seq += 1
        apply(envelope("anchor", seq, builder(*args), recv_ns=ns, mono_ns=ns - t0))
    return fold


def run_translate(calls: list[tuple]) -> int:
    """The adapter alone (no envelope, no fold): how much of side L is translation."""
    n = 0
    for builder, args, _ns in calls:
        builder(*args)
        n += 1
    return n


def run_fold_only(envs: list[ev.Envelope]) -> LedgerFold:
    fold = LedgerFold()
    apply = fold.apply
    for env in envs:
        apply(env)
    return fold


def _timed(fn: Any, arg: Any) -> float:
    gc.collect()
    t = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t


def side_n(path: Path, runs: int = 1) -> dict[str, Any] | None:
    """NautilusTrader's side in ``.venv-nautilus``; None when that environment is absent."""
    if not NAUTILUS_PYTHON.exists():
        return None
    out = subprocess.run([str(NAUTILUS_PYTHON), str(NAUTILUS_SCRIPT), str(path), str(runs)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"anchor_nautilus.py failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(seed: int, n_orders: int, runs: int, path: Path | None = None) -> dict[str, Any]:
    """Both sides over one stream file, ``runs`` rounds, each round one pass of every measurement in turn
    (N, then L end to end, the adapter alone, the fold alone), so a change in the machine's load between
    rounds touches both sides alike. Medians per measurement; the ratio is of the medians."""
    with tempfile.TemporaryDirectory(prefix="ibledger-anchor-") as tmp:
        file = path or Path(tmp) / f"anchor-{seed}-{n_orders}.msgpack"
        if path is None or not path.exists():
            write_stream(file, seed, n_orders)
        records = read_stream(file)
        calls = library_calls(records)
        envs = [ev.envelope("anchor", i, b(*a), recv_ns=ns, mono_ns=0) for i, (b, a, ns) in enumerate(calls, 1)]
        n = len(calls)
        gc.collect()
        gc.freeze()
        secs: dict[str, list[float]] = {"L": [], "translate": [], "fold_only": [], "N": []}
        N: dict[str, Any] | None = None
        try:
            for _ in range(runs):
                got = side_n(file)
                if got is not None:
                    N = got
                    secs["N"].append(got["runs_s"][0])
                secs["L"].append(_timed(run_ledger, calls))
                secs["translate"].append(_timed(run_translate, calls))
                secs["fold_only"].append(_timed(run_fold_only, envs))
        finally:
            gc.unfreeze()
        f = run_ledger(calls)
    rate = {k: (n / statistics.median(v) if v else 0.0) for k, v in secs.items()}
    L = {"callbacks": n, "rate": rate["L"], "runs_s": secs["L"], "translate": rate["translate"],
         "fold_only": rate["fold_only"], "orders": len(f.orders), "anomalies": len(f.anomalies)}
    if N is not None:
        N = {**N, "rate": rate["N"], "runs_s": secs["N"]}
    return {"L": L, "N": N, "ratio": (L["rate"] / N["rate"]) if N else None, "seed": seed, "orders": n_orders}


def missing_line() -> str:
    return f"anchor: NautilusTrader's side skipped: no .venv-nautilus (build it with `{NAUTILUS_BUILD}`)"


def report(m: dict[str, Any], runs: int) -> None:
    L, N = m["L"], m["N"]
    print(f"anchor stream: synthetic:{m['seed']}:{m['orders']} as {L['callbacks']:,} IB callbacks "
          f"(medians of {runs} runs, callbacks/s, end to end from the same records)")
    print(f"  L  ibledger: adapter + envelope + LedgerFold.apply  {L['rate']:>10,.0f} cb/s"
          f"   ({L['orders']:,} orders, {L['anomalies']:,} anomalies)")
    print(f"       of which: adapter alone {L['translate']:>10,.0f} cb/s, fold alone {L['fold_only']:>10,.0f} cb/s")
    if N is None:
        print(missing_line())
        return
    print(f"  N  NautilusTrader: events from records + Order.apply {N['rate']:>10,.0f} cb/s"
          f"   ({N['orders']:,} orders, {N['events']:,} events applied, {N['refused']:,} refused by its FSM)")
    verdict = "meets" if m["ratio"] >= TARGET else "MISSES"
    print(f"  ratio L/N: {m['ratio']:.2f}x  (target >= {TARGET}x: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--file", type=Path, default=None, help="keep the stream in this file (reused if present)")
    a = ap.parse_args()
    report(measure(a.seed, a.orders, a.runs, a.file), a.runs)


if __name__ == "__main__":
    main()
