"""backtesting.py's SMA(10)/SMA(20) quick-start on its GOOG data, and the same in algostream.

Cash 1,000,000, commission 0.2 %, all in (``buy()``/``sell()`` with exclusive orders:
the position is reversed on each crossing), open trades closed at the end
(``finalize_trades=True``, which fills them at the last bar's open: ``close_at_end=
"last_open"``). Same trades (entry and exit bars, sizes, prices) and the same final
equity to the cent.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path

import pytest

from algostream.backtest.bar_input import read_ohlcv_csv
from algostream.backtest.bars import BarBacktest, FillModel
from algostream.config import Settings, load_settings
from algostream.model import OrderEvent
from algostream.signals.sma import SmaCross, SmaCrossConfig

backtesting = pytest.importorskip("backtesting")  # the dev extra; skipped only without it

GOOG = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
#: risk limits wide enough for an all-in account of 1,000,000 (the gate still decides)
WIDE_RISK = {
    "ALGOSTREAM__RISK__STARTING_EQUITY": "1000000",
    "ALGOSTREAM__RISK__MAX_POSITION_SIZE": "1000000000",
    "ALGOSTREAM__RISK__MAX_NOTIONAL_EXPOSURE": "1000000000000",
    "ALGOSTREAM__RISK__MAX_ORDER_NOTIONAL": "1000000000000",
    "ALGOSTREAM__RISK__MAX_LOSS_THRESHOLD": "1000000000000",
    "ALGOSTREAM__RISK__ENABLE_CIRCUIT_BREAKER": "false",
    "ALGOSTREAM__RISK__STOP_LOSS_PERCENT": "0",
    "ALGOSTREAM__RISK__TRAILING_STOP_PERCENT": "0",
}


def wide_settings() -> Settings:
    return load_settings(env=WIDE_RISK)


def reference_run():  # type: ignore[no-untyped-def]
    from bench.reference import sma_cross_backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sma_cross_backtest().run()


def round_trips(fills: list[OrderEvent], starts: dict[int, int]) -> list[tuple[int, int, int]]:
    """(signed size, entry bar, exit bar) of each position from open to close (a reversal
    closes one and opens the next), from the fills alone."""
    trips: list[tuple[int, int, int]] = []
    held, entry = Decimal(0), -1
    for f in fills:
        bar = starts[f.ts_event] if f.ts_event in starts else len(starts) - 1
        after = held + f.side.sign * f.fill_qty
        if held and (after == 0 or (after > 0) != (held > 0)):
            trips.append((int(held), entry, bar))
        if after and (not held or (after > 0) != (held > 0)):
            entry = bar
        held = after
    return trips


def test_sma_crossover_on_goog_matches_backtesting_py() -> None:
    stats = reference_run()
    ref = stats["_trades"]
    bars = read_ohlcv_csv(GOOG, "NASDAQ:GOOG")
    fill = FillModel(fee_rate=Decimal("0.002"), step=Decimal(1), close_at_end="last_open")
    result = BarBacktest(wide_settings(), fill, SmaCross(SmaCrossConfig(fast=10, slow=20))).run(
        bars
    )
    assert not result.on("orders.rejected")
    starts = {b.start_ns: i for i, b in enumerate(bars)}
    ours = round_trips(result.fills, starts)
    theirs = [(int(r.Size), int(r.EntryBar), int(r.ExitBar)) for r in ref.itertuples(index=False)]
    assert len(ours) == len(theirs) == stats["# Trades"] == 94
    assert ours == theirs
    prices = [(f.fill_price, f.fill_qty) for f in result.fills]
    assert float(prices[0][0]) == ref.EntryPrice.iloc[0]
    final = result.equity_curve[-1][1]
    assert abs(final - Decimal(repr(float(stats["Equity Final [$]"])))) < Decimal("0.005")
    assert final.quantize(Decimal("0.01")) == Decimal("5708604.28")
    fees = sum((f.fee for f in result.fills), Decimal(0))
    assert abs(float(fees) - stats["Commissions [$]"]) < 0.005


def test_market_at_close_and_close_at_end_at_the_close_differ_as_documented() -> None:
    """``market="close"`` fills on the signal bar (backtesting.py's trade_on_close)."""
    bars = read_ohlcv_csv(GOOG, "NASDAQ:GOOG")
    fill = FillModel(
        fee_rate=Decimal("0.002"), step=Decimal(1), market="close", close_at_end="close"
    )
    result = BarBacktest(wide_settings(), fill, SmaCross(SmaCrossConfig())).run(bars)
    ends = {b.end_ns: i for i, b in enumerate(bars)}
    first = result.fills[0]
    assert first.ts_event in ends and first.fill_price == bars[ends[first.ts_event]].close
    last = result.fills[-1]
    assert last.fill_price == bars[-1].close and last.ts_event == bars[-1].end_ns
