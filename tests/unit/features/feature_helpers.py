"""Shared builders for the feature tests (synthetic OHLCV, the real CSV, bars)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from algostream.model.records import Bar

SP500_CSV = Path(__file__).resolve().parents[2] / "data" / "sp500" / "sp500.csv.gz"


def random_walk_ohlcv(n: int, seed: int, tick: float | None = None) -> pd.DataFrame:
    """A geometric random walk with plausible highs/lows; ``tick`` rounds prices (repeats)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    high = close * (1 + np.abs(rng.normal(0.0, 0.004, n)))
    low = close * (1 - np.abs(rng.normal(0.0, 0.004, n)))
    if tick is not None:
        close, high, low = (np.round(a / tick) * tick for a in (close, high, low))
        high = np.maximum(high, close)
        low = np.minimum(low, close)
    volume = rng.uniform(0.5, 20.0, n)
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": volume})


def sp500() -> pd.DataFrame:
    """The real S&P 500 daily OHLCV series (see tests/data/sp500/README.md)."""
    frame = pd.read_csv(SP500_CSV, parse_dates=["Date"], date_format="%m/%d/%Y")
    frame = frame.set_index("Date")
    return frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]


def decimal_bars(n: int, seed: int, instrument: str = "SIM:BTCUSDT") -> list[Bar]:
    """``n`` consecutive 1s model bars with decimal prices from a random walk."""
    frame = random_walk_ohlcv(n, seed, tick=0.01)
    bars = []
    for i, row in enumerate(frame.itertuples()):
        close = Decimal(f"{row.close:.2f}")
        high = max(Decimal(f"{row.high:.2f}"), close)
        low = min(Decimal(f"{row.low:.2f}"), close)
        volume = Decimal(f"{row.volume:.4f}")
        start = 1_700_000_000_000_000_000 + i * 1_000_000_000
        bars.append(
            Bar(
                instrument=instrument,
                ts_event=start + 1_000_000_000,
                ts_init=start + 1_000_000_001,
                record_id=f"bar-{instrument}-{i}",
                lineage_id=f"trade-{i}",
                interval="1s",
                start_ns=start,
                end_ns=start + 1_000_000_000,
                open=close,
                high=high,
                low=low,
                close=close,
                volume=volume,
                quote_volume=(volume * (high + low + close) / 3).quantize(Decimal("0.0001")),
                trades=5,
            )
        )
    return bars
