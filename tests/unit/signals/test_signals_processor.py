"""SignalProcessor: per-instrument strategies, idempotent, restorable; the registry."""

from __future__ import annotations

import json
from typing import Any

import pytest
from signal_helpers import bar, fv

from algostream.config import SignalConfig
from algostream.model.enums import Side
from algostream.model.records import FeatureVector, Signal
from algostream.signals import (
    MacdCrossover,
    RsiMeanReversion,
    SignalError,
    SignalProcessor,
    Strategy,
    StrategyConfig,
    StrategyStateError,
    TemplateStrategy,
    TemplateStrategyConfig,
    UnknownStrategyError,
    build_strategy,
    register_strategy,
    strategy_names,
)


def test_default_config_builds_rsi_with_configured_thresholds() -> None:
    strategy = build_strategy(
        "rsi_mean_reversion", SignalConfig(rsi_oversold=20, rsi_overbought=90)
    )
    assert isinstance(strategy, RsiMeanReversion)
    assert (strategy.config.oversold, strategy.config.overbought) == (20, 90)
    assert set(strategy_names()) >= {
        "rsi_mean_reversion",
        "macd_crossover",
        "bollinger_breakout",
        "model",
    }


def test_unknown_strategy_lists_the_known_ones() -> None:
    with pytest.raises(UnknownStrategyError, match=r"'nope'.*known: \['bollinger_breakout'"):
        build_strategy("nope", SignalConfig())


def test_instruments_keep_separate_crossing_state() -> None:
    proc = SignalProcessor(SignalConfig(strategy="macd_crossover"))
    assert proc.on_features(fv(0, "SIM:A", macd_hist=-1.0)) is None
    assert proc.on_features(fv(0, "SIM:B", macd_hist=1.0)) is None
    a = proc.on_features(fv(1, "SIM:A", macd_hist=1.0))
    b = proc.on_features(fv(1, "SIM:B", macd_hist=1.0))
    assert a is not None and a.side is Side.BUY and a.instrument == "SIM:A"
    assert b is None


def test_redelivered_vector_does_not_emit_twice() -> None:
    proc = SignalProcessor(SignalConfig(strategy="macd_crossover"))
    proc.on_features(fv(0, macd_hist=-1.0))
    first = proc.on_features(fv(1, macd_hist=1.0))
    assert first is not None
    assert proc.on_features(fv(1, macd_hist=1.0)) is None
    assert proc.on_features(fv(0, macd_hist=-1.0)) is None


def test_ts_init_can_be_stamped_by_the_caller() -> None:
    proc = SignalProcessor(SignalConfig(strategy="macd_crossover"))
    proc.on_features(fv(0, macd_hist=-1.0))
    signal = proc.on_features(fv(1, macd_hist=1.0), ts_init=42)
    assert signal is not None and signal.ts_init == 42


def test_snapshot_restore_continues_after_restart() -> None:
    config = SignalConfig(strategy="macd_crossover")
    before = SignalProcessor(config)
    before.on_features(fv(0, macd_hist=-1.0))
    state = json.loads(json.dumps(before.snapshot("SIM:BTCUSDT")))
    after = SignalProcessor(config)
    after.restore("SIM:BTCUSDT", state)
    assert after.on_features(fv(0, macd_hist=-1.0)) is None  # already seen
    signal = after.on_features(fv(1, macd_hist=1.0))
    assert signal is not None and signal.side is Side.BUY
    assert after.snapshot("SIM:OTHER") is None


def test_restoring_another_strategys_state_is_refused() -> None:
    macd = SignalProcessor(SignalConfig(strategy="macd_crossover"))
    macd.on_features(fv(0, macd_hist=1.0))
    rsi = SignalProcessor(SignalConfig(strategy="rsi_mean_reversion"))
    with pytest.raises(StrategyStateError, match="'macd_crossover', not 'rsi_mean_reversion'"):
        rsi.restore("SIM:BTCUSDT", macd.snapshot("SIM:BTCUSDT"))  # type: ignore[arg-type]


class _Counter(Strategy[StrategyConfig]):
    name = "counter"

    def __init__(self, config: StrategyConfig) -> None:
        super().__init__(config)
        self.bars = 0
        self.books = 0

    def on_bar(self, bar: Any) -> None:
        self.bars += 1

    def on_book(self, top: Any) -> None:
        self.books += 1

    def on_features(self, fv: FeatureVector) -> Signal | None:
        if self.bars == 2:
            return self.signal(fv, Side.SELL, "two bars", strength=2.0, confidence=-1.0)
        return None


def test_registered_user_strategy_gets_hooks_and_clamped_values() -> None:
    register_strategy("counter_test", lambda cfg: _Counter(StrategyConfig(strategy_id="ctr")))
    with pytest.raises(SignalError, match="already registered"):
        register_strategy("counter_test", lambda cfg: _Counter(StrategyConfig()))
    proc = SignalProcessor(SignalConfig(strategy="counter_test"))
    proc.on_bar(bar(0))
    proc.on_bar(bar(1))
    signal = proc.on_features(fv(1))
    assert signal is not None and signal.strategy == "ctr"
    assert (signal.strength, signal.confidence) == (1.0, 0.0)


def test_template_strategy_is_silent_and_keeps_state() -> None:
    template = TemplateStrategy(TemplateStrategyConfig())
    assert template.on_features(fv(0, macd_hist=5.0)) is None
    template.bars_seen = 3
    clone = template.clone()
    assert isinstance(clone, TemplateStrategy)
    clone.restore(template.to_state())
    assert clone.bars_seen == 3
    assert isinstance(MacdCrossover.name, str)
