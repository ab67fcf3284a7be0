"""Bars from a history file for ``algostream backtest --bars``.

The file is read by :func:`algostream.history.read_bars`: a generic OHLCV CSV or Parquet
by default (a date/time column or index and ``Open/High/Low/Close/Volume``, the layout
backtesting.py and yfinance use; the interval inferred from the spacing), or any format
of ``algostream history import`` (Binance klines; trade dumps aggregated into bars by the
live bar stage). Prices stay exact; a bad row's error names the file, line and column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from algostream.backtest.errors import BarInputError
from algostream.history import read_bars
from algostream.history.errors import HistoryError
from algostream.model.records import Bar


def load_bars(
    path: str | Path, instrument: str, interval: str | None = None, fmt: str = "ohlcv"
) -> Iterator[Bar]:
    """The bars of ``path`` (a history format, OHLCV by default) for ``instrument``
    (``VENUE:SYMBOL``); the history reader's errors as :class:`BarInputError`."""
    venue, _, symbol = instrument.partition(":")
    bars = read_bars(
        path, fmt, symbol=symbol or venue, venue=venue if symbol else None, interval=interval
    )
    try:
        yield from bars
    except HistoryError as exc:
        raise BarInputError(str(exc)) from None


def read_ohlcv_csv(path: str | Path, instrument: str, interval: str | None = None) -> list[Bar]:
    """Every bar of an OHLCV file, as a list."""
    return list(load_bars(path, instrument, interval))
