"""One incremental update of every feature stays well under a millisecond."""

from __future__ import annotations

import time

from feature_helpers import decimal_bars

from algostream.features import FeatureProcessor


def test_one_update_of_all_features_is_well_under_a_millisecond() -> None:
    bars = decimal_bars(3000, seed=8)
    proc = FeatureProcessor()
    for bar in bars[:200]:  # past every warm-up
        proc.on_bar(bar)
    engine = proc.engine(bars[0].instrument)
    start = time.perf_counter()
    for bar in bars[200:]:
        engine.on_bar(bar)
    per_update = (time.perf_counter() - start) / (len(bars) - 200)
    print(f"\nFeatureEngine.on_bar: {per_update * 1e6:.1f} us per update (all features)")
    assert per_update < 250e-6  # budget 1 ms; typical ~15 us
