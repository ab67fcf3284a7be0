"""FeatureProcessor: Bar -> FeatureVector per instrument, idempotent, restorable."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from feature_helpers import decimal_bars

from algostream.config import SignalConfig
from algostream.features import (
    BAR_FEATURE_NAMES,
    FeatureEngine,
    FeatureProcessor,
    FeatureStateError,
)
from algostream.model.ids import derive_id
from algostream.model.records import BookTop, FeatureVector


def _top(instrument: str, ts: int) -> BookTop:
    return BookTop(
        instrument=instrument,
        ts_event=ts,
        ts_init=ts,
        record_id=f"top-{ts}",
        lineage_id=f"upd-{ts}",
        bids=((Decimal("99.99"), Decimal("3")),),
        asks=((Decimal("100.01"), Decimal("1")),),
        best_bid=Decimal("99.99"),
        best_ask=Decimal("100.01"),
        mid=Decimal("100.00"),
        spread=Decimal("0.02"),
        imbalance=0.5,
        microprice=Decimal("100.005"),
        update_id=ts,
    )


def test_feature_vector_carries_lineage_and_deterministic_id() -> None:
    bar = decimal_bars(1, seed=1)[0]
    fv = FeatureProcessor().on_bar(bar)
    again = FeatureProcessor().on_bar(bar)
    assert fv is not None and fv == again
    assert fv.instrument == bar.instrument
    assert fv.lineage_id == bar.record_id
    assert fv.record_id == derive_id("features", bar.record_id)
    assert (fv.ts_event, fv.ts_init, fv.close, fv.interval) == (
        bar.ts_event,
        bar.ts_init,
        bar.close,
        "1s",
    )
    assert FeatureVector.decode(fv.encode()) == fv


def test_instruments_have_independent_engines() -> None:
    btc = decimal_bars(40, seed=1, instrument="SIM:BTCUSDT")
    eth = decimal_bars(40, seed=2, instrument="SIM:ETHUSDT")
    proc = FeatureProcessor()
    mixed = [proc.on_bar(b) for pair in zip(btc, eth, strict=True) for b in pair]
    alone = FeatureProcessor()
    btc_alone = [alone.on_bar(b) for b in btc]
    assert [fv for fv in mixed if fv and fv.instrument == "SIM:BTCUSDT"] == btc_alone
    assert proc.instruments == ("SIM:BTCUSDT", "SIM:ETHUSDT")


def test_redelivered_and_other_interval_bars_are_ignored() -> None:
    bars = decimal_bars(3, seed=1)
    proc = FeatureProcessor(SignalConfig(bar_interval="1s"))
    assert proc.on_bar(bars[0]) is not None
    assert proc.on_bar(bars[1]) is not None
    assert proc.on_bar(bars[1]) is None  # redelivered
    assert proc.on_bar(bars[0]) is None  # out of order
    minute = bars[2].model_copy(update={"interval": "1m"})
    assert proc.on_bar(minute) is None
    assert proc.engine(bars[0].instrument).bars_seen == 2


def test_book_features_appear_in_the_next_bar() -> None:
    bars = decimal_bars(2, seed=1)
    proc = FeatureProcessor()
    first = proc.on_bar(bars[0])
    assert first is not None and first.values["spread"] is None
    proc.on_book(_top(bars[0].instrument, bars[0].ts_event + 1))
    second = proc.on_bar(bars[1])
    assert second is not None
    assert second.values["spread"] == 0.02
    assert second.values["spread_bps"] == 2.0
    assert second.values["imbalance"] == 0.5
    assert second.values["microprice_offset_bps"] == 0.5


def test_snapshot_restore_continues_exactly_and_keeps_dedup() -> None:
    bars = decimal_bars(120, seed=5)
    straight = FeatureProcessor()
    expected = [straight.on_bar(b) for b in bars]

    before = FeatureProcessor()
    for b in bars[:70]:
        before.on_bar(b)
    before.on_book(_top(bars[0].instrument, bars[69].ts_event))
    state = json.loads(json.dumps(before.snapshot(bars[0].instrument)))
    after = FeatureProcessor()
    after.restore(bars[0].instrument, state)
    assert after.on_bar(bars[69]) is None  # already counted before the restart
    resumed = [after.on_bar(b) for b in bars[70:]]
    assert len(resumed) == 50
    for got, want in zip(resumed, expected[70:], strict=True):
        assert got is not None and want is not None
        assert {k: got.values[k] for k in BAR_FEATURE_NAMES} == {
            k: want.values[k] for k in BAR_FEATURE_NAMES
        }
        assert got.values["spread"] == 0.02  # the restored book top carries on
    assert after.snapshot("SIM:NOPE") is None


def test_restore_with_different_parameters_is_refused() -> None:
    state = {"last_end_ns": 5, "engine": FeatureEngine.from_config(SignalConfig()).to_state()}
    proc = FeatureProcessor(SignalConfig(rsi_window=7))
    with pytest.raises(FeatureStateError, match="drop the saved state"):
        proc.restore("SIM:BTCUSDT", state)


def test_vectors_built_without_validation_equal_the_validated_ones() -> None:
    """Warming up (NaN -> null) and warm: each vector is what validating its fields makes."""
    proc = FeatureProcessor(SignalConfig(bar_interval="1s"))
    nulls = []
    for bar in decimal_bars(80, seed=11):
        fv = proc.on_bar(bar)
        assert fv is not None
        nulls.append(sum(v is None for v in fv.values.values()))
        validated = FeatureVector(**{k: getattr(fv, k) for k in FeatureVector.model_fields})
        assert fv == validated
        assert fv.encode() == validated.encode()
        assert fv.model_fields_set == validated.model_fields_set
    assert nulls[0] > nulls[-1]  # warming up (NaN stored as null), then warm


def test_an_infinite_or_non_float_feature_goes_through_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc = FeatureProcessor(SignalConfig(bar_interval="1s"))
    bars = decimal_bars(3, seed=5)
    engine = proc.engine(bars[0].instrument)
    monkeypatch.setattr(engine, "on_bar", lambda bar: {"rsi": float("inf")})
    with pytest.raises(ValueError, match="feature 'rsi' = inf"):
        proc.on_bar(bars[0])
    monkeypatch.setattr(engine, "on_bar", lambda bar: {"rsi": 1, "atr": float("nan")})
    fv = proc.on_bar(bars[1])
    assert fv is not None and fv.values == {"rsi": 1.0, "atr": None}
    assert (
        fv.encode()
        == FeatureVector(**{k: getattr(fv, k) for k in FeatureVector.model_fields}).encode()
    )
