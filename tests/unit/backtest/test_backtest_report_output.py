"""Report outputs: deterministic JSON, the PNG, and an HTML page with no external references."""

from __future__ import annotations

import base64
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from algostream.backtest.report import ReportInputs, compute_report, write_report
from algostream.backtest.tearsheet import render_png, write_html, write_png
from algostream.model.enums import OrderStatus, OrderType, Side
from algostream.model.records import OrderEvent

S = 1_000_000_000


def _fill(n: int, ts: int, side: Side, price: str) -> OrderEvent:
    return OrderEvent(
        instrument="BINANCE:BTCUSDT", ts_event=ts, ts_init=ts, record_id=f"e{n}",
        lineage_id="r", account="paper", client_order_id=f"c{n}", status=OrderStatus.FILLED,
        side=side, order_type=OrderType.MARKET, quantity="1", fill_price=price, fill_qty="1",
        cum_qty="1", fee="0.01", slippage="0.003",
    )  # fmt: skip


def _inputs(title: str = "golden") -> ReportInputs:
    equity = [(1_700_000_000 * S + i * S, Decimal(1000) + Decimal(i % 13) / 3) for i in range(400)]
    fills = [_fill(k, 1_700_000_000 * S + k * 20 * S, Side.BUY if k % 2 == 0 else Side.SELL,
                   str(100 + k % 5)) for k in range(12)]  # fmt: skip
    return ReportInputs(
        equity=equity, fills=fills, period_ns=10 * S, title=title, min_ratio_span_ns=0
    )


def test_json_is_identical_run_after_run_with_sorted_keys_and_string_decimals() -> None:
    first = compute_report(_inputs()).to_json()
    second = compute_report(_inputs()).to_json()
    assert first == second
    data = json.loads(first)
    assert list(data) == sorted(data)
    for key in (
        "start_equity",
        "end_equity",
        "pnl",
        "max_drawdown",
        "total_fees",
        "total_slippage",
    ):
        assert isinstance(data[key], str), key
        Decimal(data[key])
    assert data["total_fees"] == "0.12"


def test_json_floats_are_rounded_to_twelve_significant_digits() -> None:
    report = compute_report(_inputs())
    data = json.loads(report.to_json())
    for key in ("sharpe", "sortino", "volatility", "exposure", "max_drawdown_pct"):
        value = data[key]
        assert isinstance(value, float), key
        digits = re.sub(r"e.*$", "", repr(abs(value))).replace(".", "").lstrip("0")
        assert len(digits) <= 12, (key, value)
        assert value == pytest.approx(getattr(report, key), rel=1e-11)


def test_report_is_frozen() -> None:
    report = compute_report(_inputs())
    with pytest.raises(Exception, match="frozen"):
        report.sharpe = 1.0  # type: ignore[misc]


def test_png_is_a_real_image(tmp_path: Path) -> None:
    path = write_png(_inputs(), tmp_path / "equity.png")
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == (1000, 600)


def test_write_report_writes_summary_png_and_self_contained_html(tmp_path: Path) -> None:
    inputs = _inputs()
    report = write_report(tmp_path / "out", inputs)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["equity.png", "report.html", "summary.json"]
    assert json.loads((out / "summary.json").read_text()) == json.loads(report.to_json())
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"https?://", page, re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page, re.IGNORECASE)
    embedded = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert embedded is not None
    assert base64.b64decode(embedded.group(1)) == (out / "equity.png").read_bytes()
    assert f"Round trips ({report.trade_count})" in page


def test_html_escapes_the_title(tmp_path: Path) -> None:
    inputs = _inputs(title="<script>alert(1)</script>")
    path = write_html(compute_report(inputs), inputs, tmp_path / "r.html")
    page = path.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)" in page


def test_png_without_fills_still_renders() -> None:
    inputs = ReportInputs(equity=[(0, Decimal(5))], title="one point")
    assert render_png(inputs).startswith(b"\x89PNG\r\n\x1a\n")
