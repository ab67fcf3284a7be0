"""Rule strategies emit exactly on the expected crossings, and nowhere else."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import ta
from pydantic import ValidationError
from signal_helpers import fv, series

from algostream.config import SignalConfig
from algostream.features import FeatureProcessor
from algostream.model.enums import Side
from algostream.model.ids import derive_id
from algostream.model.records import Bar
from algostream.signals import (
    BollingerBreakout,
    MacdCrossover,
    RsiMeanReversion,
    RsiMeanReversionConfig,
    RuleConfig,
    Strategy,
    StrategyStateError,
)


def run(strategy: Strategy, vectors: list) -> list[tuple[int, Side]]:  # type: ignore[type-arg]
    out = []
    for i, vector in enumerate(vectors):
        signal = strategy.on_features(vector)
        if signal is not None:
            out.append((i, signal.side))
    return out


def test_rsi_emits_only_on_entering_the_extreme_zones() -> None:
    rsi = [None, 50, 35, 30, 29.9, 25, 31, 28, 45, 70, 70.1, 80, 69, 71, None, 20, 10, 50]
    strategy = RsiMeanReversion(RsiMeanReversionConfig(oversold=30, overbought=70))
    # 30 -> 29.9 crosses (30 is not oversold); 31 -> 28 again; 70 -> 70.1; 69 -> 71;
    # after the None gap 20 is not a crossing (no previous value), 20 -> 10 stays inside
    assert run(strategy, series("rsi", rsi)) == [
        (4, Side.BUY),
        (7, Side.BUY),
        (10, Side.SELL),
        (13, Side.SELL),
    ]


def test_rsi_signal_fields_are_deterministic_and_traceable() -> None:
    strategy = RsiMeanReversion(RsiMeanReversionConfig(strength=0.8, confidence=0.6))
    strategy.on_features(fv(0, rsi=40.0))
    signal = strategy.on_features(fv(1, close="101.5", rsi=20.0))
    assert signal is not None
    assert signal.record_id == derive_id("signal", "rsi_mean_reversion", "fv-SIM:BTCUSDT-1")
    assert signal.lineage_id == "fv-SIM:BTCUSDT-1"
    assert (signal.strength, signal.confidence, signal.price) == (0.8, 0.6, Decimal("101.5"))
    assert signal.strategy == "rsi_mean_reversion"
    assert "crossed below oversold 30" in signal.reason


def test_rsi_config_is_frozen_and_validated() -> None:
    with pytest.raises(ValidationError, match="oversold"):
        RsiMeanReversionConfig(oversold=80, overbought=70)
    with pytest.raises(ValidationError, match="extra"):
        RsiMeanReversionConfig(oversould=20)  # type: ignore[call-arg]
    config = RsiMeanReversionConfig()
    with pytest.raises(ValidationError):
        config.oversold = 10  # type: ignore[misc]


def test_macd_emits_on_histogram_sign_change_only() -> None:
    hist = [None, -1.0, -0.5, 0.0, 0.2, 0.3, 0.0, -0.1, -0.2, 0.1, None, 0.5, -0.5]
    # a zero bar does not end a regime: -0.5, 0.0, 0.2 is one crossing at the 0.2 bar;
    # 0.3, 0.0, -0.1 likewise; after the None gap 0.5 has no previous sign
    assert run(MacdCrossover(RuleConfig()), series("macd_hist", hist)) == [
        (4, Side.BUY),
        (7, Side.SELL),
        (9, Side.BUY),
        (12, Side.SELL),
    ]


def test_bollinger_emits_on_breaking_out_of_the_bands() -> None:
    closes = ["100", "105", "106", "100", "94", "93", "100", "106", "100"]
    vectors = [fv(i, close=c, bb_upper=104.0, bb_lower=95.0) for i, c in enumerate(closes)]
    vectors.insert(3, fv(99, close="106"))  # undefined bands: forgets the position
    assert run(BollingerBreakout(RuleConfig()), vectors) == [
        (1, Side.BUY),
        (5, Side.SELL),
        (8, Side.BUY),
    ]


def test_state_round_trip_keeps_crossing_memory() -> None:
    strategy = MacdCrossover(RuleConfig())
    strategy.on_features(fv(0, macd_hist=-1.0))
    fresh = MacdCrossover(RuleConfig())
    fresh.restore(strategy.to_state())
    signal = fresh.on_features(fv(1, macd_hist=1.0))
    assert signal is not None and signal.side is Side.BUY
    with pytest.raises(StrategyStateError, match="'sign'"):
        fresh.restore({"sign": 2})
    with pytest.raises(StrategyStateError, match="'prev_rsi'"):
        RsiMeanReversion(RsiMeanReversionConfig()).restore({})


def _bars(close: np.ndarray) -> list[Bar]:
    start = 1_700_000_000_000_000_000
    bars = []
    for i, c in enumerate(close):
        price = Decimal(f"{c:.2f}")
        bars.append(
            Bar(
                instrument="SIM:BTCUSDT",
                ts_event=start + (i + 1) * 10**9,
                ts_init=start + (i + 1) * 10**9,
                record_id=f"bar-{i}",
                lineage_id=f"t-{i}",
                interval="1s",
                start_ns=start + i * 10**9,
                end_ns=start + (i + 1) * 10**9,
                open=price,
                high=price,
                low=price,
                close=price,
                volume=Decimal(1),
                quote_volume=price,
                trades=1,
            )
        )
    return bars


def test_end_to_end_rsi_signals_match_crossings_of_ta_rsi() -> None:
    rng = np.random.default_rng(12)
    close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1500))), 2)
    bars = _bars(close)
    features = FeatureProcessor(SignalConfig(rsi_window=14))
    strategy = RsiMeanReversion(RsiMeanReversionConfig())
    got = []
    for i, bar in enumerate(bars):
        vector = features.on_bar(bar)
        assert vector is not None
        signal = strategy.on_features(vector)
        if signal:
            got.append((i, signal.side))
    rsi = ta.momentum.RSIIndicator(pd.Series(close)).rsi()
    prev = rsi.shift(1)
    buys = np.flatnonzero((prev >= 30) & (rsi < 30))
    sells = np.flatnonzero((prev <= 70) & (rsi > 70))
    expected = sorted([(int(i), Side.BUY) for i in buys] + [(int(i), Side.SELL) for i in sells])
    assert len(expected) >= 10
    assert got == expected
