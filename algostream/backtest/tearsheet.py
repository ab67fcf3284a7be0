"""The backtest report as a person reads it: the equity/drawdown figure and the HTML
tearsheet (key figures, the figure, every metric, the trade list).

Times are UTC dates, money is shown to the cent, ratios of money as percentages, prices
and quantities as exact as they were traded; axes carry plain numbers (no ``+1e5``
offsets) and dates. The page is one self-contained file (the figure inlined as base64; a
few lines of inline script sort the trade list by a clicked column).
"""

from __future__ import annotations

import base64
import html
import io
import math
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from algostream.backtest.report import (
    BacktestReport,
    ReportInputs,
    RoundTrip,
    format_duration,
    round_trips,
)
from algostream.model.enums import Side

_CENT = Decimal("0.01")
MAX_TRADE_ROWS = 2_000


# --------------------------------------------------------------------------- formatting


def money(value: Decimal | None) -> str:
    """``-1,234.57``: to the cent (half-even), thousands separated; ``n/a`` for None."""
    if value is None:
        return "n/a"
    return f"{value.quantize(_CENT, rounding=ROUND_HALF_EVEN):,}"


def pct(value: float | None) -> str:
    """``12.35 %`` from ``0.12345``; below 0.01 % to the first two significant digits
    (``-0.0019 %``, not ``-0.00 %``); ``n/a`` for None."""
    if value is None:
        return "n/a"
    percent = value * 100
    if percent == 0 or abs(percent) >= 0.01:
        return f"{percent:,.2f} %"
    digits = 1 - math.floor(math.log10(abs(percent)))
    return f"{percent:.{min(digits, 12)}f} %"


def ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.2f}"


def when(ns: int) -> str:
    """``2024-01-02 13:45:00 UTC`` (``2024-01-02`` at midnight)."""
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    if stamp.hour == stamp.minute == stamp.second == 0:
        return stamp.strftime("%Y-%m-%d")
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def plain(value: Decimal) -> str:
    """A price or quantity exactly as traded (``109.60`` stays so), never with an exponent."""
    return f"{value:f}"


# --------------------------------------------------------------------------- figure


def _money_axis(span: float) -> FuncFormatter:
    digits = 2 if span < 100 else 0
    return FuncFormatter(lambda x, _pos: f"{x:,.{digits}f}")


