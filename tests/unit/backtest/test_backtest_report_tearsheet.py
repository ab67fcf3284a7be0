"""The report as a quant reads it: metrics agree with empyrical, the page formats dates,
money and percentages, and it renders in real headless Chromium with visible plots."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from algostream.backtest.report import NS_PER_DAY, ReportInputs, compute_report, write_report
from algostream.backtest.tearsheet import money, pct, render_html, when
from algostream.model.enums import OrderStatus, OrderType, Side
from algostream.model.records import OrderEvent

DAY = NS_PER_DAY
T0 = 1_704_067_200 * 1_000_000_000  # 2024-01-01


def _fill(n: int, ts: int, side: Side, price: str, qty: str = "10") -> OrderEvent:
    return OrderEvent(
        instrument="NASDAQ:GOOG", ts_event=ts, ts_init=ts, record_id=f"e{n}", lineage_id="r",
        account="paper", client_order_id=f"c{n}", status=OrderStatus.FILLED, side=side,
        order_type=OrderType.MARKET, quantity=qty, fill_price=price, fill_qty=qty,
        cum_qty=qty, fee="0.25",
    )  # fmt: skip


def daily_run(days: int = 300) -> ReportInputs:
    """A year of daily equity, a price series and alternating round trips."""
    rng = np.random.default_rng(21)
    closes = 100 * np.cumprod(1 + rng.normal(0.0004, 0.015, size=days))
    equity = 100_000 * np.cumprod(1 + rng.normal(0.0006, 0.01, size=days))
    points = [(T0 + i * DAY, Decimal(f"{v:.4f}")) for i, v in enumerate(equity)]
    prices = [(T0 + i * DAY, Decimal(f"{v:.2f}")) for i, v in enumerate(closes)]
    fills = []
    for k in range(0, days - 10, 20):
        fills.append(_fill(k, T0 + k * DAY, Side.BUY, f"{closes[k]:.2f}"))
        fills.append(_fill(k + 1, T0 + (k + 7) * DAY, Side.SELL, f"{closes[k + 7]:.2f}"))
    return ReportInputs(
        equity=points, fills=fills, period_ns=DAY, prices=prices,
        price_instrument="NASDAQ:GOOG", title="SMA cross on GOOG",
    )  # fmt: skip


def test_ratios_and_drawdown_agree_with_empyrical() -> None:
    inputs = daily_run()
    report = compute_report(inputs)
    series = pd.Series([float(e) for _, e in inputs.equity])
    returns = series.pct_change().dropna()
    assert report.sharpe == pytest.approx(empyrical.sharpe_ratio(returns, annualization=365))
    assert report.sortino == pytest.approx(empyrical.sortino_ratio(returns, annualization=365))
    assert report.volatility == pytest.approx(
        empyrical.annual_volatility(returns, annualization=365)
    )
    assert report.max_drawdown_pct == pytest.approx(-empyrical.max_drawdown(returns))
    assert report.annualized_return == pytest.approx(empyrical.cagr(returns, annualization=365))
    assert "365 periods a year" in report.ratio_basis and "1 d" in report.ratio_basis
    prices = [p for _, p in inputs.prices]
    assert report.buy_and_hold_return == pytest.approx(float(prices[-1] / prices[0] - 1))


def test_a_run_shorter_than_a_day_states_why_it_has_no_ratios() -> None:
    minute = 60_000_000_000
    points = [(T0 + i * minute, Decimal(100 + (i * 7) % 5)) for i in range(16)]
    report = compute_report(ReportInputs(equity=points, period_ns=1_000_000_000))
    assert (report.sharpe, report.sortino, report.volatility) == (None, None, None)
    assert "not reported: the run spans 15 min" in report.ratio_basis


def test_the_page_shows_dates_cents_and_percentages() -> None:
    inputs = daily_run()
    report = compute_report(inputs)
    page = render_html(report, inputs, png=b"png")
    assert when(report.start_ns) == "2024-01-01" and ">2024-01-01<" in page
    assert money(report.end_equity) in page and re.search(r"\d,\d{3}\.\d{2}<", page)
    assert pct(report.total_return) in page and pct(report.buy_and_hold_return) in page
    assert f">{report.start_ns}<" not in page  # no nanosecond integers shown
    assert "Ratio basis" in page and "trades" in page
    assert money(Decimal("99978.7126526000000")) == "99,978.71"
    assert pct(0.000209891104198) == "0.02 %"


def test_trade_list_has_pnl_return_and_duration() -> None:
    inputs = daily_run()
    page = render_html(compute_report(inputs), inputs, png=b"png")
    body = page.split('<table class="trades">')[1]
    first = re.findall(r"<td[^>]*>([^<]*)</td>", body)[:12]
    assert first[0] == "1" and first[2] == "long" and first[5] == "7 d"
    entry, exit_ = Decimal(first[7]), Decimal(first[8])
    pnl = (exit_ - entry) * 10 - Decimal("0.5")
    assert first[9] == money(pnl)
    assert first[10] == pct(float(pnl / (entry * 10)))


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed: apt-get install -y chromium"
    return path


def _browser(*args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium_without_script_errors(tmp_path: Path) -> None:
    out = tmp_path / "report"
    write_report(out, daily_run())
    url = (out / "report.html").as_uri()
    dom = _browser("--enable-logging=stderr", "--v=0", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-ready="1"' in dom.stdout  # the page's script ran to its end
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    shot = tmp_path / "shot.png"
    done = _browser("--window-size=1200,1400", f"--screenshot={shot}", url)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.int16)
    # the equity line (matplotlib tab:blue) and the drawdown fill (tab:red at alpha 0.4)
    blue = np.all(np.abs(pixels - (31, 119, 180)) < 40, axis=2).sum()
    red = np.all(np.abs(pixels - (236, 165, 166)) < 30, axis=2).sum()
    assert blue > 500 and red > 2000, (blue, red)


def test_the_equity_axis_has_no_offset() -> None:
    """matplotlib's default puts '+1e5' above a narrow equity axis; ours reads plainly."""
    from algostream.backtest import tearsheet

    assert tearsheet._money_axis(1.0)(100_001.25, 0) == "100,001.25"
    assert tearsheet._money_axis(5_000.0)(100_001.25, 0) == "100,001"
    assert tearsheet._money_axis(1.0).get_offset() == ""
