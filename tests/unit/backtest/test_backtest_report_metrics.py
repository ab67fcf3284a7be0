"""Report metrics checked against hand-worked examples and independent pandas/numpy maths."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal
from itertools import count

import numpy as np
import pandas as pd
import pytest

from algostream.backtest.errors import ReportInputError
from algostream.backtest.report import (
    NS_PER_YEAR,
    ReportInputs,
    compute_report,
    max_drawdown,
    return_ratios,
    round_trips,
)
from algostream.model.enums import OrderStatus, OrderType, Side
from algostream.model.records import OrderEvent

S = 1_000_000_000
MINUTE = 60 * S
_ids = count()


def fill(
    ts: int,
    side: str,
    price: str,
    qty: str,
    *,
    fee: str = "0",
    slippage: str | None = None,
    instrument: str = "BINANCE:BTCUSDT",
    status: OrderStatus = OrderStatus.FILLED,
) -> OrderEvent:
    n = next(_ids)
    return OrderEvent(
        instrument=instrument, ts_event=ts, ts_init=ts, record_id=f"ev{n}", lineage_id="req",
        account="paper", client_order_id=f"c{n}", status=status, side=Side(side),
        order_type=OrderType.MARKET, quantity=qty, fill_price=price, fill_qty=qty,
        cum_qty=qty, fee=fee, slippage=slippage,
    )  # fmt: skip


def curve(values: list[str | int], step: int = S) -> list[tuple[int, Decimal]]:
    return [(i * step, Decimal(v)) for i, v in enumerate(values)]


# --------------------------------------------------------------------------- drawdown


def test_max_drawdown_hand_worked_example() -> None:
    # peaks 100,120,120,120,130,130,130 -> drawdowns 0,0,30,25,0,13,5
    dd, pct, duration = max_drawdown(curve([100, 120, 90, 95, 130, 117, 125]))
    assert dd == Decimal(30)
    assert pct == pytest.approx(30 / 120)
    assert duration == 3 * S  # under water from the 120 peak (t=1) until 130 at t=4


def test_max_drawdown_money_and_percent_can_come_from_different_dips() -> None:
    dd, pct, _ = max_drawdown(curve([100, 50, 1000, 800]))
    assert dd == Decimal(200)  # 1000 -> 800
    assert pct == pytest.approx(0.5)  # 100 -> 50


def test_unrecovered_drawdown_lasts_until_the_end_of_the_curve() -> None:
    _, _, duration = max_drawdown(curve([100, 110, 105, 104, 103]))
    assert duration == 3 * S


def test_drawdown_duration_starts_at_the_last_point_at_the_peak() -> None:
    _, _, duration = max_drawdown(curve([100, 100, 90, 100]))
    assert duration == 2 * S


def test_rising_curve_has_no_drawdown() -> None:
    assert max_drawdown(curve([1, 2, 3, 4])) == (Decimal(0), 0.0, 0)


# --------------------------------------------------------------------------- ratios


def test_sharpe_and_sortino_hand_worked_on_grid_points() -> None:
    points = curve(["100", "110", "99", "108.9"], step=MINUTE)
    returns = [0.1, -0.1, 0.1]
    scale = math.sqrt(365 * 24 * 60)
    ratios = return_ratios(points, MINUTE)
    assert ratios.periods == 3
    expected_sharpe = statistics.mean(returns) / statistics.stdev(returns) * scale
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / 3)
    assert ratios.sharpe == pytest.approx(expected_sharpe, rel=1e-12)
    assert ratios.sortino == pytest.approx(statistics.mean(returns) / downside * scale, rel=1e-12)
    assert ratios.volatility == pytest.approx(statistics.stdev(returns) * scale, rel=1e-12)


def test_ratios_match_pandas_on_an_irregular_curve() -> None:
    rng = np.random.default_rng(7)
    gaps = rng.integers(1, 40 * S, size=3000)
    ts = np.cumsum(gaps) - gaps[0] + 10**18
    eq = 1000 * np.cumprod(1 + rng.normal(0, 0.001, size=ts.size))
    points = [(int(t), Decimal(f"{v:.6f}")) for t, v in zip(ts, eq, strict=True)]
    period = 5 * MINUTE

    series = pd.Series([float(v) for _, v in points], index=pd.to_datetime(ts, unit="ns"))
    grid = pd.date_range(series.index[0], series.index[-1], freq=pd.Timedelta(period, "ns"))
    sampled = pd.Series(series.asof(grid))
    r = sampled.pct_change().dropna()
    scale = math.sqrt(NS_PER_YEAR / period)
    down = math.sqrt(float((r.clip(upper=0) ** 2).mean()))

    ratios = return_ratios(points, period)
    assert ratios.periods == len(r)
    assert ratios.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * scale, rel=1e-9)
    assert ratios.sortino == pytest.approx(r.mean() / down * scale, rel=1e-9)


def test_points_between_grid_times_only_count_as_of_the_next_grid_time() -> None:
    # grid at 0, 60, 120 s: the 200 at t=30 s is replaced before t=60 s; t=150 s is partial
    points = [(0, Decimal(100)), (30 * S, Decimal(200)), (40 * S, Decimal(110)),
              (120 * S, Decimal(121)), (150 * S, Decimal(1))]  # fmt: skip
    ratios = return_ratios(points, MINUTE)
    assert ratios.periods == 2  # returns 0.1, 0.1
    assert ratios.volatility == pytest.approx(0.0, abs=1e-12)


def test_flat_or_short_curves_have_no_ratios() -> None:
    flat = return_ratios(curve([100, 100, 100, 100], step=MINUTE), MINUTE)
    assert (flat.sharpe, flat.sortino) == (None, None)
    short = return_ratios(curve([100, 101], step=MINUTE), MINUTE)
    assert (short.periods, short.sharpe, short.sortino, short.volatility) == (1, None, None, None)


def test_only_gains_gives_sharpe_but_no_sortino() -> None:
    ratios = return_ratios(curve([100, 101, 103, 104], step=MINUTE), MINUTE)
    assert ratios.sharpe is not None and ratios.sharpe > 0
    assert ratios.sortino is None


# --------------------------------------------------------------------------- returns


def test_total_and_annualised_return() -> None:
    two_years = compute_report(
        ReportInputs(equity=[(0, Decimal(100)), (2 * NS_PER_YEAR, Decimal(121))])
    )
    assert two_years.total_return == pytest.approx(0.21)
    assert two_years.annualized_return == pytest.approx(0.1)
    half = compute_report(
        ReportInputs(equity=[(0, Decimal(100)), (NS_PER_YEAR // 2, Decimal(110))])
    )
    assert half.annualized_return == pytest.approx(1.1**2 - 1)
    assert half.pnl == Decimal(10)


def test_annualised_return_is_none_for_a_single_instant_and_minus_one_when_ruined() -> None:
    assert compute_report(ReportInputs(equity=[(5, Decimal(100))])).annualized_return is None
    ruined = compute_report(
        ReportInputs(equity=[(0, Decimal(100)), (S, Decimal(-5))], min_ratio_span_ns=0)
    )
    assert ruined.annualized_return == -1.0
    assert ruined.total_return == pytest.approx(-1.05)


def test_a_run_shorter_than_the_minimum_span_is_not_annualised() -> None:
    short = compute_report(ReportInputs(equity=[(0, Decimal(100)), (90 * S, Decimal(99))]))
    assert short.annualized_return is None and short.total_return == pytest.approx(-0.01)


# --------------------------------------------------------------------------- trades


def test_fifo_round_trips_split_fees_and_count_wins() -> None:
    fills = [
        fill(1, "BUY", "100", "2", fee="0.2"),
        fill(2, "SELL", "110", "1", fee="0.11"),
        fill(3, "SELL", "95", "1", fee="0.095"),
    ]
    trips = round_trips(fills)
    assert [(t.quantity, t.entry_price, t.exit_price) for t in trips] == [
        (Decimal(1), Decimal(100), Decimal(110)),
        (Decimal(1), Decimal(100), Decimal(95)),
    ]
    assert [t.net_pnl for t in trips] == [Decimal("9.79"), Decimal("-5.195")]
    report = compute_report(ReportInputs(equity=curve([100, 100, 100, 100]), fills=fills))
    assert (report.trade_count, report.wins, report.losses, report.win_rate) == (2, 1, 1, 0.5)
    assert report.fill_count == 3
    assert report.total_fees == Decimal("0.405")


def test_fifo_pairs_oldest_lot_first_and_flips_into_a_short() -> None:
    fills = [
        fill(1, "BUY", "100", "1", fee="0.1"),
        fill(2, "BUY", "102", "1", fee="0.1"),
        fill(3, "SELL", "105", "3", fee="0.3"),  # closes both longs, opens a short of 1
        fill(4, "BUY", "101", "1", fee="0.1"),  # closes the short
    ]
    trips = round_trips(fills)
    assert [(t.direction, t.entry_price, t.exit_price) for t in trips] == [
        (Side.BUY, Decimal(100), Decimal(105)),
        (Side.BUY, Decimal(102), Decimal(105)),
        (Side.SELL, Decimal(105), Decimal(101)),
    ]
    assert [t.gross_pnl for t in trips] == [Decimal(5), Decimal(3), Decimal(4)]
    assert [t.fees for t in trips] == [Decimal("0.2"), Decimal("0.2"), Decimal("0.2")]
    assert sum(t.fees for t in trips) == sum(Decimal(f.fee) for f in fills)


def test_instruments_are_paired_separately() -> None:
    fills = [
        fill(1, "BUY", "100", "1", instrument="BINANCE:BTCUSDT"),
        fill(2, "SELL", "10", "1", instrument="BINANCE:ETHUSDT"),
        fill(3, "SELL", "90", "1", instrument="BINANCE:BTCUSDT"),
        fill(4, "BUY", "8", "1", instrument="BINANCE:ETHUSDT"),
    ]
    pnl = {t.instrument: t.net_pnl for t in round_trips(fills)}
    assert pnl == {"BINANCE:BTCUSDT": Decimal(-10), "BINANCE:ETHUSDT": Decimal(2)}


def test_non_fill_events_are_ignored() -> None:
    events = [
        fill(1, "BUY", "100", "1", status=OrderStatus.ACCEPTED),
        fill(2, "BUY", "100", "1", status=OrderStatus.PARTIALLY_FILLED),
        fill(3, "SELL", "100", "0", status=OrderStatus.FILLED),
        fill(4, "SELL", "101", "1", status=OrderStatus.FILLED),
    ]
    report = compute_report(ReportInputs(equity=curve([1, 1, 1, 1, 1]), fills=events))
    assert (report.fill_count, report.trade_count, report.wins) == (2, 1, 1)


def test_exposure_is_the_share_of_time_with_an_open_position() -> None:
    fills = [
        fill(10 * S, "BUY", "100", "1"),
        fill(40 * S, "SELL", "100", "1"),  # flat: 30 s exposed
        fill(70 * S, "BUY", "100", "1"),  # open to the end: 30 s more
    ]
    report = compute_report(
        ReportInputs(equity=[(0, Decimal(1)), (100 * S, Decimal(1))], fills=fills)
    )
    assert report.exposure == pytest.approx(0.6)


def test_exposure_counts_overlapping_instruments_once() -> None:
    fills = [
        fill(10 * S, "BUY", "1", "1", instrument="BINANCE:AUSDT"),
        fill(30 * S, "SELL", "1", "1", instrument="BINANCE:BUSDT"),
        fill(50 * S, "SELL", "1", "1", instrument="BINANCE:AUSDT"),
        fill(60 * S, "BUY", "1", "1", instrument="BINANCE:BUSDT"),
    ]
    report = compute_report(
        ReportInputs(equity=[(0, Decimal(1)), (100 * S, Decimal(1))], fills=fills)
    )
    assert report.exposure == pytest.approx(0.5)


def test_slippage_total_is_per_unit_times_quantity_and_average_is_quantity_weighted() -> None:
    fills = [
        fill(1, "BUY", "100", "2", slippage="0.5"),
        fill(2, "SELL", "100", "1", slippage="-0.25"),
        fill(3, "SELL", "100", "1"),  # no arrival mid: no slippage
    ]
    report = compute_report(ReportInputs(equity=curve([1, 1, 1, 1]), fills=fills))
    assert report.total_slippage == Decimal("0.75")
    assert report.avg_slippage == Decimal("0.25")
    no_slip = compute_report(ReportInputs(equity=curve([1, 1]), fills=[fill(1, "BUY", "1", "1")]))
    assert (no_slip.total_slippage, no_slip.avg_slippage) == (Decimal(0), None)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"equity": []}, "equity = []"),
        ({"equity": [(0, 100.0)]}, "equity[0].equity = 100.0"),
        ({"equity": [(5, Decimal(1)), (4, Decimal(1))]}, "equity[1].ts_ns = 4"),
        ({"equity": [(0, Decimal(0))]}, "equity[0].equity = 0"),
        ({"equity": [(0, Decimal(1))], "period_ns": 0}, "period_ns = 0"),
        ({"equity": [(0, Decimal(1))], "fills": ["x"]}, "expected OrderEvent"),
    ],
)
def test_invalid_inputs_are_refused_naming_the_field(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ReportInputError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        ReportInputs(**kwargs)  # type: ignore[arg-type]
