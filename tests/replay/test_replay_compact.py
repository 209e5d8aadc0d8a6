"""The replayer retires finished orders (``KEEP_DONE``): a window of zero must not change any output."""

from __future__ import annotations

import pytest

import replay.replayer as rp
from replay.strategies import generate_stream
from tests.core.test_fold_digests import garbage_stream


@pytest.mark.parametrize("make", [lambda: generate_stream(seed=2, n_events=3000, orders_per_session=60),
                                  lambda: garbage_stream(12, 2000)])
def test_replay_output_does_not_depend_on_the_resident_window(make, monkeypatch) -> None:
    envs = make()
    wide = rp.replay(envs, check=True).to_json()
    monkeypatch.setattr(rp, "KEEP_DONE", 0)
    narrow = rp.replay(envs, check=True).to_json()
    assert narrow == wide
