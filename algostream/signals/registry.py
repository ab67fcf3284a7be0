"""Build a strategy by name from ``SignalConfig``; users register their own.

>>> from algostream.config import SignalConfig
>>> build_strategy("macd_crossover", SignalConfig()).name
'macd_crossover'
>>> sorted(strategy_names())
['bollinger_breakout', 'macd_crossover', 'model', 'rsi_mean_reversion', 'sma_crossover']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from algostream.config import SignalConfig
from algostream.signals.base import Strategy
from algostream.signals.errors import SignalError, UnknownStrategyError
from algostream.signals.model import ModelStrategy, ModelStrategyConfig
from algostream.signals.rules import (
    BollingerBreakout,
    MacdCrossover,
    RsiMeanReversion,
    RsiMeanReversionConfig,
    RuleConfig,
)
from algostream.signals.sma import SmaCross, SmaCrossConfig

StrategyFactory = Callable[[SignalConfig], Strategy[Any]]


def _rsi(config: SignalConfig) -> Strategy[Any]:
    return RsiMeanReversion(
        RsiMeanReversionConfig(oversold=config.rsi_oversold, overbought=config.rsi_overbought)
    )


def _model(config: SignalConfig) -> Strategy[Any]:
    return ModelStrategy(ModelStrategyConfig(model_path=config.model_path))


_REGISTRY: dict[str, StrategyFactory] = {
    "rsi_mean_reversion": _rsi,
    "macd_crossover": lambda config: MacdCrossover(RuleConfig()),
    "bollinger_breakout": lambda config: BollingerBreakout(RuleConfig()),
    "model": _model,
    "sma_crossover": lambda config: SmaCross(SmaCrossConfig()),
}


def strategy_names() -> tuple[str, ...]:
    """Registered strategy names."""
    return tuple(_REGISTRY)


def register_strategy(name: str, factory: StrategyFactory, *, replace: bool = False) -> None:
    """Make ``name`` buildable; refuses to overwrite an existing name unless ``replace``."""
    if not name or not name.replace("_", "").isalnum():
        raise SignalError(f"strategy name must be letters, digits and '_', got {name!r}")
    if name in _REGISTRY and not replace:
        raise SignalError(f"strategy {name!r} is already registered; pass replace=True")
    _REGISTRY[name] = factory


def build_strategy(name: str, config: SignalConfig) -> Strategy[Any]:
    """A new strategy instance by registry name, parameters from ``config``."""
    factory = _REGISTRY.get(name)
    if factory is None:
        raise UnknownStrategyError(
            f"unknown strategy {name!r} (signal.strategy); known: {sorted(_REGISTRY)}"
        )
    return factory(config)
