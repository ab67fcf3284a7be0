"""Bars from an OHLCV file for ``algostream backtest --bars``.

Uses :func:`algostream.history.read_bars` when that package is installed (Binance klines,
trades, generic OHLCV CSV/Parquet, captures); otherwise reads a pandas-readable OHLCV CSV
itself: a date/time first column (or ``timestamp``/``time``/``date``) and
``Open/High/Low/Close/Volume`` (any case), the layout backtesting.py and yfinance use.
Prices are read as text, so they stay exact.

>>> infer_interval([0, 86_400_000_000_000, 3 * 86_400_000_000_000])
'1d'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation
from itertools import pairwise
from pathlib import Path
from typing import cast

from algostream.backtest.errors import BarInputError
from algostream.marketdata.bars import INTERVAL_NS
from algostream.model.ids import derive_id
from algostream.model.records import Bar, BarInterval

COLUMNS = ("open", "high", "low", "close", "volume")
TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "open_time")


def infer_interval(starts: Sequence[int]) -> str:
    """The known interval equal to the smallest gap between bar starts."""
    gaps = [b - a for a, b in pairwise(starts) if b > a]
    if not gaps:
        raise BarInputError("cannot tell the bar interval from fewer than two bars: pass it")
    gap = min(gaps)
    for name, ns in INTERVAL_NS.items():
        if ns == gap:
            return name
    raise BarInputError(f"bars {gap} ns apart are not a known interval {sorted(INTERVAL_NS)}")


def load_bars(path: str | Path, instrument: str, interval: str | None = None) -> Iterator[Bar]:
    """The bars of ``path`` for ``instrument`` (``VENUE:SYMBOL``)."""
    venue, _, symbol = instrument.partition(":")
    if importlib.util.find_spec("algostream.history") is not None:
        history = importlib.import_module("algostream.history")  # the history package
        bars: Iterator[Bar] = history.read_bars(
            path,
            "ohlcv",
            symbol=symbol or venue,
            venue=venue if symbol else None,
            interval=interval,
        )
        return _as_bar_input_errors(bars)
    return iter(read_ohlcv_csv(path, instrument, interval))


def _as_bar_input_errors(bars: Iterator[Bar]) -> Iterator[Bar]:
    """The history package's errors (file, line, column) as :class:`BarInputError`."""
    errors = importlib.import_module("algostream.history.errors")
    root: type[Exception] = getattr(errors, "HistoryError", BarInputError)
    try:
        yield from bars
    except root as exc:
        raise BarInputError(str(exc)) from None


def read_ohlcv_csv(path: str | Path, instrument: str, interval: str | None = None) -> list[Bar]:
    """Bars of a pandas-readable OHLCV CSV (see the module docstring)."""
    import pandas as pd

    where = str(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise BarInputError(f"{where}: not a readable CSV file: {exc}") from None
    lower = {str(c).strip().lower(): c for c in frame.columns}
    missing = [c for c in COLUMNS if c not in lower]
    if missing:
        raise BarInputError(f"{where}: no column(s) {missing}; it has {list(frame.columns)}")
    time_col = next((lower[c] for c in TIME_COLUMNS if c in lower), frame.columns[0])
    try:
        stamps = pd.to_datetime(frame[time_col], utc=True)
    except (ValueError, TypeError) as exc:
        raise BarInputError(f"{where}: column {time_col!r} is not a time: {exc}") from None
    starts = [int(t.value) for t in stamps]
    step = interval or infer_interval(starts)
    if step not in INTERVAL_NS:
        raise BarInputError(f"interval {step!r} is not one of {sorted(INTERVAL_NS)}")
    length = INTERVAL_NS[step]
    values = {c: frame[lower[c]].tolist() for c in COLUMNS}
    return [
        _bar(where, line, instrument, step, start, length, [values[c][i] for c in COLUMNS])
        for i, (line, start) in enumerate(zip(range(2, len(starts) + 2), starts, strict=True))
    ]


def _bar(
    where: str, line: int, inst: str, interval: str, start: int, length: int, raw: list[str]
) -> Bar:
    nums: list[Decimal] = []
    for name, text in zip(COLUMNS, raw, strict=True):
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value < 0 or (name != "volume" and value == 0):
            raise BarInputError(f"{where}:{line}: column {name!r}: bad value {text!r}")
        nums.append(value)
    o, h, low, c, v = nums
    if not (low <= min(o, c) and h >= max(o, c)):
        raise BarInputError(
            f"{where}:{line}: high {h} / low {low} do not contain open {o} and close {c}"
        )
    return Bar.model_construct(
        instrument=inst,
        ts_event=start + length,
        ts_init=start + length,
        record_id=derive_id("bar", inst, interval, start),
        lineage_id=f"{Path(where).name}:{line}",
        interval=cast("BarInterval", interval),
        start_ns=start,
        end_ns=start + length,
        open=o,
        high=h,
        low=low,
        close=c,
        volume=v,
        quote_volume=Decimal(0),
        trades=0,
    )
