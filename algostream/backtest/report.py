"""Backtest report: metrics from an equity curve and fills, a PNG and a self-contained HTML.

Conventions (risk-free rate 0, a 365-day year of ``NS_PER_YEAR`` ns):

* **total return** ``end / start - 1``; **annualised return**
  ``(1 + total) ** (NS_PER_YEAR / span) - 1`` over the curve's time span (``None`` for a
  zero span or one shorter than ``min_ratio_span_ns``; ``-1`` once equity is gone).
* **Sharpe / Sortino / volatility**: the equity curve is a step function (each point holds
  until the next) sampled *as of* a fixed grid ``start + k * period_ns`` for
  ``k = 0 .. (end - start) // period_ns`` (a trailing partial period is dropped);
  ``period_ns`` is the bar interval of the strategy. Simple returns
  ``r_k = E_k / E_{k-1} - 1`` are annualised with ``periods_per_year = NS_PER_YEAR /
  period_ns`` by empyrical (``empyrical-reloaded``, risk-free 0): Sharpe
  ``mean(r) / std(r, ddof=1) * sqrt(ppy)``, Sortino ``mean(r) / sqrt(mean(min(r, 0) ** 2))
  * sqrt(ppy)`` (downside deviation over every period, target 0), volatility
  ``std(r, ddof=1) * sqrt(ppy)``. Each is ``None`` with fewer than two returns or a zero
  denominator, and the report leaves them out (``None``, with the reason in
  ``ratio_basis``) for a curve shorter than ``ReportInputs.min_ratio_span_ns`` (a day by
  default): a 16-minute run annualised is noise times ``sqrt(31,536,000)``.
  ``ratio_basis`` states the basis in words.
* **buy and hold**: with ``prices`` (the traded instrument's closes), the return of holding
  it from the curve's start to its end, no fees, beside the strategy's.
* **max drawdown**: the largest ``peak - equity`` (money) and, separately, the largest
  ``(peak - equity) / peak``, over the raw points; its **duration** is the longest time from
  the last point at a peak until equity is back at or above it (or the end of the curve).
* **round trips**: fills are paired FIFO per instrument; each match of a closing fill
  against an open lot is one round trip, charged its share of both fills' fees (fees are
  taken to be in the quote currency); its return is net P&L over the entry notional, its
  duration exit minus entry time. **win rate** = round trips with net P&L > 0 /
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

import math
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import empyrical
import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict

from algostream.backtest.errors import ReportInputError
from algostream.model.enums import OrderStatus, Side
from algostream.model.records import OrderEvent
from algostream.model.values import Money

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_YEAR = 365 * NS_PER_DAY
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
    #: ``(ts_ns, price)`` closes of the traded instrument, for buy and hold (optional)
    prices: Sequence[tuple[int, Decimal]] = ()
    price_instrument: str = ""
    #: annualised ratios are left out for a shorter curve (see the module docstring)
    min_ratio_span_ns: int = NS_PER_DAY
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

    @property
    def duration_ns(self) -> int:
        return self.exit_ns - self.entry_ns

    @property
    def return_pct(self) -> float:
        """Net P&L over the entry notional (a fraction: 0.01 is 1 %)."""
        notional = self.entry_price * self.quantity
        return float(self.net_pnl / notional) if notional else 0.0


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
    periods_per_year: float
    ratio_basis: str
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
    buy_and_hold_return: float | None
    buy_and_hold_instrument: str
    best_trade: Money | None
    worst_trade: Money | None
    avg_trade_duration_ns: int | None
    profit_factor: float | None

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
    basis = ratio_basis(inputs.period_ns, ratios.periods, span, inputs.min_ratio_span_ns)
    if span < inputs.min_ratio_span_ns:
        ratios = ReturnRatios(ratios.periods, None, None, None)
    slip_total, slip_avg = slippage(inputs.fill_events)
    total_return = end_eq / start_eq - 1
    return BacktestReport(
        title=inputs.title,
        start_ns=start_ns,
        end_ns=end_ns,
        duration_ns=span,
        period_ns=inputs.period_ns,
        return_periods=ratios.periods,
        periods_per_year=NS_PER_YEAR / inputs.period_ns,
        ratio_basis=basis,
        start_equity=start_eq,
        end_equity=end_eq,
        pnl=end_eq - start_eq,
        total_return=float(total_return),
        annualized_return=(
            annualized_return(total_return, span) if span >= inputs.min_ratio_span_ns else None
        ),
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
        buy_and_hold_return=buy_and_hold(inputs.prices, start_ns, end_ns),
        buy_and_hold_instrument=inputs.price_instrument,
        best_trade=max((t.net_pnl for t in trips), default=None),
        worst_trade=min((t.net_pnl for t in trips), default=None),
        avg_trade_duration_ns=sum(t.duration_ns for t in trips) // len(trips) if trips else None,
        profit_factor=profit_factor(trips),
    )


def profit_factor(trips: Sequence[RoundTrip]) -> float | None:
    """Gross winnings over gross losses of the round trips (net of fees); ``None`` without a
    losing trip."""
    won = sum((t.net_pnl for t in trips if t.net_pnl > 0), _ZERO)
    lost = -sum((t.net_pnl for t in trips if t.net_pnl < 0), _ZERO)
    return float(won / lost) if lost > 0 else None


def buy_and_hold(prices: Sequence[tuple[int, Decimal]], start_ns: int, end_ns: int) -> float | None:
    """Return of holding from the last price at or before ``start_ns`` (else the first) to the
    last at or before ``end_ns``; ``None`` without prices."""
    if not prices:
        return None
    first = next((p for t, p in reversed(prices) if t <= start_ns), prices[0][1])
    last = next((p for t, p in reversed(prices) if t <= end_ns), prices[0][1])
    return float(last / first - 1)


def ratio_basis(period_ns: int, periods: int, span_ns: int, min_span_ns: int) -> str:
    """The basis of the annualised ratios, in words."""
    per_year = NS_PER_YEAR / period_ns
    text = (
        f"{periods:,} returns of {format_duration(period_ns)} (the bar interval), annualised "
        f"with {per_year:,.0f} periods a year (365-day year, risk-free rate 0, empyrical)"
    )
    if span_ns < min_span_ns:
        text += (
            f"; not reported: the run spans {format_duration(span_ns)}, less than "
            f"{format_duration(min_span_ns)}"
        )
    return text


def format_duration(ns: int) -> str:
    """``16 min 3 s``, ``3 d 4 h``, ``250 ms``: the two largest units."""
    if ns < 1_000_000_000:
        return f"{ns / 1e6:g} ms"
    seconds = ns // 1_000_000_000
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2])


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
    """Volatility, Sharpe and Sortino from returns over ``period_ns`` (risk-free 0), by
    empyrical, annualised with ``NS_PER_YEAR / period_ns`` periods a year."""
    values = resample_equity(points, period_ns)
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    if len(returns) < 2 or not np.all(np.isfinite(returns)):
        return ReturnRatios(len(returns), None, None, None)
    per_year = NS_PER_YEAR / period_ns
    has_spread = float(np.std(returns, ddof=1)) > 0
    has_losses = float(np.mean(np.minimum(returns, 0.0) ** 2)) > 0
    sharpe = empyrical.sharpe_ratio(returns, annualization=per_year)
    sortino = empyrical.sortino_ratio(returns, annualization=per_year)
    return ReturnRatios(
        periods=len(returns),
        volatility=float(empyrical.annual_volatility(returns, annualization=per_year)),
        sharpe=float(sharpe) if has_spread else None,
        sortino=float(sortino) if has_losses else None,
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


def write_report(directory: str | Path, inputs: ReportInputs) -> BacktestReport:
    """Compute the report and write ``summary.json``, ``equity.png`` and ``report.html``."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    from algostream.backtest.tearsheet import render_png, write_html

    report = compute_report(inputs)
    png = render_png(inputs)
    (out / "summary.json").write_text(report.to_json() + "\n", encoding="utf-8")
    (out / "equity.png").write_bytes(png)
    write_html(report, inputs, out / "report.html", png)
    return report
