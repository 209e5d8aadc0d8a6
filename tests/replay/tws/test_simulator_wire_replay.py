"""Wire replay: a recorded session's broker messages played back to a new client, ids mapped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.core import events as ev
from ledger.ib.library import LimitOrder, Stock
from ledger.store.sessionfile import write_session
from replay.tws.simulator import Simulator
from replay.tws.wire_replay import load_playback
from tests.support.simulator import Recorder, connected, simulate_cli, wait_events

SID = "rec-session-1"
T0 = 1_704_205_800_000_000_000
MS = 1_000_000
EXEC_A = "0001f4e8.65a1b2c3.01.01"
EXEC_B = "0001f4e8.65a1b2c4.01.01"


def _place(order_id: int, symbol: str, action: str, qty: float, price: float, ref: str) -> ev.PlaceOrder:
    return ev.PlaceOrder(order_id=order_id, client_id=1, symbol=symbol, action=action, total_qty=qty,
                         order_type="LMT", lmt_price=price, order_ref=ref)


def _exec(exec_id: str, order_id: int, perm_id: int, shares: float, price: float, side: str) -> ev.ExecDetails:
    """The order's only execution: cumulative quantity and average price are its own."""
    return ev.ExecDetails(exec_id=exec_id, order_id=order_id, perm_id=perm_id, client_id=1, shares=shares,
                          price=price, cum_qty=shares, avg_price=price, side=side)


def _status(order_id: int, perm_id: int, status: str, filled: float, remaining: float,
            price: float = 0.0) -> ev.OrderStatus:
    """``price``: the average and the last fill price (each order here fills at one price)."""
    return ev.OrderStatus(order_id=order_id, status=status, filled=filled, remaining=remaining,
                          avg_fill_price=price, perm_id=perm_id, last_fill_price=price, client_id=1)


def _recorded() -> list[tuple[int, str, ev.Event]]:
    """Yesterday: order 7 (AAPL, partly filled then cancelled), order 8 (MSFT, 399 then filled)."""
    return [
        (0, "live", ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=1)),
        (1, "live", ev.NextValidId(order_id=7)),
        # an answer to the startup reqExecutions: history, not part of any replayed order
        (2, "reconcile", ev.ExecDetails(exec_id="0000aaaa.00000001.01.01", req_id=3, order_id=2, perm_id=99)),
        (10, "live", _place(7, "AAPL", "BUY", 100, 50.0, "strat-a")),
        (12, "live", ev.OpenOrder(order_id=7, perm_id=555, client_id=1, symbol="AAPL", total_qty=100,
                                  status="Submitted")),
        (13, "live", ev.OrderStatus(order_id=7, status="Submitted", remaining=100, perm_id=555, client_id=1)),
        (20, "live", _place(8, "MSFT", "SELL", 10, 400.0, "strat-b")),
        (25, "live", ev.Error(req_id=8, code=399, message="Order Message:\nWarning: not placed until the open")),
        (30, "live", _exec(EXEC_A, 7, 555, 60, 50.0, "BOT")),
        (31, "live", ev.CommissionReport(exec_id=EXEC_A, commission=0.6, currency="USD")),
        (32, "live", _status(7, 555, "Submitted", 60, 40, 50.0)),
        (33, "live", ev.CommissionReport(exec_id=EXEC_B, commission=0.1, currency="USD")),  # before its exec
        (34, "live", _exec(EXEC_B, 8, 556, 10, 400.0, "SLD")),
        (35, "live", _status(8, 556, "Filled", 10, 0, 400.0)),
        (40, "live", ev.CancelOrder(order_id=7, client_id=1, perm_id=555)),
        (41, "live", _status(7, 555, "PendingCancel", 60, 40, 50.0)),
        (45, "live", _status(7, 555, "Cancelled", 60, 40, 50.0)),
        (46, "live", ev.Error(req_id=7, code=202, message="Order Canceled - reason:")),
        (50, "live", ev.SessionEnded(events=19)),
    ]


@pytest.fixture
def session_file(tmp_path: Path) -> Path:
    envs = [
        ev.envelope(SID, i + 1, payload, recv_ns=T0 + ms * MS, source=source)  # type: ignore[arg-type]
        for i, (ms, source, payload) in enumerate(_recorded())
    ]
    path = tmp_path / "yesterday.jsonl"
    write_session(path, envs, SID, len(envs))
    return path


def test_playback_builds_one_script_per_recorded_order(session_file: Path):
    pb = load_playback(session_file)
    assert [(o.order_id, o.perm_id, o.order_ref) for o in pb.orders] == [(7, 555, "strat-a"), (8, 556, "strat-b")]
    a, b = pb.scenarios
    assert [s.type for s in a.steps] == ["open_order", "status", "exec", "commission", "status"]
    assert [s.after_ms for s in a.steps] == [2, 1, 17, 1, 1]  # recorded spacing, from the place intent
    assert [s.type for s in a.on_cancel] == ["status", "status", "error"]
    assert [s.type for s in b.steps] == ["error", "commission", "exec", "status"]
    assert b.on_cancel is None  # never cancelled: a cancel gets the default reaction


