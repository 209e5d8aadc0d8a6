"""The HTML report: charts, an index of every order, detail on demand; checked in a real headless browser.

Chromium comes from Debian (``apt-get install -y chromium``, which .ci/run does); without it the browser
tests skip and say so.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import duckdb
import pytest

from ledger.store import open_store
from ledger.store.sessionfile import iter_session
from projections.projector import update
from projections.report import CHUNK, write_report
from tests.cli.test_cli_live import run_cli
from tests.support.audit_streams import generate

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,2200"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get update && "
                                    "apt-get install -y chromium")


def _project(d: Path, envs) -> Path:
    path = d / "ledger.duckdb"
    with open_store(f"sqlite:///{d / 'ledger.db'}") as store:
        store.append(envs)
        update(store, path)
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, int]:
    d = tmp_path_factory.mktemp("report")
    stream = generate(n_sessions=2, orders_per_session=28, seed=31)
    path = _project(d, stream.envelopes)
    out = d / "report.html"
    write_report(path, out)
    return path, out, len(stream.orders)


def _sql(path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _index(page: str) -> tuple[list[str], list[list]]:
    cols = json.loads(re.search(r"<script type='application/json' id='index-cols'>(.*?)</script>", page).group(1))
    rows = json.loads(re.search(r"<script type='application/json' id='index-data'>(.*?)</script>", page,
                                re.S).group(1))
    return cols, rows


def _detail(out: Path) -> list:
    orders: list = []
    for f in sorted(out.with_name(out.stem + "_files").glob("detail-*.js")):
        m = re.fullmatch(r"ibledgerDetail\((\d+),(.*)\);\n", f.read_text(), re.S)
        assert m and int(m.group(1)) * CHUNK == len(orders)
        orders += json.loads(m.group(2))
    return orders


def test_every_order_is_indexed_with_its_detail_on_demand(built) -> None:
    path, out, n_orders = built
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)  # nothing from the network
    assert "@import" not in page and "url(" not in page
    cols, rows = _index(page)
    keys = [r[cols.index("key")] for r in rows]
    assert sorted(keys) == sorted(k for (k,) in _sql(path, "SELECT key FROM orders")) and len(keys) == n_orders
    detail = _detail(out)
    assert len(detail) == len(keys)
    counts = dict(_sql(path, "SELECT order_key, count(*) FROM order_events GROUP BY 1"))
    for key, (evs, trs) in zip(keys, detail, strict=True):
        assert len(evs) == counts.get(key, 0)
        states = _sql(path, f"SELECT to_state FROM transitions WHERE order_key = '{key}' AND to_state != 'Merged' "
                            "ORDER BY position, ord")
        assert [t[1] for t in trs] == [s for (s,) in states]
    for fid in ("chart-fills", "chart-latency", "chart-positions", "chart-trading-state", "chart-decisions"):
        assert f"id='{fid}'" in page
    again = out.with_name("again.html")
    write_report(path, again)
    assert again.read_text().replace("again_files", "report_files") == page  # deterministic
    assert _detail(again) == detail


def test_limit_zero_means_all_and_the_cli(built, tmp_path: Path) -> None:
    path, _, n_orders = built
    stats = write_report(path, tmp_path / "five.html", limit=5)
    assert stats.shown == 5 and stats.orders == n_orders and stats.detail_files == 1
    assert len(_index((tmp_path / "five.html").read_text())[1]) == 5
    db = path.with_name("ledger.db")
    r = run_cli("report", "--out", str(tmp_path / "all.html"), "--limit", "0", "--store", f"sqlite:///{db}",
                "--duckdb", str(path))
    assert r.returncode == 0, r.stderr
    assert len(_index((tmp_path / "all.html").read_text())[1]) == n_orders
    r = run_cli("report", "--out", str(tmp_path / "x.html"), "--limit", "-1", "--store", f"sqlite:///{db}",
                "--duckdb", str(path))
    assert r.returncode == 2 and "--limit" in r.stderr


def test_redelivered_executions_are_marked(tmp_path: Path) -> None:
    envs = list(iter_session(ROOT / "fixtures" / "drop_mid_fill.jsonl"))
    path = _project(tmp_path, envs)
    out = tmp_path / "r.html"
    write_report(path, out)
    marked = [e for evs, _ in _detail(out) for e in evs if e[1] == "fill" and e[6]]
    execs = [e.payload.exec_id for e in envs if e.payload.__class__.__name__ == "ExecDetails"]
    repeated = {x for x in execs if execs.count(x) > 1}
    assert repeated and len(marked) == len(execs) - len(set(execs))
    assert all(any(x in e[3] for x in repeated) for e in marked)


def _png_ok(data: bytes, rows: int = 600) -> tuple[int, int, set[bytes]]:
    """(width, height, distinct colours sampled) of a PNG, parsed by hand (no imaging library needed)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = bit_depth = color_type = 0
    while pos < len(data):
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if ctype == b"IHDR":
            width, height, bit_depth, color_type = struct.unpack(">IIBB", chunk[:10])
        elif ctype == b"IDAT":
            idat += chunk
        pos += 12 + length
    assert bit_depth == 8 and color_type in (2, 6)
    raw = zlib.decompress(idat)
    bpp = 3 if color_type == 2 else 4
    stride = width * bpp + 1
    # un-filter a band of rows to sample real pixels (filters: none, sub, up, average, paeth)
    colours: set[bytes] = set()
    prev = bytearray(width * bpp)
    for y in range(min(height, rows)):
        f = raw[y * stride]
        line = bytearray(raw[y * stride + 1:(y + 1) * stride])
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 0xFF
            elif f == 2:
                line[i] = (line[i] + b) & 0xFF
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y % 7 == 0:
            for x in range(0, width, 5):
                colours.add(bytes(line[x * bpp:x * bpp + 3]))
        prev = line
    return width, height, colours


