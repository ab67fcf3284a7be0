"""Binance public data dumps (``data.binance.vision``): klines, aggTrades and trades CSV.

Column orders as Binance documents them (``binance-public-data`` README); the USD-M
futures files start with a header row of these names, the spot files have none, and both
are read either way (a header must name the format's columns, so a file that is not what
its ``--format`` says is refused on line 1)::

    klines      open_time, open, high, low, close, volume, close_time, quote_volume,
                count, taker_buy_volume, taker_buy_quote_volume, ignore   (spot and USD-M)
    aggTrades   agg_trade_id, price, quantity, first_trade_id, last_trade_id,
                transact_time, is_buyer_maker [, is_best_match: spot only]
    trades      id, price, qty, quote_qty, time, is_buyer_maker
                [, is_best_match: spot only]
    bookTicker  update_id, best_bid_price, best_bid_qty, best_ask_price, best_ask_qty,
                transaction_time, event_time                              (USD-M only)

A bookTicker row is a one-level ``md.book`` SNAPSHOT (best bid and ask), at its
``transaction_time`` (received at ``event_time``), ordered by ``update_id``: with it a
trade dump gets the book tops the risk gate and the paper broker price orders against.
Timestamps are milliseconds, or microseconds in spot files from 2025 on: told apart per
value by size. ``is_buyer_maker`` true means the seller crossed the spread (aggressor
SELL), as the live adapter reads the stream's ``m``. Record ids are the live ones (a trade
from a dump and from the stream have the same ``record_id``), and each record's
``lineage_id`` names the file and line it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from algostream.history.errors import HistoryFormatError
from algostream.history.rows import (
    INTERVAL_NS,
    ReadStats,
    Row,
    bool_cell,
    csv_rows,
    decimal_cell,
    drive,
    epoch_ns,
    int_cell,
    interval_of,
    open_text,
)
from algostream.marketdata.frames import build
from algostream.model.enums import BookUpdateKind, Side
from algostream.model.ids import derive_id, instrument_id
from algostream.model.records import Bar, BookUpdate, TradeTick

KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
AGG_TRADE_COLUMNS = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
)
TRADE_COLUMNS = ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker")
BOOK_TICKER_COLUMNS = (
    "update_id",
    "best_bid_price",
    "best_bid_qty",
    "best_ask_price",
    "best_ask_qty",
    "transaction_time",
    "event_time",
)
BEST_MATCH = ("is_best_match",)


@dataclass(frozen=True)
class Layout:
    """One Binance dump format: what it holds, its columns, the venue of its instruments."""

    kind: str  # klines | aggTrades | trades
    columns: tuple[str, ...]
    venue: str


#: ``--format`` name -> layout: the Binance dumps on one screen
LAYOUTS: dict[str, Layout] = {
    "binance-spot-klines": Layout("klines", KLINE_COLUMNS, "BINANCE"),
    "binance-um-klines": Layout("klines", KLINE_COLUMNS, "BINANCE_UM"),
    "binance-spot-aggtrades": Layout("aggTrades", AGG_TRADE_COLUMNS + BEST_MATCH, "BINANCE"),
    "binance-um-aggtrades": Layout("aggTrades", AGG_TRADE_COLUMNS, "BINANCE_UM"),
    "binance-spot-trades": Layout("trades", TRADE_COLUMNS + BEST_MATCH, "BINANCE"),
    "binance-um-trades": Layout("trades", TRADE_COLUMNS, "BINANCE_UM"),
    "binance-um-bookticker": Layout("bookTicker", BOOK_TICKER_COLUMNS, "BINANCE_UM"),
}


def symbol_from_name(path: Path) -> str | None:
    """``BTCUSDT`` from Binance's file names (``BTCUSDT-1m-2024-01.zip``), else ``None``."""
    head = path.name.split("-", 1)[0]
    return head.upper() if head.isalnum() and head != path.name else None