def test_recorded_session_is_played_on_the_wire_with_ids_mapped(session_file: Path):
    with Simulator(playback=load_playback(session_file)) as sim:
        with connected(sim.port, client_id=4) as ib:
            rec = Recorder(ib)
            stock = Stock("AAPL", "SMART", "USD")
            a = ib.placeOrder(stock, LimitOrder("BUY", 100, 50.0, orderRef="strat-a"))
            assert wait_events(ib, rec, 5) == [
                ("open", "Submitted"),
                ("status", "Submitted", 0.0, 100.0, 0.0, 0.0, ""),
                ("exec", "A.01", 60.0, 50.0, 60.0, 50.0),
                ("comm", "A.01", 0.6),
                ("status", "Submitted", 60.0, 40.0, 50.0, 50.0, ""),
            ]
            b = ib.placeOrder(Stock("MSFT", "SMART", "USD"), LimitOrder("SELL", 10, 400.0, orderRef="strat-b"))
            assert wait_events(ib, rec, 9)[5:] == [
                ("error", 399),
                ("comm", "B.01", 0.1),
                ("exec", "B.01", 10.0, 400.0, 10.0, 400.0),
                ("status", "Filled", 10.0, 0.0, 400.0, 400.0, ""),
            ]
            ib.cancelOrder(a.order)
            assert wait_events(ib, rec, 12)[9:] == [
                ("status", "PendingCancel", 60.0, 40.0, 50.0, 50.0, ""),
                ("status", "Cancelled", 60.0, 40.0, 50.0, 50.0, ""),
                ("error", 202),
            ]
            # recorded orderIds 7/8 became this client's ids; permIds are the simulator's; execIds verbatim
            assert a.order.orderId != 7 and b.order.orderId != 8
            for args in rec.raw_of("status"):
                assert args[0] in (a.order.orderId, b.order.orderId) and args[5] not in (555, 556)
            assert [ex.execId for _r, _c, ex in rec.raw_of("exec")] == [EXEC_A, EXEC_B]
            assert [ex.orderId for _r, _c, ex in rec.raw_of("exec")] == [a.order.orderId, b.order.orderId]
            assert [args[0] for args in rec.raw_of("error")] == [b.order.orderId, a.order.orderId]
            # the broker's truth followed the replay
            truth = sim.broker.find(4, a.order.orderId)
            assert (truth.status, truth.filled) == ("Cancelled", 60)
            # the recording is used up: the next order gets the normal scenarios
            assert sim.playbacks()[4].remaining() == 0
            assert sim.playback.remaining() == 2  # the template stays whole for the next client
            c = ib.placeOrder(stock, LimitOrder("BUY", 1, 1.0, orderRef="fill_simple"))
            wait_events(ib, rec, 17)
            assert c.orderStatus.status == "Filled"


def test_bad_session_file_is_reported(tmp_path: Path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "something-else", "version": 1, "session_id": "x", "events": 0}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        load_playback(bad)


def test_cli_simulate_plays_a_session(session_file: Path):
    import signal

    with simulate_cli("--session", str(session_file)) as (proc, port):
        with connected(port) as ib:
            rec = Recorder(ib)
            ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 100, 50.0, orderRef="strat-a"))
            assert wait_events(ib, rec, 5)[-1] == ("status", "Submitted", 60.0, 40.0, 50.0, 50.0, "")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0


def test_every_client_gets_its_own_copy_of_the_session(session_file: Path):
    with Simulator(playback=load_playback(session_file)) as sim:
        for client_id in (5, 6):
            with connected(sim.port, client_id=client_id) as ib:
                rec = Recorder(ib)
                ib.placeOrder(Stock("AAPL", "SMART", "USD"), LimitOrder("BUY", 100, 50.0, orderRef="strat-a"))
                events = wait_events(ib, rec, 5)
                assert ("exec", "A.01", 60.0, 50.0, 60.0, 50.0) in events
                assert sim.playbacks()[client_id].remaining() == 1


def test_answers_to_requests_inside_the_session_are_not_replayed():
    from replay.tws.wire_replay import playback_from_envelopes

    place = ev.PlaceOrder(order_id=7, client_id=1, symbol="AAPL", action="BUY", total_qty=100, order_type="LMT")
    opened = ev.OpenOrder(order_id=7, perm_id=555, client_id=1, symbol="AAPL", total_qty=100, status="Submitted")
    status = ev.OrderStatus(order_id=7, status="Submitted", remaining=100, perm_id=555, client_id=1)
    answer_exec = ev.ExecDetails(exec_id="0000aaaa.00000009.01.01", req_id=5, order_id=7, perm_id=555, shares=1)
    recorded = [
        ev.SessionStarted(library="ib_insync", library_version="0.9.86", client_id=1),
        place,
        opened,
        status,
        # mid-session ib.reqOpenOrders(): the same order once more, closed by openOrderEnd
        opened,
        status,
        ev.OpenOrderEnd(),
        # mid-session ib.reqExecutions(): an answer and its commission report
        answer_exec,
        ev.CommissionReport(exec_id=answer_exec.exec_id, commission=1.0),
    ]
    envs = [ev.envelope(SID, i + 1, p, recv_ns=T0 + i * MS) for i, p in enumerate(recorded)]
    [scenario] = playback_from_envelopes(envs).scenarios
    assert [(s.type, s.status) for s in scenario.steps] == [("open_order", "Submitted"), ("status", "Submitted")]
