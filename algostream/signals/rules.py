"""Rule strategies: RSI mean reversion, MACD crossover, Bollinger breakout.

Each emits only on a *crossing* (a change of regime between two consecutive bars), never
on every bar of a regime, and forgets the previous regime when a feature is undefined
(warm-up), so no crossing is ever inferred across a gap.

* :class:`RsiMeanReversion` — BUY when RSI crosses below ``oversold`` (from >= to <),
  SELL when it crosses above ``overbought`` (from <= to >).
* :class:`MacdCrossover` — BUY when the MACD histogram turns from negative to positive,
  SELL when it turns from positive to negative (a zero bar does not end a regime).
* :class:`BollingerBreakout` — BUY when the close crosses above the upper band (from <= to
  >), SELL when it crosses below the lower band (from >= to <).

>>> s = RsiMeanReversion(RsiMeanReversionConfig(oversold=30.0, overbought=70.0))
>>> s.strategy_id
'rsi_mean_reversion'
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

from pydantic import Field, model_validator

from algostream.model.enums import Side
from algostream.model.records import FeatureVector, Signal
from algostream.signals.base import Strategy, StrategyConfig, feature
from algostream.signals.errors import StrategyStateError


class RuleConfig(StrategyConfig):
    """Shared knobs of the rule strategies: fixed strength and confidence of a signal."""

    strength: float = Field(default=1.0, ge=0.0, le=1.0)
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)


def _restore_field(state: dict[str, Any], key: str, kinds: tuple[type, ...]) -> Any:
    if not isinstance(state, dict) or key not in state:
        raise StrategyStateError(f"strategy state is missing key {key!r}: {state!r}")
    value = state[key]
    if value is not None and not isinstance(value, kinds):
        raise StrategyStateError(f"strategy state key {key!r} has a bad value {value!r}")
    return value


class _RuleStrategy(Strategy[Any]):
    config: RuleConfig

    def emit(self, fv: FeatureVector, side: Side, reason: str) -> Signal:
        return self.signal(
            fv, side, reason, strength=self.config.strength, confidence=self.config.confidence
        )


class RsiMeanReversionConfig(RuleConfig):
    """RSI thresholds (from ``SignalConfig.rsi_oversold`` / ``rsi_overbought``)."""

    oversold: float = Field(default=30.0, gt=0.0, lt=100.0)
    overbought: float = Field(default=70.0, gt=0.0, lt=100.0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.oversold < self.overbought:
            raise ValueError(
                f"oversold ({self.oversold}) must be below overbought ({self.overbought})"
            )
        return self


class RsiMeanReversion(_RuleStrategy):
    """Oversold -> BUY, overbought -> SELL, on the crossing bar only."""

    name: ClassVar[str] = "rsi_mean_reversion"
    config: RsiMeanReversionConfig

    def __init__(self, config: RsiMeanReversionConfig) -> None:
        super().__init__(config)
        self._prev: float | None = None

    def on_features(self, fv: FeatureVector) -> Signal | None:
        """Emit on a crossing of the oversold or overbought level."""
        rsi, prev = feature(fv, "rsi"), self._prev
        self._prev = rsi
        if rsi is None or prev is None:
            return None
        low, high = self.config.oversold, self.config.overbought
        if prev >= low > rsi:
            return self.emit(fv, Side.BUY, f"rsi {rsi:.2f} crossed below oversold {low:g}")
        if prev <= high < rsi:
            return self.emit(fv, Side.SELL, f"rsi {rsi:.2f} crossed above overbought {high:g}")
        return None

    def to_state(self) -> dict[str, Any]:
        """The previous RSI value."""
        return {"prev_rsi": self._prev}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the previous RSI value."""
        prev = _restore_field(state, "prev_rsi", (int, float))
        self._prev = None if prev is None else float(prev)


class MacdCrossover(_RuleStrategy):
    """Histogram sign change: - to + -> BUY, + to - -> SELL."""

    name: ClassVar[str] = "macd_crossover"

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        self._sign = 0

    def on_features(self, fv: FeatureVector) -> Signal | None:
        """Emit when the histogram's sign flips."""
        hist = feature(fv, "macd_hist")
        if hist is None:
            self._sign = 0
            return None
        sign = (hist > 0) - (hist < 0)
        prev = self._sign
        if sign == 0:
            return None
        self._sign = sign
        if prev == -1 and sign == 1:
            return self.emit(fv, Side.BUY, f"macd histogram turned positive ({hist:.6g})")
        if prev == 1 and sign == -1:
            return self.emit(fv, Side.SELL, f"macd histogram turned negative ({hist:.6g})")
        return None

    def to_state(self) -> dict[str, Any]:
        """The sign of the last non-zero histogram (0 = unknown)."""
        return {"sign": self._sign}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the last histogram sign."""
        sign = _restore_field(state, "sign", (int,))
        if sign not in (-1, 0, 1):
            raise StrategyStateError(f"strategy state key 'sign' has a bad value {sign!r}")
        self._sign = sign


class BollingerBreakout(_RuleStrategy):
    """Close crosses above the upper band -> BUY; below the lower band -> SELL."""

    name: ClassVar[str] = "bollinger_breakout"

    def __init__(self, config: RuleConfig) -> None:
        super().__init__(config)
        self._above: bool | None = None
        self._below: bool | None = None

    def on_features(self, fv: FeatureVector) -> Signal | None:
        """Emit on the bar the close leaves the bands."""
        upper, lower = feature(fv, "bb_upper"), feature(fv, "bb_lower")
        prev_above, prev_below = self._above, self._below
        if upper is None or lower is None:
            self._above = self._below = None
            return None
        close = float(fv.close)
        self._above, self._below = close > upper, close < lower
        if self._above and prev_above is False:
            return self.emit(fv, Side.BUY, f"close {close:g} broke above upper band {upper:.6g}")
        if self._below and prev_below is False:
            return self.emit(fv, Side.SELL, f"close {close:g} broke below lower band {lower:.6g}")
        return None

    def to_state(self) -> dict[str, Any]:
        """Whether the previous close was above / below the bands."""
        return {"above": self._above, "below": self._below}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore the previous band position."""
        self._above = _restore_field(state, "above", (bool,))
        self._below = _restore_field(state, "below", (bool,))
