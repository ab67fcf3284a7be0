"""backtesting.py's SMA(10)/SMA(20) crossover example on its bundled GOOG data: the reference
the bar backtest is checked against (tests/unit/backtest/test_backtest_vs_backtesting_py.py)
and timed beside (bench/bars.py). backtesting is a dev/bench dependency, so this lives here
and not in the package."""

from __future__ import annotations

from typing import Any


def sma_cross_backtest() -> Any:
    """The `Backtest` of backtesting.py's README example: cash 1,000,000, commission 0.2 %,
    all-in sizing, one position at a time, positions closed at the end. Raises ImportError
    when backtesting is not installed."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover
    from backtesting.test import GOOG, SMA

    class SmaCrossRef(Strategy):  # type: ignore[misc]
        n1, n2 = 10, 20

        def init(self) -> None:
            self.sma1 = self.I(SMA, self.data.Close, self.n1)
            self.sma2 = self.I(SMA, self.data.Close, self.n2)

        def next(self) -> None:
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()

    return Backtest(
        GOOG,
        SmaCrossRef,
        cash=1_000_000,
        commission=0.002,
        exclusive_orders=True,
        finalize_trades=True,
    )