def _rows(where: str, layout: Layout, rows: Iterator[Row], stats: ReadStats) -> Iterator[Row]:
    """Drop a header row (checked against the layout); refuse rows of the wrong width."""
    width = len(layout.columns)
    for line, cells in rows:
        if line == 1 and cells and not cells[0].strip().isdigit():
            names = tuple(c.strip().lower() for c in cells)
            if names != layout.columns:
                raise HistoryFormatError(
                    where,
                    1,
                    None,
                    f"header {list(cells)} is not this format's columns {list(layout.columns)}",
                )
            continue
        if len(cells) != width:
            stats.rows += 1
            stats.reject(
                HistoryFormatError(
                    where,
                    line,
                    None,
                    f"{len(cells)} columns, expected {width} ({', '.join(layout.columns)})",
                )
            )
            continue
        yield line, cells


def read_binance(
    path: Path,
    fmt: str,
    stats: ReadStats,
    *,
    symbol: str | None = None,
    venue: str | None = None,
    interval: str | None = None,
) -> Iterator[Bar] | Iterator[TradeTick] | Iterator[BookUpdate]:
    """Records of a Binance dump: :class:`Bar` for klines, :class:`TradeTick` otherwise."""
    layout = LAYOUTS[fmt]
    where = str(path)
    sym = symbol or symbol_from_name(path)
    if sym is None:
        raise HistoryFormatError(where, None, None, "no symbol: pass --symbol (e.g. BTCUSDT)")
    inst = instrument_id(venue or layout.venue, sym)
    if layout.kind == "klines":
        return _klines(path, layout, inst, stats, interval)
    if layout.kind == "bookTicker":
        return _book_ticker(path, layout, inst, stats)
    return _trades(path, layout, inst, stats)


def _klines(
    path: Path, layout: Layout, inst: str, stats: ReadStats, interval: str | None
) -> Iterator[Bar]:
    where = str(path)
    parser = _KlineParser(where, inst, interval, path.name)
    with open_text(path) as text:
        rows = _rows(where, layout, csv_rows(where, text, stats), stats)
        yield from drive(where, rows, parser.parse, stats, _start, "open_time", strict=True)


def _start(bar: Bar) -> int:
    return bar.start_ns


def _ts(record: TradeTick) -> int:
    return record.ts_event


class _KlineParser:
    def __init__(self, where: str, inst: str, interval: str | None, name: str) -> None:
        self.where, self.inst, self.interval, self.name = where, inst, interval, name

    def parse(self, line: int, c: list[str]) -> Bar:
        w = self.where
        start, unit = epoch_ns(w, line, "open_time", c[0])
        close_ns, _ = epoch_ns(w, line, "close_time", c[6])
        length = close_ns + unit - start
        if self.interval is None:  # the first row decides; the others must agree
            self.interval = interval_of(w, line, "close_time", length)
        if length != INTERVAL_NS[self.interval]:
            raise HistoryFormatError(
                w, line, "close_time", f"{c[6]!r} does not close a {self.interval} bar at {c[0]}"
            )
        o, h, low, cl = (
            decimal_cell(w, line, name, c[i], positive=True)
            for i, name in ((1, "open"), (2, "high"), (3, "low"), (4, "close"))
        )
        check_ohlc(w, line, o, h, low, cl)
        return build(
            Bar,
            instrument=self.inst,
            ts_event=start + length,
            ts_init=start + length,
            record_id=derive_id("bar", self.inst, self.interval, start),
            lineage_id=f"file:{self.name}:{line}"[:128],
            interval=self.interval,
            start_ns=start,
            end_ns=start + length,
            open=o,
            high=h,
            low=low,
            close=cl,
            volume=decimal_cell(w, line, "volume", c[5], positive=False),
            quote_volume=decimal_cell(w, line, "quote_volume", c[7], positive=False),
            trades=int_cell(w, line, "count", c[8]),
        )


def check_ohlc(where: str, line: int, o: Decimal, h: Decimal, low: Decimal, c: Decimal) -> None:
    """high is the highest and low the lowest of the four prices, or an error naming them."""
    if h < max(o, c, low):
        raise HistoryFormatError(where, line, "high", f"{h} is below open/low/close {o}/{low}/{c}")
    if low > min(o, c):
        raise HistoryFormatError(where, line, "low", f"{low} is above open/close {o}/{c}")


