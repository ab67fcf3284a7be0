"""SMA crossover on bars, all in: the backtesting.py quick-start strategy, on ``on_bar``.

When the fast simple moving average of the close crosses above the slow one the strategy
targets a long position of ``fraction`` of equity; when it crosses below, a short one
(``ctx.target``: the current position is closed and the new one opened by one order).
Averages are exact (Decimal sums of the closes).

>>> SmaCross(SmaCrossConfig(fast=10, slow=20)).name
'sma_crossover'
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from algostream.model.records import Bar
from algostream.signals.base import Strategy, StrategyConfig
from algostream.signals.errors import StrategyStateError


class SmaCrossConfig(StrategyConfig):
    """Window lengths (bars) and the fraction of equity to hold, long or short."""

    fast: int = Field(default=10, ge=1)
    slow: int = Field(default=20, ge=2)
    fraction: Decimal = Field(default=Decimal(1), gt=0, le=1)
    short: bool = Field(default=True, description="go short on a cross down (else flat)")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.fast < self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class SmaCross(Strategy[SmaCrossConfig]):
    """Fast SMA crosses above the slow one: long; below: short (or flat)."""

    name: ClassVar[str] = "sma_crossover"

    def __init__(self, config: SmaCrossConfig) -> None:
        super().__init__(config)
        self._closes: deque[Decimal] = deque(maxlen=config.slow)
        self._fast_sum = Decimal(0)
        self._slow_sum = Decimal(0)
        self._prev: Decimal | None = None

    def on_bar(self, bar: Bar) -> None:
        """Update both averages; on a crossing, ask for the new target position."""
        cfg, closes, close = self.config, self._closes, bar.close
        if len(closes) == cfg.slow:
            self._slow_sum -= closes[0]
        if len(closes) >= cfg.fast:
            self._fast_sum -= closes[-cfg.fast]
        closes.append(close)
        self._fast_sum += close
        self._slow_sum += close
        if len(closes) < cfg.slow:
            return
        diff = self._fast_sum / cfg.fast - self._slow_sum / cfg.slow
        prev, self._prev = self._prev, diff
        if prev is None:
            return
        if prev < 0 < diff:
            self.ctx.target(fraction=cfg.fraction, reason="fast SMA crossed above slow")
        elif prev > 0 > diff:
            target = -cfg.fraction if cfg.short else Decimal(0)
            self.ctx.target(fraction=target, reason="fast SMA crossed below slow")

    def to_state(self) -> dict[str, Any]:
        """The closes in the window and the last difference of the averages."""
        return {
            "closes": [str(c) for c in self._closes],
            "prev": None if self._prev is None else str(self._prev),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Put the window back (the sums are recomputed)."""
        try:
            closes = [Decimal(c) for c in state["closes"]]
            prev = None if state["prev"] is None else Decimal(state["prev"])
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise StrategyStateError(f"sma_crossover state {state!r}: {exc}") from None
        self._closes = deque(closes, maxlen=self.config.slow)
        self._slow_sum = sum(closes, Decimal(0))
        self._fast_sum = sum(closes[-self.config.fast :], Decimal(0))
        self._prev = prev
