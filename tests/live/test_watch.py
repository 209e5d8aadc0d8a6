"""``ibledger watch`` and the recorder's status line: the model against the fold, and the real commands
in a terminal (tmux send-keys / capture-pane) beside a recorder, against the simulator and the real client."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.core.fold import LedgerFold
from ledger.live.watch import WatchModel, catch_up, render
from ledger.store import open_store
from replay.tws.simulator import Simulator
from tests.cli.test_cli_live import run_cli
from tests.support.audit_streams import generate


def test_model_follows_the_store_tail_like_the_fold(store_url: str):
    """On both backends: the watch reads only the public tail, from another connection than the writer's."""
    envs = generate(n_sessions=2, orders_per_session=30, seed=5).envelopes
    url = store_url
    model = WatchModel()
    with open_store(url) as writer, open_store(url) as reader:
        writer.append(envs[: len(envs) // 2])
        first = catch_up(reader, model)
        writer.append(envs[len(envs) // 2:])
        second = catch_up(reader, model)
        assert catch_up(reader, model) == 0
    assert first + second == len(envs) == model.events
    fold = LedgerFold()
    for e in envs:
        fold.apply(e)
    assert {o.key for o in model.open_orders()} == {o.key for o in fold.open_orders()}
    decisions = [e.payload for e in envs if e.payload.__class__.__name__ == "GovernorDecision"]
    if decisions:
        assert model.trading_state == decisions[-1].trading_state
    seen: set[str] = set()
    again = set()
    for e in envs:
        if e.payload.__class__.__name__ == "ExecDetails":
            (again.add if e.payload.exec_id in seen else seen.add)(e.payload.exec_id)
    assert {f.exec_id for f in model.fills if f.redelivered} <= again
    assert [a.seq for a in model.anomalies] == [a.seq for a in reversed(fold.anomalies)][: len(model.anomalies)]
    render(model, envs[-1].recv_ns)  # renders without error


TMUX = shutil.which("tmux")


class Tmux:
    """A private tmux server (its own socket), killed at the end: nothing else's sessions are touched."""

    def __init__(self, tmp: Path) -> None:
        self.socket = f"ibledger-test-{os.getpid()}-{tmp.name}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("IBKR_", "IBLEDGER_", "TMUX"))}

    def run(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.socket, *args], capture_output=True, text=True, env=self.env,
                              timeout=30, check=True).stdout

    def start(self, name: str, command: str) -> None:
        self.run("new-session", "-d", "-s", name, "-x", "200", "-y", "70", command)
        self.run("set-option", "-t", name, "remain-on-exit", "on")

    def screen(self, name: str) -> str:
        return self.run("capture-pane", "-p", "-t", name)

    def dead(self, name: str) -> bool:
        return self.run("display-message", "-p", "-t", name, "#{pane_dead}").strip() == "1"

    def wait(self, name: str, predicate, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            text = self.screen(name)
            if predicate(text):
                return text
            time.sleep(0.2)
        raise AssertionError(f"tmux pane {name} never showed what was expected; it shows:\n{text}")

    def kill(self) -> None:
        subprocess.run([TMUX, "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


@pytest.mark.ibclient
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")
def test_watch_and_record_status_in_a_terminal(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    py = shlex.quote(sys.executable)
    tmux = Tmux(tmp_path)
    with Simulator(accounts=("DU1234567",)) as sim:
        conn = f"--host 127.0.0.1 --port {sim.port} --account DU1234567"
        try:
            tmux.start("rec", f"{py} -m ledger record {conn} --client-id 1 --store {shlex.quote(url)}")
            tmux.wait("rec", lambda s: "committed" in s and "open orders" in s)  # the live status line
            tmux.start("watch", f"{py} -m ledger watch --interval 0.2 --store {shlex.quote(url)}")
            tmux.wait("watch", lambda s: "CONNECTED 127.0.0.1" in s)
            r = run_cli("order", "BUY", "AAPL", "7", "--limit", "1", "--timeout", "1", "--linger", "0", "--json",
                        *conn.split(), "--client-id", "5", "--store", url)
            assert r.returncode == 0, r.stderr
            screen = tmux.wait("watch", lambda s: "Open orders (1)" in s and "LIVE" in s)
            row = next(line for line in screen.splitlines() if "AAPL" in line and "LIVE" in line)
            assert "BUY" in row and " 7 " in row
            assert "ALLOW" in screen  # the governor decision of that order
            tmux.run("send-keys", "-t", "watch", "C-c")
            tmux.run("send-keys", "-t", "rec", "C-c")
            for name in ("watch", "rec"):
                deadline = time.monotonic() + 30
                while not tmux.dead(name) and time.monotonic() < deadline:
                    time.sleep(0.2)
                assert tmux.dead(name), tmux.screen(name)
                assert "Traceback" not in tmux.screen(name)
            assert "stopped: SIGINT" in tmux.screen("rec")
        finally:
            tmux.kill()
    with open_store(url) as st:
        assert len(st.sessions()) == 2 and not any(s.crashed for s in st.sessions())