def render_png(inputs: ReportInputs, *, dpi: int = 100) -> bytes:
    """Equity (with buy/sell markers and buy and hold) over the drawdown, as PNG bytes."""
    ts = np.array([p[0] for p in inputs.equity], dtype="datetime64[ns]")
    eq = np.array([float(p[1]) for p in inputs.equity], dtype=np.float64)
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(ts, eq, drawstyle="steps-post", color="tab:blue", linewidth=1.2, label="equity")
    lows = [float(eq.min())]
    highs = [float(eq.max())]
    hold = _buy_and_hold_curve(inputs)
    if hold is not None:
        top.plot(hold[0], hold[1], color="tab:gray", linewidth=1.0, label="buy and hold")
        lows.append(float(hold[1].min()))
        highs.append(float(hold[1].max()))
    _markers(top, inputs, ts, eq)
    top.set_title(inputs.title)
    top.set_ylabel("equity")
    top.yaxis.set_major_formatter(_money_axis(max(highs) - min(lows)))
    top.legend(loc="best")
    top.grid(alpha=0.3)
    peak = np.maximum.accumulate(eq)
    drawdown = (eq - peak) / peak * 100.0
    bottom.fill_between(ts, drawdown, 0.0, step="post", color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown")
    deepest = float(-drawdown.min()) if len(drawdown) else 0.0
    decimals = 1 if deepest >= 1 or deepest == 0 else min(4, 1 - math.floor(math.log10(deepest)))
    bottom.yaxis.set_major_formatter(PercentFormatter(decimals=decimals))
    bottom.grid(alpha=0.3)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    dates = ConciseDateFormatter(locator, offset_formats=[""] * 6)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(dates)
    bottom.set_xlabel("time (UTC)")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def _buy_and_hold_curve(inputs: ReportInputs) -> tuple[np.ndarray, np.ndarray] | None:
    start_ns, start_eq = inputs.equity[0]
    end_ns = inputs.equity[-1][0]
    inside = [(t, p) for t, p in inputs.prices if start_ns <= t <= end_ns]
    if len(inside) < 2:
        return None
    base = float(inside[0][1])
    times = np.array([t for t, _ in inside], dtype="datetime64[ns]")
    values = np.array([float(start_eq) * float(p) / base for _, p in inside])
    return times, values


def _markers(axes: Any, inputs: ReportInputs, ts: np.ndarray, eq: np.ndarray) -> None:
    for side, marker, color in ((Side.BUY, "^", "tab:green"), (Side.SELL, "v", "tab:red")):
        at = [f.ts_event for f in inputs.fill_events if f.side is side]
        if at:
            idx = np.clip(np.searchsorted(ts.astype(np.int64), at, side="right") - 1, 0, None)
            axes.scatter(
                np.array(at, dtype="datetime64[ns]"),
                eq[idx],
                marker=marker,
                color=color,
                s=36,
                zorder=3,
                label=side.value.lower(),
            )


def write_png(inputs: ReportInputs, path: str | Path) -> Path:
    """Write :func:`render_png` to ``path``; returns the path."""
    out = Path(path)
    out.write_bytes(render_png(inputs))
    return out


# --------------------------------------------------------------------------- page


def metric_rows(r: BacktestReport) -> list[tuple[str, str]]:
    """Every metric as (label, formatted value), in reading order."""
    rows = [
        ("Start", when(r.start_ns)),
        ("End", when(r.end_ns)),
        ("Duration", format_duration(r.duration_ns) if r.duration_ns else "0 s"),
        ("Start equity", money(r.start_equity)),
        ("End equity", money(r.end_equity)),
        ("P&L", money(r.pnl)),
        ("Total return", pct(r.total_return)),
        ("Annualised return", pct(r.annualized_return)),
        (f"Buy and hold return {r.buy_and_hold_instrument}".strip(), pct(r.buy_and_hold_return)),
        ("Annualised volatility", pct(r.volatility)),
        ("Sharpe ratio", ratio(r.sharpe)),
        ("Sortino ratio", ratio(r.sortino)),
        ("Ratio basis", r.ratio_basis),
        ("Max drawdown", f"{pct(-r.max_drawdown_pct)} ({money(-r.max_drawdown)})"),
        ("Longest drawdown", format_duration(r.max_drawdown_duration_ns) or "0 s"),
        ("Exposure time", pct(r.exposure)),
        ("Fills", f"{r.fill_count:,}"),
        ("Trades", f"{r.trade_count:,} ({r.wins:,} won, {r.losses:,} lost)"),
        ("Win rate", pct(r.win_rate)),
        ("Best trade", money(r.best_trade)),
        ("Worst trade", money(r.worst_trade)),
        ("Profit factor", ratio(r.profit_factor)),
        (
            "Average trade duration",
            "n/a" if r.avg_trade_duration_ns is None else format_duration(r.avg_trade_duration_ns),
        ),
        ("Fees", money(r.total_fees)),
        ("Slippage cost", money(r.total_slippage)),
    ]
    return rows


_KEY = (
    "Total return",
    "Buy and hold return",
    "Sharpe ratio",
    "Max drawdown",
    "Exposure time",
    "Trades",
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:9em}
.card .v{font-size:1.3em;font-weight:600} .card .k{color:#666;font-size:.85em}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border-bottom:1px solid #e4e4e4;padding:3px 10px;text-align:left;font-size:13px}
td.n{text-align:right;font-variant-numeric:tabular-nums}
thead th{background:#f4f4f4;cursor:pointer} img{max-width:100%}
.pos{color:#1a7f37} .neg{color:#c62828}
"""

_SORT_SCRIPT = """
document.querySelectorAll("table.trades thead th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.asc !== "1";
    th.dataset.asc = asc ? "1" : "0";
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
document.documentElement.dataset.ready = "1";
"""


def report_table(report: BacktestReport) -> Any:
    """The metrics as a rich table for the terminal (what the page's metrics table shows)."""
    from rich.table import Table

    table = Table(title=report.title, show_header=False)
    for label, value in metric_rows(report):
        table.add_row(label, value)
    return table


def _cards(rows: list[tuple[str, str]]) -> str:
    picked = [(k, v) for k, v in rows if k.startswith(_KEY)]
    return "".join(
        f'<div class="card"><div class="v">{html.escape(v)}</div>'
        f'<div class="k">{html.escape(k)}</div></div>'
        for k, v in picked
    )


def _sign(value: Decimal) -> str:
    return "pos" if value > 0 else "neg" if value < 0 else ""


def _trip_row(n: int, t: RoundTrip) -> str:
    cells: list[tuple[str, str | int | float, str]] = [
        (str(n), n, "n"),
        (t.instrument, t.instrument, ""),
        ("long" if t.direction is Side.BUY else "short", t.direction.value, ""),
        (when(t.entry_ns), t.entry_ns, ""),
        (when(t.exit_ns), t.exit_ns, ""),
        (format_duration(t.duration_ns) or "0 s", t.duration_ns, "n"),
        (plain(t.quantity), float(t.quantity), "n"),
        (plain(t.entry_price), float(t.entry_price), "n"),
        (plain(t.exit_price), float(t.exit_price), "n"),
        (money(t.net_pnl), float(t.net_pnl), f"n {_sign(t.net_pnl)}"),
        (pct(t.return_pct), t.return_pct, f"n {_sign(t.net_pnl)}"),
        (money(t.fees), float(t.fees), "n"),
    ]
    return (
        "<tr>"
        + "".join(
            f'<td class="{cls}" data-sort="{html.escape(str(key))}">{html.escape(text)}</td>'
            for text, key, cls in cells
        )
        + "</tr>"
    )


def render_html(report: BacktestReport, inputs: ReportInputs, png: bytes | None = None) -> str:
    """A self-contained tearsheet: key figures, the figure, every metric, the trades."""
    image = base64.b64encode(png if png is not None else render_png(inputs)).decode("ascii")
    rows = metric_rows(report)
    table = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    trips = round_trips(inputs.fill_events)
    trade_rows = "\n".join(_trip_row(n, t) for n, t in enumerate(trips[:MAX_TRADE_ROWS], 1))
    more = (
        f"<p>{len(trips) - MAX_TRADE_ROWS:,} more round trips not shown.</p>"
        if len(trips) > MAX_TRADE_ROWS
        else ""
    )
    title = html.escape(report.title)
    span = f"{when(report.start_ns)} to {when(report.end_ns)}"
    heads = "".join(
        f"<th>{h}</th>"
        for h in ("#", "instrument", "side", "entry", "exit", "duration", "quantity",
                  "entry price", "exit price", "P&amp;L", "return", "fees")
    )  # fmt: skip
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{_STYLE}</style></head><body>
<h1>{title}</h1>
<p class="sub">{html.escape(span)}</p>
<div class="cards">{_cards(rows)}</div>
<img alt="equity curve and drawdown" src="data:image/png;base64,{image}">
<h2>Metrics</h2>
<table class="metrics">
{table}
</table>
<h2>Round trips ({len(trips)})</h2>
<table class="trades"><thead><tr>{heads}</tr></thead><tbody>
{trade_rows}
</tbody></table>
{more}
<script>{_SORT_SCRIPT}</script>
</body></html>
"""


def write_html(
    report: BacktestReport, inputs: ReportInputs, path: str | Path, png: bytes | None = None
) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8); returns the path."""
    out = Path(path)
    out.write_text(render_html(report, inputs, png), encoding="utf-8")
    return out
