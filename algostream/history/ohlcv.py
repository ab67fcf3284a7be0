"""Generic OHLCV bars from CSV or Parquet, the layout backtesting.py and yfinance use.

A time column (``Date``, ``Datetime``, ``Timestamp``, ``Time``, ``open_time``, any case,
or the unnamed first column a saved ``DataFrame`` index gets; in Parquet also a
``DatetimeIndex``) and ``Open``, ``High``, ``Low``, ``Close`` and optionally ``Volume``
(any case). The time is the bar's open; a time without a zone is UTC; numbers are epoch
seconds, ms, µs or ns by size. CSV values are read as text, so prices stay exactly as
written; Parquet float columns are taken at their shortest repr (``0.1`` is ``0.1``).
The interval is ``--interval`` or the smallest gap between two bars (a daily file with
weekends is ``1d``). ``quote_volume`` and ``trades`` are not in these files: 0.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
>>> _ = p.write_text("Date,Open,High,Low,Close,Volume\\n2024-01-02,10,12,9,11.5,100\\n")
>>> [(b.interval, b.close) for b in read_ohlcv(p, ReadStats(), symbol="GOOG")]
[('1d', Decimal('11.5'))]
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from algostream.history.binance import check_ohlc
from algostream.history.errors import HistoryFormatError
from algostream.history.rows import (
    INTERVAL_NS,
    ReadStats,
    decimal_cell,
    drive,
    interval_of,
)
from algostream.marketdata.frames import build
from algostream.model.ids import derive_id, instrument_id
from algostream.model.records import Bar

TIME_COLUMNS = ("date", "datetime", "timestamp", "time", "open_time", "unnamed: 0", "")
PRICE_COLUMNS = ("open", "high", "low", "close")


def _load(path: Path) -> tuple[pd.DataFrame, int]:
    """The frame as text cells, and the line number of its first row (Parquet: 1)."""
    where = str(path)
    if not path.is_file():
        raise HistoryFormatError(where, None, None, "no such file")
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            if isinstance(frame.index, pd.DatetimeIndex):
                frame = frame.reset_index(names="timestamp")
            return frame, 1
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise HistoryFormatError(where, None, None, f"not a readable CSV/Parquet: {exc}") from None
    return frame, 2


def _columns(where: str, frame: pd.DataFrame) -> dict[str, str]:
    """Lower-case role -> the frame's column name; errors name what is missing."""
    by_lower = {str(c).strip().lower(): str(c) for c in frame.columns}
    found = {k: by_lower[k] for k in (*PRICE_COLUMNS, "volume") if k in by_lower}
    missing = [k.capitalize() for k in PRICE_COLUMNS if k not in found]
    if missing:
        raise HistoryFormatError(
            where, 1, None, f"no {', '.join(missing)} column (columns: {list(frame.columns)})"
        )
    time = next((by_lower[k] for k in TIME_COLUMNS if k in by_lower), None)
    if time is None:
        raise HistoryFormatError(
            where,
            1,
            None,
            f"no time column: name one Date, Datetime or Timestamp "
            f"(columns: {list(frame.columns)})",
        )
    found["time"] = time
    return found


def _epoch_unit(value: int) -> Literal["s", "ms", "us", "ns"]:
    if value < 10**11:
        return "s"
    if value < 10**14:
        return "ms"
    return "us" if value < 10**17 else "ns"


def _times(column: pd.Series) -> list[int | None]:
    """Each cell's ns since the epoch (UTC), ``None`` where it is not a time."""
    if pd.api.types.is_datetime64_any_dtype(column):
        stamps = pd.to_datetime(column, utc=True)
    else:
        text = column.astype(str).str.strip()
        if len(text) and text.str.fullmatch(r"\d+").all():
            unit = _epoch_unit(int(text.iloc[0]))
            stamps = pd.to_datetime(text.astype("int64"), unit=unit, utc=True)
        else:
            stamps = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    return [None if pd.isna(s) else int(s.value) for s in stamps]


def _price_text(value: Any) -> str:
    """A cell as decimal text: CSV text as written, a Parquet float at its shortest repr."""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _interval(where: str, times: list[int | None], given: str | None) -> str:
    if given is not None:
        return given
    known = sorted({t for t in times if t is not None})
    gaps = [b - a for a, b in itertools.pairwise(known)]
    if not gaps:
        return "1d" if known else "1m"
    return interval_of(where, None, None, min(gaps))


def read_ohlcv(
    path: Path,
    stats: ReadStats,
    *,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
) -> Iterator[Bar]:
    """Bars of a generic OHLCV CSV/Parquet file (see the module docstring)."""
    where = str(path)
    frame, first_line = _load(path)
    cols = _columns(where, frame)
    inst = instrument_id(venue or "HISTORY", symbol or path.name.split(".", 1)[0])
    times = _times(frame[cols["time"]])
    name = _interval(where, times, interval)
    length = INTERVAL_NS[name]
    values = {k: frame[c].tolist() for k, c in cols.items() if k != "time"}

    def parse(line: int, i: int) -> Bar:
        start = times[i]
        if start is None:
            raw = frame[cols["time"]].iloc[i]
            raise HistoryFormatError(where, line, cols["time"], f"{raw!r} is not a date/time")
        o, h, low, c = (
            decimal_cell(where, line, cols[k], _price_text(values[k][i]), positive=True)
            for k in PRICE_COLUMNS
        )
        check_ohlc(where, line, o, h, low, c)
        volume = (
            decimal_cell(
                where, line, cols["volume"], _price_text(values["volume"][i]), positive=False
            )
            if "volume" in values
            else Decimal(0)
        )
        return build(
            Bar,
            instrument=inst,
            ts_event=start + length,
            ts_init=start + length,
            record_id=derive_id("bar", inst, name, start),
            lineage_id=f"file:{path.name}:{line}"[:128],
            interval=name,
            start_ns=start,
            end_ns=start + length,
            open=o,
            high=h,
            low=low,
            close=c,
            volume=volume,
            quote_volume=Decimal(0),
            trades=0,
        )

    size = path.stat().st_size

    def rows() -> Iterator[tuple[int, list[str]]]:
        for i in range(len(frame)):
            stats.bytes_read = size * (i + 1) // len(frame)
            yield first_line + i, [str(i)]

    yield from drive(
        where,
        rows(),
        lambda line, cells: parse(line, int(cells[0])),
        stats,
        lambda bar: bar.start_ns,
        cols["time"],
        strict=True,
    )
