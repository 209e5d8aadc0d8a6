"""A compact fold on a persistent archive is checkpointed and resumed in another process, exactly.

Every pinned stream is folded with a window of zero finished orders (so nearly every late event must find its
order in the archive), checkpointed halfway, folded on past the checkpoint (a run that never committed: its
records are appended to the log), and then resumed from the checkpoint in a new interpreter with another
string-hash seed: the archive's index must not depend on the process, the log must be cut back to the
committed length, and the resumed fold must end on the pinned digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.core.fold import LedgerFold
from ledger.core.fold.archive import Archive, stable_hash
from tests.core.test_fold_digests import DATA, streams

ROOT = Path(__file__).resolve().parents[2]
WANT = json.loads(DATA.read_text())

_RESUME = """
import hashlib, json, sys
from ledger.core.fold import LedgerFold
from ledger.core.fold.archive import Archive
from tests.core.test_fold_digests import streams
work = sys.argv[1]
cuts = json.loads(open(work + "/cuts.json").read())
out = {}
for i, (name, envs) in enumerate(streams().items()):
    k, end = cuts[name]
    d = f"{work}/{i}"
    blob = open(d + "/ck", "rb").read()
    f = LedgerFold.from_checkpoint(blob, Archive(d, end), keep=0)
    f.apply_all(envs[k:])
    out[name] = hashlib.sha256(f.snapshot()).hexdigest()[:16]
    f.close()
print(json.dumps(out))
"""


def test_checkpoint_resumes_in_another_process(tmp_path: Path) -> None:
    cuts: dict[str, tuple[int, int]] = {}
    retired = 0
    for i, (name, envs) in enumerate(streams().items()):
        d = tmp_path / str(i)
        d.mkdir()
        k = len(envs) // 2
        f = LedgerFold(compact=True, keep=0, archive=Archive(str(d)))
        f.apply_all(envs[:k])
        (d / "ck").write_bytes(f.checkpoint())
        end = f._arch._pos  # type: ignore[union-attr]
        cuts[name] = (k, end)
        f.apply_all(envs[k:])  # appended after the checkpoint, never committed: cut off on reopening
        assert hashlib.sha256(f.snapshot()).hexdigest()[:16] == WANT[name], name
        retired += f._arch.count  # type: ignore[union-attr]
        assert (d / "log").stat().st_size >= end
        f.close()
    assert retired > 1000  # the archive was really used
    (tmp_path / "cuts.json").write_text(json.dumps(cuts))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", _RESUME, str(tmp_path)], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {name: WANT[name] for name in cuts}


def test_stable_hashes_do_not_depend_on_the_process() -> None:
    keys = [("k", "perm:12"), ("e", "0001f4e8.65a.01.01"), ("p", 12), ("a", ("DU1", 12)), ("b", ("s", 1, -3))]
    here = [stable_hash(kind, key) for kind, key in keys]
    code = f"from ledger.core.fold.archive import stable_hash; print([stable_hash(k, v) for k, v in {keys!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "777", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True)
    assert out.stdout.strip() == str(here)
    assert all(0 <= h < 2**63 for h in here) and len(set(here)) == len(here)


def test_checkpoint_refuses_a_log_shorter_than_committed_and_a_temporary_archive(tmp_path: Path) -> None:
    envs = streams()["synthetic:1"]
    f = LedgerFold(compact=True, keep=0, archive=Archive(str(tmp_path)))
    f.apply_all(envs)
    blob = f.checkpoint()
    end = f._arch._pos  # type: ignore[union-attr]
    f.close()
    with pytest.raises(ValueError, match="shorter"):
        Archive(str(tmp_path), end + 1)
    for arch, keep, match in ((Archive(str(tmp_path), end), 5, "keeps 0"),  # another window
                              (Archive(str(tmp_path), end - 1), 0, "log of")):  # another log length
        with pytest.raises(ValueError, match=match):
            LedgerFold.from_checkpoint(blob, arch, keep=keep)
        arch.close()
    with pytest.raises(ValueError, match="temporary archive"):
        LedgerFold(compact=True).checkpoint()
