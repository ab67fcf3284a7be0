"""Strategies and their plumbing: interface, rule strategies, model strategy, sizing.

scikit-learn and skops (the ``ml`` extra) are imported only when a model is trained or
loaded, so everything else works without them.

>>> from algostream.config import SignalConfig
>>> build_strategy("rsi_mean_reversion", SignalConfig()).name
'rsi_mean_reversion'
"""

from algostream.signals.base import Strategy, StrategyConfig, feature
from algostream.signals.errors import (
    MissingExtraError,
    ModelLoadError,
    ModelTrainError,
    SignalError,
    StrategyStateError,
    UnknownStrategyError,
)
from algostream.signals.model import (
    DEFAULT_MODEL_FEATURES,
    DEFAULT_TRUSTED_TYPES,
    ModelStrategy,
    ModelStrategyConfig,
    TrainReport,
    load_model,
    train_model,
)
from algostream.signals.processor import SignalProcessor
from algostream.signals.registry import build_strategy, register_strategy, strategy_names
from algostream.signals.rules import (
    BollingerBreakout,
    MacdCrossover,
    RsiMeanReversion,
    RsiMeanReversionConfig,
    RuleConfig,
)
from algostream.signals.sizing import OrderSizer
from algostream.signals.template import TemplateStrategy, TemplateStrategyConfig

__all__ = [
    "DEFAULT_MODEL_FEATURES",
    "DEFAULT_TRUSTED_TYPES",
    "BollingerBreakout",
    "MacdCrossover",
    "MissingExtraError",
    "ModelLoadError",
    "ModelStrategy",
    "ModelStrategyConfig",
    "ModelTrainError",
    "OrderSizer",
    "RsiMeanReversion",
    "RsiMeanReversionConfig",
    "RuleConfig",
    "SignalError",
    "SignalProcessor",
    "Strategy",
    "StrategyConfig",
    "StrategyStateError",
    "TemplateStrategy",
    "TemplateStrategyConfig",
    "TrainReport",
    "UnknownStrategyError",
    "build_strategy",
    "feature",
    "load_model",
    "register_strategy",
    "strategy_names",
    "train_model",
]
