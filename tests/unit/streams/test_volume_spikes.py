"""The example agent's pure part against pandas: per-window volume, an exponential average
of the windows before, spikes where volume >= 5x that average."""

from __future__ import annotations

import random
from decimal import Decimal

import pandas as pd

from algostream.model import TradeTick
from streams.volume_spikes import ALPHA, THRESHOLD, WARMUP, WINDOW_NS, Window, on_trade
from tests.unit.marketdata.marketdata_testkit import trade

INST = "BINANCE:BTCUSDT"


def tick(i: int, ts: int, size: str) -> TradeTick:
    return trade(INST, i, ts, "100", size)


def trades(seed: int) -> list[TradeTick]:
    """About 3 trades a second for 200 s, a silent 20 s, and bursts 30x the usual volume."""
    rng = random.Random(seed)
    out, ts = [], 10**18
    for second in range(220):
        if 100 <= second < 120:
            continue  # no trades at all: empty windows
        burst = second in (40, 77, 150, 199)
        for _ in range(rng.randint(2, 4)):
            ts = max(ts + 1, 10**18 + second * WINDOW_NS + rng.randrange(WINDOW_NS))
            size = f"{rng.randint(20, 40) if burst else rng.randint(1, 2) / 10:.1f}"
            out.append(tick(len(out), ts, size))
    return out


def run(ticks: list[TradeTick]) -> tuple[Window | None, list[tuple[int, Decimal]]]:
    window, found = None, []
    for t in ticks:
        window, spikes = on_trade(window, t)
        found += [(s.window_start_ns, s.volume) for s in spikes]
    return window, found


def pandas_spikes(ticks: list[TradeTick]) -> list[tuple[int, Decimal]]:
    frame = pd.DataFrame(
        {"size": [float(t.size) for t in ticks]},
        index=pd.to_datetime([t.ts_event for t in ticks], unit="ns"),
    )
    volume = frame["size"].resample(f"{WINDOW_NS}ns").sum()
    # the average before each window: an EWM over the earlier windows, starting from 0
    before = pd.concat([pd.Series([0.0]), volume.reset_index(drop=True)])
    average = before.ewm(alpha=float(ALPHA), adjust=False).mean().iloc[:-1].to_numpy()
    out = []
    for i, (start, vol) in enumerate(volume.items()):
        last = i == len(volume) - 1  # still open when the input ends
        if not last and i >= WARMUP and average[i] > 0 and vol / average[i] >= float(THRESHOLD):
            out.append((start.value, Decimal(str(round(vol, 1)))))
    return out


def test_spikes_agree_with_pandas_resample_and_ewm() -> None:
    for seed in (1, 2, 3):
        ticks = trades(seed)
        _, found = run(ticks)
        assert found == pandas_spikes(ticks), seed
        assert len(found) >= 3  # the bursts after the warm-up


def test_a_redelivered_trade_is_not_counted_twice() -> None:
    ticks = trades(4)
    once = run(ticks)
    # at-least-once: after a restart the last 30 trades come again
    again = run(ticks[:150] + ticks[120:150] + ticks[150:])
    assert again == once


def test_state_round_trips_through_the_table_format() -> None:
    ticks = trades(5)
    window, found = None, []
    for t in ticks:
        if window is not None:  # as a restarted worker: from the saved state each time
            window = Window.from_state(window.to_state())
        window, spikes = on_trade(window, t)
        found += [(s.window_start_ns, s.volume) for s in spikes]
    assert (window, found) == run(ticks)