def _chromium(url: str, *args: str) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="ibl-chromium-")
    try:
        return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url], check=True,
                              capture_output=True, timeout=180, text="--dump-dom" in args)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def _rgb(hex_colour: str) -> bytes:
    return bytes.fromhex(hex_colour.lstrip("#"))


@needs_chromium
def test_charts_and_a_blocked_order_in_headless_chromium(built, tmp_path: Path) -> None:
    path, out, n_orders = built
    (blocked,) = _sql(path, "SELECT key FROM orders WHERE state = 'Blocked' ORDER BY key LIMIT 1")
    url = out.as_uri() + "#order=" + blocked[0]
    shot = tmp_path / "report.png"
    _chromium(url, f"--screenshot={shot}")
    width, height, colours = _png_ok(shot.read_bytes(), rows=1400)
    assert (width, height) == (1200, 2200) and len(colours) > 8, "the screenshot is blank"
    # the charts' own colours are on screen: fill bars, ack / first-fill bars, ALLOW / BLOCK bars
    for colour in ("#60a5fa", "#3b82f6", "#16a34a", "#22c55e", "#ef4444"):
        assert _rgb(colour) in colours, colour
    dom = _chromium(url, "--dump-dom").stdout
    for fid in ("chart-fills", "chart-latency", "chart-positions", "chart-trading-state", "chart-decisions"):
        figure = re.search(rf'<figure class="chart" id="{fid}">(.*?)</figure>', dom, re.S)
        assert figure and re.search(r'class="(bar|line|position|state|mark)', figure.group(1)), fid
    assert len(re.findall(r'<tr class="o( sel)?"', dom)) == min(n_orders, 200)  # the index table, first page
    # the blocked order's detail, loaded on demand, drawn as blocked (one Blocked band, no Unconfirmed)
    detail = re.search(r'<div id="detail">(.*?)</table>', dom, re.S).group(1)
    assert f'data-key="{blocked[0]}"' in detail and "BLOCKED" in detail
    assert 'class="band band-Blocked"' in detail and "band-Unconfirmed" not in detail


def bulk_projection(src: Path, dest: Path, n: int) -> list[tuple[str, int]]:
    """A copy of a real projection grown to ``n`` orders (copies of one real order, each with its own
    key, permId, order id and time): the size a busy day reaches, for the index and search."""
    shutil.copy(src, dest)
    con = duckdb.connect(str(dest))
    try:
        con.execute(f"""INSERT INTO orders SELECT o.* REPLACE ('bulk:' || r.range AS key, 70000000 + r.range AS perm_id,
                            100000 + r.range AS order_id, first_seen_ns + r.range * 1000000 AS first_seen_ns,
                            (['AAPL', 'MSFT', 'SPY', 'TSLA', 'NVDA'])[1 + r.range % 5] AS symbol)
                        FROM (SELECT * FROM orders ORDER BY key LIMIT 1) o,
                             range({n} - (SELECT count(*) FROM orders)) r""")
        return con.execute("SELECT key, perm_id FROM orders ORDER BY key").fetchall()
    finally:
        con.close()


@needs_chromium
def test_a_search_finds_one_order_out_of_100k(built, tmp_path: Path) -> None:
    path, _, _ = built
    big = tmp_path / "big.duckdb"
    orders = bulk_projection(path, big, 100_000)
    assert len(orders) == 100_000
    out = tmp_path / "big.html"
    stats = write_report(big, out)
    assert stats.shown == 100_000 and stats.detail_files == math.ceil(100_000 / CHUNK)
    key, perm = orders[len(orders) // 3]
    dom = _chromium(out.as_uri() + f"#q={perm}", "--dump-dom").stdout
    rows = re.findall(r'<tr class="o" data-i="\d+" data-key="([^"]+)"', dom)
    assert rows == [key]
    assert re.search(r'<span id="hits">1</span>', dom)
    ready = int(re.search(r'data-ready-ms="(\d+)"', dom).group(1))
    assert ready > 0  # the page ran to the end (its opening time is measured in tests/benchmarks/bench_report.py)