_MAKER = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_MS_MIN, _US_MIN, _US_MAX = 10**11, 10**14, 10**17


class _Slow(Exception):
    """A cell the fast path does not take: the checked path decides (and names it)."""


def _trades(path: Path, layout: Layout, inst: str, stats: ReadStats) -> Iterator[TradeTick]:
    where = str(path)
    agg = layout.kind == "aggTrades"
    kind = "aggTrade" if agg else "trade"
    cols = (0, 1, 2, 5, 6) if agg else (0, 1, 2, 4, 5)
    names = [layout.columns[i] for i in cols]
    i_id, i_price, i_size, i_time, i_maker = cols
    lineage = f"file:{path.name}:"[:110]

    def checked(line: int, c: list[str]) -> tuple[str, Decimal, Decimal, int, bool]:
        trade_id = str(int_cell(where, line, names[0], c[i_id]))
        price = decimal_cell(where, line, names[1], c[i_price], positive=True)
        size = decimal_cell(where, line, names[2], c[i_size], positive=False)
        ts, _ = epoch_ns(where, line, names[3], c[i_time])
        return trade_id, price, size, ts, bool_cell(where, line, names[4], c[i_maker])

    def fast(c: list[str]) -> tuple[str, Decimal, Decimal, int, bool]:
        trade_id, price, size = c[i_id], Decimal(c[i_price]), Decimal(c[i_size])
        stamp, maker = int(c[i_time]), _MAKER[c[i_maker]]
        if not (trade_id.isdigit() and price.is_finite() and size.is_finite()):
            raise _Slow
        if price <= 0 or size < 0 or not _MS_MIN <= stamp < _US_MAX:
            raise _Slow
        return trade_id, price, size, stamp * (1_000_000 if stamp < _US_MIN else 1_000), maker

    def parse(line: int, c: list[str]) -> TradeTick:
        try:
            trade_id, price, size, ts, maker = fast(c)
        except (_Slow, ArithmeticError, ValueError, KeyError):
            trade_id, price, size, ts, maker = checked(line, c)
        return build(
            TradeTick,
            instrument=inst,
            ts_event=ts,
            ts_init=ts,
            record_id=derive_id("trade", inst, kind, trade_id, ts),
            lineage_id=lineage + str(line),
            trade_id=trade_id,
            price=price,
            size=size,
            aggressor_side=Side.SELL if maker else Side.BUY,
        )

    with open_text(path) as text:
        rows = _rows(where, layout, csv_rows(where, text, stats), stats)
        yield from drive(where, rows, parse, stats, _ts, names[3], strict=False)


def _book_ticker(path: Path, layout: Layout, inst: str, stats: ReadStats) -> Iterator[BookUpdate]:
    where = str(path)
    cols = layout.columns

    def parse(line: int, c: list[str]) -> BookUpdate:
        uid = int_cell(where, line, cols[0], c[0])
        bid, ask = (decimal_cell(where, line, cols[i], c[i], positive=True) for i in (1, 3))
        bid_qty, ask_qty = (
            decimal_cell(where, line, cols[i], c[i], positive=False) for i in (2, 4)
        )
        if bid >= ask:
            raise HistoryFormatError(where, line, cols[3], f"{c[3]!r} is not above the bid {c[1]}")
        ts, _ = epoch_ns(where, line, cols[5], c[5])
        seen, _ = epoch_ns(where, line, cols[6], c[6])
        return build(
            BookUpdate,
            instrument=inst,
            ts_event=ts,
            ts_init=max(ts, seen),
            record_id=derive_id("book", inst, "bookTicker", uid),
            lineage_id=f"file:{path.name}:{line}"[:128],
            kind=BookUpdateKind.SNAPSHOT,
            bids=((bid, bid_qty),),
            asks=((ask, ask_qty),),
            first_update_id=uid,
            final_update_id=uid,
        )

    with open_text(path) as text:
        rows = _rows(where, layout, csv_rows(where, text, stats), stats)
        yield from drive(where, rows, parse, stats, _update_id, cols[0], strict=True)


def _update_id(update: BookUpdate) -> int:
    return update.final_update_id
