"""Save/restore mid-series continues bit-identically; bad states are refused clearly."""

from __future__ import annotations

import json

import orjson
import pytest
from feature_helpers import random_walk_ohlcv

from algostream.config import SignalConfig
from algostream.features import (
    ATR,
    MACD,
    RSI,
    BollingerBands,
    FeatureEngine,
    FeatureParams,
    FeatureStateError,
    RealisedVolatility,
    VwapDistance,
)


def _rows(n: int, seed: int) -> list[tuple[float, float, float, float]]:
    frame = random_walk_ohlcv(n, seed)
    return list(zip(frame.high, frame.low, frame.close, frame.volume, strict=True))


@pytest.mark.parametrize("cut", [0, 1, 5, 13, 14, 26, 40, 250])
@pytest.mark.parametrize("codec", ["json", "orjson"])
def test_restore_mid_series_continues_bit_identically(cut: int, codec: str) -> None:
    rows = _rows(400, 11)
    params = FeatureParams.from_config(SignalConfig())
    uninterrupted = FeatureEngine(params)
    expected = [uninterrupted.update(*row) for row in rows]

    first = FeatureEngine(params)
    for row in rows[:cut]:
        first.update(*row)
    state = first.to_state()
    wire = json.dumps(state) if codec == "json" else orjson.dumps(state)
    restored = FeatureEngine.from_state(json.loads(wire))
    resumed = [restored.update(*row) for row in rows[cut:]]

    # == on dicts of floats/None is bit equality (no NaN is ever reported)
    assert resumed == expected[cut:]
    assert restored.bars_seen == uninterrupted.bars_seen


def test_state_is_plain_json() -> None:
    engine = FeatureEngine()
    for row in _rows(60, 2):
        engine.update(*row)
    state = engine.to_state()
    assert json.loads(json.dumps(state, allow_nan=False)) == state


@pytest.mark.parametrize(
    "indicator",
    [RSI(5), MACD(3, 8, 4), BollingerBands(6, 2.5), ATR(4), RealisedVolatility(5), VwapDistance(5)],
    ids=lambda i: type(i).__name__,
)
def test_each_indicator_round_trips_its_state(indicator: object) -> None:
    rows = _rows(50, 4)

    def feed(ind: object, row: tuple[float, float, float, float]) -> object:
        high, low, close, volume = row
        if isinstance(ind, ATR):
            return ind.update(high, low, close)
        if isinstance(ind, RealisedVolatility):
            return ind.update(close / 100.0 - 1.0)
        if isinstance(ind, VwapDistance):
            return ind.update(close, volume, close * volume)
        return ind.update(close)  # type: ignore[attr-defined]

    for row in rows[:20]:
        feed(indicator, row)
    clone = type(indicator).from_state(json.loads(json.dumps(indicator.to_state())))  # type: ignore[attr-defined]
    for row in rows[20:]:
        assert feed(clone, row) == feed(indicator, row)


def test_wrong_version_is_refused() -> None:
    state = FeatureEngine().to_state()
    state["version"] = 99
    with pytest.raises(FeatureStateError, match="version 99"):
        FeatureEngine.from_state(state)


def test_missing_section_names_the_key() -> None:
    state = FeatureEngine().to_state()
    del state["macd"]
    with pytest.raises(FeatureStateError, match="'macd'"):
        FeatureEngine.from_state(state)


def test_indicator_parameters_must_match_engine_parameters() -> None:
    state = FeatureEngine().to_state()
    state["rsi"]["window"] = 3
    with pytest.raises(FeatureStateError, match="rsi_window=14"):
        FeatureEngine.from_state(state)


def test_bad_value_in_state_is_refused() -> None:
    state = FeatureEngine().to_state()
    state["atr"]["atr"] = "lots"
    with pytest.raises(FeatureStateError, match="'atr'"):
        FeatureEngine.from_state(state)


def test_overfull_window_in_state_is_refused() -> None:
    state = FeatureEngine(FeatureParams(bb_window=3)).to_state()
    state["bollinger"]["values"] = [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(FeatureStateError, match="4 values > window 3"):
        FeatureEngine.from_state(state)
