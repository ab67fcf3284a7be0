"""Incremental features: indicators, the per-instrument engine, batch computer, processor.

>>> from algostream.features import FeatureComputer, FeatureEngine, FEATURE_NAMES
>>> "rsi" in FEATURE_NAMES
True
"""

from algostream.features.book import BOOK_FEATURE_NAMES, book_features
from algostream.features.computer import FeatureComputer
from algostream.features.engine import (
    BAR_FEATURE_NAMES,
    FEATURE_NAMES,
    FeatureEngine,
    FeatureParams,
    IncrementalFeatures,
)
from algostream.features.errors import FeatureError, FeatureInputError, FeatureStateError
from algostream.features.indicators import (
    ATR,
    MACD,
    RSI,
    BollingerBands,
    Ewm,
    LogReturn,
    RealisedVolatility,
    VwapDistance,
)
from algostream.features.processor import FeatureProcessor

__all__ = [
    "ATR",
    "BAR_FEATURE_NAMES",
    "BOOK_FEATURE_NAMES",
    "FEATURE_NAMES",
    "MACD",
    "RSI",
    "BollingerBands",
    "Ewm",
    "FeatureComputer",
    "FeatureEngine",
    "FeatureError",
    "FeatureInputError",
    "FeatureParams",
    "FeatureProcessor",
    "FeatureStateError",
    "IncrementalFeatures",
    "LogReturn",
    "RealisedVolatility",
    "VwapDistance",
    "book_features",
]
