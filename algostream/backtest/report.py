"""Backtest report: metrics from an equity curve and fills, a PNG and a self-contained HTML.

Conventions (risk-free rate 0, a 365-day year of ``NS_PER_YEAR`` ns):

* **total return** ``end / start - 1``; **annualised return**
  ``(1 + total) ** (NS_PER_YEAR / span) - 1`` over the curve's time span (``None`` for a
  zero span; ``-1`` once equity is gone).
* **Sharpe / Sortino / volatility**: the equity curve is a step function (each point holds
  until the next) sampled *as of* a fixed grid ``start + k * period_ns`` for
  ``k = 0 .. (end - start) // period_ns`` (a trailing partial period is dropped). Simple
  returns ``r_k = E_k / E_{k-1} - 1`` are annualised with ``sqrt(NS_PER_YEAR / period_ns)``:
  Sharpe ``mean(r) / std(r, ddof=1)``, Sortino ``mean(r) / sqrt(mean(min(r, 0) ** 2))``
  (downside deviation over every period, target 0), volatility ``std(r, ddof=1)``.
  Each is ``None`` with fewer than two returns or a zero denominator.
* **max drawdown**: the largest ``peak - equity`` (money) and, separately, the largest
  ``(peak - equity) / peak``, over the raw points; its **duration** is the longest time from
  the last point at a peak until equity is back at or above it (or the end of the curve).
* **round trips**: fills are paired FIFO per instrument; each match of a closing fill
  against an open lot is one round trip, charged its share of both fills' fees (fees are
  taken to be in the quote currency). **win rate** = round trips with net P&L > 0 /
  round trips. **exposure** = share of the curve's time span with any non-zero position.
* **slippage**: a fill's ``slippage`` is per unit (see ``execution.orders``); total slippage
  is ``sum(slippage * fill_qty)``, the average is per unit, weighted by quantity, over the
  fills that carry a slippage.

Money stays :class:`~decimal.Decimal`; ratios are floats. :meth:`BacktestReport.to_json`
is deterministic: sorted keys, decimals as strings, floats rounded to 12 significant digits.

>>> from decimal import Decimal as D
>>> inputs = ReportInputs(equity=[(0, D(100)), (60_000_000_000, D(90)),
...                               (120_000_000_000, D(110))], fills=[])
>>> r = compute_report(inputs)
>>> (r.max_drawdown, r.max_drawdown_pct, r.max_drawdown_duration_ns, r.total_return)
(Decimal('10'), 0.1, 120000000000, 0.1)
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict

from algostream.backtest.errors import ReportInputError
from algostream.model.enums import OrderStatus, Side
from algostream.model.records import OrderEvent
from algostream.model.values import Money

NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
#: Default return period for Sharpe/Sortino: one minute.
DEFAULT_PERIOD_NS = 60 * 1_000_000_000
_FILL_STATUSES = frozenset({OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED})
_ZERO = Decimal(0)

EquityPoint = tuple[int, Decimal]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ReportInputs:
    """What a report is computed from: an equity curve, the fills and the return period.

    ``equity`` is ``(ts_ns, equity)`` points in time order (non-decreasing ``ts_ns``; the
    first equity must be > 0). ``fills`` may hold any ``OrderEvent``: only FILLED and
    PARTIALLY_FILLED events with a fill price and ``fill_qty > 0`` are kept (each event's
    ``fill_qty`` is that fill's increment), ordered by ``ts_event`` (stable).
    """

    equity: Sequence[EquityPoint]
    fills: Iterable[OrderEvent] = ()
    period_ns: int = DEFAULT_PERIOD_NS
    title: str = "Backtest"
    _fills: tuple[OrderEvent, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "equity", _checked_equity(self.equity))
        fills = sorted((f for f in self.fills if _is_fill(f)), key=lambda f: f.ts_event)
        object.__setattr__(self, "_fills", tuple(fills))
        object.__setattr__(self, "fills", tuple(fills))
        if type(self.period_ns) is not int or self.period_ns <= 0:
            raise ReportInputError(f"period_ns = {self.period_ns!r}: must be an int > 0")

    @property
    def fill_events(self) -> tuple[OrderEvent, ...]:
        """The kept fills, in time order."""
        return self._fills


def _is_fill(event: OrderEvent) -> bool:
    if not isinstance(event, OrderEvent):
        raise ReportInputError(f"fills: expected OrderEvent records, got {type(event).__name__}")
    return event.status in _FILL_STATUSES and event.fill_price is not None and event.fill_qty > 0


def _checked_equity(points: Sequence[EquityPoint]) -> tuple[EquityPoint, ...]:
    out = tuple((ts, eq) for ts, eq in points)
    if not out:
        raise ReportInputError("equity = []: the equity curve needs at least one point")
    prev = -1
    for i, (ts, eq) in enumerate(out):
        if type(ts) is not int or ts < prev:
            raise ReportInputError(
                f"equity[{i}].ts_ns = {ts!r}: must be an int >= the previous point ({prev})"
            )
        if not isinstance(eq, Decimal) or not eq.is_finite():
            raise ReportInputError(f"equity[{i}].equity = {eq!r}: must be a finite Decimal")
        prev = ts
    if out[0][1] <= 0:
        raise ReportInputError(f"equity[0].equity = {out[0][1]}: starting equity must be > 0")
    return out


# --------------------------------------------------------------------------- round trips


class RoundTrip(BaseModel):
    """One FIFO match of an open lot against a closing fill."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instrument: str
    direction: Side  # the opening side: BUY = long, SELL = short
    quantity: Money
    entry_price: Money
    exit_price: Money
    entry_ns: int
    exit_ns: int
    gross_pnl: Money
    fees: Money
    net_pnl: Money


@dataclass
class _Lot:
    side: Side
    qty: Decimal
    price: Decimal
    ts: int
    fee: Decimal  # fee left on this lot (its share of the opening fill's fee)


def round_trips(fills: Iterable[OrderEvent]) -> list[RoundTrip]:
    """Pair fills FIFO per instrument into round trips (fills in time order)."""
    books: dict[str, deque[_Lot]] = defaultdict(deque)
    out: list[RoundTrip] = []
    for fill in fills:
        assert fill.fill_price is not None
        lots = books[fill.instrument]
        qty, fee_left = fill.fill_qty, fill.fee
        while qty > 0 and lots and lots[0].side is not fill.side:
            lot = lots[0]
            m = min(qty, lot.qty)
            open_fee = lot.fee if m == lot.qty else lot.fee * m / lot.qty
            close_fee = fee_left if m == qty else fee_left * m / qty
            gross = (fill.fill_price - lot.price) * m * lot.side.sign
            out.append(
                RoundTrip(
                    instrument=fill.instrument,
                    direction=lot.side,
                    quantity=m,
                    entry_price=lot.price,
                    exit_price=fill.fill_price,
                    entry_ns=lot.ts,
                    exit_ns=fill.ts_event,
                    gross_pnl=gross,
                    fees=open_fee + close_fee,
                    net_pnl=gross - open_fee - close_fee,
                )
            )
            lot.qty, lot.fee = lot.qty - m, lot.fee - open_fee
            qty, fee_left = qty - m, fee_left - close_fee
            if lot.qty == 0:
                lots.popleft()
        if qty > 0:
            lots.append(_Lot(fill.side, qty, fill.fill_price, fill.ts_event, fee_left))
    return out


# --------------------------------------------------------------------------- metrics


class BacktestReport(BaseModel):
    """The metrics of one backtest (see the module docstring for every convention)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    start_ns: int
    end_ns: int
    duration_ns: int
    period_ns: int
    return_periods: int
    start_equity: Money
    end_equity: Money
    pnl: Money
    total_return: float
    annualized_return: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: Money
    max_drawdown_pct: float
    max_drawdown_duration_ns: int
    fill_count: int
    trade_count: int
    wins: int
    losses: int
    win_rate: float | None
    exposure: float
    total_fees: Money
    total_slippage: Money
    avg_slippage: Money | None

    def to_json(self) -> str:
        """Deterministic JSON: sorted keys, decimals as strings, floats to 12 sig. digits."""
        data = {k: _json_value(v) for k, v in self.model_dump(mode="python").items()}
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2).decode()


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float):
        return float(f"{value:.12g}") + 0.0 if math.isfinite(value) else None
    return value


def compute_report(inputs: ReportInputs) -> BacktestReport:
    """Compute every metric of ``inputs``."""
    points = inputs.equity
    (start_ns, start_eq), (end_ns, end_eq) = points[0], points[-1]
    span = end_ns - start_ns
    trips = round_trips(inputs.fill_events)
    wins = sum(1 for t in trips if t.net_pnl > 0)
    dd, dd_pct, dd_ns = max_drawdown(points)
    ratios = return_ratios(points, inputs.period_ns)
    slip_total, slip_avg = slippage(inputs.fill_events)
    total_return = end_eq / start_eq - 1
    return BacktestReport(
        title=inputs.title,
        start_ns=start_ns,
        end_ns=end_ns,
        duration_ns=span,
        period_ns=inputs.period_ns,
        return_periods=ratios.periods,
        start_equity=start_eq,
        end_equity=end_eq,
        pnl=end_eq - start_eq,
        total_return=float(total_return),
        annualized_return=annualized_return(total_return, span),
        volatility=ratios.volatility,
        sharpe=ratios.sharpe,
        sortino=ratios.sortino,
        max_drawdown=dd,
        max_drawdown_pct=dd_pct,
        max_drawdown_duration_ns=dd_ns,
        fill_count=len(inputs.fill_events),
        trade_count=len(trips),
        wins=wins,
        losses=len(trips) - wins,
        win_rate=wins / len(trips) if trips else None,
        exposure=exposure(inputs.fill_events, start_ns, end_ns),
        total_fees=sum((f.fee for f in inputs.fill_events), _ZERO),
        total_slippage=slip_total,
        avg_slippage=slip_avg,
    )


def annualized_return(total_return: Decimal, span_ns: int) -> float | None:
    """``(1 + total) ** (year / span) - 1``; ``None`` for a zero span, ``-1`` when ruined."""
    if span_ns <= 0:
        return None
    growth = float(1 + total_return)
    if growth <= 0:
        return -1.0
    try:
        return math.exp(math.log(growth) * NS_PER_YEAR / span_ns) - 1.0
    except OverflowError:
        return math.inf


def max_drawdown(points: Sequence[EquityPoint]) -> tuple[Decimal, float, int]:
    """``(max drawdown in money, max drawdown fraction of the peak, longest duration ns)``."""
    peak, peak_ts = points[0][1], points[0][0]
    worst, worst_pct, longest = _ZERO, 0.0, 0
    under_since: int | None = None
    for ts, eq in points:
        if eq >= peak:
            if under_since is not None:
                longest = max(longest, ts - under_since)
                under_since = None
            peak, peak_ts = eq, ts
            continue
        if under_since is None:
            under_since = peak_ts
        worst = max(worst, peak - eq)
        worst_pct = max(worst_pct, float((peak - eq) / peak))
    if under_since is not None:
        longest = max(longest, points[-1][0] - under_since)
    return worst, worst_pct, longest


@dataclass(frozen=True)
class ReturnRatios:
    """Annualised ratios of the resampled returns (see the module docstring)."""

    periods: int
    volatility: float | None
    sharpe: float | None
    sortino: float | None


def resample_equity(points: Sequence[EquityPoint], period_ns: int) -> np.ndarray:
    """Equity as of ``start + k * period_ns`` for ``k = 0 .. span // period_ns`` (float64)."""
    ts = np.fromiter((p[0] for p in points), dtype=np.int64, count=len(points))
    eq = np.fromiter((float(p[1]) for p in points), dtype=np.float64, count=len(points))
    steps = (int(ts[-1]) - int(ts[0])) // period_ns
    grid = ts[0] + period_ns * np.arange(steps + 1, dtype=np.int64)
    values: np.ndarray = eq[np.searchsorted(ts, grid, side="right") - 1]
    return values


def return_ratios(points: Sequence[EquityPoint], period_ns: int) -> ReturnRatios:
    """Volatility, Sharpe and Sortino from returns over ``period_ns`` (risk-free 0)."""
    values = resample_equity(points, period_ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    if len(returns) < 2 or not np.all(np.isfinite(returns)):
        return ReturnRatios(len(returns), None, None, None)
    scale = math.sqrt(NS_PER_YEAR / period_ns)
    mean = float(np.mean(returns))
    std = float(np.std(returns, ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    return ReturnRatios(
        periods=len(returns),
        volatility=std * scale,
        sharpe=mean / std * scale if std > 0 else None,
        sortino=mean / downside * scale if downside > 0 else None,
    )


def exposure(fills: Sequence[OrderEvent], start_ns: int, end_ns: int) -> float:
    """Share of ``[start_ns, end_ns]`` during which any instrument's position is non-zero."""
    if end_ns <= start_ns:
        return 0.0
    positions: dict[str, Decimal] = defaultdict(Decimal)
    exposed, since = 0, None
    for fill in fills:
        positions[fill.instrument] += fill.fill_qty * fill.side.sign
        is_open = any(q != 0 for q in positions.values())
        ts = min(max(fill.ts_event, start_ns), end_ns)
        if is_open and since is None:
            since = ts
        elif not is_open and since is not None:
            exposed += ts - since
            since = None
    if since is not None:
        exposed += end_ns - since
    return exposed / (end_ns - start_ns)


def slippage(fills: Sequence[OrderEvent]) -> tuple[Decimal, Decimal | None]:
    """``(sum(slippage * qty), qty-weighted per-unit average)`` over fills with slippage."""
    total, qty = _ZERO, _ZERO
    for fill in fills:
        if fill.slippage is not None:
            total += fill.slippage * fill.fill_qty
            qty += fill.fill_qty
    return total, (total / qty if qty > 0 else None)


# --------------------------------------------------------------------------- plots


def render_png(inputs: ReportInputs, *, dpi: int = 100) -> bytes:
    """The equity curve with buy/sell markers over the drawdown, as PNG bytes (Agg)."""
    ts = np.array([p[0] for p in inputs.equity], dtype="datetime64[ns]")
    eq = np.array([float(p[1]) for p in inputs.equity], dtype=np.float64)
    peak = np.maximum.accumulate(eq)
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot(ts, eq, drawstyle="steps-post", color="tab:blue", linewidth=1.2, label="equity")
    for side, marker, color in ((Side.BUY, "^", "tab:green"), (Side.SELL, "v", "tab:red")):
        at = [f.ts_event for f in inputs.fill_events if f.side is side]
        if at:
            idx = np.clip(np.searchsorted(ts.astype(np.int64), at, side="right") - 1, 0, None)
            top.scatter(
                np.array(at, dtype="datetime64[ns]"),
                eq[idx],
                marker=marker,
                color=color,
                s=36,
                zorder=3,
                label=side.value.lower(),
            )
    top.set_title(inputs.title)
    top.set_ylabel("equity")
    top.legend(loc="best")
    top.grid(alpha=0.3)
    drawdown = (eq - peak) / peak * 100.0
    bottom.fill_between(ts, drawdown, 0.0, step="post", color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown %")
    bottom.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def write_png(inputs: ReportInputs, path: str | Path) -> Path:
    """Write :func:`render_png` to ``path``; returns the path."""
    out = Path(path)
    out.write_bytes(render_png(inputs))
    return out


def render_html(report: BacktestReport, inputs: ReportInputs, png: bytes | None = None) -> str:
    """A self-contained HTML page: metrics table, the PNG inlined as base64, round trips."""
    image = base64.b64encode(png if png is not None else render_png(inputs)).decode("ascii")
    data = orjson.loads(report.to_json())
    rows = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_cell(v))}</td></tr>"
        for k, v in data.items()
    )
    trips = round_trips(inputs.fill_events)
    trade_rows = "\n".join(_trip_row(t) for t in trips[:500])
    more = f"<p>{len(trips) - 500} more round trips not shown.</p>" if len(trips) > 500 else ""
    title = html.escape(report.title)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:sans-serif;margin:2em;color:#222}} table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}}
th{{background:#f4f4f4}} img{{max-width:100%}}
</style></head><body>
<h1>{title}</h1>
<img alt="equity curve and drawdown" src="data:image/png;base64,{image}">
<h2>Summary</h2>
<table>
{rows}
</table>
<h2>Round trips ({len(trips)})</h2>
<table><tr><th>instrument</th><th>direction</th><th>quantity</th><th>entry</th>
<th>exit</th><th>entry ns</th><th>exit ns</th><th>net P&amp;L</th></tr>
{trade_rows}
</table>
{more}
</body></html>
"""


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _trip_row(t: RoundTrip) -> str:
    cells = (
        t.instrument,
        t.direction.value,
        t.quantity,
        t.entry_price,
        t.exit_price,
        t.entry_ns,
        t.exit_ns,
        t.net_pnl,
    )
    return "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>"


def write_html(
    report: BacktestReport, inputs: ReportInputs, path: str | Path, png: bytes | None = None
) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8); returns the path."""
    out = Path(path)
    out.write_text(render_html(report, inputs, png), encoding="utf-8")
    return out


def write_report(directory: str | Path, inputs: ReportInputs) -> BacktestReport:
    """Compute the report and write ``summary.json``, ``equity.png`` and ``report.html``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report = compute_report(inputs)
    png = render_png(inputs)
    (out / "summary.json").write_text(report.to_json() + "\n", encoding="utf-8")
    (out / "equity.png").write_bytes(png)
    write_html(report, inputs, out / "report.html", png)
    return report
