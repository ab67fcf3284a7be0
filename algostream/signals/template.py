"""A blank strategy: copy this file to start your own.

1. Give the config the knobs you need (frozen: fixed for the life of the strategy).
2. Keep per-instrument memory in instance attributes (one instance per instrument) and
   return it from ``to_state`` / take it back in ``restore`` so it survives a restart.
3. In ``on_features`` read values with ``feature(fv, "rsi")`` (``None`` while warming up)
   and return ``self.signal(...)`` or ``None``.
4. Register it so ``SignalConfig.strategy`` can name it::

       from algostream.signals.registry import register_strategy
       register_strategy("my_strategy", lambda cfg: MyStrategy(MyStrategyConfig()))

>>> TemplateStrategy(TemplateStrategyConfig()).name
'template'
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from algostream.model.records import Bar, BookTop, FeatureVector, Signal
from algostream.signals.base import Strategy, StrategyConfig, feature


class TemplateStrategyConfig(StrategyConfig):
    """Your parameters go here (validated, frozen, unknown keys refused)."""

    threshold: float = Field(default=0.0, description="example knob")


class TemplateStrategy(Strategy[TemplateStrategyConfig]):
    """Does nothing yet: fill in ``on_features``."""

    name: ClassVar[str] = "template"

    def __init__(self, config: TemplateStrategyConfig) -> None:
        super().__init__(config)
        self.bars_seen = 0  # example per-instrument memory

    def on_bar(self, bar: Bar) -> None:
        """Optional: react to raw bars (called before the bar's features)."""
        self.bars_seen += 1

    def on_book(self, top: BookTop) -> None:
        """Optional: react to the order book."""

    def on_features(self, fv: FeatureVector) -> Signal | None:
        """Decide on this bar's features: return ``self.signal(...)`` or ``None``."""
        value = feature(fv, "macd_hist")
        if value is None:
            return None  # still warming up
        # Your rule here, for example:
        #     if value > self.config.threshold:
        #         return self.signal(fv, Side.BUY, f"macd_hist {value:.4g} above threshold",
        #                            strength=1.0, confidence=0.5)
        return None

    def to_state(self) -> dict[str, Any]:
        """Memory to keep across a restart."""
        return {"bars_seen": self.bars_seen}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what ``to_state`` returned."""
        self.bars_seen = int(state.get("bars_seen", 0))
