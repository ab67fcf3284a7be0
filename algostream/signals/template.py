"""A blank strategy: copy this file to start your own.

1. Give the config the knobs you need (frozen: fixed for the life of the strategy).
2. Keep per-instrument memory in instance attributes (one instance per instrument) and
   return it from ``to_state`` / take it back in ``restore`` so it survives a restart.
3. Decide in any hook: ``on_bar`` (each closed bar of ``signal.bar_interval``, or each bar
   of a bar backtest), ``on_book`` (each book top), ``on_features`` (the bar's indicators:
   ``feature(fv, "rsi")`` is ``None`` while warming up).
4. Read the account and place orders through ``self.ctx``: ``ctx.position.quantity`` /
   ``.avg_price`` / ``.unrealized_pnl``, ``ctx.cash``, ``ctx.equity``,
   ``ctx.open_orders``, ``ctx.filters``, ``ctx.now_ns``, ``ctx.price``;
   ``ctx.buy(Decimal("0.5"))``, ``ctx.sell(fraction=Decimal("0.1"))``,
   ``ctx.target(fraction=Decimal("-1"))`` (all in, short), ``ctx.buy(units, limit=price)``,
   ``ctx.sell(units, stop=price)``, ``ctx.close()``; a bracket
   ``ctx.buy(units, take_profit=p1, stop_loss=p2)`` (exits placed once it fills, one
   cancelling the other) and an OCO on the position held
   ``ctx.oco(take_profit=p1, stop_loss=p2)``. (``on_features`` may instead return
   ``self.signal(...)``, sized by ``signal.order_quantity``.)
5. Register it so ``SignalConfig.strategy`` can name it::

       from algostream.signals.registry import register_strategy
       register_strategy("my_strategy", lambda cfg: MyStrategy(MyStrategyConfig()))

The same class runs live (``algostream worker``), in ``algostream backtest`` (ticks or
``--bars``) and in ``backtest --parity``.

>>> TemplateStrategy(TemplateStrategyConfig()).name
'template'
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field

from algostream.model.records import Bar, BookTop, FeatureVector, Signal
from algostream.signals.base import Strategy, StrategyConfig, feature


class TemplateStrategyConfig(StrategyConfig):
    """Your parameters go here (validated, frozen, unknown keys refused)."""

    threshold: float = Field(default=0.0, description="example knob")
    fraction: Decimal = Field(default=Decimal("0.5"), gt=0, le=1, description="of equity")


class TemplateStrategy(Strategy[TemplateStrategyConfig]):
    """Does nothing yet: fill in a hook."""

    name: ClassVar[str] = "template"

    def __init__(self, config: TemplateStrategyConfig) -> None:
        super().__init__(config)
        self.bars_seen = 0  # example per-instrument memory

    def on_bar(self, bar: Bar) -> None:
        """React to a closed bar (before its features)."""
        self.bars_seen += 1
        # For example, hold `fraction` of equity long while the bar closes up:
        #     if bar.close > bar.open and not self.ctx.position.quantity:
        #         self.ctx.target(fraction=self.config.fraction, reason="up bar")
        #     elif bar.close < bar.open and self.ctx.position.quantity:
        #         self.ctx.close(reason="down bar")
        # or enter with its exits attached (a bracket: take 2 %, lose at most 1 %):
        #     self.ctx.buy(Decimal("0.1"), take_profit=bar.close * Decimal("1.02"),
        #                  stop_loss=bar.close * Decimal("0.99"), reason="bracket")

    def on_book(self, top: BookTop) -> None:
        """React to the order book (``top.best_bid``, ``top.best_ask``, ``top.imbalance``)."""

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
