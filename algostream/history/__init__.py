"""History in: Binance public data dumps, generic OHLCV CSV/Parquet and capture files,
read into the project's records (exact Decimals), for the topics or straight into a
backtest.

``--format`` names (:data:`FORMATS`): ``binance-{spot,um}-{klines,aggtrades,trades}``
(:mod:`algostream.history.binance`), ``ohlcv`` (:mod:`algostream.history.ohlcv`) and
``capture`` (:mod:`algostream.backtest.capture`: its md.raw, md.book, md.trades and bars
records). A bad row raises :class:`HistoryFormatError` naming file, line and column; with
``ReadStats(keep_going=True)`` it is counted and kept in ``stats.errors`` instead.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "BTCUSDT-1m-2024-01.csv"
>>> _ = p.write_text("1704067200000,42283.58,42298.62,42261.02,42298.61,35.92724,"
...                  "1704067259999,1519337.45,1436,20.67,874248.07,0\\n")
>>> [(b.instrument, b.interval, b.close) for b in read_bars(p, "binance-spot-klines")]
[('BINANCE:BTCUSDT', '1m', Decimal('42298.61'))]
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from pathlib import Path

from algostream.history.binance import LAYOUTS, read_binance
from algostream.history.errors import (
    HistoryError,
    HistoryFormatError,
    HistoryTopicsError,
    HistoryUsageError,
)
from algostream.history.ohlcv import read_ohlcv
from algostream.history.rows import INTERVAL_NS, ReadStats, check_interval, file_size
from algostream.model.records import Bar, Record, TradeTick

FORMATS: tuple[str, ...] = (*LAYOUTS, "ohlcv", "capture")

__all__ = [
    "FORMATS",
    "INTERVAL_NS",
    "HistoryError",
    "HistoryFormatError",
    "HistoryTopicsError",
    "HistoryUsageError",
    "ReadStats",
    "file_size",
    "read_bars",
    "read_merged",
    "read_records",
    "read_trades",
]


def read_records(
    path: str | Path,
    fmt: str,
    *,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Record]:
    """Every record of a history file, in time order (see the module docstring)."""
    if fmt not in FORMATS:
        raise HistoryUsageError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if interval is not None:
        check_interval(interval)
    file = Path(path)
    counts = stats if stats is not None else ReadStats()
    if fmt == "ohlcv":
        return read_ohlcv(file, counts, symbol=symbol, venue=venue, interval=interval)
    if fmt == "capture":
        from algostream.history.capture import read_capture_records

        return read_capture_records(file, counts)
    return read_binance(file, fmt, counts, symbol=symbol, venue=venue, interval=interval)


def read_bars(
    path: str | Path,
    fmt: str = "ohlcv",
    *,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Bar]:
    """The bars of a history file, ready for a bar backtest.

    Klines and OHLCV files hold bars; trade files (and captures' trades) are aggregated
    into ``interval`` bars by the live bar stage (:class:`~algostream.marketdata.bars.
    BarAggregator`), the last bar closed at the end of the file.
    """
    records = read_records(path, fmt, symbol=symbol, venue=venue, interval=interval, stats=stats)
    if fmt == "ohlcv" or fmt.endswith("klines"):
        for record in records:
            assert isinstance(record, Bar)
            yield record
        return
    yield from _aggregate(records, interval or "1m")


def _aggregate(records: Iterator[Record], interval: str) -> Iterator[Bar]:
    from algostream.marketdata.bars import BarAggregator

    agg = BarAggregator(interval)  # type: ignore[arg-type]  # checked: raises naming it
    last = 0
    for record in records:
        if isinstance(record, TradeTick):
            last = max(last, record.ts_event)
            yield from agg.on_trade(record).bars
        elif isinstance(record, Bar) and record.interval == interval:
            yield record
    yield from agg.on_time(last - last % agg.interval_ns + agg.interval_ns)


def read_trades(
    path: str | Path,
    fmt: str,
    *,
    symbol: str | None = None,
    venue: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[TradeTick]:
    """The trades of an aggTrades/trades dump or a capture file."""
    for record in read_records(path, fmt, symbol=symbol, venue=venue, stats=stats):
        if isinstance(record, TradeTick):
            yield record


def read_merged(
    files: Iterable[tuple[str | Path, str]],
    *,
    symbol: str | None = None,
    venue: str | None = None,
    stats: ReadStats | None = None,
) -> Iterator[Record]:
    """Several history files (``(path, format)``: a trade dump and its bookTicker, say) as
    one stream in event-time order, file order breaking ties; the tick engine's input.

    >>> from pathlib import Path
    >>> d = Path(__file__).resolve().parents[2] / "tests" / "data" / "history"
    >>> recs = list(read_merged([(d / "BTCUSDT-bookTicker-2024-02-01.csv", "binance-um-bookticker"),
    ...                          (d / "BTCUSDT-aggTrades-2024-02-01.csv", "binance-um-aggtrades")]))
    >>> len(recs), all(a.ts_event <= b.ts_event for a, b in zip(recs, recs[1:]))
    (846, True)
    """
    streams = [
        (
            (r.ts_event, n, i, r)
            for i, r in enumerate(read_records(path, fmt, symbol=symbol, venue=venue, stats=stats))
        )
        for n, (path, fmt) in enumerate(files)
    ]
    for *_, record in heapq.merge(*streams):
        yield record
