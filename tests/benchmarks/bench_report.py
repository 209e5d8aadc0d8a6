"""Benchmark the HTML report at the size of a busy day. A script that prints figures (not a pytest test).

    .venv/bin/python tests/benchmarks/bench_report.py [--orders 100000] [--runs 3] [--keep DIR]

Builds a realistic stream of ``--orders`` orders (every scenario of tests/support/audit_streams.py, REALISTIC
weights), stores it (SQLite), projects it (DuckDB), writes the report, then opens it in headless Chromium
``--runs`` times and prints medians:

1. writing the report (index, charts, detail files), vs projecting the same store (the step before it);
2. opening the page: the page's own clock when its index is parsed and the first page of orders is drawn
   (``data-ready-ms``), and Chromium's wall time from start to the dumped DOM, each vs the same page with an
   empty index (the browser's own start-up cost, measured in the same run);
3. opening it with a search for one permId (``#q=PERM``): must find exactly that order.

Target: the 100k-order index opens (data-ready) in under 3 s.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from ledger.store import open_store  # noqa: E402
from projections.projector import rebuild  # noqa: E402
from projections.report import write_report  # noqa: E402
from tests.support.audit_streams import REALISTIC, generate  # noqa: E402

TARGET_OPEN_MS = 3000
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1200,900"]


def open_page(url: str) -> tuple[float, float, str]:
    """(data-ready ms inside the page, Chromium wall ms, DOM)."""
    profile = tempfile.mkdtemp(prefix="ibl-bench-chromium-")
    try:
        t = time.perf_counter()
        dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url], check=True,
                             capture_output=True, text=True, timeout=300).stdout
        wall = (time.perf_counter() - t) * 1000
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    m = re.search(r'data-ready-ms="(\d+)"', dom)
    if not m:
        raise SystemExit("the page never finished loading (no data-ready-ms)")
    return float(m.group(1)), wall, dom


def median_open(url: str, runs: int) -> tuple[float, float, str]:
    got = [open_page(url) for _ in range(runs)]
    return statistics.median(g[0] for g in got), statistics.median(g[1] for g in got), got[-1][2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="keep the files in this directory")
    args = ap.parse_args()
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="ibl-bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sessions = max(1, args.orders // 10_000)
        t = time.perf_counter()
        stream = generate(n_sessions=sessions, orders_per_session=args.orders // sessions, seed=14,
                          weights=REALISTIC)
        print(f"stream: {len(stream.orders)} orders, {len(stream.envelopes)} events "
              f"({time.perf_counter() - t:.1f} s to generate)")
        db, duck = work / "ledger.db", work / "ledger.duckdb"
        with open_store(f"sqlite:///{db}") as st:
            st.append(stream.envelopes)
            t = time.perf_counter()
            rebuild(st, duck)
            project_s = time.perf_counter() - t
        out = work / "report.html"
        t = time.perf_counter()
        stats = write_report(duck, out)
        report_s = time.perf_counter() - t
        size_mb = out.stat().st_size / 1e6
        files_mb = sum(f.stat().st_size for f in (work / "report_files").iterdir()) / 1e6
        print(f"write report: {report_s:.2f} s for {stats.shown} orders ({size_mb:.1f} MB page, "
              f"{stats.detail_files} detail files, {files_mb:.1f} MB); baseline: projecting the store "
              f"{project_s:.2f} s; ratio {report_s / project_s:.2f}")

        empty = work / "empty.duckdb"
        shutil.copy(duck, empty)
        con = duckdb.connect(str(empty))
        try:
            con.execute("DELETE FROM orders")
        finally:
            con.close()
        base = work / "empty.html"
        write_report(empty, base)
        b_ready, b_wall, _ = median_open(base.as_uri(), args.runs)
        ready, wall, dom = median_open(out.as_uri(), args.runs)
        ok = "OK" if ready <= TARGET_OPEN_MS else "OVER TARGET"
        print(f"open ({args.runs} runs, medians): page ready {ready:.0f} ms (target {TARGET_OPEN_MS} ms: {ok}), "
              f"chromium wall {wall:.0f} ms; baseline (same page, empty index): ready {b_ready:.0f} ms, wall "
              f"{b_wall:.0f} ms; ratio ready {ready / max(b_ready, 1):.1f}x, wall {wall / b_wall:.2f}x")
        drawn = len(re.findall(r'<tr class="o', dom))
        con = duckdb.connect(str(duck), read_only=True)
        try:
            key, perm = con.execute("SELECT key, perm_id FROM orders WHERE perm_id > 0 ORDER BY key "
                                    "LIMIT 1 OFFSET (SELECT count(*) // 2 FROM orders)").fetchone()
        finally:
            con.close()
        s_ready, s_wall, sdom = median_open(out.as_uri() + f"#q={perm}", args.runs)
        found = re.findall(r'<tr class="o[^"]*" data-i="\d+" data-key="([^"]+)"', sdom)
        print(f"open + search permId {perm}: ready {s_ready:.0f} ms, wall {s_wall:.0f} ms; found {len(found)} "
              f"order(s){' = ' + found[0] if len(found) == 1 else ''} (expected {key}); first page drew {drawn} rows")
        if found != [key]:
            raise SystemExit("search did not find exactly the order")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
