"""The HTML report: self-contained, one timeline per order, checked in a real headless browser.

Chromium comes from Debian (``apt-get install -y chromium``); without it the browser test skips and says so.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from ledger.cli import app
from ledger.store import open_store
from projections.projector import update
from projections.report import render, write_report
from tests.support.audit_streams import generate

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,900"]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, int]:
    d = tmp_path_factory.mktemp("report")
    stream = generate(n_sessions=2, orders_per_session=28, seed=31)
    path = d / "ledger.duckdb"
    with open_store(f"sqlite:///{d / 'ledger.db'}") as store:
        store.append(stream.envelopes)
        update(store, path)
    out = d / "report.html"
    write_report(path, out)
    return path, out, len(stream.orders)


def _keys(path: Path) -> list[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT key FROM orders").fetchall()]
    finally:
        con.close()


def test_report_is_self_contained_and_complete(built) -> None:
    path, out, n_orders = built
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # offline: no external scripts, styles, images or fonts (the SVG namespace is a name, not a fetch)
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert page.count("<section class='order") == n_orders
    for key in _keys(path):
        assert f"data-key='{key}'" in page
    assert page.count("<tr class='anomaly'>") > 0
    # deterministic: the same projection renders the same bytes
    assert render(path)[0] == page


def test_report_limit_and_cli(built, tmp_path: Path) -> None:
    path, _out, n_orders = built
    page, stats = render(path, limit=5)
    assert stats.shown == 5 and stats.orders == n_orders and page.count("<section class='order") == 5
    assert "use --limit to show more" in page
    res = CliRunner().invoke(app, ["report", "--store", f"sqlite:///{path.with_suffix('.db')}",
                                   "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.html").read_text().count("<section class='order") == n_orders


def _png_ok(data: bytes) -> tuple[int, int, int]:
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
    for y in range(min(height, 600)):
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
    return width, height, len(colours)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: apt-get update && "
                    "apt-get install -y chromium")
def test_report_renders_in_headless_chromium(built, tmp_path: Path) -> None:
    path, out, n_orders = built
    profile = tempfile.mkdtemp(prefix="ibl-chromium-")
    try:
        shot = tmp_path / "report.png"
        subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                        out.as_uri()], check=True, capture_output=True, timeout=120)
        width, height, colours = _png_ok(shot.read_bytes())
        assert (width, height) == (1200, 900)
        assert colours > 8, "the screenshot is blank"
        dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                              out.as_uri()], check=True, capture_output=True, timeout=120, text=True).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    # the browser parsed every order's timeline (an SVG per order) and the anomaly list
    for i in range(n_orders):
        assert f'id="order-{i}"' in dom and f'id="timeline-{i}"' in dom
    for key in _keys(path):
        assert f'data-key="{key}"' in dom
    assert 'id="anomaly-list"' in dom
    assert dom.count('class="ev ev-status"') > n_orders  # status markers were drawn
