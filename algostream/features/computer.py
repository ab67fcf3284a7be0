"""Batch features for research and backtests, computed by the incremental engine.

``FeatureComputer(config).compute(price_data)`` runs :class:`FeatureEngine` over the rows
in order, so a batch result equals, bit for bit, what the live feature agent emits for the
same bars. It keeps the seed's Python API: ``price_data`` is a DataFrame with columns
``open/high/low/close/volume`` (``open`` is optional and unused; an optional
``quote_volume`` column gives exact bar VWAP weights; capitalised names are accepted) or a
dict of equal-length numpy arrays.

>>> import numpy as np
>>> close = np.linspace(100.0, 110.0, 40)
>>> data = {"high": close + 1, "low": close - 1, "close": close, "volume": np.ones(40)}
>>> frame = FeatureComputer().compute(data)
>>> frame.shape, round(float(frame["rsi"].iloc[-1]), 1)
((40, 14), 100.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from algostream.config import SignalConfig
from algostream.features.engine import BAR_FEATURE_NAMES, FeatureEngine, FeatureParams
from algostream.features.errors import FeatureInputError

REQUIRED_COLUMNS: tuple[str, ...] = ("high", "low", "close", "volume")

PriceData: TypeAlias = pd.DataFrame | Mapping[str, Any]


def _columns(price_data: PriceData) -> tuple[dict[str, np.ndarray], pd.Index]:
    if isinstance(price_data, pd.DataFrame):
        raw: Mapping[str, Any] = {str(k).lower(): price_data[k] for k in price_data.columns}
        index = price_data.index
    elif isinstance(price_data, Mapping):
        raw = {str(k).lower(): v for k, v in price_data.items()}
        index = None
    else:
        raise FeatureInputError(
            f"price_data must be a DataFrame or a dict of arrays, got {type(price_data).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in raw]
    if missing:
        raise FeatureInputError(f"price_data is missing column(s) {missing}; has {sorted(raw)}")
    wanted = [*REQUIRED_COLUMNS, *(["quote_volume"] if "quote_volume" in raw else [])]
    arrays = {c: _as_float_array(c, raw[c]) for c in wanted}
    lengths = {c: len(a) for c, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise FeatureInputError(f"price_data columns differ in length: {lengths}")
    n = lengths["close"]
    return arrays, index if index is not None else pd.RangeIndex(n)


def _as_float_array(name: str, values: Any) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FeatureInputError(f"column {name!r} is not numeric: {exc}") from None
    if array.ndim != 1:
        raise FeatureInputError(f"column {name!r} must be 1-D, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise FeatureInputError(
            f"column {name!r} has a non-finite value {float(array[bad[0]])!r} at row {int(bad[0])}"
        )
    return array


class FeatureComputer:
    """Compute named features for a whole price history (batch == incremental)."""

    def __init__(self, config: SignalConfig | None = None) -> None:
        self.config = config or SignalConfig()
        self.params = FeatureParams.from_config(self.config)

    def new_engine(self) -> FeatureEngine:
        """A fresh incremental engine with this computer's parameters."""
        return FeatureEngine(self.params)

    def compute(self, price_data: PriceData, engine: FeatureEngine | None = None) -> pd.DataFrame:
        """Features for every row, NaN while warming up; index follows ``price_data``.

        Pass ``engine`` to continue from (and advance) an existing engine, e.g. to warm a
        live engine up on history.
        """
        arrays, index = _columns(price_data)
        engine = engine if engine is not None else self.new_engine()
        high = arrays["high"].tolist()
        low = arrays["low"].tolist()
        close = arrays["close"].tolist()
        volume = arrays["volume"].tolist()
        quote = arrays["quote_volume"].tolist() if "quote_volume" in arrays else None
        out = np.full((len(close), len(BAR_FEATURE_NAMES)), np.nan)
        for i in range(len(close)):
            try:
                values = engine.update(
                    high[i], low[i], close[i], volume[i], quote[i] if quote else None
                )
            except FeatureInputError as exc:
                raise FeatureInputError(f"row {i} (index {index[i]!r}): {exc}") from None
            for j, name in enumerate(BAR_FEATURE_NAMES):
                value = values[name]
                if value is not None:
                    out[i, j] = value
        return pd.DataFrame(out, index=index, columns=list(BAR_FEATURE_NAMES))
