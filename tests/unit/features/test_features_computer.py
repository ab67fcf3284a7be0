"""FeatureComputer: the seed's batch API, bit-identical to the incremental engine."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from feature_helpers import decimal_bars, random_walk_ohlcv

from algostream.config import SignalConfig
from algostream.features import (
    BAR_FEATURE_NAMES,
    FeatureComputer,
    FeatureEngine,
    FeatureInputError,
)


def _frame_from_bars(bars: list) -> pd.DataFrame:  # type: ignore[type-arg]
    return pd.DataFrame(
        {
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [float(b.volume) for b in bars],
            "quote_volume": [float(b.quote_volume) for b in bars],
        }
    )


def test_batch_equals_incremental_on_model_bars_bit_for_bit() -> None:
    bars = decimal_bars(300, seed=3)
    cfg = SignalConfig(bb_window=10, volatility_window=8)
    batch = FeatureComputer(cfg).compute(_frame_from_bars(bars))
    engine = FeatureEngine.from_config(cfg)
    for i, bar in enumerate(bars):
        live = engine.on_bar(bar)
        for name in BAR_FEATURE_NAMES:
            value = batch[name].iloc[i]
            if live[name] is None:
                assert math.isnan(value), (i, name)
            else:
                assert value == live[name], (i, name)  # exact equality, not approx


def test_quote_volume_gives_the_exact_bar_vwap_weight() -> None:
    frame = random_walk_ohlcv(30, 2)
    with_quote = frame.assign(quote_volume=frame["close"] * frame["volume"])
    features = FeatureComputer(SignalConfig(vwap_window=5)).compute(with_quote)
    expected = (frame["close"] * frame["volume"]).rolling(5).sum() / frame["volume"].rolling(
        5
    ).sum()
    np.testing.assert_allclose(features["vwap"].iloc[4:], expected.iloc[4:], rtol=1e-15)


def test_dict_of_arrays_and_capitalised_columns_give_the_same_result() -> None:
    frame = random_walk_ohlcv(80, 9)
    from_frame = FeatureComputer().compute(frame)
    from_dict = FeatureComputer().compute({c: frame[c].to_numpy() for c in frame.columns})
    capitalised = FeatureComputer().compute(frame.rename(columns=str.capitalize))
    pd.testing.assert_frame_equal(from_frame, from_dict)
    pd.testing.assert_frame_equal(from_frame, capitalised)
    assert list(from_frame.columns) == list(BAR_FEATURE_NAMES)


def test_continuing_an_engine_equals_one_long_run() -> None:
    frame = random_walk_ohlcv(200, 4)
    computer = FeatureComputer()
    whole = computer.compute(frame)
    engine = computer.new_engine()
    head = computer.compute(frame.iloc[:120], engine=engine)
    tail = computer.compute(frame.iloc[120:], engine=engine)
    pd.testing.assert_frame_equal(pd.concat([head, tail]), whole, check_exact=True)


def test_missing_column_is_named() -> None:
    frame = random_walk_ohlcv(10, 1).drop(columns=["volume"])
    with pytest.raises(FeatureInputError, match=r"missing column\(s\) \['volume'\]"):
        FeatureComputer().compute(frame)


def test_nan_input_names_column_and_row() -> None:
    frame = random_walk_ohlcv(10, 1)
    frame.loc[6, "close"] = np.nan
    with pytest.raises(FeatureInputError, match="'close' has a non-finite value nan at row 6"):
        FeatureComputer().compute(frame)


def test_non_positive_close_names_the_row_and_value() -> None:
    frame = random_walk_ohlcv(10, 1)
    frame.loc[3, ["close", "low"]] = 0.0
    with pytest.raises(FeatureInputError, match=r"row 3 .*close must be > 0, got 0.0"):
        FeatureComputer().compute(frame)


def test_unequal_lengths_are_refused() -> None:
    data = {"high": np.ones(3), "low": np.ones(3), "close": np.ones(2), "volume": np.ones(3)}
    with pytest.raises(FeatureInputError, match="differ in length"):
        FeatureComputer().compute(data)


def test_bad_bar_leaves_engine_state_untouched() -> None:
    engine = FeatureEngine()
    engine.update(10.5, 9.5, 10.0, 1.0)
    before = engine.to_state()
    with pytest.raises(FeatureInputError, match=r"high 9\.0 is below low 9\.5"):
        engine.update(9.0, 9.5, 9.2, 1.0)
    assert engine.to_state() == before
